//! `Conv1d` and `Conv2d`: cross-correlation over `[N, C, L]` or `[N, C, H, W]`;
//! from opset 2 their transposes `ConvTranspose1d` and `ConvTranspose2d`.

use super::{Window, all_at_least_one, at_least_one, require_dim, require_float, require_rank};
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDoc, ParamSpec, Role, Slot, slot};
use crate::value::{Dim, Shape, ValueInfo};

/// The attributes of a convolution over `$n` dimensions: the shared ones
/// around the `padding` given (and, for a transposed one, `output_padding`).
macro_rules! conv_attrs {
    ($n:expr, $padding:expr $(, $extra:expr)?) => {
        &[
            attr("in_channels", T::Int, D::Required, "channels of the input"),
            attr("out_channels", T::Int, D::Required, "channels of the output"),
            attr("kernel_size", T::Spatial($n), D::Required, "window size per spatial dimension"),
            attr("stride", T::Spatial($n), D::Spatial(1), "step per spatial dimension"),
            $padding,
            $($extra,)?
            attr("dilation", T::Spatial($n), D::Spatial(1), "spacing between kernel elements"),
            attr("groups", T::Int, D::Int(1), "blocked connections; divides in_channels and out_channels"),
            attr("bias", T::Bool, D::Bool(true), "whether the node has a bias"),
        ]
    };
    ($n:expr) => {
        conv_attrs!(
            $n,
            attr(
                "padding",
                T::Padding($n),
                D::Spatial(0),
                "zeros added on both sides, or `valid` (none) or `same` (output size = input size; stride 1 only)",
            )
        )
    };
}

const SLOTS: &[Slot] = &[slot("input", Role::Data), slot("weight", Role::Param), slot("bias", Role::Param)];

pub(crate) static CONV1D: OpDef = OpDef {
    name: "Conv1d",
    summary: "1-D cross-correlation; input [N, in_channels, L]; weight [out_channels, in_channels/groups, k], bias [out_channels]",
    numerics: "cross-correlation (the kernel is not flipped) over zero-padded input; with `groups = g`, input and output channels are split into g equal groups and group i of the output sees only group i of the input; weight `[out, in/g, k]`.",
    attrs: conv_attrs!(1),
    slots: SLOTS,
    rule: &ConvRule { n: 1, name: "Conv1d", transposed: false },
};

pub(crate) static CONV2D: OpDef = OpDef {
    name: "Conv2d",
    summary: "2-D cross-correlation; input [N, in_channels, H, W]; weight [out_channels, in_channels/groups, kh, kw], bias [out_channels]",
    numerics: "cross-correlation (the kernel is not flipped) over zero-padded input; with `groups = g`, input and output channels are split into g equal groups and group i of the output sees only group i of the input; weight `[out, in/g, kh, kw]`.",
    attrs: conv_attrs!(2),
    slots: SLOTS,
    rule: &ConvRule { n: 2, name: "Conv2d", transposed: false },
};

/// The rule of a convolution or, `transposed`, of its transpose: the same
/// attributes and checks, but for output_padding, the weight's layout and
/// the output length.
struct ConvRule {
    n: usize,
    name: &'static str,
    transposed: bool,
}

/// Padding of each spatial dimension as (begin, end), resolving `valid` and `same`.
pub fn conv_padding(a: &Attrs, n: usize) -> Vec<(i64, i64)> {
    match a.str("padding") {
        "valid" => vec![(0, 0); n],
        "same" => a
            .ints("kernel_size")
            .iter()
            .zip(a.ints("dilation"))
            .map(|(k, d)| {
                let total = d * (k - 1);
                (total / 2, total - total / 2)
            })
            .collect(),
        _ => crate::attr::pad_pairs(a.ints("padding"), n),
    }
}

/// The windows of each spatial dimension of a convolution node.
pub fn conv_windows(a: &Attrs, n: usize) -> Vec<Window> {
    conv_padding(a, n)
        .into_iter()
        .enumerate()
        .map(|(i, (pad_begin, pad_end))| Window {
            kernel: super::nth(a, "kernel_size", i),
            stride: super::nth(a, "stride", i),
            pad_begin,
            pad_end,
            dilation: super::nth(a, "dilation", i),
            ceil_mode: false,
        })
        .collect()
}

