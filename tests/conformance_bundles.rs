//! `spec/conformance/`: bundles other implementations can test against, one
//! per rule, with the verdict and error code a reader must give
//! (`cases.json`). This test regenerates them (they must match the committed
//! bytes; `NNB_UPDATE_CONFORMANCE=1` rewrites them) and runs validation on
//! each committed file.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::PathBuf;

use nnbundle::container::npy;
use nnbundle::graph::Graph;
use nnbundle::{BundleWriter, Chunking, Model, Sha256Digest, Tensor, Value};
use zip::write::SimpleFileOptions;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/conformance")
}

fn stored() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
}

/// A zip of the given entries, written as a bundle writer would.
fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, stored().with_alignment(64)).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn key(file: &str) -> String {
    std::fs::read_to_string(dir().join("keys").join(file)).unwrap()
}

/// `bundle` with `signatures` (name to file bytes) stored as its signature entries.
fn with_signatures(bundle: &[u8], signatures: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("signed.nnb");
    let map = signatures.iter().map(|(n, b)| ((*n).to_owned(), b.clone())).collect();
    let bundle = nnbundle::Bundle::from_bytes(bundle.to_vec()).unwrap();
    bundle.archive().save_with_signatures(&path, &map, nnbundle::container::Durability::Unsynced).unwrap();
    std::fs::read(path).unwrap()
}

/// A signature by `spec/conformance/keys/p256.pem` over `bundle`.
fn p256_signature(bundle: &[u8]) -> Vec<u8> {
    let key = nnbundle::signing::SigningKey::from_pem(&key("p256.pem")).unwrap();
    nnbundle::signing::sign_bundle(&nnbundle::Bundle::from_bytes(bundle.to_vec()).unwrap(), &key, "model").unwrap()
}

/// The signature cases (spec section 10): the bundle, the validator's
/// verdict, the rule, and what `nnb verify` with `keys/p256.pub.pem` gives.
fn signature_cases(valid_mlp: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str, &'static str, &'static str)> {
    let signed = with_signatures(valid_mlp, &[("release", p256_signature(valid_mlp))]);
    let mut other = mlp_model().to_writer().unwrap();
    other.set_metadata("note", "another bundle").unwrap();
    let other_signature = p256_signature(&other.to_bytes().unwrap());
    vec![
        (
            "valid_signed.nnb",
            signed,
            "valid",
            "format 1.2: a signature entry (ECDSA P-256, deterministic) covering every other entry",
            "verified",
        ),
        (
            "signature_over_other_content.nnb",
            with_signatures(valid_mlp, &[("release", other_signature)]),
            "valid",
            "a well-formed signature whose statement lists other digests: valid, but it does not verify",
            "signature",
        ),
        (
            "signature_malformed_json.nnb",
            with_signatures(
                valid_mlp,
                &[("broken", b"{\"mediaType\": \"application/vnd.dev.sigstore.bundle.v0.3+json\",".to_vec())],
            ),
            "bad-signature",
            "a signature entry is a Sigstore bundle's JSON",
            "signature",
        ),
        (
            "signature_unknown_entry.nnb",
            zip_of(&[
                ("manifest.yaml", b"format_version: '1.0'\ntensors: {}\n".to_vec()),
                ("signatures/notes.txt", b"hi".to_vec()),
            ]),
            "bad-entry",
            "under signatures/ only <name>.sigstore.json entries",
            "bad-entry",
        ),
    ]
}

/// The sharded cases (section 11): a folder per case, its index `model.nnb`
/// beside its shards, with the validator's verdict and the rule.
/// A case's files: name and bytes.
type Files = Vec<(String, Vec<u8>)>;

