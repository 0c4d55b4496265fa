//! The `nnb` binary, run for real: snapshots of exit code, stdout and stderr
//! for every command and every documented error.

use std::path::Path;

use assert_cmd::Command;
use nnbundle_container::npy;
use nnbundle_format::{DType, Tensor};
use nnbundle_runtime::{Layer, Sequential};

/// Runs `nnb` in `dir`; returns exit code, stdout and stderr with `dir` replaced by `[TMP]`.
fn nnb(dir: &Path, args: &[&str]) -> String {
    let out = Command::cargo_bin("nnb").unwrap().current_dir(dir).args(args).output().unwrap();
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.replace(&dir.display().to_string(), "[TMP]")
}

fn exit_code(output: &str) -> i32 {
    output.lines().next().unwrap().trim_start_matches("exit: ").parse().unwrap()
}

/// A folder with the textbook MLP (`mlp.nnb`), its graph and weights as
/// files people have (`mlp.yaml`, `mlp.safetensors`), and inputs.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let net = Sequential::new("X", DType::F32, &["batch".into(), 20u64.into()])
        .add("hidden", Layer::linear(20, 256))
        .add("relu", Layer::relu())
        .add("output", Layer::linear(256, 10))
        .build(0)
        .unwrap();
    net.save(dir.path().join("mlp.nnb")).unwrap();
    std::fs::write(dir.path().join("mlp.yaml"), include_bytes!("../../../spec/examples/mlp.yaml")).unwrap();
    let weights = net.state_dict();
    let views: Vec<_> = weights
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape().to_vec(), t.as_bytes())
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(dir.path().join("mlp.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    let x: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
    std::fs::write(dir.path().join("x.npy"), npy::to_npy(&Tensor::from_vec(vec![2, 20], x).unwrap())).unwrap();
    std::fs::write(dir.path().join("bad.npy"), npy::to_npy(&Tensor::from_vec(vec![2, 21], vec![0f32; 42]).unwrap()))
        .unwrap();
    dir
}

#[test]
fn inspect() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(dir.path(), &["inspect", "mlp.nnb"]));
    let json = nnb(dir.path(), &["inspect", "mlp.nnb", "--json"]);
    assert_eq!(exit_code(&json), 0);
    let body: serde_json::Value =
        serde_json::from_str(json.split("--- stdout\n").nth(1).unwrap().split("--- stderr").next().unwrap()).unwrap();
    assert_eq!(body["totals"]["tensors"], 4);
    assert_eq!(body["tensors"][1]["name"], "hidden.weight");
    assert_eq!(body["tensors"][1]["shape"], serde_json::json!([256, 20]));
}

#[test]
fn inspect_totals_agree() {
    let dir = fixture();
    let conformance = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/conformance/valid_mlp_with_sample.nnb");
    std::fs::copy(conformance, dir.path().join("sampled.nnb")).unwrap();
    let out = nnb(dir.path(), &["inspect", "sampled.nnb"]);
    insta::assert_snapshot!(out);
    // The summary's parameter total is the params group's element count; samples are counted apart.
    assert!(out.contains("parameters: 7,946 (31.0 KiB)"), "{out}");
    assert!(out.contains("params        4 tensors            7,946 elements"), "{out}");
    assert!(out.contains("samples       2 tensors               60 elements"), "{out}");
}

#[test]
fn validate_valid_bundle() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(dir.path(), &["validate", "mlp.nnb"]));
    insta::assert_snapshot!(nnb(dir.path(), &["validate", "mlp.nnb", "--json"]));
    insta::assert_snapshot!(nnb(dir.path(), &["validate", "mlp.nnb", "--no-hash"]));
}

#[test]
fn validate_hash_mismatch() {
    let dir = fixture();
    let path = dir.path().join("mlp.nnb");
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte inside hidden.weight's data: after its entry name and .npy header.
    let at = bytes.windows(24).position(|w| w == b"tensors/hidden.weight.np").unwrap() + 400;
    bytes[at] ^= 0x40;
    std::fs::write(dir.path().join("flipped.nnb"), bytes).unwrap();
    insta::assert_snapshot!(nnb(dir.path(), &["validate", "flipped.nnb"]));
    insta::assert_snapshot!(nnb(dir.path(), &["validate", "flipped.nnb", "--json"]));
}

