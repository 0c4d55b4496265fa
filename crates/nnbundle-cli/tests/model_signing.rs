//! Cross-checks with the OpenSSF Model Signing tool (PyPI `model-signing`,
//! from sigstore/model-transparency), in the test venv:
//!
//! - a signature `nnb sign` stores in a bundle verifies with `model_signing
//!   verify key` after a plain unzip, and so does a detached one (`--sidecar`);
//! - a signature `model_signing sign key` makes over the unzipped bundle,
//!   attached with `nnb sign --attach`, verifies with `nnb verify`;
//! - a flipped byte in any entry (its CRC-32 recomputed), an added or removed
//!   entry and a signature by another key are each rejected by both tools.
//!
//! Keys: `spec/conformance/keys/` (made by openssl).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

fn key(file: &str) -> String {
    format!("{}/../../spec/conformance/keys/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn nnb(dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("nnb").unwrap().current_dir(dir).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The venv's Python with `model_signing`, and a folder holding `model.nnb` (the textbook MLP).
struct Setup {
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Option<Setup> {
        let python = support::python()?;
        let has_tool = std::process::Command::new(&python)
            .args(["-c", "import model_signing, OpenSSL"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_tool {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: no model-signing in the test venv (scripts/test installs it)"
            );
            eprintln!("skipping: no model-signing in {} (scripts/test installs it)", python.display());
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mlp = format!("{}/../../spec/conformance/valid_mlp.nnb", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(mlp, dir.path().join("model.nnb")).unwrap();
        Some(Setup { python, dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn nnb(&self, args: &[&str]) -> Output {
        nnb(self.dir.path(), args)
    }

    /// `python -m model_signing ARGS`.
    fn model_signing(&self, args: &[&str]) -> Output {
        let out = std::process::Command::new(&self.python)
            .current_dir(self.dir.path())
            .args(["-m", "model_signing"])
            .args(args)
            .output()
            .unwrap();
        eprintln!("$ model_signing {}\n{}", args.join(" "), text(&out));
        out
    }

    fn helper(&self, args: &[&str]) -> String {
        let script = support::script("signing_check.py");
        let mut all = vec![script.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let out = std::process::Command::new(&self.python).current_dir(self.dir.path()).args(&all).output().unwrap();
        assert!(out.status.success(), "signing_check.py {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sign(&self, args: &[&str]) {
        let out = self.nnb(&[&["sign"], args].concat());
        assert!(out.status.success(), "nnb sign {args:?}: {}", text(&out));
    }

    /// `nnb verify BUNDLE --key KEY`: asserts the exit code, returns the output.
    fn verify(&self, bundle: &str, public: &str, expect: i32) -> String {
        let out = self.nnb(&["verify", bundle, "--key", &key(public)]);
        assert_eq!(out.status.code(), Some(expect), "nnb verify {bundle} with {public}: {}", text(&out));
        text(&out)
    }

    /// `model_signing verify key MODEL --signature SIG --public_key KEY`: whether it succeeded, and its output.
    fn model_signing_verify(&self, model: &str, signature: &str, public: &str) -> (bool, String) {
        let out = self.model_signing(&["verify", "key", model, "--signature", signature, "--public_key", &key(public)]);
        (out.status.success(), text(&out))
    }
}

const ENTRIES: [&str; 3] = ["manifest.yaml", "graph.yaml", "tensors/hidden.weight.npy"];

#[test]
fn an_in_bundle_signature_verifies_with_model_signing_after_unzip() {
    let Some(s) = Setup::new() else { return };
    s.sign(&["model.nnb", "--key", &key("p256.pem"), "--name", "release"]);
    let signature = "model/signatures/release.sigstore.json";
    s.helper(&["unzip", "model.nnb", "model"]);
    let (ok, out) = s.model_signing_verify("model", signature, "p256.pub.pem");
    assert!(ok && out.contains("Verification succeeded"), "{out}");
    // The published schemas accept the file and its statement.
    let schemas = format!("{}/../../spec/schema", env!("CARGO_MANIFEST_DIR"));
    let checked = s.helper(&[
        "schema",
        signature,
        &format!("{schemas}/signature.schema.json"),
        &format!("{schemas}/statement.schema.json"),
    ]);
    assert_eq!(checked.trim(), "schema: ok");

    let (ok, out) = s.model_signing_verify("model", signature, "other_p256.pub.pem");
    assert!(!ok && out.contains("Key mismatch"), "another key: {out}");
    for entry in ENTRIES {
        let folder = format!("flip-{}", entry.replace('/', "-"));
        s.helper(&["unzip", "model.nnb", &folder]);
        let file = s.path(&folder).join(entry);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let (ok, out) =
            s.model_signing_verify(&folder, &format!("{folder}/signatures/release.sigstore.json"), "p256.pub.pem");
        assert!(!ok && out.contains(entry), "{entry} flipped: {out}");
    }
    s.helper(&["unzip", "model.nnb", "added"]);
    std::fs::write(s.path("added/tensors/extra.npy"), b"extra").unwrap();
    let (ok, out) = s.model_signing_verify("added", "added/signatures/release.sigstore.json", "p256.pub.pem");
    assert!(!ok && out.contains("extra.npy"), "added entry: {out}");
    s.helper(&["unzip", "model.nnb", "removed"]);
    std::fs::remove_file(s.path("removed/graph.yaml")).unwrap();
    let (ok, out) = s.model_signing_verify("removed", "removed/signatures/release.sigstore.json", "p256.pub.pem");
    assert!(!ok && out.contains("graph.yaml"), "removed entry: {out}");
}

#[test]
fn nnb_rejects_what_model_signing_rejects() {
    let Some(s) = Setup::new() else { return };
    let original = std::fs::read(s.path("model.nnb")).unwrap();
    s.verify("model.nnb", "p256.pub.pem", 1);
    s.sign(&["model.nnb", "--key", &key("p256.pem")]);
    let signed = std::fs::read(s.path("model.nnb")).unwrap();
    // Exactly one entry added; signing again gives the same bytes.
    let entries = s.helper(&["entries", "model.nnb"]);
    assert_eq!(entries.lines().filter(|e| e.starts_with("signatures/")).count(), 1, "{entries}");
    assert_ne!(signed, original);
    s.sign(&["model.nnb", "--key", &key("p256.pem")]);
    assert_eq!(std::fs::read(s.path("model.nnb")).unwrap(), signed);
    let out = s.nnb(&["validate", "model.nnb", "--key", &key("p256.pub.pem")]);
    assert!(out.status.success(), "{}", text(&out));

    let ok = s.verify("model.nnb", "p256.pub.pem", 0);
    assert!(ok.contains("covers all 6 entries"), "{ok}");
    let other = s.verify("model.nnb", "other_p256.pub.pem", 1);
    assert!(other.contains("signed by another key"), "{other}");
    for entry in ENTRIES {
        let out = format!("flip-{}.nnb", entry.replace('/', "-"));
        s.helper(&["flip", "model.nnb", &out, entry]);
        let reason = s.verify(&out, "p256.pub.pem", 1);
        assert!(reason.contains(entry), "{entry} flipped: {reason}");
    }
    let name = entries.lines().find(|e| e.starts_with("signatures/")).unwrap();
    s.helper(&["flip", "model.nnb", "damaged-signature.nnb", name]);
    s.verify("damaged-signature.nnb", "p256.pub.pem", 1);
    for added in ["tensors/extra.npy", "notes.txt"] {
        s.helper(&["add", "model.nnb", "added.nnb", added]);
        let reason = s.verify("added.nnb", "p256.pub.pem", 1);
        assert!(reason.contains(added), "{added} added: {reason}");
    }
    s.helper(&["remove", "model.nnb", "removed.nnb", "graph.yaml"]);
    let reason = s.verify("removed.nnb", "p256.pub.pem", 1);
    assert!(reason.contains("graph.yaml"), "graph.yaml removed: {reason}");
}

#[test]
fn a_detached_signature_verifies_with_model_signing() {
    let Some(s) = Setup::new() else { return };
    let before = std::fs::read(s.path("model.nnb")).unwrap();
    s.sign(&["model.nnb", "--key", &key("p256.pem"), "--sidecar", "model.nnb.sig"]);
    assert_eq!(std::fs::read(s.path("model.nnb")).unwrap(), before, "--sidecar leaves the bundle unchanged");
    let (ok, out) = s.model_signing_verify("model.nnb", "model.nnb.sig", "p256.pub.pem");
    assert!(ok && out.contains("Verification succeeded"), "{out}");
    let verify = |bundle: &str, public: &str| {
        s.nnb(&["verify", bundle, "--key", &key(public), "--signature", "model.nnb.sig"]).status.code()
    };
    assert_eq!(verify("model.nnb", "p256.pub.pem"), Some(0));
    assert_eq!(verify("model.nnb", "other_p256.pub.pem"), Some(1));
    let mut flipped = before;
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    std::fs::write(s.path("flipped.nnb"), flipped).unwrap();
    std::fs::copy(s.path("model.nnb.sig"), s.path("flipped.nnb.sig")).unwrap();
    let (ok, _) = s.model_signing_verify("flipped.nnb", "flipped.nnb.sig", "p256.pub.pem");
    assert!(!ok);
    assert_eq!(verify("flipped.nnb", "p256.pub.pem"), Some(1));
}

#[test]
fn a_model_signing_signature_attaches_and_verifies_with_nnb() {
    let Some(s) = Setup::new() else { return };
    s.helper(&["unzip", "model.nnb", "unzipped"]);
    let out = s.model_signing(&["sign", "key", "unzipped", "--signature", "ms.sig", "--private_key", &key("p256.pem")]);
    assert!(out.status.success(), "{}", text(&out));
    s.sign(&["model.nnb", "--attach", "ms.sig", "--name", "ms"]);
    let stored = s.helper(&["entries", "model.nnb"]);
    assert!(stored.lines().any(|e| e == "signatures/ms.sigstore.json"), "{stored}");
    let ok = s.verify("model.nnb", "p256.pub.pem", 0);
    assert!(ok.contains("signatures/ms.sigstore.json"), "{ok}");
    s.verify("model.nnb", "other_p256.pub.pem", 1);
    // Stored as given: it still verifies with model_signing from inside the bundle.
    s.helper(&["unzip", "model.nnb", "again"]);
    let (ok, out) = s.model_signing_verify("again", "again/signatures/ms.sigstore.json", "p256.pub.pem");
    assert!(ok, "{out}");
    s.helper(&["flip", "model.nnb", "flipped.nnb", "tensors/hidden.bias.npy"]);
    let reason = s.verify("flipped.nnb", "p256.pub.pem", 1);
    assert!(reason.contains("tensors/hidden.bias.npy"), "{reason}");
    // A signature over other files does not attach.
    std::fs::write(s.path("unzipped/notes.txt"), b"notes").unwrap();
    let out =
        s.model_signing(&["sign", "key", "unzipped", "--signature", "more.sig", "--private_key", &key("p256.pem")]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.nnb(&["sign", "model.nnb", "--attach", "more.sig"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("notes.txt"), "{}", text(&out));
}
