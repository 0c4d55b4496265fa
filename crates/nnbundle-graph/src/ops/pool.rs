//! Pooling and resampling: `MaxPool1d/2d`, `AvgPool1d/2d`, `AdaptiveAvgPool2d`; from opset 2 `Upsample`.

use super::{Window, all_at_least_one, nth, require_float, require_rank};
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, Role, Slot, slot};
use crate::value::{Dim, Shape, ValueInfo};

const SLOTS: &[Slot] = &[slot("input", Role::Data)];

macro_rules! max_attrs {
    ($n:expr) => {
        &[
            attr("kernel_size", T::Spatial($n), D::Required, "window size"),
            attr("stride", T::Spatial($n), D::SameAs("kernel_size"), "step; defaults to kernel_size"),
            attr(
                "padding",
                T::Pads($n),
                D::Spatial(0),
                "implicit -infinity padding on both sides, or begins then ends (2n values); less than the window",
            ),
            attr("dilation", T::Spatial($n), D::Spatial(1), "spacing between window elements"),
            attr("ceil_mode", T::Bool, D::Bool(false), "round the output size up instead of down"),
        ]
    };
}

macro_rules! avg_attrs {
    ($n:expr) => {
        &[
            attr("kernel_size", T::Spatial($n), D::Required, "window size"),
            attr("stride", T::Spatial($n), D::SameAs("kernel_size"), "step; defaults to kernel_size"),
            attr(
                "padding",
                T::Pads($n),
                D::Spatial(0),
                "implicit zero padding on both sides, or begins then ends (2n values); less than the window",
            ),
            attr(
                "dilation",
                T::Spatial($n),
                D::Spatial(1),
                "spacing between window elements (an extension: PyTorch's AvgPool has none)",
            ),
            attr("ceil_mode", T::Bool, D::Bool(false), "round the output size up instead of down"),
            attr("count_include_pad", T::Bool, D::Bool(true), "count padding zeros in the divisor"),
        ]
    };
}

pub(crate) static MAXPOOL1D: OpDef = OpDef {
    name: "MaxPool1d",
    summary: "maximum over sliding windows of [N, C, L]",
    numerics: "the maximum over each window; padding positions never win (they are -infinity); padding may be asymmetric (2n values) and at most the window's extent minus one on each side, so every window holds an input element; a NaN in a window gives NaN.",
    attrs: max_attrs!(1),
    slots: SLOTS,
    rule: &PoolRule { n: 1, name: "MaxPool1d" },
};
pub(crate) static MAXPOOL2D: OpDef = OpDef {
    name: "MaxPool2d",
    summary: "maximum over sliding windows of [N, C, H, W]",
    numerics: "the maximum over each window; padding positions never win (they are -infinity); padding may be asymmetric (2n values) and at most the window's extent minus one on each side, so every window holds an input element; a NaN in a window gives NaN.",
    attrs: max_attrs!(2),
    slots: SLOTS,
    rule: &PoolRule { n: 2, name: "MaxPool2d" },
};
pub(crate) static AVGPOOL1D: OpDef = OpDef {
    name: "AvgPool1d",
    summary: "mean over sliding windows of [N, C, L]",
    numerics: "the window has k taps spaced by `dilation`; the output is the sum over the taps inside the input, divided by: with `count_include_pad`, the number of taps inside the padded input (before `n + pad_end`, so padding counts but the overflow of a `ceil_mode` window does not, as in PyTorch); without, the number of taps inside the input. Padding rules are those of MaxPool.",
    attrs: avg_attrs!(1),
    slots: SLOTS,
    rule: &PoolRule { n: 1, name: "AvgPool1d" },
};
pub(crate) static AVGPOOL2D: OpDef = OpDef {
    name: "AvgPool2d",
    summary: "mean over sliding windows of [N, C, H, W]",
    numerics: "per spatial dimension as AvgPool1d: the window has k taps spaced by `dilation`; the output is the sum over the taps inside the input, divided by: with `count_include_pad`, the number of taps inside the padded input (before `n + pad_end`, so padding counts but the overflow of a `ceil_mode` window does not); without, the number of taps inside the input.",
    attrs: avg_attrs!(2),
    slots: SLOTS,
    rule: &PoolRule { n: 2, name: "AvgPool2d" },
};

struct PoolRule {
    n: usize,
    name: &'static str,
}