#[test]
fn documented_errors() {
    let dir = fixture();
    std::fs::write(dir.path().join("notzip.nnb"), b"just text").unwrap();
    insta::assert_snapshot!("missing_file", nnb(dir.path(), &["validate", "missing.nnb"]));
    insta::assert_snapshot!("not_a_zip", nnb(dir.path(), &["validate", "notzip.nnb"]));
    insta::assert_snapshot!("inspect_missing_file", nnb(dir.path(), &["inspect", "missing.nnb"]));
    insta::assert_snapshot!("usage_error", nnb(dir.path(), &["inspect"]));
}

#[test]
fn pack_and_unpack() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(
        dir.path(),
        &[
            "pack",
            "mlp.yaml",
            "mlp.safetensors",
            "-o",
            "packed.nnb",
            "--meta",
            "epochs=10",
            "--meta",
            "lr=0.1",
            "--meta",
            "author=ada"
        ]
    ));
    // Packing the weights of mlp.nnb gives the same tensors.
    let diff = nnb(dir.path(), &["diff", "mlp.nnb", "packed.nnb"]);
    assert!(diff.contains("+ epochs: 10") && !diff.contains("tensors"), "{diff}");
    insta::assert_snapshot!(nnb(dir.path(), &["unpack", "packed.nnb", "-o", "out"]));
    insta::assert_snapshot!(nnb(dir.path(), &["pack", "out", "-o", "again.nnb"]));
    assert_eq!(
        std::fs::read(dir.path().join("again.nnb")).unwrap(),
        std::fs::read(dir.path().join("packed.nnb")).unwrap()
    );
    // The unpacked graph and weights also pack as files other tools wrote would.
    let again = nnb(dir.path(), &["pack", "out/graph.yaml", "out/weights.safetensors", "-o", "again.nnb"]);
    assert_eq!(exit_code(&again), 0, "{again}");
    // A folder without a manifest (an older unpack) gets told how to pack it.
    std::fs::remove_file(dir.path().join("out/manifest.yaml")).unwrap();
    let old = nnb(dir.path(), &["pack", "out", "-o", "x.nnb"]);
    assert_eq!(exit_code(&old), 2, "{old}");
    assert!(old.contains("has no manifest.yaml: pack its graph and weights as files, `nnb pack out/graph.yaml out/weights.safetensors -o OUT.nnb`"), "{old}");
    // A folder holds its weights; a graph file needs them.
    insta::assert_snapshot!(nnb(dir.path(), &["pack", "out", "mlp.safetensors", "-o", "x.nnb"]));
    insta::assert_snapshot!(nnb(dir.path(), &["pack", "mlp.yaml", "-o", "x.nnb"]));
}

#[test]
fn an_unpacked_folder_that_disagrees_with_its_manifest_is_named() {
    let dir = fixture();
    assert_eq!(exit_code(&nnb(dir.path(), &["unpack", "mlp.nnb", "-o", "out"])), 0);
    let original = std::fs::read(dir.path().join("out/manifest.yaml")).unwrap();
    let rewrite = |edit: &dyn Fn(&mut nnbundle_format::Manifest)| {
        let mut m = nnbundle_format::Manifest::parse(&original).unwrap();
        edit(&mut m);
        std::fs::write(dir.path().join("out/manifest.yaml"), m.to_yaml().unwrap()).unwrap();
        nnb(dir.path(), &["pack", "out", "-o", "x.nnb"])
    };
    // A tensor the manifest lists that the weights file lacks.
    let out = rewrite(&|m| {
        let record = m.tensors["output.bias"].clone();
        m.tensors.insert("ghost".into(), record);
    });
    assert_eq!(exit_code(&out), 1, "{out}");
    assert!(out.contains("`out/weights.safetensors` has no tensor `ghost`, which `out/manifest.yaml` lists"), "{out}");
    // A tensor in the weights file that the manifest does not list.
    let out = rewrite(&|m| {
        m.tensors.remove("output.bias");
    });
    assert_eq!(exit_code(&out), 1, "{out}");
    assert!(
        out.contains("`out/weights.safetensors` holds `output.bias`, which `out/manifest.yaml` does not list"),
        "{out}"
    );
    // Options that only make sense with a weights file.
    let out = nnb(dir.path(), &["pack", "out", "--strip-prefix", "model.", "-o", "x.nnb"]);
    assert_eq!(exit_code(&out), 2, "{out}");
    assert!(out.contains("--strip-prefix applies to a weights file, not to an unpacked folder"), "{out}");
}

