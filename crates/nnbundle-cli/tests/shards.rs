//! `nnb shard` and `nnb merge` as outside checks use them: the index opens
//! like the original (inspect, diff exit 0, run bit-identical), merge gives
//! the original bytes, sharding twice gives the same files, and a missing or
//! swapped shard makes validate exit 1 naming the shard file.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn nnb(dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("nnb").unwrap().current_dir(dir).args(args).output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = nnb(dir, args);
    assert!(
        out.status.success(),
        "nnb {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The conformance MLP (a graph, 4 tensors of 0.1 to 20 KiB) with a sample.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/conformance/valid_mlp_with_sample.nnb");
    std::fs::copy(mlp, dir.path().join("model.nnb")).unwrap();
    dir
}

/// `x.npy`: the MLP's input, 2 x 20.
fn write_input(dir: &Path) {
    let x = nnbundle_format::Tensor::from_vec(vec![2, 20], (0..40).map(|i| i as f32 / 7.0).collect()).unwrap();
    std::fs::write(dir.join("x.npy"), nnbundle_container::npy::to_npy(&x)).unwrap();
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn an_index_works_wherever_the_bundle_does_and_merges_back() {
    let dir = setup();
    let d = dir.path();
    ok(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "out"]);
    let written = files(&d.join("out"));
    assert!(written.len() >= 3 && written.contains(&"model.nnb".to_owned()), "{written:?}");
    assert!(
        written.iter().filter(|f| *f != "model.nnb").all(|f| f.starts_with("model-0000") && f.contains("-of-0000"))
    );
    // inspect lists the same tensors; diff sees no difference.
    let tensors = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("tensors"))
            .take_while(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(tensors(&ok(d, &["inspect", "model.nnb"])), tensors(&ok(d, &["inspect", "out/model.nnb"])));
    ok(d, &["diff", "model.nnb", "out/model.nnb"]);
    assert!(ok(d, &["validate", "out/model.nnb"]).contains("valid (0 errors"));
    // run: bit-identical outputs.
    write_input(d);
    ok(d, &["run", "model.nnb", "--input", "X=x.npy", "-o", "run-a"]);
    ok(d, &["run", "out/model.nnb", "--input", "X=x.npy", "-o", "run-b"]);
    assert_eq!(std::fs::read(d.join("run-a/output.npy")).unwrap(), std::fs::read(d.join("run-b/output.npy")).unwrap());
    // merge gives the original bytes; sharding again gives the same files.
    ok(d, &["merge", "out/model.nnb", "-o", "merged.nnb"]);
    assert_eq!(std::fs::read(d.join("merged.nnb")).unwrap(), std::fs::read(d.join("model.nnb")).unwrap());
    ok(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "again"]);
    for file in &written {
        assert_eq!(
            std::fs::read(d.join("out").join(file)).unwrap(),
            std::fs::read(d.join("again").join(file)).unwrap(),
            "{file}"
        );
    }
    // Into the same folder again: the same names, nothing else.
    ok(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "out"]);
    assert_eq!(files(&d.join("out")), written);
}

#[test]
fn a_missing_or_swapped_shard_makes_validate_exit_1_naming_it() {
    let dir = setup();
    let d = dir.path();
    ok(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "out"]);
    let shards: Vec<String> = files(&d.join("out")).into_iter().filter(|f| f != "model.nnb").collect();
    let (first, second) = (d.join("out").join(&shards[0]), d.join("out").join(&shards[1]));

    std::fs::rename(&first, d.join("aside.nnb")).unwrap();
    let out = nnb(d, &["validate", "out/model.nnb"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&shards[0]) && text.contains("bad-shard"), "{text}");
    std::fs::rename(d.join("aside.nnb"), &first).unwrap();

    let (a, b) = (std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    std::fs::write(&first, &b).unwrap();
    std::fs::write(&second, &a).unwrap();
    let out = nnb(d, &["validate", "out/model.nnb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&shards[0]));
    write_input(d);
    let out = nnb(d, &["run", "out/model.nnb", "--input", "X=x.npy"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&shards[0]));
}

#[test]
fn sharding_refuses_a_folder_with_other_files_and_bad_sizes() {
    let dir = setup();
    let d = dir.path();
    std::fs::create_dir(d.join("busy")).unwrap();
    std::fs::write(d.join("busy/notes.txt"), b"mine").unwrap();
    let out = nnb(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "busy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.txt"));
    let out = nnb(d, &["shard", "model.nnb", "--max-shard-size", "16 parsecs", "-o", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
    // An index is not sharded again.
    assert!(nnb(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "out"]).status.success());
    let out = nnb(d, &["shard", "out/model.nnb", "--max-shard-size", "16KiB", "-o", "again"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already an index"));
    // The index would be written over the bundle itself.
    let out = nnb(d, &["shard", "model.nnb", "--max-shard-size", "16KiB", "-o", "."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("would replace the bundle"));
    assert!(nnb(d, &["validate", "model.nnb"]).status.success());
    let out = nnb(d, &["merge", "model.nnb", "-o", "m.nnb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an index"));
}
