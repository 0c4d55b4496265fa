//! Weights in the formats people already use: `.safetensors` and `.npz` in, `.safetensors` out.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use nnbundle_container::npy;
use nnbundle_format::{DType, Tensor};
use safetensors::Dtype as St;

use crate::Failure;

/// Largest compression ratio accepted for a deflated `.npz` entry (zip-bomb guard).
const MAX_NPZ_RATIO: u64 = 1024;

fn from_st(dtype: St) -> Option<DType> {
    Some(match dtype {
        St::BOOL => DType::Bool,
        St::U8 => DType::U8,
        St::I8 => DType::I8,
        St::I16 => DType::I16,
        St::I32 => DType::I32,
        St::I64 => DType::I64,
        St::F16 => DType::F16,
        St::BF16 => DType::BF16,
        St::F32 => DType::F32,
        St::F64 => DType::F64,
        _ => return None,
    })
}

fn to_st(dtype: DType) -> St {
    match dtype {
        DType::Bool => St::BOOL,
        DType::U8 => St::U8,
        DType::I8 => St::I8,
        DType::I16 => St::I16,
        DType::I32 => St::I32,
        DType::I64 => St::I64,
        DType::F16 => St::F16,
        DType::BF16 => St::BF16,
        DType::F32 => St::F32,
        DType::F64 => St::F64,
    }
}

/// Reads every tensor of a `.safetensors` or `.npz` file, by name.
pub(crate) fn read(path: &Path) -> Result<BTreeMap<String, Tensor>, Failure> {
    let read: fn(&[u8]) -> anyhow::Result<BTreeMap<String, Tensor>> = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => read_safetensors,
        Some("npz") => read_npz,
        _ => {
            return Err(Failure::usage(format!("`{}`: weights must be a .safetensors or .npz file", path.display())));
        }
    };
    let bytes = std::fs::read(path).with_context(|| format!("read `{}`", path.display()))?;
    Ok(read(&bytes).with_context(|| format!("`{}`", path.display()))?)
}

fn read_safetensors(bytes: &[u8]) -> anyhow::Result<BTreeMap<String, Tensor>> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("not a valid safetensors file: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.iter() {
        let dtype = from_st(view.dtype())
            .with_context(|| format!("tensor `{name}`: dtype {:?} is not one a bundle stores", view.dtype()))?;
        let tensor = Tensor::from_bytes(dtype, view.shape().to_vec(), view.data().to_vec())
            .with_context(|| format!("tensor `{name}`"))?;
        out.insert(name.to_owned(), tensor);
    }
    Ok(out)
}

fn read_npz(bytes: &[u8]) -> anyhow::Result<BTreeMap<String, Tensor>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("not a valid .npz (zip) archive")?;
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let entry = archive.by_index(i)?;
        let name = entry.name()?.into_owned();
        let Some(tensor_name) = name.strip_suffix(".npy") else { bail!("entry `{name}` is not an .npy array") };
        let (size, packed) = (entry.size(), entry.compressed_size().max(1));
        if size / packed > MAX_NPZ_RATIO {
            bail!("entry `{name}` expands {size} bytes from {packed}: above the ratio limit of {MAX_NPZ_RATIO}");
        }
        if size > bytes.len() as u64 * MAX_NPZ_RATIO {
            bail!("entry `{name}` declares {size} bytes, more than the archive could hold");
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.take(size + 1).read_to_end(&mut data).with_context(|| format!("entry `{name}`"))?;
        if data.len() as u64 != size {
            bail!("entry `{name}` holds {} bytes, its header says {size}", data.len());
        }
        let tensor = npy::from_npy(&data).map_err(|e| anyhow::anyhow!("entry `{name}`: {e}"))?;
        out.insert(tensor_name.to_owned(), tensor);
    }
    Ok(out)
}

/// Writes tensors as a `.safetensors` file with string metadata.
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, t)| {
            Ok((n.clone(), safetensors::tensor::TensorView::new(to_st(t.dtype()), t.shape().to_vec(), t.as_bytes())?))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let bytes = safetensors::serialize(views, metadata).map_err(|e| anyhow::anyhow!("{e}"))?;
    nnbundle_container::write_bytes_atomically(path, &bytes)?;
    Ok(())
}

/// Reads `NAME=FILE.npy` arguments into named tensors.
pub(crate) fn read_npy_args(args: &[String]) -> Result<BTreeMap<String, Tensor>, Failure> {
    let mut out = BTreeMap::new();
    for arg in args {
        let (name, file) =
            arg.split_once('=').ok_or_else(|| Failure::usage(format!("`{arg}`: expected NAME=FILE.npy")))?;
        let bytes = std::fs::read(file).with_context(|| format!("read `{file}`"))?;
        let tensor = npy::from_npy(&bytes).map_err(|e| anyhow::anyhow!("`{file}`: {e}"))?;
        out.insert(name.to_owned(), tensor);
    }
    Ok(out)
}