#[test]
fn prefixed_weight_names_get_a_hint_and_a_fix() {
    let dir = fixture();
    let weights = nnbundle_container::Bundle::open(dir.path().join("mlp.nnb")).unwrap().load_all().unwrap();
    let views: Vec<_> = weights
        .iter()
        .map(|(n, t)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape().to_vec(), t.as_bytes());
            (format!("model.{n}"), view.unwrap())
        })
        .collect();
    std::fs::write(dir.path().join("prefixed.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    insta::assert_snapshot!(nnb(dir.path(), &["pack", "mlp.yaml", "prefixed.safetensors", "-o", "p.nnb"]));
    let fixed =
        nnb(dir.path(), &["pack", "mlp.yaml", "prefixed.safetensors", "--strip-prefix", "model.", "-o", "p.nnb"]);
    assert_eq!(exit_code(&fixed), 0, "{fixed}");
    let diff = nnb(dir.path(), &["diff", "mlp.nnb", "p.nnb"]);
    assert_eq!(exit_code(&diff), 0, "{diff}");
}

#[test]
fn pack_warns_as_validate_does() {
    let dir = fixture();
    let yaml = "opset: 1\ninputs: [{name: X, dtype: f32, shape: [batch, 20]}]\nnodes:\n\
                - {name: hidden, op: Linear, inputs: [X], attrs: {in_features: 20, out_features: 256}}\n\
                - {name: relu, op: ReLU, inputs: [hidden]}\n\
                - {name: output, op: Linear, inputs: [relu], attrs: {in_features: 256, out_features: 10}}\n\
                - {name: unused, op: Sigmoid, inputs: [X]}\noutputs: [output]\n";
    std::fs::write(dir.path().join("extra.yaml"), yaml).unwrap();
    insta::assert_snapshot!(nnb(dir.path(), &["pack", "extra.yaml", "mlp.safetensors", "-o", "e.nnb"]));
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let dir = fixture();
    for args in [
        &["pack", "mlp.yaml", "mlp.safetensors", "-o", "x.nnb", "--meta", "epochs"][..],
        &["run", "mlp.nnb", "--input", "x.npy"],
        &["pack", "mlp.yaml", "mlp.weights", "-o", "x.nnb"],
        &["import", "m.onnx", "--input-shape", "x=1,a", "-o", "x.nnb"],
    ] {
        let out = nnb(dir.path(), args);
        assert_eq!(exit_code(&out), 2, "{args:?}: {out}");
        assert!(out.contains("error: "), "{out}");
    }
    insta::assert_snapshot!(nnb(dir.path(), &["run", "mlp.nnb", "--input", "x.npy", "--json"]));
}

#[test]
fn failing_json_commands_print_a_json_error() {
    let dir = fixture();
    for (args, code) in [
        (&["inspect", "missing.nnb", "--json"][..], "io"),
        (&["run", "mlp.nnb", "--input", "Y=x.npy", "--json"], "unknown-input"),
        (&["diff", "mlp.nnb", "x.npy", "--json"], "not-a-zip"),
    ] {
        let out = Command::cargo_bin("nnb").unwrap().current_dir(dir.path()).args(args).output().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(body["error"]["code"], code, "{args:?}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert_ne!(out.status.code(), Some(0));
    }
}

/// A save that runs out of space keeps the old file, leaves no temporary
/// file, and is an I/O error (exit 2) naming the file, with nothing from a
/// library's destructor on stderr. Needs root to mount a small tmpfs; skipped otherwise.
#[test]
fn a_full_disk_is_an_io_error_that_loses_nothing() {
    let dir = fixture();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let tensor = Tensor::from_vec(vec![512, 1024], vec![0.5f32; 512 * 1024]).unwrap();
    let mut w = nnbundle_container::BundleWriter::new();
    w.add_tensor("t1", Tensor::from_vec(vec![4], vec![1f32; 4]).unwrap()).unwrap();
    w.add_tensor("t2", tensor).unwrap();
    std::fs::write(dir.path().join("big.nnb"), w.to_bytes().unwrap()).unwrap();
    std::fs::copy(dir.path().join("mlp.nnb"), mnt.join("m.nnb")).unwrap();
    let out = nnb(dir.path(), &["unpack", "big.nnb", "-o", "big"]);
    assert_eq!(exit_code(&out), 0, "{out}");
    let out = nnb(dir.path(), &["pack", "big", "-o", "small/m.nnb"]);
    let names: Vec<_> = std::fs::read_dir(&mnt).unwrap().map(|e| e.unwrap().file_name()).collect();
    let kept = std::fs::read(mnt.join("m.nnb")).unwrap() == std::fs::read(dir.path().join("mlp.nnb")).unwrap();
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    insta::assert_snapshot!(out);
    assert_eq!(names, ["m.nnb"], "only the old file is left");
    assert!(kept, "the old file is unchanged");
}

#[test]
fn pack_errors_name_every_problem() {
    let dir = fixture();
    let yaml = std::fs::read_to_string(dir.path().join("mlp.yaml")).unwrap();
    std::fs::write(
        dir.path().join("wide.yaml"),
        yaml.replace("out_features: 256", "out_features: 300").replace("in_features: 256", "in_features: 300"),
    )
    .unwrap();
    insta::assert_snapshot!(
        "pack_wrong_weights",
        nnb(dir.path(), &["pack", "wide.yaml", "mlp.safetensors", "-o", "x.nnb"])
    );
    std::fs::write(dir.path().join("unknown_op.yaml"), yaml.replace("op: ReLU", "op: Swish")).unwrap();
    insta::assert_snapshot!(
        "pack_unknown_op",
        nnb(dir.path(), &["pack", "unknown_op.yaml", "mlp.safetensors", "-o", "x.nnb"])
    );
    assert!(!dir.path().join("x.nnb").exists(), "nothing is written on error");
}

#[test]
fn run() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(dir.path(), &["run", "mlp.nnb", "--input", "X=x.npy", "-o", "out"]));
    let y = npy::from_npy(&std::fs::read(dir.path().join("out/output.npy")).unwrap()).unwrap();
    assert_eq!(y.shape(), [2, 10]);
    insta::assert_snapshot!("run_bad_shape", nnb(dir.path(), &["run", "mlp.nnb", "--input", "X=bad.npy"]));
    insta::assert_snapshot!("run_unknown_input", nnb(dir.path(), &["run", "mlp.nnb", "--input", "Y=x.npy"]));
    insta::assert_snapshot!("run_missing_npy", nnb(dir.path(), &["run", "mlp.nnb", "--input", "X=nope.npy"]));
}

