//! Helpers shared by the facade's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this file is shared by the facade's and the CLI's tests).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("Cargo.lock").exists())
        .expect("inside the workspace")
        .to_owned()
}

/// The Python interpreter with numpy and PyYAML that `scripts/test` sets up:
/// `$NNB_PYTHON`, else `.venv/bin/python3` in the workspace. Returns `None`
/// (and the caller skips) only outside CI; under `CI=true` a missing
/// interpreter is a failure, so the cross-language checks cannot silently vanish.
pub fn python() -> Option<PathBuf> {
    let candidate =
        std::env::var_os("NNB_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/python3"));
    let works =
        Command::new(&candidate).args(["-c", "import numpy, yaml"]).status().map(|s| s.success()).unwrap_or(false);
    if works {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: no Python with numpy, PyYAML and safetensors at {} (run scripts/test, which sets it up)",
        candidate.display()
    );
    eprintln!("skipping: no Python with numpy at {} (scripts/test sets one up)", candidate.display());
    None
}

/// Path of a script under `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    root().join("tests/python").join(name)
}

/// Runs a Python script and returns its stdout, failing the test with its stderr on error.
pub fn run_python(python: &PathBuf, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python).args(args).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}
