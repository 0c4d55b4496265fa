//! Bundles read over HTTP and S3, against servers on loopback started here
//! (never the internet):
//!
//! - `tests/python/range_server.py`, a static server with byte ranges, ETags
//!   and a request counter, for the request counts the reader promises (open:
//!   at most 2 requests, no HEAD; a tensor: 1), `inspect`, `validate`
//!   (every byte read, damage in transit named), `run` (bit-identical to the
//!   local run), shards found relative to the index's URL, and an object
//!   replaced while open;
//! - moto's S3 server (PyPI `moto[server]`, in the test venv) for `s3://`
//!   URLs with credentials and endpoint from the environment.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use assert_cmd::Command;
use nnbundle_container::{Bundle, BundleWriter};
use nnbundle_format::Tensor;

/// A server process on loopback, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// `range_server.py` serving `dir`; `None` (skip) without the test venv outside CI.
    fn http(dir: &Path) -> Option<Server> {
        let python = support::python()?;
        let mut child = std::process::Command::new(python)
            .arg(support::script("range_server.py"))
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("port ").expect("the server prints its port").parse().unwrap();
        Some(Server { child, port })
    }

    fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }

    /// A GET to the server's control paths, returning the body.
    fn control(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
    }

    /// Requests (GET and HEAD) and body bytes served since the last call.
    fn take_stats(&self) -> Stats {
        let stats: serde_json::Value = serde_json::from_str(&self.control("/__stats")).unwrap();
        self.control("/__reset");
        Stats {
            requests: stats["requests"].as_u64().unwrap(),
            heads: stats["heads"].as_u64().unwrap(),
            bytes: stats["bytes"].as_u64().unwrap(),
            log: stats["log"].to_string(),
            most_at_once: stats["most_at_once"].as_u64().unwrap(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Stats {
    requests: u64,
    heads: u64,
    bytes: u64,
    log: String,
    most_at_once: u64,
}

fn nnb(dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("nnb").unwrap().current_dir(dir).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = nnb(dir, args);
    assert!(out.status.success(), "nnb {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `big.nnb`: 12 tensors of 2 MiB (chunk digests) and 4 small ones (SHA-256), 24 MiB in all.
fn write_big(dir: &Path) -> PathBuf {
    let mut w = BundleWriter::new();
    for i in 0..12u32 {
        let values: Vec<f32> = (0..(1 << 19)).map(|j| (j as f32 * 0.001 + i as f32).sin()).collect();
        w.add_tensor(format!("layer{i:02}.weight"), Tensor::from_vec(vec![512, 1024], values).unwrap()).unwrap();
    }
    for i in 0..4i64 {
        w.add_tensor(format!("small{i}"), Tensor::from_vec(vec![3], vec![i, i + 1, i + 2]).unwrap()).unwrap();
    }
    let path = dir.join("big.nnb");
    w.save(&path).unwrap();
    path
}

/// The conformance MLP with a sample, and its input `x.npy` (2 x 20).
fn write_mlp(dir: &Path) {
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/conformance/valid_mlp_with_sample.nnb");
    std::fs::copy(mlp, dir.join("model.nnb")).unwrap();
    let x = Tensor::from_vec(vec![2, 20], (0..40).map(|i| i as f32 / 7.0).collect()).unwrap();
    std::fs::write(dir.join("x.npy"), nnbundle_container::npy::to_npy(&x)).unwrap();
}

#[test]
fn opening_costs_two_requests_and_a_tensor_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_big(dir.path());
    let Some(server) = Server::http(dir.path()) else { return };
    let size = std::fs::metadata(&path).unwrap().len();
    let url = server.url("big.nnb");

    let bundle = Bundle::open_url(&url).unwrap();
    let opened = server.take_stats();
    assert!(opened.requests <= 2 && opened.heads == 0, "open: {opened:?}");
    assert!(opened.bytes * 20 <= size, "open read {} of {size} bytes", opened.bytes);

    let local = Bundle::open(&path).unwrap();
    // A tensor outside the first request's tail costs one request; the small
    // ones at the end came with the tail.
    for (name, requests) in [("layer05.weight", 1), ("small2", 0)] {
        let remote = bundle.tensor(name).unwrap();
        assert_eq!(remote.as_bytes(), local.tensor(name).unwrap().as_bytes(), "{name}");
        let stats = server.take_stats();
        assert_eq!(stats.requests, requests, "reading `{name}`: {stats:?}");
    }
    // Many tensors: neighbours merged into few requests, every byte read once.
    let names: Vec<&str> = local.tensor_infos().iter().map(|i| i.name).collect();
    let all = bundle.prefetch(&names).unwrap();
    assert_eq!(all.len(), 16);
    let stats = server.take_stats();
    assert!(stats.requests <= 4, "prefetching 16 tensors: {stats:?}");
    assert!(stats.bytes < size + (1 << 20), "prefetch read {} bytes of a {size}-byte bundle", stats.bytes);
}

#[test]
fn a_directory_larger_than_the_tail_costs_one_more_request() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 entries: a central directory of about 1.3 MiB, more than the tail.
    let mut w = BundleWriter::new();
    for i in 0..20_000i32 {
        w.add_tensor(format!("t{i:05}"), Tensor::scalar(i)).unwrap();
    }
    let path = dir.path().join("many.nnb");
    w.save(&path).unwrap();
    let Some(server) = Server::http(dir.path()) else { return };
    let bundle = Bundle::open_url(&server.url("many.nnb")).unwrap();
    let stats = server.take_stats();
    assert_eq!(stats.requests, 3, "tail, the rest of the directory, the manifest: {stats:?}");
    assert_eq!(bundle.tensor("t00007").unwrap().to_vec::<i32>().unwrap(), [7]);
    assert_eq!(server.take_stats().requests, 1);
}

#[test]
fn inspect_validate_and_damage_in_transit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = write_big(d);
    let Some(server) = Server::http(d) else { return };
    let size = std::fs::metadata(&path).unwrap().len();
    let url = server.url("big.nnb");

    // inspect: the same report as for the local file, from at most 2 requests and 5% of the bytes.
    let remote: serde_json::Value = serde_json::from_str(&ok(d, &["inspect", &url, "--json"])).unwrap();
    let stats = server.take_stats();
    assert!(stats.requests <= 2 && stats.heads == 0, "inspect: {stats:?}");
    assert!(stats.bytes * 20 <= size, "inspect read {} of {size} bytes", stats.bytes);
    let local: serde_json::Value = serde_json::from_str(&ok(d, &["inspect", "big.nnb", "--json"])).unwrap();
    assert_eq!(remote["tensors"], local["tensors"]);
    assert_eq!(remote["bundle_digest"], local["bundle_digest"]);

    // validate reads every byte.
    assert!(ok(d, &["validate", &url]).contains("valid (0 errors"));
    let stats = server.take_stats();
    assert!(stats.bytes >= size, "validate read {} of {size} bytes", stats.bytes);

    // A byte flipped in transit inside one tensor's data: exit 1, naming it.
    let bundle = Bundle::open(&path).unwrap();
    let victim = "layer07.weight";
    let entry = bundle.archive().read_entry(&format!("tensors/{victim}.npy")).unwrap().len();
    let offset = locate_entry(&std::fs::read(&path).unwrap(), victim) + entry / 2;
    server.control(&format!("/__corrupt?file=big.nnb&offset={offset}"));
    let out = nnb(d, &["validate", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(victim), "{}", text(&out));
    let out = nnb(d, &["validate", &url, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "hash-mismatch");

    // A local header damaged in transit (checked when the tensor is read, not at open): named too.
    let entry = b"tensors/layer03.weight.npy";
    let name_at = std::fs::read(&path).unwrap().windows(entry.len()).position(|w| w == entry).unwrap() + 9;
    server.control(&format!("/__corrupt?file=big.nnb&offset={name_at}"));
    let out = nnb(d, &["validate", &url, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problem = &report["problems"][0];
    assert_eq!(problem["code"], "bad-entry", "{report}");
    assert_eq!(problem["location"], "tensors/layer03.weight.npy", "{report}");
    server.control("/__corrupt");
}

/// Where the data of tensor `name`'s entry starts in the bundle's bytes
/// (after its local header), found by the entry name in the local header.
fn locate_entry(bytes: &[u8], name: &str) -> usize {
    let entry = format!("tensors/{name}.npy");
    let at = bytes.windows(entry.len()).position(|w| w == entry.as_bytes()).unwrap();
    let header = at - 30;
    assert_eq!(&bytes[header..header + 4], b"PK\x03\x04");
    let extra = u16::from_le_bytes([bytes[header + 28], bytes[header + 29]]) as usize;
    at + entry.len() + extra
}

#[test]
fn run_over_http_is_bit_identical_and_small_bundles_take_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_mlp(d);
    let Some(server) = Server::http(d) else { return };
    let url = server.url("model.nnb");
    ok(d, &["inspect", &url]);
    let stats = server.take_stats();
    assert_eq!(stats.requests, 1, "a bundle under 1 MiB is read whole by the first request: {stats:?}");

    ok(d, &["run", "model.nnb", "--input", "X=x.npy", "-o", "local"]);
    server.take_stats();
    ok(d, &["run", &url, "--input", "X=x.npy", "-o", "remote"]);
    let stats = server.take_stats();
    assert_eq!(stats.requests, 1, "run: the weights came with the first request: {stats:?}");
    assert_eq!(std::fs::read(d.join("local/output.npy")).unwrap(), std::fs::read(d.join("remote/output.npy")).unwrap());
    let out = ok(d, &["validate", &url]);
    assert!(out.contains("valid (0 errors") && out.contains("sample"), "{out}");
    ok(d, &["extract", &url, "--until", "hidden", "-o", "part.nnb"]);
    assert!(Bundle::open(d.join("part.nnb")).unwrap().manifest().tensors.len() >= 2);
}

#[test]
fn shards_resolve_relative_to_the_index_url() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_big(d);
    ok(d, &["shard", "big.nnb", "--max-shard-size", "8MiB", "-o", "out"]);
    let Some(server) = Server::http(d) else { return };
    let url = server.url("out/big.nnb");
    let remote: serde_json::Value = serde_json::from_str(&ok(d, &["inspect", &url, "--json"])).unwrap();
    let local: serde_json::Value = serde_json::from_str(&ok(d, &["inspect", "big.nnb", "--json"])).unwrap();
    assert_eq!(remote["tensors"], local["tensors"]);
    let stats = server.take_stats();
    let shards = std::fs::read_dir(d.join("out")).unwrap().count() as u64 - 1;
    assert!(stats.requests <= 1 + 2 * shards, "the index, then at most 2 per shard: {stats:?}");
    assert_eq!(stats.heads, 0, "no HEAD, no listing: {stats:?}");
    assert!(!stats.log.contains("\"out/\"") && !stats.log.contains("\"out\""), "no directory listing: {}", stats.log);
    assert!(ok(d, &["validate", &url]).contains("valid (0 errors"));

    // From a distant store (every response held 200 ms), the shards are
    // opened at once, not one per core at a time.
    server.control("/__delay?ms=200");
    server.take_stats();
    Bundle::open_url(&url).unwrap();
    server.control("/__delay?ms=0");
    let stats = server.take_stats();
    assert!(stats.most_at_once >= 3.min(shards), "{shards} shards opened {} at a time", stats.most_at_once);

    // A missing shard: exit 1 (invalid), naming the shard's URL.
    let shard = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|f| f != "big.nnb")
        .unwrap();
    std::fs::rename(d.join("out").join(&shard), d.join(&shard)).unwrap();
    let out = nnb(d, &["validate", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&server.url(&format!("out/{shard}"))) && text(&out).contains("missing"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_signature_verifies_over_http_and_damage_in_transit_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = write_big(d);
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/conformance/keys");
    let (private, public) = (keys.join("p256.pem"), keys.join("p256.pub.pem"));
    ok(d, &["sign", "big.nnb", "--key", private.to_str().unwrap()]);
    ok(d, &["sign", "big.nnb", "--key", private.to_str().unwrap(), "--sidecar", "big.sig"]);
    let Some(server) = Server::http(d) else { return };
    let url = server.url("big.nnb");
    let public = public.to_str().unwrap();
    assert!(ok(d, &["verify", &url, "--key", public]).contains("verified"));
    assert!(ok(d, &["verify", &url, "--key", public, "--signature", "big.sig"]).contains("verified"));
    assert!(ok(d, &["validate", &url, "--key", public]).contains("valid (0 errors"));
    // One byte of one tensor flipped on the way: the entry is named.
    let offset = locate_entry(&std::fs::read(&path).unwrap(), "layer09.weight") + 1000;
    server.control(&format!("/__corrupt?file=big.nnb&offset={offset}"));
    let out = nnb(d, &["verify", &url, "--key", public]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("tensors/layer09.weight.npy"), "{}", text(&out));
    let out = nnb(d, &["verify", &url, "--key", public, "--signature", "big.sig"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn an_object_replaced_while_open_is_an_error_not_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_big(dir.path());
    let Some(server) = Server::http(dir.path()) else { return };
    let bundle = Bundle::open_url(&server.url("big.nnb")).unwrap();
    bundle.tensor("layer00.weight").unwrap();
    // Replaced (as an upload would): another ETag.
    let bytes = std::fs::read(&path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, &bytes).unwrap();
    let err = bundle.tensor("layer01.weight").unwrap_err().to_string();
    assert!(err.contains("changed while open") && err.contains("big.nnb"), "{err}");
    // Many tensors at once (merged requests) carry the ETag too.
    let err = bundle.prefetch(&["layer02.weight", "layer03.weight"]).unwrap_err().to_string();
    assert!(err.contains("changed while open"), "{err}");
}

#[test]
fn a_missing_object_and_a_bad_url_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(server) = Server::http(d) else { return };
    let url = server.url("nothing.nnb");
    let out = nnb(d, &["inspect", &url]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing.nnb") && text(&out).contains("not found"), "{}", text(&out));
    let out = nnb(d, &["validate", &url]);
    assert_eq!(out.status.code(), Some(2), "unreadable is exit 2: {}", text(&out));
}

/// moto's S3 server on a free loopback port, with a bucket holding `key`'s bytes.
fn moto_with(key: &str, bytes: &[u8]) -> Option<(Server, tempfile::TempDir)> {
    let python = support::python()?;
    let has_moto = std::process::Command::new(&python)
        .args(["-c", "import moto.server, boto3"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_moto {
        assert!(std::env::var_os("CI").is_none(), "CI: no moto in the test venv (scripts/test installs it)");
        eprintln!("skipping: no moto in {} (scripts/test installs it)", python.display());
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(&python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let staging = tempfile::tempdir().unwrap();
    std::fs::write(staging.path().join("upload"), bytes).unwrap();
    let upload = format!(
        "import boto3, time\n\
         s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1',\n\
             aws_access_key_id='test', aws_secret_access_key='test')\n\
         for _ in range(100):\n\
         \x20   try:\n\
         \x20       s3.create_bucket(Bucket='models'); break\n\
         \x20   except Exception:\n\
         \x20       time.sleep(0.1)\n\
         s3.upload_file(r'{}', 'models', '{key}')\n",
        staging.path().join("upload").display()
    );
    let status = std::process::Command::new(&python).args(["-c", &upload]).status().unwrap();
    assert!(status.success(), "uploading to moto failed");
    Some((server, staging))
}

#[test]
fn s3_urls_read_through_moto() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = write_big(d);
    let Some((server, _staging)) = moto_with("nets/big.nnb", &std::fs::read(&path).unwrap()) else { return };
    let s3 = |args: &[&str]| -> Output {
        Command::cargo_bin("nnb")
            .unwrap()
            .current_dir(d)
            .args(args)
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", server.port))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let out = s3(&["inspect", "s3://models/nets/big.nnb", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let remote: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let local: serde_json::Value = serde_json::from_str(&ok(d, &["inspect", "big.nnb", "--json"])).unwrap();
    assert_eq!(remote["tensors"], local["tensors"]);
    let out = s3(&["validate", "s3://models/nets/big.nnb"]);
    assert!(out.status.success() && text(&out).contains("valid (0 errors"), "{}", text(&out));
    let out = s3(&["inspect", "s3://models/nets/absent.nnb"]);
    assert!(!out.status.success() && text(&out).contains("not found"), "{}", text(&out));
}

#[test]
fn a_server_that_answers_other_bytes_than_asked_is_an_error_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_big(d);
    let Some(server) = Server::http(d) else { return };
    let url = server.url("big.nnb");
    for mode in ["short", "range"] {
        // At open: the tail's answer is checked against what was asked.
        server.control(&format!("/__lie?mode={mode}"));
        let out = nnb(d, &["inspect", &url]);
        assert_eq!(out.status.code(), Some(2), "{mode}: {}", text(&out));
        assert!(text(&out).contains("big.nnb") && text(&out).contains("the end of"), "{mode}: {}", text(&out));
        // After open: a tensor's answer is checked before any of it is used.
        server.control("/__lie");
        let bundle = Bundle::open_url(&url).unwrap();
        server.control(&format!("/__lie?mode={mode}"));
        let err = bundle.tensor("layer05.weight").unwrap_err();
        assert_eq!(err.code(), "io", "{mode}: {err}");
        assert!(err.to_string().contains("big.nnb") && err.to_string().contains("layer05.weight"), "{mode}: {err}");
        server.control("/__lie");
    }
}