#[test]
fn diff() {
    let dir = fixture();
    insta::assert_snapshot!("diff_equal", nnb(dir.path(), &["diff", "mlp.nnb", "mlp.nnb"]));
    let other = Sequential::new("X", DType::F32, &["batch".into(), 20u64.into()])
        .add("hidden", Layer::linear(20, 256))
        .add("act", Layer::sigmoid())
        .add("output", Layer::linear(256, 5))
        .build(0)
        .unwrap();
    other.save(dir.path().join("other.nnb")).unwrap();
    insta::assert_snapshot!("diff_different", nnb(dir.path(), &["diff", "mlp.nnb", "other.nnb"]));
}

#[test]
fn run_repeat_reports_warm_latency() {
    let dir = fixture();
    let out = Command::cargo_bin("nnb")
        .unwrap()
        .current_dir(dir.path())
        .args(["run", "mlp.nnb", "--input", "X=x.npy", "--repeat", "7", "--threads", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &body["timing"];
    assert_eq!((t["runs"].as_u64(), t["threads"].as_u64()), (Some(7), Some(1)));
    let [min, median, p90] = ["min_ms", "median_ms", "p90_ms"].map(|k| t[k].as_f64().unwrap());
    assert!(0.0 < min && min <= median && median <= p90, "{t}");
    assert_eq!(body["outputs"][0]["shape"], serde_json::json!([2, 10]));
    let text = nnb(dir.path(), &["run", "mlp.nnb", "--input", "X=x.npy", "--repeat", "3", "--threads", "1"]);
    assert!(text.contains("latency over 3 warm run(s) on 1 thread(s): min "), "{text}");
    let zero = nnb(dir.path(), &["run", "mlp.nnb", "--input", "X=x.npy", "--repeat", "0"]);
    assert_eq!(exit_code(&zero), 2, "{zero}");
}

#[test]
fn diff_says_how_far_values_moved() {
    let dir = fixture();
    let save = |file: &str, w: [f32; 4], epochs: i64| {
        let mut writer = nnbundle_container::BundleWriter::new();
        writer.add_tensor("fc.weight", Tensor::from_vec(vec![2, 2], w.to_vec()).unwrap()).unwrap();
        writer.add_tensor("fc.bias", Tensor::from_vec(vec![2], vec![0f32, 1.0]).unwrap()).unwrap();
        writer.set_metadata("epochs", epochs).unwrap();
        writer.save(dir.path().join(file)).unwrap();
    };
    save("a.nnb", [1.0, 2.0, 3.0, 4.0], 1);
    save("b.nnb", [1.0, 2.5, 3.0, 2.0], 2);
    // By hand: 2 of 4 elements differ; |4 - 2| = 2 is the largest move;
    // relative to the larger magnitude, 2 / 4 = 0.5 beats 0.5 / 2.5 = 0.2.
    insta::assert_snapshot!(nnb(dir.path(), &["diff", "a.nnb", "b.nnb"]));
    let out = Command::cargo_bin("nnb")
        .unwrap()
        .current_dir(dir.path())
        .args(["diff", "a.nnb", "b.nnb", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["equal"], false);
    let t = &report["tensors"][0];
    assert_eq!(
        (t["tensor"].as_str(), t["kind"].as_str(), t["what"].as_str()),
        (Some("fc.weight"), Some("changed"), Some("values"))
    );
    assert_eq!((t["differing"].as_u64(), t["elements"].as_u64()), (Some(2), Some(4)));
    assert_eq!((t["max_abs_diff"].as_f64(), t["max_rel_diff"].as_f64()), (Some(2.0), Some(0.5)));
    assert_ne!(t["a"]["sha256"], t["b"]["sha256"]);
    assert_eq!(t["a"]["shape"], serde_json::json!([2, 2]));
    assert_eq!(report["tensors"].as_array().unwrap().len(), 1, "fc.bias is equal");
    let m = &report["metadata"][0];
    assert_eq!(
        (m["key"].as_str(), m["kind"].as_str(), m["a"].as_i64(), m["b"].as_i64()),
        (Some("epochs"), Some("changed"), Some(1), Some(2))
    );
}

#[test]
fn extract_and_render() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(dir.path(), &["extract", "mlp.nnb", "--until", "relu", "-o", "part.nnb"]));
    assert_eq!(exit_code(&nnb(dir.path(), &["validate", "part.nnb"])), 0);
    insta::assert_snapshot!("render_dot", nnb(dir.path(), &["render", "mlp.nnb", "--format", "dot"]));
    insta::assert_snapshot!("render_mermaid", nnb(dir.path(), &["render", "mlp.nnb", "--format", "mermaid"]));
    let out = nnb(dir.path(), &["render", "mlp.nnb", "-o", "mlp.svg"]);
    assert_eq!(exit_code(&out), 0);
    let svg = std::fs::read_to_string(dir.path().join("mlp.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for label in [
        ">hidden<",
        ">Linear<",
        ">in_features=20, out_features=256<",
        ">weight [256, 20], bias [256]<",
        ">[batch, 256]<",
        ">output output<",
        ">linear</text>",
        ">activation</text>",
    ] {
        assert!(svg.contains(label), "{label} missing from the SVG");
    }
    // Parameter shapes come from the weights, and only non-default attributes show.
    let conv = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [n, 3, h, w]}]\nsequential:\n\
                - {name: c, op: Conv2d, attrs: {in_channels: 3, out_channels: 8, kernel_size: 3, stride: 2, padding: 0, groups: 1}}\n";
    std::fs::write(dir.path().join("conv.yaml"), conv).unwrap();
    insta::assert_snapshot!("render_conv_dot", nnb(dir.path(), &["render", "conv.yaml", "--format", "dot"]));
}

