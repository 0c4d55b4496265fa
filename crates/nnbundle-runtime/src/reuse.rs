//! Reusing trained parameters: loading a state dict by name, extracting sub-graphs.

use std::collections::BTreeMap;
use std::fmt;

use nnbundle_container::{Bundle, BundleWriter};
use nnbundle_format::Tensor;
use nnbundle_format::names::PARAMS_GROUP;

use crate::error::{Result, RuntimeError};
use crate::model::Model;

/// How to match a state dict to a model's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Fail, changing nothing, unless every parameter is loaded and every
    /// source tensor is used (PyTorch's `strict=True`).
    pub strict: bool,
    /// Prefix renames applied to source names first: `("encoder.", "")`
    /// loads `encoder.0.weight` as `0.weight`. The first matching prefix wins.
    pub rename: Vec<(String, String)>,
}

/// A parameter whose source tensor has another dtype or shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The model's parameter name.
    pub name: String,
    /// What the model has (`f32 [256, 20]`).
    pub expected: String,
    /// What the source has.
    pub found: String,
}

/// What `load_state_dict` did, like PyTorch's `_IncompatibleKeys` plus the loaded names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters set from the source.
    pub loaded: Vec<String>,
    /// Parameters the source does not have (kept as they were).
    pub missing: Vec<String>,
    /// Source tensors no parameter matches.
    pub unexpected: Vec<String>,
    /// Parameters whose source has another dtype or shape (kept as they were).
    pub mismatched: Vec<Mismatch>,
}

impl LoadReport {
    /// True when every parameter was loaded and every source tensor used.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "loaded {} parameter(s)", self.loaded.len())?;
        if !self.missing.is_empty() {
            writeln!(f, "missing: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            writeln!(f, "unexpected: {}", self.unexpected.join(", "))?;
        }
        for m in &self.mismatched {
            writeln!(f, "mismatched: {}: model has {}, source has {}", m.name, m.expected, m.found)?;
        }
        Ok(())
    }
}

fn describe(t: &Tensor) -> String {
    format!("{} {:?}", t.dtype(), t.shape())
}

impl Model {
    /// Sets parameters from named tensors, matching by (renamed) name.
    /// Non-strict: loads what fits and reports the rest. Strict: fails with
    /// the report (and changes nothing) unless it all fits.
    pub fn load_state_dict(&mut self, source: &BTreeMap<String, Tensor>, options: &LoadOptions) -> Result<LoadReport> {
        let renamed: BTreeMap<String, (&String, &Tensor)> = source
            .iter()
            .map(|(name, t)| {
                let mapped = options
                    .rename
                    .iter()
                    .find_map(|(from, to)| name.strip_prefix(from.as_str()).map(|rest| format!("{to}{rest}")))
                    .unwrap_or_else(|| name.clone());
                (mapped, (name, t))
            })
            .collect();
        let mut report = LoadReport::default();
        let mut updates = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        for (name, current) in self.weights_mut() {
            match renamed.get(name) {
                None => report.missing.push(name.clone()),
                Some((original, t)) => {
                    used.insert(original.as_str());
                    if t.dtype() == current.dtype() && t.shape() == current.shape() {
                        report.loaded.push(name.clone());
                        updates.push((name.clone(), (*t).clone()));
                    } else {
                        report.mismatched.push(Mismatch {
                            name: name.clone(),
                            expected: describe(current),
                            found: describe(t),
                        });
                    }
                }
            }
        }
        report.unexpected = source.keys().filter(|k| !used.contains(k.as_str())).cloned().collect();
        if options.strict && !report.is_complete() {
            return Err(RuntimeError::StrictLoad { report: Box::new(report) });
        }
        let updates: BTreeMap<String, Tensor> = updates.into_iter().collect();
        for (name, current) in self.weights_mut() {
            if let Some(t) = updates.get(name) {
                *current = t.clone();
            }
        }
        // Kernels keep weights prepared on first use (packed for GEMM): new ones forget them.
        self.plan()?;
        Ok(report)
    }

    /// Loads the `params` tensors of a bundle (hashes verified) with [`Model::load_state_dict`].
    pub fn load_state_dict_from(&mut self, bundle: &Bundle, options: &LoadOptions) -> Result<LoadReport> {
        let mut source = BTreeMap::new();
        for name in bundle.group(PARAMS_GROUP) {
            source.insert(name.to_owned(), bundle.tensor(name)?);
        }
        for (alias, target) in &bundle.manifest().aliases {
            if bundle.manifest().tensors[target].group == PARAMS_GROUP {
                source.insert(alias.clone(), bundle.tensor(alias)?);
            }
        }
        self.load_state_dict(&source, options)
    }
}

/// A new bundle holding the part of `bundle`'s graph that computes `outputs`
/// (node names) and only the weights that part reads; metadata is kept.
pub fn extract(bundle: &Bundle, outputs: &[&str]) -> Result<BundleWriter> {
    let graph = bundle.graph()?.ok_or(RuntimeError::NoGraph)?;
    let part = graph.subgraph(outputs).map_err(|report| RuntimeError::Graph { report })?;
    let mut writer = BundleWriter::new();
    for p in part.parameters() {
        let Some(info) = bundle.tensor_info(&p.name) else { continue };
        let tensor = bundle.tensor(&p.name)?;
        if info.stored_as == p.name {
            writer.add_tensor(p.name.clone(), tensor)?;
        } else if part.parameters().iter().any(|q| q.name == info.stored_as) {
            writer.add_alias(p.name.clone(), info.stored_as)?;
        } else {
            writer.add_tensor(p.name.clone(), tensor)?;
        }
    }
    for (k, v) in &bundle.manifest().metadata {
        writer.set_metadata(k.clone(), v.clone())?;
    }
    writer.set_graph(part);
    Ok(writer)
}
