//! Packing the operands of a product into the panels the micro-kernels read.

use ndarray::ArrayView2;

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::{HALF_MR, MR, NR, THIRD_MR};

/// A left operand `A [m, k]` packed in panels of [`MR`] rows (the last one
/// [`THIRD_MR`] or [`HALF_MR`] rows when no more are left): a panel of `h`
/// rows starting at row `r` holds `A[r + i][kk]` at `kk * h + i`; rows past
/// `m` are zero.
#[derive(Debug, Clone)]
pub(crate) struct PackedA {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) data: Vec<f32>,
}

impl PackedA {
    /// Packs `a`, any layout.
    pub(crate) fn pack(a: ArrayView2<'_, f32>) -> PackedA {
        let (m, k) = a.dim();
        let last = match m % MR {
            0 => 0,
            left if left <= THIRD_MR => THIRD_MR,
            left if left <= HALF_MR => HALF_MR,
            _ => MR,
        };
        let mut data = vec![0.0; (m / MR * MR + last) * k];
        for (p, panel) in data.chunks_mut((MR * k).max(1)).enumerate() {
            let height = panel.len() / k.max(1);
            for i in 0..height.min(m - p * MR) {
                for (kk, &v) in a.row(p * MR + i).iter().enumerate() {
                    panel[kk * height + i] = v;
                }
            }
        }
        PackedA { m, k, data }
    }

    /// The panels in row order: full ones of [`MR`] rows, then a last one
    /// that may be [`THIRD_MR`] or [`HALF_MR`] rows (its height is its
    /// length over `k`).
    pub(super) fn panels(&self) -> std::slice::Chunks<'_, f32> {
        self.data.chunks(MR * self.k)
    }

    /// The panel after panel `p` (empty after the last): what to prefetch
    /// while a tile of panel `p` computes.
    pub(super) fn panel_after(&self, p: usize) -> &[f32] {
        let rest = self.data.get((p + 1) * MR * self.k..).unwrap_or(&[]);
        &rest[..rest.len().min(MR * self.k)]
    }
}

/// A right operand `B [k, n]` that packs itself, one panel of [`NR`]
/// columns at a time: a matrix, or the implicit im2col matrix of a convolution.
pub(crate) trait PanelSource: Sync {
    /// `(k, n)`.
    fn dim(&self) -> (usize, usize);
    /// Writes columns `start..start + cols` (`cols <= NR`) into `panel`:
    /// `B[kk][start + j]` at `kk * NR + j`, zero for `j >= cols`. Every float
    /// of `panel` is written (it holds stale values before).
    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]);
    /// `B` itself when it is row-major and contiguous (`k` rows of `n`), for
    /// the product to read whole panels in place instead of packing them.
    fn rows_in_place(&self) -> Option<&[f32]> {
        None
    }
    /// `B` already packed whole, panel after panel as [`Self::pack_panel`]
    /// writes them (panel `q` at `q * NR * k`), for the product to read as is.
    fn packed(&self) -> Option<&[f32]> {
        None
    }
}

/// A right operand its producer wrote packed: `k` rows, `n` columns, in
/// `n.div_ceil(NR)` panels laid out as [`PanelSource::pack_panel`] writes
/// them (the columns of the last panel past `n` are computed and dropped).
pub(crate) struct Prepacked<'a> {
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) panels: &'a [f32],
}

/// All of `b`'s panels, as [`Prepacked`] reads them: for a right operand
/// used by many products (a layer's transposed weights).
pub(crate) fn pack_panels(b: &impl PanelSource) -> Vec<f32> {
    let (k, n) = b.dim();
    let mut panels = vec![0.0; n.div_ceil(NR) * NR * k];
    for (q, panel) in panels.chunks_exact_mut((NR * k).max(1)).enumerate() {
        b.pack_panel(q * NR, NR.min(n - q * NR), panel);
    }
    panels
}

impl PanelSource for Prepacked<'_> {
    fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]) {
        panel.copy_from_slice(&self.panels[start * self.k..][..NR * self.k]);
        for row in panel.chunks_exact_mut(NR) {
            row[cols..].fill(0.0);
        }
    }

    fn packed(&self) -> Option<&[f32]> {
        Some(self.panels)
    }
}

impl PanelSource for ArrayView2<'_, f32> {
    fn dim(&self) -> (usize, usize) {
        ArrayView2::dim(self)
    }

    fn rows_in_place(&self) -> Option<&[f32]> {
        self.to_slice()
    }

    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]) {
        let k = self.nrows();
        match self.as_slice() {
            // Row-major: each NR-wide piece is one fixed-size copy.
            Some(rows) if cols == NR => {
                let n = self.ncols();
                for (dst, src) in panel.chunks_exact_mut(NR).zip(rows[start..].chunks(n)) {
                    let dst: &mut [f32; NR] = dst.try_into().expect("NR-wide chunk");
                    dst.copy_from_slice(&src[..NR]);
                }
            }
            // Column-major (the transpose of a row-major matrix, such as the
            // activations of a linear layer): each column is contiguous.
            _ if self.t().as_slice().is_some() => {
                let columns = &self.t().to_slice().expect("checked contiguous")[start * k..];
                if cols == NR {
                    let columns: [&[f32]; NR] = std::array::from_fn(|j| &columns[j * k..(j + 1) * k]);
                    #[cfg(target_arch = "x86_64")]
                    if avx512::available() {
                        return avx512::pack_columns(&columns, k, panel);
                    }
                    // NR sequential reads per row of the panel, one sequential write.
                    for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                        for (d, column) in dst.iter_mut().zip(&columns) {
                            *d = column[kk];
                        }
                    }
                } else {
                    panel.fill(0.0);
                    for (j, column) in columns.chunks_exact(k).take(cols).enumerate() {
                        for (kk, &v) in column.iter().enumerate() {
                            panel[kk * NR + j] = v;
                        }
                    }
                }
            }
            _ => {
                for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    dst[cols..].fill(0.0);
                    dst[..cols].iter_mut().zip(self.row(kk).iter().skip(start)).for_each(|(d, &v)| *d = v);
                }
            }
        }
    }
}