/// The windows of each spatial dimension of a pooling node (`MaxPool*`, `AvgPool*`).
pub fn pool_windows(a: &Attrs, n: usize) -> Vec<Window> {
    crate::attr::pad_pairs(a.ints("padding"), n)
        .into_iter()
        .enumerate()
        .map(|(i, (pad_begin, pad_end))| Window {
            kernel: nth(a, "kernel_size", i),
            stride: nth(a, "stride", i),
            pad_begin,
            pad_end,
            dilation: nth(a, "dilation", i),
            ceil_mode: a.bool("ceil_mode"),
        })
        .collect()
}

impl OpRule for PoolRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let mut out = all_at_least_one(a, &["kernel_size", "stride", "dilation"]);
        if !out.is_empty() {
            return out;
        }
        // Every window must hold at least one element of the input.
        for w in pool_windows(a, self.n) {
            let most = w.span() - 1;
            if w.pad_begin < 0 || w.pad_end < 0 || w.pad_begin > most || w.pad_end > most {
                out.push((
                    "padding",
                    format!("must be between 0 and the window size minus one ({most}), found {:?}", a.ints("padding")),
                ));
                break;
            }
        }
        out
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float(self.name, x)?;
        let layout = if self.n == 1 { "[N, C, L]" } else { "[N, C, H, W]" };
        require_rank(self.name, x, &[self.n + 2], layout)?;
        let mut dims = x.shape.0[..2].to_vec();
        for (window, dim) in pool_windows(a, self.n).iter().zip(&x.shape.0[2..]) {
            dims.push(window.out_dim(self.name, dim)?);
        }
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}

pub(crate) static ADAPTIVEAVGPOOL2D: OpDef = OpDef {
    name: "AdaptiveAvgPool2d",
    summary: "mean over adaptive windows so that [N, C, H, W] becomes [N, C, oh, ow]",
    numerics: "output position i of a dimension of length n with output size o averages input positions `floor(i*n/o)` to `ceil((i+1)*n/o) - 1`.",
    attrs: &[attr("output_size", T::Spatial(2), D::Required, "output height and width")],
    slots: SLOTS,
    rule: &AdaptiveRule,
};

struct AdaptiveRule;

impl OpRule for AdaptiveRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        all_at_least_one(a, &["output_size"])
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float("AdaptiveAvgPool2d", x)?;
        require_rank("AdaptiveAvgPool2d", x, &[4], "[N, C, H, W]")?;
        let mut dims = x.shape.0[..2].to_vec();
        dims.extend(a.ints("output_size").iter().map(|&v| Dim::Fixed(v as u64)));
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}

pub(crate) static UPSAMPLE: OpDef = OpDef {
    name: "Upsample",
    summary: "resizes the spatial dimensions of [N, C, ...] to `size` by nearest or linear interpolation (nn.Upsample; ONNX Resize)",
    numerics: "per spatial dimension of input length n and output length m, output index x reads input coordinate `x * n / m` (`asymmetric`), `(x + 0.5) * n / m - 0.5` (`half_pixel`; `pytorch_half_pixel` is the same but 0 when m = 1), or `x * (n - 1) / (m - 1)` (`align_corners`, 0 when m = 1). `nearest` rounds the coordinate as `nearest_mode` says (`floor`, `ceil`, `round_prefer_floor`, `round_prefer_ceil`) and clamps it to [0, n - 1]; `linear` clamps it to [0, n - 1] and mixes the two nearest inputs `i0 = floor(c)`, `i1 = min(i0 + 1, n - 1)` as `(1 - t) * x[i0] + t * x[i1]` with `t = c - i0`, one dimension after another (bilinear in 2-D).",
    attrs: &[
        attr("size", T::Ints, D::Required, "the output length of each spatial dimension (dimensions 2, 3, ...)"),
        attr("mode", T::Choice(&["nearest", "linear"]), D::Str("nearest"), "interpolation"),
        attr(
            "coordinate_mode",
            T::Choice(&["asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners"]),
            D::Str("asymmetric"),
            "how an output index maps to an input coordinate",
        ),
        attr(
            "nearest_mode",
            T::Choice(&["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"]),
            D::Str("floor"),
            "how `nearest` rounds the coordinate",
        ),
    ],
    slots: &[slot("input", Role::Data)],
    rule: &UpsampleRule,
};

struct UpsampleRule;

impl OpRule for UpsampleRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        super::all_at_least_one(a, &["size"])
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float("Upsample", x)?;
        let size = a.ints("size");
        if x.shape.rank() != size.len() + 2 {
            return Err(format!(
                "Upsample with {} sizes expects input of rank {}, input has {}",
                size.len(),
                size.len() + 2,
                x.shape
            ));
        }
        let mut dims = x.shape.0[..2].to_vec();
        dims.extend(size.iter().map(|&s| Dim::Fixed(s as u64)));
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}
