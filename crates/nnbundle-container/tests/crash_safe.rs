//! Saves killed with SIGKILL at many points leave the complete old bundle or
//! the complete new one at the destination, never anything else.

use std::process::Command;
use std::time::{Duration, Instant};

use nnbundle_container::{Bundle, BundleWriter, TEMP_SUFFIX};
use nnbundle_format::{Sha256Digest, Tensor};

const OUT: &str = "NNB_CRASH_CHILD_OUT";
const SEED: &str = "NNB_CRASH_CHILD_SEED";

/// A 32 MiB bundle whose content depends on `seed`.
fn writer(seed: u32) -> BundleWriter {
    let mut w = BundleWriter::new();
    let big: Vec<f32> = (0..(8u32 << 20)).map(|i| (i ^ seed) as f32).collect();
    w.add_tensor("weights", Tensor::from_vec(vec![big.len()], big).unwrap()).unwrap();
    w.add_tensor("seed", Tensor::scalar(i64::from(seed))).unwrap();
    w
}

fn digest(seed: u32) -> Sha256Digest {
    writer(seed).manifest().unwrap().bundle_digest().unwrap()
}

/// Not a check on its own: the child process that `kills_during_save` starts and kills.
#[test]
fn child_saver() {
    if let (Some(out), Some(seed)) = (std::env::var_os(OUT), std::env::var_os(SEED)) {
        let seed: u32 = seed.to_str().unwrap().parse().unwrap();
        writer(seed).save(out).unwrap();
    }
}

fn spawn(out: &std::path::Path, seed: u32) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_saver", "--test-threads=1", "--quiet"])
        .env(OUT, out)
        .env(SEED, seed.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kills_during_save_leave_old_or_new() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("ckpt.nnb");
    writer(0).save(&dest).unwrap();
    let mut current = digest(0);

    // One uninterrupted save, to spread the kills over its duration.
    let start = Instant::now();
    assert!(spawn(&dest, 1).wait().unwrap().success());
    let full = start.elapsed();
    assert_eq!(Bundle::open(&dest).unwrap().digest(), digest(1));
    current = if Bundle::open(&dest).unwrap().digest() == digest(1) { digest(1) } else { current };

    let rounds = 24u32;
    let (mut kept_old, mut got_new) = (0, 0);
    for k in 0..rounds {
        let seed = 2 + k;
        let mut child = spawn(&dest, seed);
        // Kill times spread from the start of the process to past its usual end.
        std::thread::sleep(full.mul_f64(1.3 * f64::from(k) / f64::from(rounds)) + Duration::from_millis(1));
        let _ = child.kill();
        let _ = child.wait();
        let bundle =
            Bundle::open(&dest).unwrap_or_else(|e| panic!("round {k}: destination unreadable after a kill: {e}"));
        bundle.verify_all().unwrap_or_else(|e| panic!("round {k}: destination corrupt after a kill: {e}"));
        let now = bundle.digest();
        if now == current {
            kept_old += 1;
        } else {
            assert_eq!(now, digest(seed), "round {k}: the destination is neither the old nor the new bundle");
            got_new += 1;
            current = now;
        }
    }
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(TEMP_SUFFIX))
        .count();
    println!(
        "{rounds} kills: {kept_old} left the old bundle, {got_new} the new one; {leftovers} temporary files left by killed saves"
    );
    // The next save removes what killed saves left (on Linux) and is not disturbed by it.
    writer(99).save(&dest).unwrap();
    assert_eq!(Bundle::open(&dest).unwrap().digest(), digest(99));
    let after = std::fs::read_dir(dir.path()).unwrap().count();
    if cfg!(target_os = "linux") {
        assert_eq!(after, 1, "leftover temporary files are removed by the next save");
    }
}
