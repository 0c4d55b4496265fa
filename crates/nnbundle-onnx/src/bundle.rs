//! Between ONNX models and bundles: what `nnb import` writes and `nnb export` reads.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use nnbundle_container::{Bundle, BundleWriter, ContainerError, write_atomically};
use nnbundle_format::MetaValue;
use prost::Message;

use crate::proto::ModelProto;
use crate::{ExportError, ExportOptions, Imported, export_with};

/// Metadata key of the ONNX names an import changed (graph name -> ONNX name).
pub const ONNX_NAMES_KEY: &str = "onnx_names";

impl Imported {
    /// A bundle writer holding the imported graph, its weights and aliases,
    /// and where they came from as metadata (`source_format`, `source_opset`,
    /// and [`ONNX_NAMES_KEY`] when names changed).
    pub fn to_writer(&self) -> Result<BundleWriter, ContainerError> {
        let mut w = BundleWriter::new();
        w.set_graph(self.graph.clone());
        for (name, t) in &self.weights {
            w.add_tensor(name.clone(), t.clone())?;
        }
        for (alias, target) in &self.aliases {
            w.add_alias(alias.clone(), target.clone())?;
        }
        w.set_metadata("source_format", "onnx")?;
        w.set_metadata("source_opset", self.opset)?;
        if !self.onnx_names.is_empty() {
            let names = self.onnx_names.iter().map(|(g, o)| (g.clone(), MetaValue::from(o.as_str()))).collect();
            w.set_metadata(ONNX_NAMES_KEY, MetaValue::Map(names))?;
        }
        Ok(w)
    }
}

/// Why a bundle cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleExportError {
    /// The bundle or one of its tensors cannot be read.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The bundle holds weights only.
    #[error("the bundle has no graph to export")]
    NoGraph,
    /// The graph cannot be written as ONNX.
    #[error("cannot export to ONNX: {0}")]
    Export(#[from] ExportError),
}

/// The ONNX model of a bundle's graph and weights (every hash checked), its
/// inputs and outputs named as the import that made it found them.
pub fn export_bundle(bundle: &Bundle) -> Result<ModelProto, BundleExportError> {
    let graph = bundle.graph()?.ok_or(BundleExportError::NoGraph)?;
    bundle.verify_all()?;
    let weights = bundle
        .manifest()
        .tensors
        .keys()
        .map(|name| Ok((name.clone(), bundle.tensor_unverified(name)?)))
        .collect::<Result<BTreeMap<_, _>, ContainerError>>()?;
    let onnx_names = match bundle.manifest().metadata.get(ONNX_NAMES_KEY) {
        Some(MetaValue::Map(m)) => m
            .iter()
            .filter_map(|(g, o)| match o {
                MetaValue::String(o) => Some((g.clone(), o.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(export_with(&graph, &weights, &bundle.manifest().aliases, &ExportOptions { onnx_names })?)
}

/// Writes `model` to `path` atomically: the file is either the old one or the
/// whole new model, never a part of it.
pub fn save_model(model: &ModelProto, path: &Path) -> Result<(), ContainerError> {
    let bytes = model.encode_to_vec();
    write_atomically(path, |w| {
        w.write_all(&bytes).map_err(|source| ContainerError::Io { op: "write", path: path.to_path_buf(), source })
    })
}
