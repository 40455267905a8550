//! A multi-threaded stress test of the semaphore on tokio's multi-thread runtime, in real
//! time: 10,000 acquisitions with random holding times, random maximum waits and random
//! cancellation (aborted tasks). Afterwards every permit is back and the peak never
//! exceeded the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kompoz_tokio::TokioClock;
use kompoz_tokio::limit::{AcquireError, Semaphore};

const PERMITS: usize = 8;
const TASKS: usize = 10_000;

/// A task's presence inside its permit: counted in when made, counted out when dropped,
/// including when the task is aborted while it holds the permit. (A plain decrement at
/// the end of the task was skipped by such an abort, so a later task saw one holder too
/// many: "peak 9" in a few percent of loaded runs.) Declared after the permit, so it is
/// dropped, and counted out, before the permit is released.
struct Inside<'a>(&'a AtomicUsize);

impl<'a> Inside<'a> {
    fn enter(inside: &'a AtomicUsize, peak: &AtomicUsize) -> Inside<'a> {
        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        Inside(inside)
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// xorshift: a cheap, deterministic source of variety per task.
fn random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn ten_thousand_acquisitions_on_two_threads_restore_every_permit() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let semaphore = Arc::new(Semaphore::new(PERMITS).expect("a valid semaphore"));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (acquired, timed_out) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    runtime.block_on(async {
        let mut handles = Vec::with_capacity(TASKS);
        for i in 0..TASKS {
            let (semaphore, inside, peak) = (semaphore.clone(), inside.clone(), peak.clone());
            let (acquired, timed_out) = (acquired.clone(), timed_out.clone());
            handles.push(tokio::spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491);
                let permit = if random(&mut seed) % 4 == 0 {
                    let max_wait = Duration::from_micros(random(&mut seed) % 2_000);
                    match semaphore.acquire_with_max_wait(TokioClock, max_wait).await {
                        Ok(permit) => permit,
                        Err(AcquireError::WaitElapsed) => {
                            timed_out.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(other) => panic!("unexpected {other}"),
                    }
                } else {
                    semaphore.acquire().await.expect("never closed")
                };
                acquired.fetch_add(1, Ordering::Relaxed);
                let inside = Inside::enter(&inside, &peak);
                if random(&mut seed) % 8 == 0 {
                    tokio::time::sleep(Duration::from_micros(random(&mut seed) % 1_000)).await;
                } else {
                    for _ in 0..random(&mut seed) % 4 {
                        tokio::task::yield_now().await;
                    }
                }
                drop(inside);
                drop(permit);
            }));
            // Cancel some tasks at random moments: while queued, or while holding.
            if i % 7 == 3 {
                let victim = handles.len() - 1 - (i % 5);
                handles[victim].abort();
            }
        }
        for handle in handles {
            match handle.await {
                Ok(()) => {}
                Err(error) if error.is_cancelled() => {}
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
    });

    assert_eq!(inside.load(Ordering::SeqCst), 0, "every task counted itself out");
    let stats = semaphore.stats();
    assert_eq!(stats.available, PERMITS, "every permit is back: {stats:?}");
    assert_eq!((stats.in_flight, stats.waiting), (0, 0));
    assert!(peak.load(Ordering::SeqCst) <= PERMITS, "peak {}", peak.load(Ordering::SeqCst));
    // Tasks aborted between their grant and their count make the semaphore's total larger.
    assert!(stats.total_acquired as usize >= acquired.load(Ordering::Relaxed));
    assert!(stats.total_acquired > 5_000, "most tasks got through: {stats:?}");
    assert!(timed_out.load(Ordering::Relaxed) > 0, "some maximum waits passed");
    let all: Vec<_> = (0..PERMITS).map(|_| semaphore.try_acquire()).collect();
    assert!(all.iter().all(Result::is_ok));
}