fn shard_cases(valid_mlp: &[u8]) -> Vec<(&'static str, Files, &'static str, &'static str)> {
    // The MLP in 16 KiB shards: its four tensors in three shards.
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("model.nnb");
    std::fs::write(&source, valid_mlp).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let bundle = nnbundle::Bundle::open(&source).unwrap();
    nnbundle::container::write_sharded(&bundle, 16 << 10, &out, "model.nnb", nnbundle::container::Durability::Unsynced)
        .unwrap();
    let mut files: Files = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    let shard_names: Vec<String> = files.iter().map(|(n, _)| n.clone()).filter(|n| n != "model.nnb").collect();
    assert!(shard_names.len() >= 2, "{shard_names:?}");
    let index_manifest = nnbundle::Bundle::open(out.join("model.nnb")).unwrap().manifest().to_yaml().unwrap();
    let without = |name: &str| files.iter().filter(|(n, _)| n != name).cloned().collect::<Vec<_>>();
    let truncated = files
        .iter()
        .map(|(n, b)| (n.clone(), if *n == shard_names[0] { b[..b.len() - 1].to_vec() } else { b.clone() }))
        .collect();
    // Another shard's bytes under the first shard's name, cut or padded to its
    // size: the size matches, the bundle is not the one the index names.
    let (first_len, other) = (files.iter().find(|(n, _)| *n == shard_names[0]).unwrap().1.len(), &shard_names[1]);
    let swapped = files
        .iter()
        .map(|(n, b)| {
            if *n == shard_names[0] {
                let mut bytes = files.iter().find(|(m, _)| m == other).unwrap().1.clone();
                bytes.resize(first_len, 0);
                (n.clone(), bytes)
            } else {
                (n.clone(), b.clone())
            }
        })
        .collect();
    let index_only =
        |manifest: String| vec![("model.nnb".to_owned(), zip_of(&[("manifest.yaml", manifest.into_bytes())]))];
    let escaping =
        index_manifest.replacen(&format!("file: {}", shard_names[0]), "file: ../model-00001-of-00003.nnb", 1);
    assert_ne!(escaping, index_manifest);
    vec![
        ("shards_valid", files.clone(), "valid", "an index and its shards open like the bundle they came from"),
        ("shards_missing", without(&shard_names[0]), "bad-shard", "every shard the index lists is in its folder"),
        ("shards_truncated", truncated, "bad-shard", "a shard has the size the index gives"),
        ("shards_swapped", swapped, "bad-shard", "a shard has the bundle digest the index gives"),
        (
            "shards_path_escape",
            index_only(escaping),
            "invalid-manifest",
            "a shard file is a name in the index's folder, never a path",
        ),
    ]
}

fn mlp_graph() -> Graph {
    Graph::from_yaml(include_bytes!("../spec/examples/mlp.yaml")).unwrap()
}

fn mlp_model() -> Model {
    Model::initialized(mlp_graph(), BTreeMap::new(), 7).unwrap()
}

/// The MLP's output for `x [rows, 20]`, `relu(x W1ᵀ + b1) W2ᵀ + b2`, in float64.
fn mlp_reference(model: &Model, x: &Tensor) -> Vec<f32> {
    let weights = model.state_dict();
    let get = |name: &str| weights[name].to_vec::<f32>().unwrap().into_iter().map(f64::from).collect::<Vec<f64>>();
    let (w1, b1, w2, b2) = (get("hidden.weight"), get("hidden.bias"), get("output.weight"), get("output.bias"));
    let x: Vec<f64> = x.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect();
    let layer = |x: &[f64], w: &[f64], b: &[f64], relu: bool| -> Vec<f64> {
        let (n_in, n_out) = (w.len() / b.len(), b.len());
        x.chunks_exact(n_in)
            .flat_map(|row| {
                (0..n_out).map(move |o| {
                    let v = b[o] + row.iter().zip(&w[o * n_in..(o + 1) * n_in]).map(|(a, b)| a * b).sum::<f64>();
                    if relu { v.max(0.0) } else { v }
                })
            })
            .collect()
    };
    layer(&layer(&x, &w1, &b1, true), &w2, &b2, false).into_iter().map(|v| v as f32).collect()
}

/// A bundle with a graph document and tensors, its manifest written by hand (no checks).
fn raw_bundle(graph_yaml: &str, tensors: &[(&str, Tensor)]) -> Vec<u8> {
    let digest = |b: &[u8]| Sha256Digest::of(b).to_hex();
    let mut manifest = String::from("format_version: '1.0'\n");
    manifest.push_str(&format!(
        "graph:\n  opset: 1\n  sha256: {}\n  architecture_digest: {}\n",
        digest(graph_yaml.as_bytes()),
        digest(b"not checked before the graph parses")
    ));
    manifest.push_str("tensors:\n");
    for (name, t) in tensors {
        manifest.push_str(&format!(
            "  {name}:\n    dtype: {}\n    shape: {:?}\n    sha256: {}\n    group: params\n",
            t.dtype(),
            t.shape(),
            digest(t.as_bytes())
        ));
    }
    let mut entries = vec![
        ("manifest.yaml".to_string(), manifest.into_bytes()),
        ("graph.yaml".to_string(), graph_yaml.as_bytes().to_vec()),
    ];
    for (name, t) in tensors {
        entries.push((format!("tensors/{name}.npy"), npy::to_npy(t)));
    }
    let refs: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    zip_of(&refs)
}

