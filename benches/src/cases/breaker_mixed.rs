//! A count window under traffic with some failures: one call in a hundred fails, which
//! keeps a failure in a window of the last 100 calls nearly all the time without tripping
//! it (the threshold is 50%).
//!
//! The all-success rows (`breaker_policies`) measure the path a healthy window takes
//! without its lock; these rows measure the path real traffic takes when the window holds
//! a failure: every outcome is recorded in the window, under its lock. recloser, whose
//! only policy is such a ring, is the reference; failsafe counts consecutive failures (one
//! in a hundred never trips it).

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use kompoz::breaker::{CircuitBreaker, FailureRate};

use super::breaker::{Call, Failure, failsafe_breaker};
use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, single_or_pinned};

/// One call in this many fails.
const FAIL_EVERY: u32 = 100;

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

/// The next call of this thread: a failure every [`FAIL_EVERY`] calls.
#[inline(always)]
fn next_call() -> Call {
    let n = CALLS.with(|calls| {
        let n = calls.get().wrapping_add(1);
        calls.set(n);
        n
    });
    black_box(if n % FAIL_EVERY == 0 { Err(Failure) } else { Ok(7) })
}

fn bare(threads: usize) -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        single_or_pinned(threads, || {
            let _ = black_box(next_call());
        }),
    )
}

fn kompoz(threads: usize) -> Contender {
    let breaker: CircuitBreaker<kompoz::StdClock> = CircuitBreaker::builder()
        .trip_on(FailureRate::over_calls(100))
        .build()
        .expect("a valid configuration");
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single_or_pinned(threads, move || {
            let guard = black_box(&breaker).try_acquire().expect("closed");
            match next_call() {
                Ok(value) => {
                    black_box(value);
                    guard.success();
                }
                Err(_) => guard.failure(),
            }
        }),
    )
}

fn failsafe(threads: usize) -> Contender {
    let breaker = failsafe_breaker(5, Duration::from_secs(30));
    Contender::new(
        "failsafe",
        Role::Peer,
        single_or_pinned(threads, move || {
            match failsafe::CircuitBreaker::call(black_box(&breaker), next_call) {
                Ok(value) => {
                    black_box(value);
                }
                Err(failsafe::Error::Inner(_)) => {}
                Err(failsafe::Error::Rejected) => panic!("failsafe opened"),
            }
        }),
    )
}

fn recloser(threads: usize) -> Contender {
    let breaker = recloser::Recloser::custom().build();
    Contender::new(
        "recloser",
        Role::Peer,
        single_or_pinned(threads, move || match black_box(&breaker).call(next_call) {
            Ok(value) => {
                black_box(value);
            }
            Err(recloser::Error::Inner(_)) => {}
            Err(recloser::Error::Rejected) => panic!("recloser opened"),
        }),
    )
}

/// One thread, against recloser's ring of 100.
pub fn one_thread() -> Case {
    Case {
        id: "breaker_count_window_mixed_1t",
        label: "breaker, failure rate over the last 100 calls, 1 call in 100 failing: 1 thread \
                (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("recloser") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(1), kompoz(1), failsafe(1), recloser(1)],
    }
}

/// Two pinned threads, against recloser's ring of 100.
pub fn two_threads() -> Case {
    Case {
        id: "breaker_count_window_mixed_2t",
        label: "breaker, failure rate over the last 100 calls, 1 call in 100 failing: 2 pinned \
                threads (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("recloser") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(2), kompoz(2), failsafe(2), recloser(2)],
    }
}
