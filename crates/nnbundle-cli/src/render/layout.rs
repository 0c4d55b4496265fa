//! A layered (Sugiyama-style) layout: boxes in rows by longest path, a
//! stand-in point in every row a long edge crosses (so that edges run only
//! between neighbouring rows and beside boxes, never through one), rows
//! ordered by barycenter sweeps that keep the ordering with the fewest
//! crossings, and x positions that pull each box towards its neighbours
//! while keeping order and spacing (isotonic regression, solved exactly by
//! pooling adjacent violators).

/// Horizontal space between neighbours in a row.
pub(crate) const GAP_X: f64 = 24.0;
/// Vertical space between rows (edge labels go there).
pub(crate) const GAP_Y: f64 = 50.0;
/// Length of the straight stem below a box before its edges fan out (its value's label goes beside it).
const STEM: f64 = 14.0;
/// Width of the lane a long edge takes in a row it crosses.
const LANE: f64 = 6.0;
/// Sweeps of crossing reduction, and of coordinate refinement.
const SWEEPS: usize = 12;

/// Where everything goes.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Centre x of each box.
    pub x: Vec<f64>,
    /// Top y of each box.
    pub y: Vec<f64>,
    /// Each edge's route, top to bottom.
    pub routes: Vec<Route>,
    pub width: f64,
    pub height: f64,
}

/// The path of one edge.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The edge's index in the input.
    pub edge: usize,
    /// Points from the upper box to the lower one: straight vertical runs
    /// alternate with crossings of the gap between two rows.
    pub points: Vec<(f64, f64)>,
    /// The edge points up (it closes a cycle of collapsed blocks): its arrow
    /// belongs at the first point.
    pub reversed: bool,
}

/// A vertex of the layered graph: a box, or the stand-in of a long edge in one row.
#[derive(Debug, Clone, Copy)]
struct Vertex {
    width: f64,
    layer: usize,
}

/// Lays out boxes of `sizes` (width, height) joined by `edges` (from, to).
pub(crate) fn layout(sizes: &[(f64, f64)], edges: &[(usize, usize)]) -> Layout {
    let n = sizes.len();
    let order = topological_order(n, edges);
    let mut rank = vec![0usize; n];
    for (pos, &v) in order.iter().enumerate() {
        rank[v] = pos;
    }
    // Forward edges (by the order) define the layers; the others are drawn reversed.
    let oriented: Vec<(usize, usize, bool)> =
        edges.iter().map(|&(a, b)| if rank[a] < rank[b] { (a, b, false) } else { (b, a, true) }).collect();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b, _) in &oriented {
        if a != b {
            preds[b].push(a);
        }
    }
    let mut layer = vec![0usize; n];
    for &v in &order {
        layer[v] = preds[v].iter().map(|&p| layer[p] + 1).max().unwrap_or(0);
    }
    // A box nothing feeds (a graph input) goes right above its first reader,
    // so that an input used late (a mask) does not run down the whole picture.
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b, _) in &oriented {
        if a != b {
            succs[a].push(b);
        }
    }
    for v in 0..n {
        if preds[v].is_empty()
            && let Some(first) = succs[v].iter().map(|&s| layer[s]).min()
        {
            layer[v] = first - 1;
        }
    }
    let layers = layer.iter().max().map_or(0, |m| m + 1);

    // Vertices: the boxes, then a stand-in per row a long edge crosses.
    let mut vertices: Vec<Vertex> = (0..n).map(|v| Vertex { width: sizes[v].0, layer: layer[v] }).collect();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(oriented.len());
    let mut links: Vec<(usize, usize)> = Vec::new();
    for &(a, b, _) in &oriented {
        let mut chain = vec![a];
        for l in layer[a] + 1..layer[b] {
            vertices.push(Vertex { width: LANE, layer: l });
            chain.push(vertices.len() - 1);
        }
        chain.push(b);
        links.extend(chain.windows(2).map(|w| (w[0], w[1])));
        chains.push(chain);
    }
    let mut up: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for &(a, b) in &links {
        if a != b {
            down[a].push(b);
            up[b].push(a);
        }
    }

    // Rows, first in the topological order (stand-ins after the boxes).
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for &v in &order {
        rows[layer[v]].push(v);
    }
    for (v, vertex) in vertices.iter().enumerate().skip(n) {
        rows[vertex.layer].push(v);
    }
    order_rows(&mut rows, &up, &down, vertices.len());

    // Heights and tops of the rows.
    let mut row_top = Vec::with_capacity(layers);
    let mut row_height = Vec::with_capacity(layers);
    let mut y = 0.0;
    for row in &rows {
        let h = row.iter().filter(|&&v| v < n).map(|&v| sizes[v].1).fold(0.0, f64::max);
        row_top.push(y);
        row_height.push(h);
        y += h + GAP_Y;
    }
    let height = (y - GAP_Y).max(0.0);

    let x = place(&rows, &vertices, &up, &down);
    let (min_x, max_x) = (0..vertices.len()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(x[v] - vertices[v].width / 2.0), hi.max(x[v] + vertices[v].width / 2.0))
    });
    let shift = if min_x.is_finite() { -min_x } else { 0.0 };
    let x: Vec<f64> = x.iter().map(|v| v + shift).collect();

    let routes = oriented
        .iter()
        .zip(&chains)
        .enumerate()
        .map(|(edge, (&(_, _, reversed), chain))| {
            let mut points = Vec::with_capacity(chain.len() * 2);
            for (k, &v) in chain.iter().enumerate() {
                let l = vertices[v].layer;
                if k > 0 {
                    points.push((x[v], row_top[l]));
                }
                if k + 1 < chain.len() {
                    // Leave the box at its bottom, then run down past the row's bottom.
                    let bottom = if v < n { row_top[l] + sizes[v].1 } else { row_top[l] };
                    points.push((x[v], bottom));
                    points.push((x[v], row_top[l] + row_height[l] + STEM));
                }
            }
            Route { edge, points, reversed }
        })
        .collect();
    Layout {
        x: x[..n].to_vec(),
        y: (0..n).map(|v| row_top[layer[v]]).collect(),
        routes,
        width: if max_x.is_finite() { max_x + shift } else { 0.0 },
        height,
    }
}

