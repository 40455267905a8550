//! Semaphores: uncontended acquire + release (two shapes) and a contended run on a
//! multi-threaded tokio runtime.
//!
//! Peers: `tokio::sync::Semaphore`, `async_lock::Semaphore`, `maitake_sync::Semaphore`.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, MEASURING, Role, Runner, Sample, poll_ready, single};

// ---------------------------------------------------------------------------------------
// Uncontended: one permit, taken and given back, on one thread. With a single permit a
// permit that was not released makes the next acquisition fail, so the loop checks itself.

/// `try_acquire()` + drop of a free permit.
pub fn uncontended_try() -> Case {
    Case {
        id: "semaphore_try_acquire",
        label: "semaphore: try_acquire + drop, uncontended",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("tokio") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![kompoz_try(), tokio_try(), async_lock_try(), maitake_try()],
    }
}

/// `acquire().await` + drop of a free permit (the future polled once with a no-op waker).
pub fn uncontended_acquire() -> Case {
    Case {
        id: "semaphore_acquire",
        label: "semaphore: acquire().await + drop, uncontended",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("tokio") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            vec![kompoz_acquire(), tokio_acquire(), async_lock_acquire(), maitake_acquire()]
        },
    }
}

fn kompoz_try() -> Contender {
    let sem = kompoz::limit::Semaphore::new(1).expect("a valid size");
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || drop(black_box(black_box(&sem).try_acquire().expect("uncontended")))),
    )
}

fn kompoz_acquire() -> Contender {
    let sem = kompoz::limit::Semaphore::new(1).expect("a valid size");
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || drop(black_box(poll_ready(black_box(&sem).acquire()).expect("open")))),
    )
}

fn tokio_try() -> Contender {
    let sem = tokio::sync::Semaphore::new(1);
    Contender::new(
        "tokio",
        Role::Peer,
        single(move || drop(black_box(black_box(&sem).try_acquire().expect("uncontended")))),
    )
}

fn tokio_acquire() -> Contender {
    let sem = tokio::sync::Semaphore::new(1);
    Contender::new(
        "tokio",
        Role::Peer,
        single(move || drop(black_box(poll_ready(black_box(&sem).acquire()).expect("open")))),
    )
}

fn async_lock_try() -> Contender {
    let sem = async_lock::Semaphore::new(1);
    Contender::new(
        "async-lock",
        Role::Peer,
        single(move || drop(black_box(black_box(&sem).try_acquire().expect("uncontended")))),
    )
}

fn async_lock_acquire() -> Contender {
    let sem = async_lock::Semaphore::new(1);
    Contender::new(
        "async-lock",
        Role::Peer,
        single(move || drop(black_box(poll_ready(black_box(&sem).acquire())))),
    )
}

fn maitake_try() -> Contender {
    let sem = maitake_sync::Semaphore::new(1);
    Contender::new(
        "maitake-sync",
        Role::Peer,
        single(move || drop(black_box(black_box(&sem).try_acquire(1).expect("uncontended")))),
    )
}

fn maitake_acquire() -> Contender {
    let sem = maitake_sync::Semaphore::new(1);
    Contender::new(
        "maitake-sync",
        Role::Peer,
        single(move || drop(black_box(poll_ready(black_box(&sem).acquire(1)).expect("open")))),
    )
}

// ---------------------------------------------------------------------------------------
// Contended: TASKS tasks on a tokio runtime with WORKERS worker threads share PERMITS
// permits; each task repeatedly acquires, holds the permit across a yield, and releases.

/// Tasks sharing the semaphore in the contended case.
pub const TASKS: u64 = 1_000;
/// Permits of the semaphore in the contended case.
pub const PERMITS: usize = 8;
/// Worker threads of the runtime in the contended case.
pub const WORKERS: usize = 2;

/// The contended case: throughput of acquisitions, kompoz vs tokio.
pub fn contended() -> Case {
    Case {
        id: "semaphore_contended",
        label: "semaphore: contended, 2 workers, 1000 tasks, 8 permits (ns/acquisition)",
        metric: Metric::Throughput,
        target: Target::ThroughputAtLeast { min: 1.0, of: Reference::Peer("tokio") },
        kompoz_missing: None,
        // Fewer acquisitions than this leave most tasks with nothing to do.
        min_ops: 4 * TASKS,
        contenders: || {
            let runtime = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKERS)
                    .build()
                    .expect("a tokio runtime"),
            );
            vec![kompoz_contended(runtime.clone()), tokio_contended(runtime)]
        },
    }
}

/// A semaphore as the contended case uses it.
pub trait Hold: Send + Sync + 'static {
    /// Acquires a permit, holds it across one `yield_now`, and releases it.
    fn hold(&self) -> impl Future<Output = ()> + Send + '_;
    /// Free permits now (checked after each run: all permits must have come back).
    fn available(&self) -> usize;
}

impl Hold for kompoz::limit::Semaphore {
    async fn hold(&self) {
        let permit = self.acquire().await.expect("never closed");
        tokio::task::yield_now().await;
        drop(permit);
    }

    fn available(&self) -> usize {
        self.available_permits()
    }
}

impl Hold for tokio::sync::Semaphore {
    async fn hold(&self) {
        let permit = self.acquire().await.expect("never closed");
        tokio::task::yield_now().await;
        drop(permit);
    }

    fn available(&self) -> usize {
        self.available_permits()
    }
}

fn kompoz_contended(runtime: Arc<tokio::runtime::Runtime>) -> Contender {
    let sem = Arc::new(kompoz::limit::Semaphore::new(PERMITS).expect("a valid size"));
    Contender::new("kompoz", Role::Kompoz, contended_runner(runtime, sem))
}

fn tokio_contended(runtime: Arc<tokio::runtime::Runtime>) -> Contender {
    let sem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
    Contender::new("tokio", Role::Peer, contended_runner(runtime, sem))
}

/// Spawns [`TASKS`] tasks that share `n` acquisitions between them; they wait at a gate
/// (yielding) until all are spawned, so spawning is outside the measurement, which runs
/// from opening the gate until every task has finished.
fn contended_runner<S: Hold>(runtime: Arc<tokio::runtime::Runtime>, sem: Arc<S>) -> Runner {
    Box::new(move |n| {
        let gate = Arc::new(AtomicBool::new(false));
        let elapsed = runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|i| {
                    let rounds = n / TASKS + u64::from(i < n % TASKS);
                    let (sem, gate) = (sem.clone(), gate.clone());
                    tokio::spawn(async move {
                        while !gate.load(Ordering::Acquire) {
                            tokio::task::yield_now().await;
                        }
                        for _ in 0..rounds {
                            sem.hold().await;
                        }
                    })
                })
                .collect();
            MEASURING.store(true, Ordering::SeqCst);
            let start = Instant::now();
            gate.store(true, Ordering::Release);
            for task in tasks {
                task.await.expect("a task panicked");
            }
            let elapsed = start.elapsed();
            MEASURING.store(false, Ordering::SeqCst);
            elapsed
        });
        assert_eq!(sem.available(), PERMITS, "every permit came back");
        // The workers are tokio's: their waiting for a CPU is not known here.
        Sample { elapsed, ops: n, waited: None }
    })
}
