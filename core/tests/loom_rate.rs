//! loom models of the rate limiter's atomic layer and its line of waiters. Run, scoped to
//! the core:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p kompoz --release --test loom_rate
//! ```
//!
//! Each model asserts, in every interleaving explored: never more cells admitted than the
//! quota allows over the interval the model spans, every admission and refusal counted
//! once, and no lost wake-up (a waiter left asleep shows up as loom's deadlock).
#![cfg(loom)]

use std::future::Future;
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::rate::{Quota, RateLimiter};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const TEN_MS: Duration = Duration::from_millis(10);

/// Runs `f` under loom, with preemptions bounded (LOOM_MAX_PREEMPTIONS, default 2).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// One cell every 10 ms, `burst` at once, on `clock`.
fn limiter(clock: &ManualClock, burst: u32) -> Arc<RateLimiter<ManualClock>> {
    let quota = Quota::per_second(100).unwrap().with_burst(burst).unwrap();
    Arc::new(RateLimiter::new(quota, clock.clone()))
}

/// Three threads check at once with a burst of two and no time passing: exactly two are
/// admitted, whatever the interleaving, and each decision is counted once.
#[test]
fn concurrent_checks_admit_exactly_the_burst() {
    model(|| {
        let clock = ManualClock::new();
        let limiter = limiter(&clock, 2);
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                thread::spawn(move || {
                    if limiter.check().is_ok() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        if limiter.check().is_ok() {
            admitted.fetch_add(1, Ordering::SeqCst);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 2);
        let stats = limiter.stats();
        assert_eq!((stats.admitted, stats.rejected), (2, 1));
    });
}

/// Checks race with a clock moving on by one interval: at most `burst + 1` cells, and a
/// refusal's earliest instant is never in the past of the reading it was decided on.
#[test]
fn checks_racing_the_clock_stay_within_the_quota() {
    model(|| {
        let clock = ManualClock::new();
        let limiter = limiter(&clock, 1);
        let admitted = Arc::new(AtomicUsize::new(0));
        let checker = {
            let (limiter, admitted) = (limiter.clone(), admitted.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    match limiter.check() {
                        Ok(()) => {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(refused) => assert!(refused.wait > Duration::ZERO),
                    }
                }
            })
        };
        let ticker = {
            let clock = clock.clone();
            thread::spawn(move || clock.advance(TEN_MS))
        };
        if limiter.check().is_ok() {
            admitted.fetch_add(1, Ordering::SeqCst);
        }
        checker.join().unwrap();
        ticker.join().unwrap();
        let admitted = admitted.load(Ordering::SeqCst);
        assert!((1..=2).contains(&admitted), "{admitted} cells in one interval, burst 1");
        assert_eq!(limiter.stats().admitted + limiter.stats().rejected, 3);
    });
}

/// A task waits in line for its cell while the clock moves on and another thread checks
/// once: the waiter is always woken and admitted (no lost wake-up), and the cells admitted
/// never exceed a burst of one plus one per interval that passed.
#[test]
fn a_waiter_is_woken_while_others_check() {
    model(|| {
        let clock = ManualClock::new();
        let limiter = limiter(&clock, 1);
        limiter.check().unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (limiter, done) = (limiter.clone(), done.clone());
            thread::spawn(move || {
                loom::future::block_on(limiter.until_ready());
                done.store(1, Ordering::SeqCst);
            })
        };
        let checker = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.check().is_ok())
        };
        // Time moves on while the other two race...
        clock.advance(TEN_MS);
        let checked = checker.join().unwrap();
        // ...and then until the waiter has its cell (a check that came first may have
        // taken the next slot: then the waiter's is one interval later).
        let mut intervals = 1u64;
        while done.load(Ordering::SeqCst) == 0 {
            clock.advance(TEN_MS);
            intervals += 1;
            thread::yield_now();
        }
        waiter.join().unwrap();
        let stats = limiter.stats();
        assert_eq!(stats.admitted, 2 + u64::from(checked));
        assert!(
            stats.admitted <= 1 + intervals,
            "{} cells in {intervals} intervals",
            stats.admitted
        );
        assert_eq!(stats.waiting, 0);
    });
}

/// A waiter cancelled while `reset` wakes it: the line is left empty and the cell is not
/// lost (a check afterwards is admitted).
#[test]
fn a_cancelled_waiter_racing_reset_loses_no_cell() {
    model(|| {
        let clock = ManualClock::new();
        let limiter = limiter(&clock, 1);
        limiter.check().unwrap();
        let waiter = {
            let limiter = limiter.clone();
            thread::spawn(move || {
                let mut wait = Box::pin(limiter.until_ready());
                let waker = std::task::Waker::noop();
                let polled =
                    wait.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready();
                drop(wait);
                polled
            })
        };
        limiter.reset();
        let admitted_while_waiting = waiter.join().unwrap();
        assert_eq!(limiter.stats().waiting, 0);
        // If the waiter was admitted by the reset, the burst is used; otherwise it is free.
        assert_eq!(limiter.check().is_ok(), !admitted_while_waiting);
    });
}
