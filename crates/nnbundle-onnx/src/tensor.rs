//! `TensorProto` to and from tensors.

use nnbundle_format::{DType, Tensor, bf16, f16};

use crate::proto::{TensorProto, data_type};

/// The tensor a `TensorProto` holds (raw or typed fields; external data refused).
pub(crate) fn from_proto(t: &TensorProto) -> Result<Tensor, String> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err("stored in an external data file; nnbundle imports self-contained models only (re-save the model with all tensors inside)".into());
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("element count overflows")?;
    let dtype = dtype_of(t.data_type).ok_or_else(|| format!("ONNX data type {} has no nnbundle dtype", t.data_type))?;
    if !t.raw_data.is_empty() || n == 0 {
        return Tensor::from_bytes(dtype, shape, t.raw_data.clone()).map_err(|e| e.to_string());
    }
    let check = |len: usize| if len == n { Ok(()) } else { Err(format!("holds {len} values, its shape needs {n}")) };
    let tensor = match dtype {
        DType::F32 => {
            check(t.float_data.len())?;
            Tensor::from_vec(shape, t.float_data.clone())
        }
        DType::F64 => {
            check(t.double_data.len())?;
            Tensor::from_vec(shape, t.double_data.clone())
        }
        DType::I64 => {
            check(t.int64_data.len())?;
            Tensor::from_vec(shape, t.int64_data.clone())
        }
        _ => {
            check(t.int32_data.len())?;
            let v = &t.int32_data;
            match dtype {
                DType::I32 => Tensor::from_vec(shape, v.clone()),
                DType::I16 => Tensor::from_vec(shape, v.iter().map(|&x| x as i16).collect::<Vec<_>>()),
                DType::I8 => Tensor::from_vec(shape, v.iter().map(|&x| x as i8).collect::<Vec<_>>()),
                DType::U8 => Tensor::from_vec(shape, v.iter().map(|&x| x as u8).collect::<Vec<_>>()),
                DType::Bool => Tensor::from_vec(shape, v.iter().map(|&x| x != 0).collect::<Vec<_>>()),
                DType::F16 => Tensor::from_vec(shape, v.iter().map(|&x| f16::from_bits(x as u16)).collect::<Vec<_>>()),
                _ => Tensor::from_vec(shape, v.iter().map(|&x| bf16::from_bits(x as u16)).collect::<Vec<_>>()),
            }
        }
    };
    tensor.map_err(|e| e.to_string())
}

/// The ONNX data type of a dtype.
pub(crate) fn onnx_type(dtype: DType) -> i32 {
    match dtype {
        DType::F32 => data_type::FLOAT,
        DType::F64 => data_type::DOUBLE,
        DType::I64 => data_type::INT64,
        DType::I32 => data_type::INT32,
        DType::I16 => data_type::INT16,
        DType::I8 => data_type::INT8,
        DType::U8 => data_type::UINT8,
        DType::Bool => data_type::BOOL,
        DType::F16 => data_type::FLOAT16,
        DType::BF16 => data_type::BFLOAT16,
    }
}

/// A `TensorProto` holding `t` as raw little-endian data.
pub(crate) fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: onnx_type(t.dtype()),
        name: name.to_owned(),
        raw_data: t.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The dtype of an ONNX element type.
pub(crate) fn dtype_of(elem_type: i32) -> Option<DType> {
    Some(match elem_type {
        data_type::FLOAT => DType::F32,
        data_type::DOUBLE => DType::F64,
        data_type::INT64 => DType::I64,
        data_type::INT32 => DType::I32,
        data_type::INT16 => DType::I16,
        data_type::INT8 => DType::I8,
        data_type::UINT8 => DType::U8,
        data_type::BOOL => DType::Bool,
        data_type::FLOAT16 => DType::F16,
        data_type::BFLOAT16 => DType::BF16,
        _ => return None,
    })
}

