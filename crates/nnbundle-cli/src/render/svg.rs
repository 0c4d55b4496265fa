//! The SVG drawing of a laid-out picture.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::layout::{Layout, layout};
use super::{COLOURS, Kind, Picture, colour};

const CHAR_W: f64 = 7.0;
const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;
const MARGIN: f64 = 20.0;
/// Height of the legend above the picture.
const LEGEND_H: f64 = 30.0;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Width and height of each box, from its text.
pub(crate) fn sizes(picture: &Picture) -> Vec<(f64, f64)> {
    picture
        .items
        .iter()
        .map(|it| {
            let chars = std::iter::once(&it.title).chain(&it.lines).map(|l| l.chars().count()).max().unwrap_or(1);
            let w = (chars as f64 * CHAR_W + 2.0 * PAD).max(56.0);
            (w, (1 + it.lines.len()) as f64 * LINE_H + 2.0 * PAD - 2.0)
        })
        .collect()
}

/// The path of a route: vertical runs as lines, crossings of the gap
/// between two rows as curves that stay inside that gap.
fn path(points: &[(f64, f64)]) -> String {
    let mut d = String::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        if i == 0 {
            let _ = write!(d, "M {x:.1} {y:.1}");
        } else if i % 2 == 1 {
            let _ = write!(d, " L {x:.1} {y:.1}");
        } else {
            let (px, py) = points[i - 1];
            let my = (py + y) / 2.0;
            let _ = write!(d, " C {px:.1} {my:.1}, {x:.1} {my:.1}, {x:.1} {y:.1}");
        }
    }
    d
}

/// The foot of a box's stem, where the shape of its value is written.
struct Stem<'a> {
    x: f64,
    y: f64,
    text: &'a str,
}

/// Where a label goes: its anchor point, and whether it ends there (left of the stem).
struct LabelAt {
    x: f64,
    y: f64,
    end: bool,
}

/// Width of a character of the 10 px label font.
const LABEL_CHAR_W: f64 = 6.0;

/// Places each stem's label right of the stem, else left of it, else a line
/// lower (right, then left), wherever it overlaps no label placed before; a
/// label with no room is left out (the edge's tooltip still gives it).
fn place_labels<'a, 'b>(stems: &'b [Stem<'a>]) -> Vec<(&'b Stem<'a>, LabelAt)> {
    let mut taken: Vec<(f64, f64, f64)> = Vec::new(); // (y, left, right)
    let mut order: Vec<&Stem<'_>> = stems.iter().collect();
    order.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
    let mut out = Vec::new();
    for stem in order {
        let width = stem.text.chars().count() as f64 * LABEL_CHAR_W;
        let candidates = [
            (stem.y - 3.0, stem.x + 4.0, false),
            (stem.y - 3.0, stem.x - 4.0, true),
            (stem.y + 9.0, stem.x + 4.0, false),
            (stem.y + 9.0, stem.x - 4.0, true),
        ];
        let free = |&(y, x, end): &(f64, f64, bool)| {
            let (left, right) = if end { (x - width, x) } else { (x, x + width) };
            // Neither on another label nor across another stem of the row.
            let clear_of_labels =
                taken.iter().all(|&(ty, l, r)| (ty - y).abs() >= 11.0 || right + 3.0 <= l || left >= r + 3.0);
            let clear_of_stems = stems
                .iter()
                .all(|o| (o.y - stem.y).abs() > 1.0 || o.x <= left - 2.0 || o.x >= right + 2.0 || o.x == stem.x);
            clear_of_labels && clear_of_stems
        };
        if let Some(&(y, x, end)) = candidates.iter().find(|c| free(c)) {
            let (left, right) = if end { (x - width, x) } else { (x, x + width) };
            taken.push((y, left, right));
            out.push((stem, LabelAt { x, y, end }));
        }
    }
    out
}

