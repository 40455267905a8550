//! Breakers beyond the default: the failure-rate policies beside the peers' windowed
//! policies, two threads pinned to two CPUs, and many threads on one breaker.
//!
//! Every breaker goes through its cheapest face: the peers' synchronous closure `call`
//! (`failsafe::CircuitBreaker::call`, `recloser::Recloser::call`), kompoz's guard
//! (`try_acquire`, the call, `success`). All calls succeed: these rows measure the
//! healthy, closed path that every call pays.
//!
//! * count window: kompoz's `FailureRate::over_calls(100)` beside recloser's default, a
//!   ring of the last 100 calls (its only policy), and failsafe's consecutive failures;
//! * time window: kompoz's `FailureRate::over_time(60 s)` (10 buckets) beside failsafe's
//!   `success_rate_over_time_window` (60 s) and recloser's ring;
//! * two threads: pinned to distinct CPUs (`on_pinned_threads`), samples in which a thread
//!   waited for its CPU set aside;
//! * 8 and 32 threads on one breaker (default policy): the cost of a call to the whole
//!   machine (wall time over all calls), kompoz at 32 threads against kompoz at 8.

use std::hint::black_box;
use std::time::Duration;

use failsafe::{backoff, failure_policy};
use kompoz::breaker::{CircuitBreaker, FailureRate};

use super::breaker::{Call, failsafe_breaker};
use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, per_call_on_threads, single_or_pinned};

/// A synchronous call that succeeds at once.
#[inline(always)]
fn sync_ok() -> Call {
    Ok(black_box(7))
}

fn bare(threads: usize) -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        single_or_pinned(threads, || {
            black_box(sync_ok().expect("succeeds"));
        }),
    )
}

fn kompoz(threads: usize, breaker: CircuitBreaker<kompoz::StdClock>) -> Contender {
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single_or_pinned(threads, move || {
            let guard = black_box(&breaker).try_acquire().expect("closed");
            black_box(sync_ok().expect("succeeds"));
            guard.success();
        }),
    )
}

fn count_window() -> CircuitBreaker<kompoz::StdClock> {
    CircuitBreaker::builder()
        .trip_on(FailureRate::over_calls(100))
        .build()
        .expect("a valid configuration")
}

fn time_window() -> CircuitBreaker<kompoz::StdClock> {
    CircuitBreaker::builder()
        .trip_on(FailureRate::over_time(Duration::from_secs(60)))
        .build()
        .expect("a valid configuration")
}

fn default_policy() -> CircuitBreaker<kompoz::StdClock> {
    CircuitBreaker::builder().build().expect("the defaults are valid")
}

fn failsafe_consecutive(threads: usize) -> Contender {
    let breaker = failsafe_breaker(5, Duration::from_secs(30));
    Contender::new(
        "failsafe",
        Role::Peer,
        single_or_pinned(threads, move || {
            black_box(
                failsafe::CircuitBreaker::call(black_box(&breaker), sync_ok).expect("closed"),
            );
        }),
    )
}

fn failsafe_time_window(threads: usize) -> Contender {
    let breaker = failsafe::Config::new()
        .failure_policy(failure_policy::success_rate_over_time_window(
            0.5,
            10,
            Duration::from_secs(60),
            backoff::constant(Duration::from_secs(30)),
        ))
        .build();
    Contender::new(
        "failsafe",
        Role::Peer,
        single_or_pinned(threads, move || {
            black_box(
                failsafe::CircuitBreaker::call(black_box(&breaker), sync_ok).expect("closed"),
            );
        }),
    )
}

fn recloser(threads: usize) -> Contender {
    let breaker = recloser::Recloser::custom().build();
    Contender::new(
        "recloser",
        Role::Peer,
        single_or_pinned(threads, move || {
            black_box(black_box(&breaker).call(sync_ok).expect("closed"));
        }),
    )
}

/// The guard face beside the peers' closure call, closed, two pinned threads.
pub fn cheapest_closed_two_threads() -> Case {
    Case {
        id: "breaker_cheapest_closed_2t",
        label: "breaker, cheapest face: closed, 2 pinned threads (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            vec![bare(2), kompoz(2, default_policy()), failsafe_consecutive(2), recloser(2)]
        },
    }
}

/// A count window of 100 calls, one thread, against recloser's ring of 100.
pub fn count_window_one_thread() -> Case {
    Case {
        id: "breaker_count_window_1t",
        label: "breaker, failure rate over the last 100 calls: closed, 1 thread (overhead over \
                bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 1.0 / 3.0, of: Reference::Peer("recloser") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            vec![bare(1), kompoz(1, count_window()), failsafe_consecutive(1), recloser(1)]
        },
    }
}

/// The same on two pinned threads.
pub fn count_window_two_threads() -> Case {
    Case {
        id: "breaker_count_window_2t",
        label: "breaker, failure rate over the last 100 calls: closed, 2 pinned threads \
                (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            vec![bare(2), kompoz(2, count_window()), failsafe_consecutive(2), recloser(2)]
        },
    }
}

/// A time window of 60 s, one thread, against failsafe's 60 s window and recloser's ring.
pub fn time_window_one_thread() -> Case {
    Case {
        id: "breaker_time_window_1t",
        label: "breaker, failure rate over the last 60 s: closed, 1 thread (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 1.0 / 3.0, of: Reference::Peer("recloser") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            vec![bare(1), kompoz(1, time_window()), failsafe_time_window(1), recloser(1)]
        },
    }
}

/// The same on two pinned threads.
pub fn time_window_two_threads() -> Case {
    Case {
        id: "breaker_time_window_2t",
        label: "breaker, failure rate over the last 60 s: closed, 2 pinned threads (overhead \
                over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            vec![bare(2), kompoz(2, time_window()), failsafe_time_window(2), recloser(2)]
        },
    }
}

/// What a call costs the machine with `threads` threads on one default breaker.
fn kompoz_per_call(name: &'static str, role: Role, threads: usize) -> Contender {
    let breaker = default_policy();
    Contender::new(
        name,
        role,
        per_call_on_threads(threads, move || {
            let guard = black_box(&breaker).try_acquire().expect("closed");
            black_box(sync_ok().expect("succeeds"));
            guard.success();
        }),
    )
}

/// The name of the 8-thread reference in [`thirty_two_threads`].
const AT_8_THREADS: &str = "kompoz, 8 threads";

/// 32 threads on one breaker, per call, against 8 threads on one breaker.
pub fn thirty_two_threads() -> Case {
    Case {
        id: "breaker_32t",
        label: "breaker, guard face: closed, 32 threads on one breaker (ns per call to the \
                machine, against 8 threads)",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.5, of: Reference::Peer(AT_8_THREADS) },
        kompoz_missing: None,
        // Every thread makes a few thousand calls per sample, not a handful.
        min_ops: 32 * 1_000,
        contenders: || {
            vec![
                kompoz_per_call("kompoz", Role::Kompoz, 32),
                kompoz_per_call(AT_8_THREADS, Role::Peer, 8),
            ]
        },
    }
}