#[test]
fn samples_are_stored_and_rechecked() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(dir.path(), &["samples", "add", "mlp.nnb", "--input", "X=x.npy"]));
    let report = nnb(dir.path(), &["validate", "mlp.nnb"]);
    assert!(report.contains("samples    ok  1 sample(s) reproduced"), "{report}");
}

#[test]
fn schemas_are_the_published_ones() {
    let dir = fixture();
    for (kind, file) in [
        ("graph", "graph"),
        ("manifest", "manifest"),
        ("report", "report"),
        ("signature", "signature"),
        ("statement", "statement"),
    ] {
        let out = Command::cargo_bin("nnb").unwrap().current_dir(dir.path()).args(["schema", kind]).output().unwrap();
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let path = format!("{}/../../spec/schema/{file}.schema.json", env!("CARGO_MANIFEST_DIR"));
        let published: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(printed, published, "nnb schema {kind} differs from spec/schema/{file}.schema.json");
    }
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let dir = fixture();
    for cmd in
        ["pack", "unpack", "inspect", "validate", "run", "diff", "extract", "render", "schema", "import", "export"]
    {
        let out = nnb(dir.path(), &[cmd, "--help"]);
        assert!(out.contains("Example") && exit_code(&out) == 0, "{cmd}: {out}");
    }
    assert!(nnb(dir.path(), &["samples", "add", "--help"]).contains("Example:"));
}