/// A standalone SVG document: a legend of the op families present, the
/// boxes, and the edges with the shapes of the values they carry.
pub(crate) fn svg(picture: &Picture) -> String {
    let sizes = sizes(picture);
    let placed: Layout = layout(&sizes, &picture.edges);
    let legend: Vec<(&str, &str)> =
        COLOURS.iter().copied().filter(|(f, _)| picture.items.iter().any(|i| i.family == *f)).collect();
    let legend_w: f64 = legend.iter().map(|(f, _)| f.len() as f64 * CHAR_W + 30.0).sum();
    let (dx, dy) = (MARGIN, MARGIN + LEGEND_H);
    let width = placed.width.max(legend_w) + 2.0 * MARGIN;
    let height = placed.height + dy + MARGIN;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">"
    );
    s.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n");
    s.push_str("  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    // The legend.
    s.push_str("  <g class=\"legend\">\n");
    let mut lx = MARGIN;
    for (family, fill) in &legend {
        let _ = writeln!(
            s,
            "    <rect x=\"{lx:.1}\" y=\"{MARGIN:.1}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\">{family}</text>",
            lx + 19.0,
            MARGIN + 11.5
        );
        lx += family.len() as f64 * CHAR_W + 30.0;
    }
    s.push_str("  </g>\n");
    // Edges, and once per source the shape of the value it hands on.
    let mut stems: Vec<Stem> = Vec::new();
    let mut labelled = BTreeSet::new();
    for route in &placed.routes {
        let shifted: Vec<(f64, f64)> = route.points.iter().map(|&(x, y)| (x + dx, y + dy)).collect();
        let marker = if route.reversed { "marker-start" } else { "marker-end" };
        let from = picture.edges[route.edge].0;
        let value = picture.items[from].value.as_deref();
        let title = value.map(|v| format!("<title>{}</title>", xml(v))).unwrap_or_default();
        let _ = writeln!(
            s,
            "  <path d=\"{}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.2\" {marker}=\"url(#arrow)\">{title}</path>",
            path(&shifted)
        );
        if let (false, Some(value), Some(&(x, y))) = (route.reversed, value, shifted.get(1))
            && labelled.insert(from)
        {
            stems.push(Stem { x, y, text: value });
        }
    }
    for (stem, at) in place_labels(&stems) {
        let anchor = if at.end { " text-anchor=\"end\"" } else { "" };
        let _ = writeln!(
            s,
            "  <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\"{anchor}>{}</text>",
            at.x,
            at.y,
            xml(stem.text)
        );
    }
    // Boxes.
    for (i, item) in picture.items.iter().enumerate() {
        let (w, h) = sizes[i];
        let (cx, y) = (placed.x[i] + dx, placed.y[i] + dy);
        let x = cx - w / 2.0;
        let (radius, dash) = match item.kind {
            Kind::Input | Kind::Output => (h / 2.0, ""),
            Kind::Node => (6.0, ""),
            Kind::Group => (6.0, " stroke-dasharray=\"4 3\""),
        };
        let tip = std::iter::once(item.title.as_str()).chain(item.lines.iter().map(String::as_str)).collect::<Vec<_>>();
        let _ = writeln!(s, "  <g class=\"{}\"><title>{}</title>", item.family, xml(&tip.join("\n")));
        let _ = writeln!(
            s,
            "    <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"{radius:.1}\" fill=\"{}\" stroke=\"#333\"{dash}/>",
            colour(item.family)
        );
        for (k, line) in tip.iter().enumerate() {
            let style = match k {
                0 => " font-weight=\"bold\"",
                1 if item.kind == Kind::Node => " fill=\"#1a3f8f\"",
                _ => "",
            };
            let ty = y + PAD + LINE_H * (k as f64 + 0.75);
            let _ =
                writeln!(s, "    <text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\"{style}>{}</text>", xml(line));
        }
        s.push_str("  </g>\n");
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_labels_move_aside_instead_of_overlapping() {
        let text = "[1, 128, 27, 27]"; // 16 characters, 96 px
        let stems =
            [Stem { x: 100.0, y: 50.0, text }, Stem { x: 140.0, y: 50.0, text }, Stem { x: 400.0, y: 50.0, text }];
        let placed = place_labels(&stems);
        let at = |x: f64| placed.iter().find(|(s, _)| s.x == x).map(|(_, a)| (a.x, a.y, a.end));
        // The first would cover the second's stem: it goes left of its own.
        assert_eq!(at(100.0), Some((96.0, 47.0, true)));
        assert_eq!(at(140.0), Some((144.0, 47.0, false)));
        assert_eq!(at(400.0), Some((404.0, 47.0, false)), "a label with room stays right of its stem");
        // A third stem between the two: only the line below is left for it.
        let crowded =
            [Stem { x: 100.0, y: 50.0, text }, Stem { x: 120.0, y: 50.0, text }, Stem { x: 140.0, y: 50.0, text }];
        let placed = place_labels(&crowded);
        let spans: Vec<(f64, f64, f64)> =
            placed.iter().map(|(_, a)| if a.end { (a.y, a.x - 96.0, a.x) } else { (a.y, a.x, a.x + 96.0) }).collect();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                assert!((a.0 - b.0).abs() >= 11.0 || a.2 <= b.1 || b.2 <= a.1, "{a:?} overlaps {b:?}");
            }
        }
    }
}