/// Replaces every occurrence of `from` (local header and central directory alike).
fn patch(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut found = false;
    while let Some(at) = bytes.windows(from.len()).position(|w| w == from) {
        bytes[at..at + from.len()].copy_from_slice(to);
        found = true;
    }
    assert!(found, "pattern present");
    bytes
}

/// The offset of the end-of-central-directory record (no archive comment).
fn end_record(bytes: &[u8]) -> usize {
    bytes.len() - 22
}

fn le32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// `bytes` with `n` zero bytes in front and every offset moved to match, as
/// `zip -A` leaves a self-extracting archive: a zip reader sees no prefix.
fn with_prefix(bytes: &[u8], n: u32) -> Vec<u8> {
    let mut out = [vec![0; n as usize], bytes.to_vec()].concat();
    let eocd = end_record(&out);
    let cd = le32_at(&out, eocd + 16);
    out[eocd + 16..eocd + 20].copy_from_slice(&(cd + n).to_le_bytes());
    let mut at = (cd + n) as usize;
    while out[at..at + 4] == *b"PK\x01\x02" {
        let offset = le32_at(&out, at + 42) + n;
        out[at + 42..at + 46].copy_from_slice(&offset.to_le_bytes());
        let lens: usize =
            [28, 30, 32].iter().map(|&f| usize::from(u16::from_le_bytes([out[at + f], out[at + f + 1]]))).sum();
        at += 46 + lens;
    }
    out
}

/// `bytes` with the first central-directory record's Unix mode set to `mode`.
fn with_first_mode(mut bytes: Vec<u8>, mode: u32) -> Vec<u8> {
    let cd = le32_at(&bytes, end_record(&bytes) + 16) as usize;
    bytes[cd + 38..cd + 42].copy_from_slice(&(mode << 16).to_le_bytes());
    bytes
}

/// `bytes` with the end record's central-directory size changed by `delta`.
fn with_directory_size_off(mut bytes: Vec<u8>, delta: i64) -> Vec<u8> {
    let at = end_record(&bytes) + 12;
    let size = (i64::from(le32_at(&bytes, at)) + delta) as u32;
    bytes[at..at + 4].copy_from_slice(&size.to_le_bytes());
    bytes
}

/// A bundle holding the bool tensor `flags` whose stored bytes are `data`,
/// its digest correct.
fn bool_bundle(data: &[u8]) -> Vec<u8> {
    let mut npy = npy::to_npy(&Tensor::from_vec(vec![data.len()], vec![false; data.len()]).unwrap());
    let start = npy.len() - data.len();
    npy[start..].copy_from_slice(data);
    let manifest = format!(
        "format_version: '1.0'\ntensors:\n  flags:\n    dtype: bool\n    shape: [{}]\n    sha256: {}\n    group: params\n",
        data.len(),
        Sha256Digest::of(data).to_hex()
    );
    zip_of(&[("manifest.yaml", manifest.into_bytes()), ("tensors/flags.npy", npy)])
}

/// Tensors whose names, and metadata whose keys and strings, need quotes and
/// escapes in canonical YAML, with metadata of every kind.
fn names_and_metadata() -> Vec<u8> {
    let mut w = BundleWriter::new();
    for (i, name) in ["0", "x y", "вес", "1.0", "null", "it's \"quoted\"", "#hash: colon"].into_iter().enumerate() {
        w.add_tensor(name, Tensor::from_vec(vec![2], vec![i as f32, -0.5]).unwrap()).unwrap();
    }
    w.add_alias("true", "0").unwrap();
    w.set_metadata("int", -9_223_372_036_854_775_808i64).unwrap();
    w.set_metadata("float", 1e16).unwrap();
    w.set_metadata("tiny", 5e-324).unwrap();
    w.set_metadata("flag", false).unwrap();
    w.set_metadata("text", "line one\nline two \u{7f}\u{2028}").unwrap();
    w.set_metadata("version", "2.1.0").unwrap();
    w.set_metadata("octal-looking", "007").unwrap();
    w.set_metadata("path", "C:\\models\\x").unwrap();
    w.set_metadata("ключ", "значение").unwrap();
    let nested =
        serde_json::json!({"list": [1, 2.5, "x", [], {}], "map": {"yes": "no", "a key: with colon": "#not a comment"}});
    w.set_metadata("nested", serde_json::from_value::<nnbundle::MetaValue>(nested).unwrap()).unwrap();
    w.to_bytes().unwrap()
}

