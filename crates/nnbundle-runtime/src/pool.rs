//! When work splits across threads, and keeping the pool's workers awake
//! for the length of a run so that splitting pays from small layers on.
//!
//! A forward pass opens hundreds of parallel regions, most a few tens of
//! microseconds of work. Between them rayon's idle workers go to sleep, and
//! on a virtual machine waking one costs 50-240 µs: the second thread came
//! after the region was done, and more threads made models slower
//! (Inception-v2, 1 thread 74 ms, 2 threads 87 ms). [`with_awake_workers`]
//! runs a pass with the pool's other workers spinning on
//! [`rayon::yield_now`], so a region's work is stolen within microseconds;
//! kernels then split from [`worth_splitting`]'s small thresholds.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// True on threads taking part in a [`with_awake_workers`] run.
    static AWAKE: Cell<bool> = const { Cell::new(false) };
}

/// How much larger work must be to split when the other workers may be
/// asleep (a caller outside [`with_awake_workers`]): a wake-up costs about
/// as much as 16 times the awake threshold's work.
const ASLEEP_FACTOR: usize = 16;

/// Pauses of a spinning helper between two looks for work.
const IDLE_PAUSES: usize = 32;

/// True when `work` (in the caller's unit) should split across threads:
/// the pool has more than one thread and `work` reaches `threshold`, the
/// size from which splitting pays with the other workers awake (16 times
/// that when they may be asleep).
pub(crate) fn worth_splitting(work: usize, threshold: usize) -> bool {
    let needed = if AWAKE.get() { threshold } else { threshold.saturating_mul(ASLEEP_FACTOR) };
    work >= needed && rayon::current_num_threads() > 1
}

/// Sets [`AWAKE`] on this thread until dropped.
struct AwakeHere(bool);

impl AwakeHere {
    fn new() -> AwakeHere {
        AwakeHere(AWAKE.replace(true))
    }
}

impl Drop for AwakeHere {
    fn drop(&mut self) {
        AWAKE.set(self.0);
    }
}

/// Runs `f` on the global pool while the pool's other workers spin, taking
/// any work `f` splits off, until `f` returns.
///
/// With one thread, or when called from inside a pool (a caller that
/// already splits its own work, whose workers are busy), `f` runs directly.
pub(crate) fn with_awake_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    awake_on(None, f)
}

/// [`with_awake_workers`] on `pool`: how tests split work as runs do.
#[cfg(test)]
pub(crate) fn awake_in<R: Send>(pool: &rayon::ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    awake_on(Some(pool), f)
}

/// [`with_awake_workers`] on `pool`, or on the global pool.
fn awake_on<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    let threads = pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
    if threads < 2 || rayon::current_thread_index().is_some() {
        return f();
    }
    let done = AtomicBool::new(false);
    match pool {
        Some(pool) => pool.scope(|s| spin_beside(s, threads, &done, f)),
        None => rayon::scope(|s| spin_beside(s, threads, &done, f)),
    }
}

/// Spawns `threads - 1` helpers into `s` that spin until `f` has run here.
fn spin_beside<'scope, R>(
    s: &rayon::Scope<'scope>,
    threads: usize,
    done: &'scope AtomicBool,
    f: impl FnOnce() -> R,
) -> R {
    let owner = rayon::current_thread_index();
    for _ in 1..threads {
        s.spawn(move |_| {
            // The thread running `f` may pop a helper while it waits for
            // stolen work: it must not spin there, or `f` never ends.
            if rayon::current_thread_index() == owner {
                return;
            }
            let _awake = AwakeHere::new();
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    // Looking for work reads the owner's queue: between looks,
                    // pause (about a microsecond) so that the owner's pushes and
                    // pops do not contend for its cache lines.
                    for _ in 0..IDLE_PAUSES {
                        std::hint::spin_loop();
                    }
                }
            }
        });
    }
    let out = {
        let _awake = AwakeHere::new();
        f()
    };
    done.store(true, Ordering::Release);
    out
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::*;

    #[test]
    fn awake_runs_split_small_work_and_others_do_not() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // Outside an awake run: the asleep factor applies.
        assert!(!pool.install(|| worth_splitting(100, 100)));
        assert!(pool.install(|| worth_splitting(100 * ASLEEP_FACTOR, 100)));
        // Inside one: on the owner and on whichever thread runs a split task.
        let (owner, tasks) = awake_on(Some(&pool), || {
            let tasks: Vec<bool> = (0..64).into_par_iter().map(|_| worth_splitting(100, 100)).collect();
            (worth_splitting(100, 100), tasks)
        });
        assert!(owner && tasks.iter().all(|&t| t), "{tasks:?}");
        // Helpers stop and every thread's flag is reset afterwards.
        assert!(!pool.broadcast(|_| AWAKE.get()).into_iter().any(|a| a));
        assert!(!AWAKE.get());
        // One thread never splits.
        let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert!(!awake_on(Some(&single), || single.install(|| worth_splitting(usize::MAX, 1))));
    }
}