#[test]
fn onnx_export_and_import() {
    let dir = fixture();
    insta::assert_snapshot!(nnb(dir.path(), &["export", "mlp.nnb", "--to", "onnx", "-o", "mlp.onnx"]));
    insta::assert_snapshot!(nnb(dir.path(), &["import", "mlp.onnx", "-o", "back.nnb"]));
    // The round trip keeps names, graph and tensors; only provenance metadata is added.
    let diff = nnb(dir.path(), &["diff", "mlp.nnb", "back.nnb"]);
    assert!(
        diff.contains("+ source_format: \"onnx\"") && !diff.contains("graph\n") && !diff.contains("tensors\n"),
        "{diff}"
    );
}

#[test]
fn export_write_failure_is_an_io_error() {
    let dir = fixture();
    let out = nnb(dir.path(), &["export", "mlp.nnb", "--to", "onnx", "-o", "no/such/folder/mlp.onnx"]);
    assert_eq!(exit_code(&out), 2, "{out}");
    assert!(out.contains("no/such/folder/mlp.onnx"), "the error names the file: {out}");
}

#[test]
fn onnx_import_lists_every_unsupported_op() {
    use nnbundle_onnx::proto::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TypeProto, TypeProtoTensor, ValueInfoProto,
    };
    let dir = fixture();
    let value = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(TypeProtoTensor { elem_type: 1, shape: None }) }),
        doc_string: String::new(),
    };
    let node = |op: &str, name: &str, input: &str, output: &str| NodeProto {
        input: vec![input.into()],
        output: vec![output.into()],
        name: name.into(),
        op_type: op.into(),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            node: vec![
                node("Relu", "r", "x", "a"),
                node("RNN", "rnn_1", "a", "b"),
                node("Einsum", "e", "b", "c"),
                node("RNN", "rnn_2", "x", "d"),
            ],
            input: vec![value("x")],
            output: vec![value("c"), value("d")],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(dir.path().join("rnn.onnx"), prost::Message::encode_to_vec(&model)).unwrap();
    insta::assert_snapshot!(nnb(dir.path(), &["import", "rnn.onnx", "-o", "rnn.nnb"]));
    assert!(!dir.path().join("rnn.nnb").exists(), "never a partial bundle");

    // --dry-run reports the same and writes nothing.
    let dry = nnb(dir.path(), &["import", "rnn.onnx", "--dry-run"]);
    assert_eq!(exit_code(&dry), 1, "{dry}");
    assert!(dry.contains("RNN: 2 node(s): `rnn_1`, `rnn_2`"), "{dry}");
    // An output whose branch imports is kept alone with --outputs; the
    // unsupported branch is never looked at.
    let mut only_relu = model.clone();
    let graph = only_relu.graph.as_mut().unwrap();
    graph.output.push(value("a"));
    std::fs::write(dir.path().join("branches.onnx"), prost::Message::encode_to_vec(&only_relu)).unwrap();
    let dry = nnb(dir.path(), &["import", "branches.onnx", "--outputs", "a", "--dry-run"]);
    assert!(dry.contains("would import branches.onnx (1 nodes") && exit_code(&dry) == 0, "{dry}");
    assert!(!dir.path().join("branches.nnb").exists());
    let out = nnb(dir.path(), &["import", "branches.onnx", "--outputs", "a", "-o", "branches.nnb"]);
    assert_eq!(exit_code(&out), 0, "{out}");
    let inspect = nnb(dir.path(), &["inspect", "branches.nnb"]);
    assert!(inspect.contains("ReLU") && !inspect.contains("RNN"), "{inspect}");
    // Names that are not inputs or outputs are errors that list the real ones.
    let bad = nnb(dir.path(), &["import", "branches.onnx", "--outputs", "z", "--dry-run"]);
    assert!(bad.contains("`z` is not a graph output (the outputs are: c, d, a)"), "{bad}");
    let bad = nnb(dir.path(), &["import", "branches.onnx", "--input-shape", "y=1,2", "--dry-run"]);
    assert!(bad.contains("is not a graph input (the inputs are: x)"), "{bad}");
}