/// Every case: file name, bytes, expected verdict (`valid` or an error code), and the rule.
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    let manifest_only = |m: &str| zip_of(&[("manifest.yaml", m.as_bytes().to_vec())]);
    let empty = "format_version: '1.0'\ntensors: {}\n";
    let model = mlp_model();
    let valid_mlp = model.to_writer().unwrap().to_bytes().unwrap();
    // Sample outputs come from a float64 reference, not from the runtime, so
    // these bundles do not change with the kernels' rounding (FMA or not).
    let x = Value::F32(ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 20]), |i| (i[0] * 20 + i[1]) as f32 / 40.0));
    let y = mlp_reference(&model, &x.to_tensor());
    let sample = |shift: f32| {
        let mut w = model.to_writer().unwrap();
        let out = y.iter().map(|v| v + shift).collect::<Vec<f32>>();
        let outputs = BTreeMap::from([("output".to_string(), Tensor::from_vec(vec![2, 10], out).unwrap())]);
        w.add_sample(BTreeMap::from([("X".to_string(), x.to_tensor())]), outputs, 1e-5, 1e-6).unwrap();
        w.to_bytes().unwrap()
    };
    let valid_sample = sample(0.0);
    let mut tensors = BundleWriter::new();
    tensors.add_tensor("x", Tensor::from_vec(vec![4], vec![0i64, 1, 2, 3]).unwrap()).unwrap();
    tensors.add_tensor("y", Tensor::from_vec(vec![2, 2], vec![0.5f32; 4]).unwrap()).unwrap();
    tensors.add_tensor("flag", Tensor::scalar(true)).unwrap();
    tensors.add_alias("x_again", "x").unwrap();
    tensors.set_metadata("step", 1000i64).unwrap();
    let valid_tensors = tensors.to_bytes().unwrap();
    let zeros = |shape: &[usize]| Tensor::from_vec(shape.to_vec(), vec![0f32; shape.iter().product()]).unwrap();
    let mlp_weights = |skip: &str, bad: Option<(&'static str, Tensor)>| -> Vec<(&'static str, Tensor)> {
        let mut w: Vec<(&'static str, Tensor)> = [
            ("hidden.weight", zeros(&[256, 20])),
            ("hidden.bias", zeros(&[256])),
            ("output.weight", zeros(&[10, 256])),
            ("output.bias", zeros(&[10])),
        ]
        .into_iter()
        .filter(|(n, _)| *n != skip)
        .collect();
        if let Some((n, t)) = bad {
            w.retain(|(m, _)| *m != n);
            w.push((n, t));
        }
        w
    };
    let mlp_yaml = mlp_graph().to_yaml().unwrap();
    // A sample whose stored output is off by 0.01 everywhere.
    let sample_mismatch = sample(0.01);
    // Format 1.1: 1.25 MiB in 1 MiB chunks (the second one shorter), ending in a marker to patch.
    let mut ramp: Vec<u8> = (0..5 << 18).map(|i: u32| (i % 251) as u8).collect();
    let marker_at = ramp.len() - 8;
    ramp[marker_at..].copy_from_slice(b"ENDCHUNK");
    let chunked_tensor = Tensor::from_vec(vec![ramp.len()], ramp).unwrap();
    let mut chunked = BundleWriter::new();
    chunked.set_chunking(Chunking { from_bytes: 1 << 20, chunk_bytes: 1 << 20, with_sha256: true });
    chunked.add_tensor("weight", chunked_tensor.clone()).unwrap();
    let valid_chunked = chunked.to_bytes().unwrap();
    let chunked_manifest = chunked.manifest().unwrap().to_yaml().unwrap();
    // Format 1.2: the same tensor with its chunk digest alone.
    let mut chunks_only = BundleWriter::new();
    chunks_only.set_chunking(Chunking { from_bytes: 1 << 20, chunk_bytes: 1 << 20, with_sha256: false });
    chunks_only.add_tensor("weight", chunked_tensor.clone()).unwrap();
    let valid_chunks_only = chunks_only.to_bytes().unwrap();
    let chunks_only_manifest = chunks_only.manifest().unwrap().to_yaml().unwrap();
    let with_manifest = |manifest: String| {
        zip_of(&[("manifest.yaml", manifest.into_bytes()), ("tensors/weight.npy", npy::to_npy(&chunked_tensor))])
    };
    let chunks_only_in_1_1 =
        with_manifest(chunks_only_manifest.replace("format_version: \"1.2\"", "format_version: \"1.1\""));
    let no_digest = {
        // The record without its `chunks` block (the key line and the lines indented below it).
        let mut lines = Vec::new();
        let mut skipping = None;
        for line in chunks_only_manifest.lines() {
            let indent = line.len() - line.trim_start().len();
            match skipping {
                Some(level) if indent > level => continue,
                _ => skipping = None,
            }
            if line.trim_start().starts_with("chunks:") {
                skipping = Some(indent);
                continue;
            }
            lines.push(line);
        }
        assert!(lines.len() < chunks_only_manifest.lines().count(), "{chunks_only_manifest}");
        with_manifest(lines.join("\n") + "\n")
    };
    let chunks_in_1_0 = zip_of(&[
        ("manifest.yaml", chunked_manifest.replace("format_version: \"1.1\"", "format_version: \"1.0\"").into_bytes()),
        ("tensors/weight.npy", npy::to_npy(&chunked_tensor)),
    ]);

    vec![
        (
            "valid_tensors_only.nnb",
            valid_tensors.clone(),
            "valid",
            "tensors of several dtypes, an alias and metadata, no graph",
        ),
        ("valid_mlp.nnb", valid_mlp.clone(), "valid", "the textbook MLP: graph and weights"),
        (
            "valid_mlp_with_sample.nnb",
            valid_sample.clone(),
            "valid",
            "the MLP with a stored sample that re-runs within tolerance",
        ),
        ("not_a_zip.nnb", b"this is not a zip archive".to_vec(), "not-a-zip", "a bundle is a zip archive"),
        (
            "truncated.nnb",
            valid_mlp[..valid_mlp.len() / 2].to_vec(),
            "not-a-zip",
            "the central directory must be present",
        ),
        (
            "missing_manifest.nnb",
            zip_of(&[("graph.yaml", b"opset: 1\n".to_vec())]),
            "missing-entry",
            "manifest.yaml is required",
        ),
        (
            "unexpected_entry.nnb",
            zip_of(&[("manifest.yaml", empty.into()), ("notes.txt", b"hi".to_vec())]),
            "bad-entry",
            "only manifest.yaml, graph.yaml, tensors/<name>.npy and signatures/<name>.sigstore.json",
        ),
        (
            "path_traversal.nnb",
            zip_of(&[("manifest.yaml", empty.into()), ("../evil.npy", b"x".to_vec())]),
            "bad-entry",
            "no `..` in entry names",
        ),
        (
            "absolute_path.nnb",
            zip_of(&[("manifest.yaml", empty.into()), ("/etc/evil", b"x".to_vec())]),
            "bad-entry",
            "no absolute entry names",
        ),
        (
            "backslash.nnb",
            zip_of(&[("manifest.yaml", empty.into()), ("tensors\\x.npy", b"x".to_vec())]),
            "bad-entry",
            "no backslashes in entry names",
        ),
        (
            "duplicate_entry.nnb",
            patch(
                zip_of(&[("manifest.yaml", empty.into()), ("manifesX.yaml", empty.into())]),
                b"manifesX",
                b"manifest",
            ),
            "bad-entry",
            "no duplicate entry names",
        ),
        (
            "compressed_entry.nnb",
            {
                let b = manifest_only(empty);
                let cd = b.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
                let mut b = b;
                b[cd + 10] = 8;
                b
            },
            "bad-entry",
            "every entry is stored (no compression, so no zip bombs)",
        ),
        (
            "encrypted_entry.nnb",
            {
                let b = manifest_only(empty);
                let cd = b.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
                let mut b = b;
                b[cd + 8] |= 1;
                b
            },
            "bad-entry",
            "no encrypted entries",
        ),
        (
            "manifest_crc.nnb",
            patch(valid_tensors.clone(), b"step: 1000", b"step: 9000"),
            "bad-entry",
            "the manifest's CRC-32 is checked",
        ),
        (
            "hash_mismatch.nnb",
            patch(valid_tensors.clone(), &[0, 0, 0, 63, 0, 0, 0, 63], &[0, 0, 0, 63, 0, 0, 0, 64]),
            "hash-mismatch",
            "each tensor's SHA-256 is verified",
        ),
        (
            "npy_shape_mismatch.nnb",
            patch(valid_tensors.clone(), b"'shape': (2, 2)", b"'shape': (4, 1)"),
            "bad-tensor-entry",
            "the .npy header agrees with the manifest",
        ),
        (
            "newer_major_version.nnb",
            manifest_only("format_version: '2.0'\ntensors: {}\n"),
            "unsupported-version",
            "a newer major version is refused with an upgrade hint",
        ),
        (
            "unknown_manifest_field.nnb",
            manifest_only("format_version: '1.0'\ntensors: {}\nexecute: rm -rf /\n"),
            "invalid-manifest",
            "unknown manifest fields are errors",
        ),
        (
            "shape_overflow.nnb",
            manifest_only(
                "format_version: '1.0'\ntensors:\n  x: {dtype: f32, shape: [4294967296, 4294967296], sha256: '0000000000000000000000000000000000000000000000000000000000000000'}\n",
            ),
            "invalid-manifest",
            "element counts are overflow-checked",
        ),
        (
            "rank_too_high.nnb",
            manifest_only(
                "format_version: '1.0'\ntensors:\n  x: {dtype: f32, shape: [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1], sha256: '0000000000000000000000000000000000000000000000000000000000000000'}\n",
            ),
            "invalid-manifest",
            "rank is at most MAX_RANK",
        ),
        (
            "alias_to_missing.nnb",
            manifest_only("format_version: '1.0'\ntensors: {}\naliases: {a: b}\n"),
            "invalid-manifest",
            "an alias names a stored tensor",
        ),
        (
            "duplicate_yaml_key.nnb",
            manifest_only("format_version: '1.0'\ntensors: {}\ntensors: {}\n"),
            "invalid-manifest",
            "no duplicate YAML keys",
        ),
        (
            "yaml_alias_bomb.nnb",
            manifest_only(
                "format_version: '1.0'\ntensors: {}\nmetadata:\n  a: &a [x,x,x,x,x,x,x,x,x,x]\n  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n  g: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
            ),
            "invalid-manifest",
            "YAML alias expansion is bounded",
        ),
        (
            "graph_unknown_op.nnb",
            raw_bundle(&mlp_yaml.replace("op: ReLU", "op: PythonCall"), &mlp_weights("", None)),
            "unknown-op",
            "ops come from the closed vocabulary",
        ),
        (
            "graph_cycle.nnb",
            raw_bundle(&mlp_yaml.replace("- X\n", "- output\n"), &mlp_weights("", None)),
            "cycle",
            "the graph is acyclic",
        ),
        (
            "weight_shape_mismatch.nnb",
            raw_bundle(&mlp_yaml, &mlp_weights("", Some(("hidden.weight", zeros(&[256, 21]))))),
            "parameter-shape",
            "weights have the shapes the attributes imply",
        ),
        (
            "missing_parameter.nnb",
            raw_bundle(&mlp_yaml, &mlp_weights("output.bias", None)),
            "missing-parameter",
            "every parameter is present",
        ),
        (
            "unused_weight.nnb",
            raw_bundle(&mlp_yaml, &[mlp_weights("", None), vec![("stray", zeros(&[3]))]].concat()),
            "unused-weight",
            "the graph owns the params group",
        ),
        ("sample_mismatch.nnb", sample_mismatch, "sample-mismatch", "stored samples re-run within their tolerance"),
        (
            "valid_chunk_digest.nnb",
            valid_chunked.clone(),
            "valid",
            "format 1.1: a tensor with a chunk digest (1 MiB chunks, the last one shorter)",
        ),
        (
            "chunk_digest_mismatch.nnb",
            patch(valid_chunked, b"ENDCHUNK", b"ENDCHUNX"),
            "hash-mismatch",
            "the chunk digest is verified (a byte changed in the last chunk)",
        ),
        ("chunks_in_format_1_0.nnb", chunks_in_1_0, "invalid-manifest", "chunk digests need format_version 1.1"),
        (
            "valid_chunks_only.nnb",
            valid_chunks_only.clone(),
            "valid",
            "format 1.2: a tensor whose one digest is its chunk digest (no sha256)",
        ),
        (
            "chunks_only_mismatch.nnb",
            patch(valid_chunks_only, b"ENDCHUNK", b"ENDCHUNX"),
            "hash-mismatch",
            "a chunk digest that is a tensor's only digest is verified",
        ),
        (
            "chunks_only_in_format_1_1.nnb",
            chunks_only_in_1_1,
            "invalid-manifest",
            "a record without sha256 needs format_version 1.2",
        ),
        ("tensor_without_digest.nnb", no_digest, "invalid-manifest", "a tensor record has sha256, chunks or both"),
        (
            "valid_names_and_metadata.nnb",
            names_and_metadata(),
            "valid",
            "names and metadata strings that canonical YAML must quote and escape",
        ),
        (
            "yaml_refused_scalar.nnb",
            manifest_only("format_version: '1.0'\ntensors: {}\nmetadata:\n  mask: 0x1F\n"),
            "invalid-manifest",
            "a plain scalar that some YAML reader takes for a number and others for a string is refused",
        ),
        (
            "yaml_tag.nnb",
            manifest_only("format_version: '1.0'\ntensors: {}\nmetadata:\n  n: !!int 3\n"),
            "invalid-manifest",
            "YAML tags are refused",
        ),
        (
            "graph_opset_mismatch.nnb",
            raw_bundle(&mlp_yaml.replace("opset: 1", "opset: 2"), &mlp_weights("", None)),
            "bad-entry",
            "graph.yaml declares the opset the manifest's graph record gives",
        ),
        (
            "prefix_bytes.nnb",
            with_prefix(&valid_mlp, 64),
            "not-a-zip",
            "the archive starts at offset 0, even when the directory's offsets account for a prefix",
        ),
        (
            "not_regular_file.nnb",
            with_first_mode(valid_tensors.clone(), 0o010644),
            "bad-entry",
            "every entry is a regular file (here a Unix mode that says FIFO)",
        ),
        (
            "directory_size_mismatch.nnb",
            with_directory_size_off(valid_mlp.clone(), -1),
            "not-a-zip",
            "the end record's central-directory size is the size of the records",
        ),
        (
            "bool_out_of_range.nnb",
            bool_bundle(&[1, 0, 2]),
            "bad-tensor-entry",
            "a bool tensor holds only the bytes 0x00 and 0x01 (its digest is right)",
        ),
    ]
}