/// Vertices in an order where every edge goes forward, except edges that
/// close a cycle: Kahn's algorithm, taking the lowest-numbered vertex when
/// every remaining one waits on another.
fn topological_order(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut pending = vec![0usize; n];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b {
            pending[b] += 1;
            readers[a].push(b);
        }
    }
    let mut done = vec![false; n];
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&v| pending[v] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut next_unfinished = 0;
    while order.len() < n {
        let v = match ready.pop_first() {
            Some(v) => v,
            None => {
                while done[next_unfinished] {
                    next_unfinished += 1;
                }
                next_unfinished
            }
        };
        if done[v] {
            continue;
        }
        done[v] = true;
        order.push(v);
        for &r in &readers[v] {
            pending[r] = pending[r].saturating_sub(1);
            if pending[r] == 0 && !done[r] {
                ready.insert(r);
            }
        }
    }
    order
}

/// Crossings between two neighbouring rows, counted by inversions.
fn crossings(upper: &[usize], down: &[Vec<usize>], pos: &[usize]) -> usize {
    let mut ends: Vec<usize> = Vec::new();
    for &u in upper {
        let mut targets: Vec<usize> = down[u].iter().map(|&d| pos[d]).collect();
        targets.sort_unstable();
        ends.extend(targets);
    }
    count_inversions(&mut ends)
}

fn count_inversions(v: &mut [usize]) -> usize {
    if v.len() < 2 {
        return 0;
    }
    let mid = v.len() / 2;
    let mut count = count_inversions(&mut v[..mid]) + count_inversions(&mut v[mid..]);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < v.len() {
        if v[i] <= v[j] {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[j]);
            count += mid - i;
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
    count
}

fn total_crossings(rows: &[Vec<usize>], down: &[Vec<usize>], pos: &[usize]) -> usize {
    rows.windows(2).map(|w| crossings(&w[0], down, pos)).sum()
}

/// Barycenter sweeps down and up; keeps the ordering with the fewest crossings.
fn order_rows(rows: &mut [Vec<usize>], up: &[Vec<usize>], down: &[Vec<usize>], count: usize) {
    let mut pos = vec![0usize; count];
    let index = |rows: &[Vec<usize>], pos: &mut [usize]| {
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i;
            }
        }
    };
    index(rows, &mut pos);
    let mut best = rows.to_vec();
    let mut best_crossings = total_crossings(rows, down, &pos);
    for sweep in 0..SWEEPS {
        if best_crossings == 0 {
            break;
        }
        let downward = sweep % 2 == 0;
        let layers: Vec<usize> =
            if downward { (1..rows.len()).collect() } else { (0..rows.len().saturating_sub(1)).rev().collect() };
        for l in layers {
            let neighbours = if downward { up } else { down };
            let keys: Vec<(f64, usize)> = rows[l]
                .iter()
                .map(|&v| {
                    let adj = &neighbours[v];
                    let key = if adj.is_empty() {
                        pos[v] as f64
                    } else {
                        adj.iter().map(|&a| pos[a] as f64).sum::<f64>() / adj.len() as f64
                    };
                    (key, v)
                })
                .collect();
            let mut sorted = keys;
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            rows[l] = sorted.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in rows[l].iter().enumerate() {
                pos[v] = i;
            }
        }
        let c = total_crossings(rows, down, &pos);
        if c < best_crossings {
            best_crossings = c;
            best = rows.to_vec();
        }
    }
    rows.clone_from_slice(&best);
}