#[test]
fn onnx_names_that_are_not_graph_names_are_reported_kept_and_restored() {
    use nnbundle_onnx::proto::{
        Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        TypeProtoTensor, ValueInfoProto,
    };
    let dir = tempfile::tempdir().unwrap();
    let value = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto { dim: vec![Dimension { value: Some(DimensionValue::DimValue(3)) }] }),
            }),
        }),
        doc_string: String::new(),
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["input:0".into()],
                output: vec!["out/prob".into()],
                op_type: "Relu".into(),
                ..Default::default()
            }],
            input: vec![value("input:0")],
            output: vec![value("out/prob")],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(dir.path().join("named.onnx"), prost::Message::encode_to_vec(&model)).unwrap();
    let out = nnb(dir.path(), &["import", "named.onnx", "-o", "named.nnb"]);
    assert_eq!(exit_code(&out), 0, "{out}");
    assert!(out.contains("`input:0` -> `input_0`") && out.contains("`out/prob` -> `out_prob`"), "{out}");
    let bundle = nnbundle_container::Bundle::open(dir.path().join("named.nnb")).unwrap();
    let names = bundle.manifest().metadata.get("onnx_names").map(ToString::to_string);
    assert_eq!(names.as_deref(), Some(r#"{"input_0":"input:0","out_prob":"out/prob"}"#));

    // Export gives the interface its ONNX names back.
    let out = nnb(dir.path(), &["export", "named.nnb", "--to", "onnx", "-o", "back.onnx"]);
    assert_eq!(exit_code(&out), 0, "{out}");
    let back: ModelProto =
        prost::Message::decode(std::fs::read(dir.path().join("back.onnx")).unwrap().as_slice()).unwrap();
    let graph = back.graph.unwrap();
    assert_eq!(graph.input.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["input:0"]);
    assert_eq!(graph.output.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["out/prob"]);
    assert_eq!(graph.node[0].input, ["input:0"]);
    assert_eq!(graph.node[0].output, ["out/prob"]);
}

#[test]
fn sign_refuses_a_name_that_is_not_one_and_leaves_the_bundle() {
    let dir = fixture();
    let before = std::fs::read(dir.path().join("mlp.nnb")).unwrap();
    let key = format!("{}/../../spec/conformance/keys/p256.pem", env!("CARGO_MANIFEST_DIR"));
    let out = nnb(dir.path(), &["sign", "mlp.nnb", "--key", &key, "--name", "../x"]);
    assert!(out.starts_with("exit: 2") && out.contains("--name") && out.contains("../x"), "{out}");
    assert_eq!(std::fs::read(dir.path().join("mlp.nnb")).unwrap(), before);
}
