//! `MultiheadAttention`, inference, returning the attention output.

use ndarray::{Array2, Array3, ArrayView2, Axis, Ix1, Ix2, Ix3, s};
use nnbundle_format::DType;
use nnbundle_graph::NodeAttrs;

use super::Scratch;
use super::activation::softmax_lanes;
use super::linear::affine;
use super::{Float, Kernel, KernelResult, first_dtype, view, with_float};
use crate::value::Arg;

pub(crate) struct MultiheadAttention {
    heads: usize,
    bias: bool,
    batch_first: bool,
}

impl MultiheadAttention {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        MultiheadAttention {
            heads: a.int("num_heads").max(1) as usize,
            bias: a.bool("bias"),
            batch_first: a.bool("batch_first"),
        }
    }
}

fn project<T: Float>(
    x: ArrayView2<'_, T>,
    w: ArrayView2<'_, T>,
    b: Option<ndarray::ArrayView1<'_, T>>,
) -> Result<Array2<T>, String> {
    affine(x.into_dyn(), w, b)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())
}

fn run<T: Float>(k: &MultiheadAttention, args: &[Arg<'_>]) -> KernelResult {
    let to3 = |i: usize| -> Result<_, String> {
        let v = view::<T>(args, i)?.into_dimensionality::<Ix3>().map_err(|e| e.to_string())?;
        // Work in [N, L, E].
        Ok(if k.batch_first { v } else { v.permuted_axes([1, 0, 2]) })
    };
    let (q, key, value) = (to3(0)?, to3(1)?, to3(2)?);
    // Operands: query, key, value, [attn_mask], in_proj_weight, [in_proj_bias], out_proj.weight, [out_proj.bias].
    let has_mask = args.len() == 4 + if k.bias { 4 } else { 2 };
    let p = if has_mask { 4 } else { 3 };
    let w_in = view::<T>(args, p)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
    let (b_in, w_out, b_out) = if k.bias {
        (
            Some(view::<T>(args, p + 1)?.into_dimensionality::<Ix1>().map_err(|e| e.to_string())?),
            view::<T>(args, p + 2)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?,
            Some(view::<T>(args, p + 3)?.into_dimensionality::<Ix1>().map_err(|e| e.to_string())?),
        )
    } else {
        (None, view::<T>(args, p + 1)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?, None)
    };
    let (n, l, e) = q.dim();
    let h = e / k.heads;
    let scale = T::from_f64(1.0 / (h as f64).sqrt());
    let part = |i: usize| w_in.slice_move(s![i * e..(i + 1) * e, ..]);
    let bias_part = |i: usize| b_in.map(|b| b.slice_move(s![i * e..(i + 1) * e]));
    // The additive mask, as [N*H or 1, L, S].
    let mask: Option<Array3<T>> = if has_mask {
        let m = &args[3];
        let m3 = match m.dtype() {
            DType::Bool => view::<bool>(args, 3)?.mapv(|b| if b { T::neg_infinity() } else { T::zero() }),
            _ => view::<T>(args, 3)?.to_owned(),
        };
        let m3 = if m3.ndim() == 2 { m3.insert_axis(Axis(0)) } else { m3 };
        Some(m3.into_dimensionality::<Ix3>().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut out = Array3::<T>::zeros((n, l, e));
    for b in 0..n {
        let qp = project(q.index_axis(Axis(0), b), part(0), bias_part(0))?;
        let kp = project(key.index_axis(Axis(0), b), part(1), bias_part(1))?;
        let vp = project(value.index_axis(Axis(0), b), part(2), bias_part(2))?;
        let mut heads = Array2::<T>::zeros((l, e));
        for j in 0..k.heads {
            let cols = s![.., j * h..(j + 1) * h];
            let mut scores = qp.slice(cols).dot(&kp.slice(cols).t()) * scale;
            if let Some(m) = &mask {
                let idx = if m.dim().0 == 1 { 0 } else { b * k.heads + j };
                scores += &m.index_axis(Axis(0), idx);
            }
            let mut scores = scores.into_dyn();
            softmax_lanes(&mut scores, 1, false);
            let scores = scores.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
            heads.slice_mut(cols).assign(&scores.dot(&vp.slice(cols)));
        }
        out.index_axis_mut(Axis(0), b).assign(&project(heads.view(), w_out, b_out)?);
    }
    let out = if k.batch_first { out } else { out.permuted_axes([1, 0, 2]).as_standard_layout().into_owned() };
    Ok(T::into_value(out.into_dyn()))
}

impl Kernel for MultiheadAttention {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args))
    }
}