/// X centres: rows packed, then sweeps that pull each vertex to the mean of
/// its neighbours in the row above (then below), as close as order and spacing allow.
fn place(rows: &[Vec<usize>], vertices: &[Vertex], up: &[Vec<usize>], down: &[Vec<usize>]) -> Vec<f64> {
    let mut x = vec![0.0; vertices.len()];
    for row in rows {
        let mut at = 0.0;
        for &v in row {
            x[v] = at + vertices[v].width / 2.0;
            at += vertices[v].width + GAP_X;
        }
    }
    for sweep in 0..SWEEPS {
        let downward = sweep % 2 == 0;
        let layers: Vec<usize> = if downward { (0..rows.len()).collect() } else { (0..rows.len()).rev().collect() };
        for l in layers {
            let row = &rows[l];
            let desired: Vec<f64> = row
                .iter()
                .map(|&v| {
                    let adj = if downward { &up[v] } else { &down[v] };
                    let both: Vec<usize> =
                        if adj.is_empty() { up[v].iter().chain(&down[v]).copied().collect() } else { adj.clone() };
                    if both.is_empty() { x[v] } else { both.iter().map(|&a| x[a]).sum::<f64>() / both.len() as f64 }
                })
                .collect();
            let gaps: Vec<f64> =
                row.windows(2).map(|w| (vertices[w[0]].width + vertices[w[1]].width) / 2.0 + GAP_X).collect();
            for (&v, xv) in row.iter().zip(spaced_closest(&desired, &gaps)) {
                x[v] = xv;
            }
        }
    }
    x
}

/// The positions closest (least squares) to `desired` with
/// `x[i + 1] - x[i] >= gaps[i]`: with the gaps taken out, an isotonic
/// regression, solved by pooling adjacent violators.
fn spaced_closest(desired: &[f64], gaps: &[f64]) -> Vec<f64> {
    let mut offset = Vec::with_capacity(desired.len());
    let mut acc = 0.0;
    for i in 0..desired.len() {
        if i > 0 {
            acc += gaps[i - 1];
        }
        offset.push(acc);
    }
    // Blocks of (mean, count), non-decreasing once pooled.
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (d, o) in desired.iter().zip(&offset) {
        blocks.push((d - o, 1));
        while blocks.len() > 1 {
            let (m2, c2) = blocks[blocks.len() - 1];
            let (m1, c1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = ((m1 * c1 as f64 + m2 * c2 as f64) / (c1 + c2) as f64, c1 + c2);
        }
    }
    let mut out = Vec::with_capacity(desired.len());
    for (m, c) in blocks {
        out.extend(std::iter::repeat_n(m, c));
    }
    out.iter().zip(&offset).map(|(y, o)| y + o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_keeps_order_and_moves_as_little_as_possible() {
        // Two boxes that both want x = 10, 10 apart: they split the difference.
        assert_eq!(spaced_closest(&[10.0, 10.0], &[10.0]), [5.0, 15.0]);
        // Already far enough apart: unchanged.
        assert_eq!(spaced_closest(&[0.0, 50.0, 60.0], &[10.0, 10.0]), [0.0, 50.0, 60.0]);
        // The third pushes back the second, which pushes the first.
        assert_eq!(spaced_closest(&[0.0, 0.0, 0.0], &[10.0, 10.0]), [-10.0, 0.0, 10.0]);
    }

    #[test]
    fn inversions_count_crossings() {
        assert_eq!(count_inversions(&mut [0, 1, 2]), 0);
        assert_eq!(count_inversions(&mut [2, 1, 0]), 3);
        assert_eq!(count_inversions(&mut [1, 0, 1, 0]), 3);
    }

    #[test]
    fn an_input_read_late_sits_above_its_reader() {
        let sizes = vec![(60.0, 30.0); 5];
        let placed = layout(&sizes, &[(0, 1), (1, 2), (2, 3), (4, 3)]);
        let row = |v: usize| placed.y[v];
        assert!(row(0) < row(1) && row(1) < row(2) && row(2) < row(3));
        assert_eq!(row(4), row(2), "box 4 feeds only box 3");
    }

    #[test]
    fn cycles_of_blocks_still_get_an_order() {
        let order = topological_order(3, &[(0, 1), (1, 2), (2, 1)]);
        assert_eq!(order.len(), 3);
        assert_eq!(order[0], 0);
    }
}
