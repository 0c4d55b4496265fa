//! Sharded bundles: an index opens like the bundle it came from, merging
//! gives the original bytes back, and a missing, truncated, swapped or
//! duplicated shard is an error naming the shard file, at open.

use std::path::{Path, PathBuf};

use nnbundle_container::{Backend, Bundle, BundleWriter, Durability, OpenOptions, Verify, write_sharded};
use nnbundle_format::Tensor;

const MIB: usize = 1 << 20;

/// Six tensors of 1, 1, 3, 1, 1 and 0.5 MiB in two groups, an alias and metadata.
fn original(dir: &Path) -> PathBuf {
    let mut w = BundleWriter::new();
    for (i, mib) in [2usize, 2, 6, 2, 2, 1].into_iter().enumerate() {
        let n = mib * MIB / 8;
        let values: Vec<f32> = (0..n).map(|j| (i * 1000 + j % 997) as f32).collect();
        let group = if i == 4 { "optimizer" } else { "params" };
        w.add_tensor_to_group(group, format!("layer{i}.weight"), Tensor::from_vec(vec![n], values).unwrap()).unwrap();
    }
    w.add_alias("tied.weight", "layer0.weight").unwrap();
    w.set_metadata("step", 7i64).unwrap();
    let path = dir.join("model.nnb");
    w.save(&path).unwrap();
    path
}

fn shard(dir: &Path, max: u64) -> PathBuf {
    let bundle = Bundle::open(original(dir)).unwrap();
    let out = dir.join("sharded");
    std::fs::create_dir_all(&out).unwrap();
    write_sharded(&bundle, max, &out, "model.nnb", Durability::Unsynced).unwrap();
    out.join("model.nnb")
}

#[test]
fn an_index_opens_like_the_bundle_and_merges_back_to_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let index = shard(dir.path(), 2 * MIB as u64 + 4096);
    let mut files: Vec<String> = std::fs::read_dir(index.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    // 1+1 MiB share a shard; 3 MiB is alone (larger than the limit); 1+1; 0.5.
    assert_eq!(
        files,
        [
            "model-00001-of-00004.nnb",
            "model-00002-of-00004.nnb",
            "model-00003-of-00004.nnb",
            "model-00004-of-00004.nnb",
            "model.nnb"
        ]
    );
    for file in &files[..4] {
        let size = std::fs::metadata(index.parent().unwrap().join(file)).unwrap().len();
        let own = Bundle::open(index.parent().unwrap().join(file)).unwrap();
        let data: u64 = own.manifest().tensors.values().map(|r| r.byte_size().unwrap()).sum();
        assert!(size <= (2 * MIB as u64 + 4096).max(data) + MIB as u64, "{file}: {size} bytes");
    }
    let original = Bundle::open(dir.path().join("model.nnb")).unwrap();
    for backend in [Backend::Mmap, Backend::Pread] {
        let sharded = Bundle::open_with(&index, OpenOptions { verify: Verify::Eager, backend }).unwrap();
        assert!(sharded.is_index());
        assert_eq!(sharded.manifest().tensors, original.manifest().tensors);
        assert_eq!(sharded.manifest().metadata, original.manifest().metadata);
        for info in original.tensor_infos() {
            assert_eq!(sharded.tensor(info.name).unwrap(), original.tensor(info.name).unwrap(), "{}", info.name);
        }
        assert_eq!(sharded.load_all().unwrap(), original.load_all().unwrap());
        sharded.verify_every_digest().unwrap();
    }
    // Merging gives the original bytes; sharding again gives the same files.
    let merged = dir.path().join("merged.nnb");
    BundleWriter::from_bundle(&Bundle::open(&index).unwrap()).unwrap().save(&merged).unwrap();
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(dir.path().join("model.nnb")).unwrap());
    let again = tempfile::tempdir().unwrap();
    let index_again = shard(again.path(), 2 * MIB as u64 + 4096);
    for file in &files {
        assert_eq!(
            std::fs::read(index.parent().unwrap().join(file)).unwrap(),
            std::fs::read(index_again.parent().unwrap().join(file)).unwrap(),
            "{file}"
        );
    }
}

fn open_err(index: &Path) -> String {
    let err = Bundle::open(index).unwrap_err();
    assert_eq!(err.code(), "bad-shard", "{err}");
    err.to_string()
}

