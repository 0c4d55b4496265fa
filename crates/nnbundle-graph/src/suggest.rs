//! "Did you mean": the nearest known name for a misspelled one.

/// How a wanted name relates to the known one suggested for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suggestion<'a> {
    /// The known name is the wanted one with a prefix added (`model.` + `hidden.weight`).
    ExtraPrefix {
        /// The known name.
        name: &'a str,
        /// What it has in front of the wanted name.
        prefix: &'a str,
    },
    /// The wanted name is the known one with a prefix added.
    MissingPrefix {
        /// The known name.
        name: &'a str,
        /// What the wanted name has in front of it.
        prefix: String,
    },
    /// A known name spelled alike.
    Similar(&'a str),
}

impl Suggestion<'_> {
    /// The known name suggested.
    pub fn name(&self) -> &str {
        match self {
            Suggestion::ExtraPrefix { name, .. }
            | Suggestion::MissingPrefix { name, .. }
            | Suggestion::Similar(name) => name,
        }
    }

    /// The dotted prefix by which the names differ, if that is how they differ.
    pub fn prefix(&self) -> Option<&str> {
        match self {
            Suggestion::ExtraPrefix { prefix, .. } => Some(prefix),
            Suggestion::MissingPrefix { prefix, .. } => Some(prefix),
            Suggestion::Similar(_) => None,
        }
    }
}

impl std::fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "did you mean `{}`?", self.name())?;
        match self.prefix() {
            Some(prefix) => write!(f, " (the names differ by the prefix `{prefix}`)"),
            None => Ok(()),
        }
    }
}

/// Smallest similarity (1 - edit distance / length, transpositions counting
/// one edit) for a suggestion: `hiden` finds `hidden`, `output.bias` does not
/// find `output.weight`.
const MIN_SIMILARITY: f64 = 0.75;

/// The known name closest to `wanted`: one that differs by a dotted prefix
/// first (the shortest such prefix), else the most similar spelling.
pub fn did_you_mean<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<Suggestion<'a>> {
    let mut best: Option<(f64, &'a str)> = None;
    let mut prefixed: Option<Suggestion<'a>> = None;
    let prefix_len = |s: &Suggestion<'_>| s.prefix().map_or(usize::MAX, str::len);
    for name in known {
        if name == wanted {
            continue;
        }
        let candidate = if let Some(prefix) = name.strip_suffix(wanted).filter(|p| p.ends_with('.')) {
            Some(Suggestion::ExtraPrefix { name, prefix })
        } else {
            wanted
                .strip_suffix(name)
                .filter(|p| p.ends_with('.'))
                .map(|p| Suggestion::MissingPrefix { name, prefix: p.to_owned() })
        };
        if let Some(c) = candidate {
            if prefixed.as_ref().is_none_or(|p| prefix_len(&c) < prefix_len(p)) {
                prefixed = Some(c);
            }
            continue;
        }
        let score = strsim::normalized_damerau_levenshtein(wanted, name);
        if score >= MIN_SIMILARITY && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, name));
        }
    }
    prefixed.or(best.map(|(_, name)| Suggestion::Similar(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_come_before_spellings() {
        let known = ["model.hidden.weight", "hidden.weigth", "output.weight"];
        assert_eq!(
            did_you_mean("hidden.weight", known),
            Some(Suggestion::ExtraPrefix { name: "model.hidden.weight", prefix: "model." })
        );
        assert_eq!(
            did_you_mean("model.output.weight", ["output.weight"]),
            Some(Suggestion::MissingPrefix { name: "output.weight", prefix: "model.".into() })
        );
    }

    #[test]
    fn spellings_need_to_be_close() {
        assert_eq!(did_you_mean("hiden", ["hidden", "relu", "output"]), Some(Suggestion::Similar("hidden")));
        assert_eq!(did_you_mean("conv", ["hidden", "relu", "output"]), None);
        assert_eq!(did_you_mean("output.bias", ["output.weight"]), None);
        assert_eq!(did_you_mean("hidden.weigth", ["hidden.weight"]), Some(Suggestion::Similar("hidden.weight")));
        // A prefix that is not a whole dotted level is no prefix.
        assert_eq!(did_you_mean("weight", ["xweight"]), Some(Suggestion::Similar("xweight")));
        assert_eq!(
            did_you_mean("model.hidden.weight", ["hidden.weight"]).unwrap().to_string(),
            "did you mean `hidden.weight`? (the names differ by the prefix `model.`)"
        );
    }
}