/// The transpose of a matrix, element bytes moved as they are.
pub(crate) fn transpose(t: &Tensor) -> Result<Tensor, String> {
    let [r, c] = t.shape() else { return Err(format!("expected a matrix, found shape {:?}", t.shape())) };
    let size = t.dtype().size();
    let src = t.as_bytes();
    let mut out = vec![0u8; src.len()];
    for i in 0..*r {
        for j in 0..*c {
            let (from, to) = ((i * c + j) * size, (j * r + i) * size);
            out[to..to + size].copy_from_slice(&src[from..from + size]);
        }
    }
    Tensor::from_bytes(t.dtype(), vec![*c, *r], out).map_err(|e| e.to_string())
}

/// Blocks of axis 1 rearranged: axis 1 of `t` (rank 2 or more) is cut into
/// `blocks` equal blocks, and block k of the result is block `pick[k]` of
/// `t` (recurrent gate orders differ between ONNX and PyTorch).
pub(crate) fn pick_blocks(t: &Tensor, blocks: usize, pick: &[usize]) -> Result<Tensor, String> {
    let shape = t.shape();
    if shape.len() < 2 || blocks == 0 || !shape[1].is_multiple_of(blocks) || pick.iter().any(|&b| b >= blocks) {
        return Err(format!("shape {shape:?} does not split into {blocks} blocks on axis 1"));
    }
    let size = t.dtype().size();
    let inner: usize = shape[2..].iter().product::<usize>() * size;
    let block = shape[1] / blocks * inner;
    let src = t.as_bytes();
    let row = shape[1] * inner;
    let mut out = Vec::with_capacity(shape[0] * pick.len() * block);
    for r in 0..shape[0] {
        for &b in pick {
            let from = r * row + b * block;
            out.extend_from_slice(&src[from..from + block]);
        }
    }
    let mut dims = shape.to_vec();
    dims[1] = shape[1] / blocks * pick.len();
    Tensor::from_bytes(t.dtype(), dims, out).map_err(|e| e.to_string())
}

/// Two tensors of one dtype and leading size joined along axis 1.
pub(crate) fn join_columns(a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() != 2 || sb.len() != 2 || sa[0] != sb[0] || a.dtype() != b.dtype() {
        return Err(format!("cannot join {sa:?} and {sb:?} along axis 1"));
    }
    let size = a.dtype().size();
    let (ra, rb) = (sa[1] * size, sb[1] * size);
    let mut out = Vec::with_capacity(sa[0] * (ra + rb));
    for r in 0..sa[0] {
        out.extend_from_slice(&a.as_bytes()[r * ra..(r + 1) * ra]);
        out.extend_from_slice(&b.as_bytes()[r * rb..(r + 1) * rb]);
    }
    Tensor::from_bytes(a.dtype(), vec![sa[0], sa[1] + sb[1]], out).map_err(|e| e.to_string())
}

/// A recurrent cell's gate blocks: ONNX's order from PyTorch's
/// (`to_onnx[k]` is the PyTorch block that is ONNX block k) and back.
pub(crate) struct GateOrder {
    pub to_onnx: &'static [usize],
    pub from_onnx: &'static [usize],
}

/// LSTM: PyTorch i, f, g, o; ONNX i, o, f, c.
pub(crate) const LSTM_GATES: GateOrder = GateOrder { to_onnx: &[0, 3, 1, 2], from_onnx: &[0, 2, 3, 1] };

/// GRU: PyTorch r, z, n; ONNX z, r, h.
pub(crate) const GRU_GATES: GateOrder = GateOrder { to_onnx: &[1, 0, 2], from_onnx: &[1, 0, 2] };

/// A 1-D tensor with each element of `t` (read flat) repeated `times` times in a row.
pub(crate) fn repeat_elements(t: &Tensor, times: usize) -> Result<Tensor, String> {
    let size = t.dtype().size();
    let src = t.as_bytes();
    let mut out = Vec::with_capacity(src.len() * times);
    for element in src.chunks_exact(size) {
        for _ in 0..times {
            out.extend_from_slice(element);
        }
    }
    Tensor::from_bytes(t.dtype(), vec![out.len() / size], out).map_err(|e| e.to_string())
}