/// The section of spec/FORMAT.md that states each case's rule.
fn section(file: &str) -> &'static str {
    match file {
        "valid_tensors_only.nnb" | "valid_mlp.nnb" => "2",
        "valid_names_and_metadata.nnb" => "3.8",
        "yaml_refused_scalar.nnb" | "yaml_tag.nnb" => "3.7",
        "valid_mlp_with_sample.nnb" | "sample_mismatch.nnb" => "3.6",
        "not_a_zip.nnb" | "truncated.nnb" | "directory_size_mismatch.nnb" => "2.2 rule 10",
        "missing_manifest.nnb" => "2.1",
        "unexpected_entry.nnb" | "path_traversal.nnb" | "absolute_path.nnb" | "backslash.nnb" => "2.2 rule 1",
        "duplicate_entry.nnb" => "2.2 rule 2",
        "compressed_entry.nnb" => "2.2 rule 3",
        "encrypted_entry.nnb" => "2.2 rule 4",
        "not_regular_file.nnb" => "2.2 rule 5",
        "prefix_bytes.nnb" => "2.2 rule 7",
        "manifest_crc.nnb" => "2.2",
        "hash_mismatch.nnb" => "5.1",
        "bool_out_of_range.nnb" => "4.1, 5.1",
        "npy_shape_mismatch.nnb" => "4.2",
        "newer_major_version.nnb" => "1",
        "unknown_manifest_field.nnb" | "duplicate_yaml_key.nnb" | "yaml_alias_bomb.nnb" => "3",
        "shape_overflow.nnb" | "rank_too_high.nnb" => "3.2",
        "alias_to_missing.nnb" => "3.4",
        "graph_opset_mismatch.nnb" => "3.1.1",
        "graph_unknown_op.nnb" | "graph_cycle.nnb" => "9.5",
        "weight_shape_mismatch.nnb" | "missing_parameter.nnb" | "unused_weight.nnb" => "9.7",
        "valid_chunk_digest.nnb" | "chunk_digest_mismatch.nnb" => "5.1.1",
        "chunks_in_format_1_0.nnb" | "chunks_only_in_format_1_1.nnb" => "1",
        "valid_chunks_only.nnb" | "chunks_only_mismatch.nnb" => "5.1.1",
        "tensor_without_digest.nnb" => "3.2",
        "shards_valid/model.nnb" => "11",
        "shards_missing/model.nnb" | "shards_truncated/model.nnb" | "shards_swapped/model.nnb" => "11.3",
        "shards_path_escape/model.nnb" => "11.2",
        "valid_signed.nnb" | "signature_over_other_content.nnb" => "10",
        "signature_malformed_json.nnb" => "10.3",
        "signature_unknown_entry.nnb" => "2.1, 10.1",
        other => panic!("{other}: give the case the section that states its rule"),
    }
}

