//! Sharded bundles (format 1.2): a bundle split into standalone shard
//! bundles plus an index bundle that holds the graph, the metadata, every
//! tensor's record and the shard table, and no tensor data.

use std::path::{Path, PathBuf};

use nnbundle_format::{Manifest, ShardRecord};

use crate::atomic::Durability;
use crate::error::{ContainerError, Result};
use crate::{Bundle, BundleWriter};

/// Estimated bytes a tensor adds to a shard besides its data: the local
/// header, alignment, `.npy` header, central-directory record and manifest
/// lines (its name appears in each).
fn overhead(name: &str) -> u64 {
    640 + 4 * name.len() as u64
}

/// Which stored tensors go to which shard: in name order, a new shard when
/// the next tensor would take the current one past `max_bytes` (data and
/// estimated headers). A tensor larger than `max_bytes` gets a shard of its
/// own; tensors are never split.
pub fn plan_shards(manifest: &Manifest, max_bytes: u64) -> Vec<Vec<String>> {
    let mut shards: Vec<Vec<String>> = Vec::new();
    let mut used = 0u64;
    for (name, record) in &manifest.tensors {
        let size = record.byte_size().unwrap_or(0) + overhead(name);
        match shards.last_mut() {
            Some(current) if used + size <= max_bytes => current.push(name.clone()),
            _ => {
                shards.push(vec![name.clone()]);
                used = 0;
            }
        }
        used += size;
    }
    shards
}

/// The file name of shard `i` (from 0) of `count`: `<stem>-00001-of-00004.nnb`.
pub fn shard_file_name(stem: &str, i: usize, count: usize) -> String {
    format!("{stem}-{:05}-of-{count:05}.nnb", i + 1)
}

/// Writes `bundle` as shards of at most `max_bytes` of tensor data and
/// headers each, and the index `dir/<index_name>`, all atomically. The same
/// bundle and size give the same files, byte for byte. Returns the index's
/// manifest and the shard paths.
pub fn write_sharded(
    bundle: &Bundle,
    max_bytes: u64,
    dir: &Path,
    index_name: &str,
    durability: Durability,
) -> Result<(Manifest, Vec<PathBuf>)> {
    let manifest = bundle.manifest();
    let stem = Path::new(index_name).file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let plan = plan_shards(manifest, max_bytes);
    let mut records = Vec::with_capacity(plan.len());
    let mut paths = Vec::with_capacity(plan.len());
    for (i, names) in plan.iter().enumerate() {
        let file = shard_file_name(&stem, i, plan.len());
        nnbundle_format::check_shard_file_name(&file)
            .map_err(|reason| ContainerError::InvalidContent { reason: format!("shard name `{file}`: {reason}") })?;
        let mut writer = BundleWriter::new();
        let mut layout = Manifest::new();
        for name in names {
            let record = &manifest.tensors[name];
            writer.add_tensor_to_group(&record.group, name.clone(), bundle.tensor(name)?)?;
            layout.tensors.insert(name.clone(), record.clone());
        }
        // Each tensor keeps its digest kinds, so the shard's records are the index's.
        writer.keep_layout_of(&layout);
        let path = dir.join(&file);
        let shard_manifest = writer.save_with(&path, durability)?;
        let size = std::fs::metadata(&path).map_err(|e| ContainerError::io("stat", &path, e))?.len();
        records.push(ShardRecord {
            file,
            size,
            bundle_digest: shard_manifest
                .bundle_digest()
                .map_err(|e| ContainerError::InvalidContent { reason: e.to_string() })?,
            tensors: names.clone(),
        });
        paths.push(path);
    }
    // The index: the bundle's graph, aliases, metadata and samples, every
    // tensor's record, and the shard table.
    let mut index = BundleWriter::with_model_of(bundle)?;
    index.set_shards(manifest.tensors.clone(), records);
    let index_manifest = index.save_with(dir.join(index_name), durability)?;
    Ok((index_manifest, paths))
}
