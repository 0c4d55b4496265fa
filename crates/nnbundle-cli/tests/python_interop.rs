//! The CLI against Python's own `safetensors` package: a file written by
//! Python packs, an unpacked file loads in Python with equal values (and packs back), and the
//! rendered SVG parses as XML.

#[path = "../../../tests/support/mod.rs"]
mod support;

use assert_cmd::Command;

fn nnb(dir: &std::path::Path, args: &[&str]) {
    let out = Command::cargo_bin("nnb").unwrap().current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "nnb {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn python_safetensors_round_trip() {
    let Some(python) = support::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = support::script("safetensors_check.py");
    let run = |args: &[&str]| {
        let mut all = vec![script.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let mut cmd = std::process::Command::new(&python);
        let out = cmd.current_dir(dir.path()).args(&all).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    std::fs::write(dir.path().join("mlp.yaml"), include_bytes!("../../../spec/examples/mlp.yaml")).unwrap();
    run(&["write", "python.safetensors"]);
    nnb(dir.path(), &["pack", "mlp.yaml", "python.safetensors", "-o", "m.nnb"]);
    nnb(dir.path(), &["validate", "m.nnb"]);
    nnb(dir.path(), &["unpack", "m.nnb", "-o", "out"]);
    assert!(run(&["same", "python.safetensors", "out/weights.safetensors"]).contains("same: 4 tensors"));
    nnb(dir.path(), &["pack", "out", "-o", "again.nnb"]);
    assert_eq!(std::fs::read(dir.path().join("again.nnb")).unwrap(), std::fs::read(dir.path().join("m.nnb")).unwrap());
    nnb(dir.path(), &["render", "m.nnb", "-o", "m.svg"]);
    assert!(run(&["svg", "m.svg"]).starts_with("svg: "));
}
