//! `shard` and `merge`: a bundle as standalone shard bundles plus an index, and back.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nnbundle_container::{Bundle, BundleWriter, Durability};
use nnbundle_graph::human_bytes;

use crate::output::{GOOD, done, spinner};
use crate::{Failure, Outcome};

/// Parses a size: bytes, or a number with `KiB`, `MiB`, `GiB`, `TiB` (powers
/// of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000), any case.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("`{text}`: expected a size like 64MiB, 2GB or 1048576"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("`{text}`: unknown unit `{other}` (KiB, MiB, GiB, TiB, KB, MB, GB, TB)")),
    };
    match number.checked_mul(factor) {
        Some(0) | None => Err(format!("`{text}`: a size from 1 byte to 2^64")),
        Some(bytes) => Ok(bytes),
    }
}

pub(crate) fn shard(bundle_path: &Path, max: &str, dir: &Path) -> Outcome {
    let max = parse_size(max).map_err(|e| Failure::usage(format!("--max-shard-size {e}")))?;
    let index_name = bundle_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::usage(format!("`{}` is not a file", bundle_path.display())))?;
    let bundle = Bundle::open(bundle_path)?;
    if bundle.is_index() {
        return Err(Failure::usage(format!("`{}` is already an index; merge it first", bundle_path.display())));
    }
    let plan = nnbundle_container::plan_shards(bundle.manifest(), max);
    let stem = Path::new(&index_name).file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let ours: Vec<String> = (0..plan.len())
        .map(|i| nnbundle_container::shard_file_name(&stem, i, plan.len()))
        .chain([index_name.clone()])
        .collect();
    std::fs::create_dir_all(dir).with_context(|| format!("create `{}`", dir.display()))?;
    let same_file = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same_file(&dir.join(&index_name), bundle_path) {
        return Err(Failure::usage(format!(
            "the index `{}` would replace the bundle being sharded: choose another folder",
            dir.join(&index_name).display()
        )));
    }
    // The folder holds the index and its shards, nothing else.
    for entry in std::fs::read_dir(dir).with_context(|| format!("read `{}`", dir.display()))? {
        let name = entry.with_context(|| format!("read `{}`", dir.display()))?.file_name();
        let name = name.to_string_lossy();
        if !ours.iter().any(|o| *o == name) && !name.ends_with(nnbundle_container::TEMP_SUFFIX) {
            return Err(Failure::usage(format!(
                "`{}` holds `{name}`, which is not one of the files sharding writes: use an empty folder",
                dir.display()
            )));
        }
    }
    let spin = spinner("writing shards");
    let (index, paths) = nnbundle_container::write_sharded(&bundle, max, dir, &index_name, Durability::Synced)?;
    spin.finish_and_clear();
    let largest = index.shards.iter().map(|s| s.size).max().unwrap_or(0);
    done(format_args!(
        "{GOOD}sharded{GOOD:#} {} into {} shards in {} (largest {}), index {}",
        bundle_path.display(),
        paths.len(),
        dir.display(),
        human_bytes(largest),
        dir.join(&index_name).display()
    ));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn merge(index_path: &Path, output: &Path) -> Outcome {
    let spin = spinner("checking shards and merging");
    let index = Bundle::open(index_path)?;
    if !index.is_index() {
        return Err(Failure::usage(format!(
            "`{}` is not an index bundle: there is nothing to merge",
            index_path.display()
        )));
    }
    let writer = BundleWriter::from_bundle(&index)?;
    let manifest = writer.save(output)?;
    spin.finish_and_clear();
    done(format_args!(
        "{GOOD}merged{GOOD:#} {} shards into {} ({} tensors, bundle digest {})",
        index.manifest().shards.len(),
        output.display(),
        manifest.tensors.len(),
        manifest.bundle_digest()?.short(16)
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("10 kib"), Ok(10 << 10));
        assert!(parse_size("64XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