/// Validates the bundle at `path` and checks the verdict: `valid`, or an error of that code.
fn assert_verdict(file: &str, path: &std::path::Path, verdict: &str) {
    let report = nnbundle::runtime::validate(path, Default::default());
    match verdict {
        "valid" => assert!(report.valid, "{file}: {:?}", report.problems),
        code => assert!(
            !report.valid && report.problems.iter().any(|p| p.code == code),
            "{file}: expected error `{code}`, got {:?}",
            report.problems.iter().map(|p| format!("{}: {}", p.code, p.message)).collect::<Vec<_>>()
        ),
    }
}

#[test]
fn conformance_bundles_are_committed_and_give_their_verdicts() {
    let update = std::env::var_os("NNB_UPDATE_CONFORMANCE").is_some();
    let mut listing = Vec::new();
    let public = nnbundle::signing::VerifyingKey::from_pem(&key("p256.pub.pem")).unwrap();
    let valid_mlp = mlp_model().to_writer().unwrap().to_bytes().unwrap();
    let signed = signature_cases(&valid_mlp).into_iter().map(|(f, b, v, r, verify)| (f, b, v, r, Some(verify)));
    for (file, bytes, verdict, rule, verify) in cases().into_iter().map(|(f, b, v, r)| (f, b, v, r, None)).chain(signed)
    {
        let path = dir().join(file);
        if update {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{file} differs from what the generator makes; run NNB_UPDATE_CONFORMANCE=1 cargo test --test conformance_bundles"
            );
        }
        assert_verdict(file, &path, verdict);
        let mut case = serde_json::json!({"file": file, "verdict": verdict, "section": section(file), "rule": rule});
        if let Some(expected) = verify {
            // What `nnb verify --key keys/p256.pub.pem` says: `verified`, or the code of its failure.
            let got = match nnbundle::container::Archive::open(&path) {
                Err(e) => e.code(),
                Ok(archive) => match nnbundle::signing::verify_bundle(&archive, &public) {
                    Ok(_) => "verified",
                    Err(_) => "signature",
                },
            };
            assert_eq!(got, expected, "{file}: nnb verify");
            case["verify"] = serde_json::json!({"key": "keys/p256.pub.pem", "verdict": expected});
        }
        listing.push(case);
    }
    for (case, files, verdict, rule) in shard_cases(&valid_mlp) {
        let folder = dir().join(case);
        if update {
            let _ = std::fs::remove_dir_all(&folder);
            std::fs::create_dir_all(&folder).unwrap();
            for (name, bytes) in &files {
                std::fs::write(folder.join(name), bytes).unwrap();
            }
        }
        let mut committed: Vec<String> =
            std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        committed.sort();
        assert_eq!(committed, files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), "{case}: stale files");
        for (name, bytes) in &files {
            assert!(std::fs::read(folder.join(name)).unwrap() == *bytes, "{case}/{name} differs from the generator's");
        }
        let file = format!("{case}/model.nnb");
        assert_verdict(&file, &folder.join("model.nnb"), verdict);
        let section = section(&file);
        listing.push(serde_json::json!({"file": file, "verdict": verdict, "section": section, "rule": rule}));
    }
    let json = serde_json::to_string_pretty(&listing).unwrap() + "\n";
    let cases_path = dir().join("cases.json");
    if update {
        std::fs::write(&cases_path, &json).unwrap();
    } else {
        assert_eq!(std::fs::read_to_string(&cases_path).unwrap_or_default(), json, "cases.json is stale");
    }
}