#[test]
fn a_missing_truncated_swapped_or_linked_shard_is_named_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let index = shard(dir.path(), 2 * MIB as u64 + 4096);
    let folder = index.parent().unwrap().to_owned();
    let (first, second) = (folder.join("model-00001-of-00004.nnb"), folder.join("model-00002-of-00004.nnb"));

    std::fs::rename(&second, folder.join("elsewhere.nnb")).unwrap();
    let err = open_err(&index);
    assert!(err.contains("model-00002-of-00004.nnb") && err.contains("missing"), "{err}");
    std::fs::rename(folder.join("elsewhere.nnb"), &second).unwrap();

    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(&first, &bytes[..bytes.len() - 10]).unwrap();
    let err = open_err(&index);
    assert!(err.contains("model-00001-of-00004.nnb") && err.contains("the index says"), "{err}");
    std::fs::write(&first, &bytes).unwrap();

    // Shards 1 and 3 swapped: the same size (two 1 MiB tensors each), so the bundle digest tells.
    let third = folder.join("model-00003-of-00004.nnb");
    let (a, b) = (std::fs::read(&first).unwrap(), std::fs::read(&third).unwrap());
    assert_eq!(a.len(), b.len());
    std::fs::write(&first, &b).unwrap();
    std::fs::write(&third, &a).unwrap();
    let err = open_err(&index);
    assert!(err.contains("model-00001-of-00004.nnb") && err.contains("bundle digest"), "{err}");
    std::fs::write(&first, &a).unwrap();
    std::fs::write(&third, &b).unwrap();

    // A symbolic link in place of a shard is not followed, even to the right file.
    #[cfg(unix)]
    {
        std::fs::rename(&second, folder.join("real.nnb")).unwrap();
        std::os::unix::fs::symlink(folder.join("real.nnb"), &second).unwrap();
        let err = open_err(&index);
        assert!(err.contains("model-00002-of-00004.nnb") && err.contains("symbolic links"), "{err}");
        std::fs::remove_file(&second).unwrap();
        std::fs::rename(folder.join("real.nnb"), &second).unwrap();
    }
    Bundle::open(&index).unwrap();
}

#[test]
fn an_index_that_names_itself_or_another_index_as_a_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = shard(dir.path(), 2 * MIB as u64 + 4096);
    let folder = index.parent().unwrap();
    // An index whose one shard is the index itself: refused, not opened without end.
    let mut own = Bundle::open(&index).unwrap().manifest().clone();
    own.shards.truncate(1);
    own.shards[0].file = "model.nnb".into();
    own.shards[0].tensors = own.tensors.keys().cloned().collect();
    let save = |manifest: &nnbundle_format::Manifest| {
        let mut w = BundleWriter::new();
        w.set_shards(manifest.tensors.clone(), manifest.shards.clone());
        w.save(&index).unwrap();
    };
    // Saved until the size it records is its own (a fixed point within a few saves).
    for _ in 0..5 {
        save(&own);
        own.shards[0].size = std::fs::metadata(&index).unwrap().len();
    }
    save(&own);
    assert_eq!(std::fs::metadata(&index).unwrap().len(), own.shards[0].size);
    let err = open_err(&index);
    assert!(err.contains("model.nnb") && err.contains("itself an index"), "{err}");
    assert!(folder.join("model-00001-of-00004.nnb").exists());
}

#[test]
fn shard_tables_that_break_the_rules_are_refused() {
    let table = |shards: &str| {
        format!(
            "format_version: '1.2'\ntensors:\n  a: {{dtype: u8, shape: [1], sha256: 'ab{}'}}\nshards:\n{shards}",
            "0".repeat(62)
        )
    };
    let shard = |file: &str, tensors: &str| {
        format!("- file: {file}\n  size: 1\n  bundle_digest: 'ab{}'\n  tensors: [{tensors}]\n", "0".repeat(62))
    };
    let parse = |text: String| nnbundle_format::Manifest::parse(text.as_bytes()).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(parse(table(&shard("m-1.nnb", "a"))), Ok(()));
    let err = parse(table(&(shard("m-1.nnb", "a") + &shard("m-2.nnb", "a")))).unwrap_err();
    assert!(err.contains("shards[1].tensors") && err.contains("exactly one shard"), "{err}");
    for path in ["../m-1.nnb", "sub/m-1.nnb", "/tmp/m-1.nnb"] {
        let err = parse(table(&shard(path, "a"))).unwrap_err();
        assert!(err.contains("shards[0].file") && err.contains(path), "{err}");
    }
    let err = parse(table(&shard("m-1.nnb", ""))).unwrap_err();
    assert!(err.contains("tensors.a") && err.contains("in no shard"), "{err}");
    let err = parse(table(&shard("m-1.nnb", "a")).replace("'1.2'", "'1.1'")).unwrap_err();
    assert!(err.contains("shards need format_version 1.2"), "{err}");
}

#[test]
fn an_index_whose_table_disagrees_with_its_shards_names_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let index = shard(dir.path(), 2 * MIB as u64 + 4096);
    let good = Bundle::open(&index).unwrap().manifest().clone();
    let rewrite = |manifest: &nnbundle_format::Manifest| {
        let mut w = BundleWriter::new();
        w.set_shards(manifest.tensors.clone(), manifest.shards.clone());
        w.save(&index).unwrap();
    };
    // Shards 1 and 3 listed with each other's tensors (sizes and digests right).
    let mut swapped = good.clone();
    let (first, third) = (swapped.shards[0].tensors.clone(), swapped.shards[2].tensors.clone());
    swapped.shards[0].tensors = third;
    swapped.shards[2].tensors = first;
    rewrite(&swapped);
    let err = open_err(&index);
    assert!(err.contains("model-00001-of-00004.nnb") && err.contains("holds other tensors"), "{err}");
    // A record the shard does not have (another group).
    let mut regrouped = good.clone();
    regrouped.tensors.get_mut("layer0.weight").unwrap().group = "buffers".into();
    rewrite(&regrouped);
    let err = open_err(&index);
    assert!(err.contains("model-00001-of-00004.nnb") && err.contains("record of tensor `layer0.weight`"), "{err}");
    // An index held in memory has no folder to find its shards in.
    rewrite(&good);
    let err = Bundle::from_bytes(std::fs::read(&index).unwrap()).unwrap_err().to_string();
    assert!(err.contains("must be opened from its file"), "{err}");
}