impl OpRule for ConvRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let mut out = at_least_one(a, &["in_channels", "out_channels", "groups"]);
        out.extend(all_at_least_one(a, &["kernel_size", "stride", "dilation"]));
        if a.ints("padding").iter().any(|&v| v < 0) {
            out.push(("padding", format!("must not be negative, found {:?}", a.ints("padding"))));
        }
        let g = a.int("groups");
        if g >= 1 && (a.int("in_channels") % g != 0 || a.int("out_channels") % g != 0) {
            out.push((
                "groups",
                format!(
                    "{g} must divide in_channels {} and out_channels {}",
                    a.int("in_channels"),
                    a.int("out_channels")
                ),
            ));
        }
        if a.str("padding") == "same" && a.ints("stride").iter().any(|&s| s != 1) {
            out.push(("padding", "`same` requires stride 1".into()));
        }
        if self.transposed {
            for [_, stride, _, _, dilation, output_padding] in conv_transpose_geometry(a, self.n) {
                if output_padding < 0 || (output_padding >= stride && output_padding >= dilation) {
                    out.push((
                        "output_padding",
                        format!(
                            "{output_padding} must be at least 0 and less than stride {stride} or dilation {dilation}"
                        ),
                    ));
                }
            }
        }
        out
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        match (slot, self.transposed) {
            ("weight", false) => ParamDoc::shape("[out_channels, in_channels/groups, *kernel_size]"),
            ("weight", true) => ParamDoc::shape("[in_channels, out_channels/groups, *kernel_size]"),
            ("bias", _) => ParamDoc::shape_when("[out_channels]", &["bias"]),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let out_c = a.int("out_channels") as u64;
        match slot {
            "weight" => {
                let (g, in_c) = (a.int("groups").max(1), a.int("in_channels"));
                // [out, in/groups, k...]; transposed, [in, out/groups, k...].
                let mut shape =
                    if self.transposed { vec![in_c as u64, out_c / g as u64] } else { vec![out_c, (in_c / g) as u64] };
                shape.extend(a.ints("kernel_size").iter().map(|&k| k as u64));
                Some(ParamSpec::float(shape))
            }
            "bias" if a.bool("bias") => Some(ParamSpec::float(vec![out_c])),
            _ => None,
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float(self.name, x)?;
        let layout = if self.n == 1 { "[N, C, L]" } else { "[N, C, H, W]" };
        require_rank(self.name, x, &[self.n + 2], layout)?;
        require_dim(self.name, "input channels", &x.shape.0[1], a.int("in_channels") as u64, &x.shape)?;
        let mut dims = vec![x.shape.0[0].clone(), Dim::Fixed(a.int("out_channels") as u64)];
        if self.transposed {
            for (geometry, dim) in conv_transpose_geometry(a, self.n).into_iter().zip(&x.shape.0[2..]) {
                dims.push(match dim {
                    Dim::Fixed(len) => match conv_transpose_length(*len as i64, geometry) {
                        out if out >= 1 => Dim::Fixed(out as u64),
                        _ => return Err(format!("{}: the padding leaves no output for input length {len}", self.name)),
                    },
                    _ => Dim::Unknown,
                });
            }
        } else {
            for (window, dim) in conv_windows(a, self.n).iter().zip(&x.shape.0[2..]) {
                dims.push(window.out_dim(self.name, dim)?);
            }
        }
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}

macro_rules! conv_transpose_attrs {
    ($n:expr) => {
        conv_attrs!(
            $n,
            attr(
                "padding",
                T::Pads($n),
                D::Spatial(0),
                "removed from both ends of the full output (n values, or 2n: begins, then ends)"
            ),
            attr(
                "output_padding",
                T::Spatial($n),
                D::Spatial(0),
                "added to the end of the output, less than stride or dilation"
            )
        )
    };
}

pub(crate) static CONVTRANSPOSE1D: OpDef = OpDef {
    name: "ConvTranspose1d",
    summary: "1-D transposed convolution; input [N, in_channels, L]; weight [in_channels, out_channels/groups, k], bias [out_channels]",
    numerics: "every input element `x[n, c, i]` adds `x * w[c, o, t]` to output position `i * stride - pad_begin + t * dilation` of output channel `g * out/groups + o` (group g of c), for every tap t; positions outside the output are dropped; the output length is `(L - 1) * stride - pad_begin - pad_end + dilation * (k - 1) + output_padding + 1`; then the bias is added.",
    attrs: conv_transpose_attrs!(1),
    slots: SLOTS,
    rule: &ConvRule { n: 1, name: "ConvTranspose1d", transposed: true },
};

pub(crate) static CONVTRANSPOSE2D: OpDef = OpDef {
    name: "ConvTranspose2d",
    summary: "2-D transposed convolution; input [N, in_channels, H, W]; weight [in_channels, out_channels/groups, kh, kw], bias [out_channels]",
    numerics: "per spatial dimension as ConvTranspose1d: every input element adds `x * w[c, o, th, tw]` to output position `(i * stride - pad_begin + t * dilation)` in each dimension, positions outside the output dropped; each output length is `(L - 1) * stride - pad_begin - pad_end + dilation * (k - 1) + output_padding + 1`; then the bias is added.",
    attrs: conv_transpose_attrs!(2),
    slots: SLOTS,
    rule: &ConvRule { n: 2, name: "ConvTranspose2d", transposed: true },
};

/// Per spatial dimension of a transposed convolution: (kernel, stride,
/// pad_begin, pad_end, dilation, output_padding).
pub fn conv_transpose_geometry(a: &Attrs, n: usize) -> Vec<[i64; 6]> {
    crate::attr::pad_pairs(a.ints("padding"), n)
        .into_iter()
        .enumerate()
        .map(|(i, (pb, pe))| {
            let at = |name: &str| super::nth(a, name, i);
            let output_padding = a.ints("output_padding").get(i).copied().unwrap_or(0);
            [at("kernel_size"), at("stride"), pb, pe, at("dilation"), output_padding]
        })
        .collect()
}

/// The output length of a transposed convolution over an input of length
/// `len`, for one dimension's geometry from [`conv_transpose_geometry`]
/// (below 1 when the padding leaves nothing).
pub fn conv_transpose_length(
    len: i64,
    [kernel, stride, pad_begin, pad_end, dilation, output_padding]: [i64; 6],
) -> i64 {
    (len - 1) * stride - pad_begin - pad_end + dilation * (kernel - 1) + output_padding + 1
}
