//! Circuit breakers: a call through a closed breaker around a future that is ready at
//! once (on one thread, and on two threads hammering one breaker), and the rejection of a
//! call by an open breaker.
//!
//! Peers: `failsafe` and `recloser`, through their future-aware faces
//! (`failsafe::futures::CircuitBreaker::call`, `recloser::AsyncRecloser::call`).
//! `tower-resilience` is not measured: it is a tower `Layer` over a `Service`, so its
//! number would be tower's service machinery as much as its breaker, and it brings a dozen
//! crates with it.
//!
//! Configurations are like for like with kompoz's defaults where the peer allows it:
//! failsafe with its consecutive-failures policy (5 failures, a 30 s break), which is
//! cheaper on the closed path than its default policy (that one also keeps a success rate
//! over a time window, reading the clock on every call); recloser has no
//! consecutive-failures policy, so it runs its default ring-buffer failure rate.
//!
//! kompoz runs with its defaults (5 consecutive failures, a 30 s break) through its
//! future-aware face, `CircuitBreaker::call`, like the peers. In the rejection case every
//! breaker is opened the way production opens it, by failed calls (not by
//! `force_open`, which would let kompoz skip its recovery-time check).

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use failsafe::futures::CircuitBreaker as _;
use failsafe::{backoff, failure_policy};
use kompoz::breaker::{CallError, CircuitBreaker, CircuitState};

use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, poll_ready, single, single_or_pinned};

/// The error of the guarded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure;

/// What a guarded call returns.
pub type Call = Result<u64, Failure>;

/// A call that is ready at once and succeeds.
#[inline(always)]
pub fn ready_ok() -> Ready<Call> {
    ready(Ok(black_box(7)))
}

/// How long an opened breaker stays open in the rejection case: longer than any run.
const OPEN_FOR: Duration = Duration::from_secs(3600);

/// Closed breaker, one thread.
pub fn closed_one_thread() -> Case {
    Case {
        id: "breaker_closed_1t",
        label: "breaker: closed call around a ready future, 1 thread (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(1), kompoz_closed(1), failsafe_closed(1), recloser_closed(1)],
    }
}

/// Closed breaker, two threads calling through the same breaker at once.
pub fn closed_two_threads() -> Case {
    Case {
        id: "breaker_closed_2t",
        label: "breaker: closed call around a ready future, 2 pinned threads (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(2), kompoz_closed(2), failsafe_closed(2), recloser_closed(2)],
    }
}

/// Open breaker: the call is rejected.
pub fn open_rejection() -> Case {
    Case {
        id: "breaker_open",
        label: "breaker: open, call rejected, 1 thread",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![kompoz_open(), failsafe_open(), recloser_open()],
    }
}

/// [`closed_one_thread`] with kompoz through its guard face: `try_acquire`, the call,
/// `success` (the peers keep their `call` faces).
pub fn closed_guard_one_thread() -> Case {
    Case {
        id: "breaker_guard_closed_1t",
        label: "breaker, kompoz via try_acquire + success: closed, 1 thread (overhead over bare)",
        contenders: || {
            vec![bare(1), kompoz_guard_closed(1), failsafe_closed(1), recloser_closed(1)]
        },
        ..closed_one_thread()
    }
}

/// [`closed_two_threads`] with kompoz through its guard face.
pub fn closed_guard_two_threads() -> Case {
    Case {
        id: "breaker_guard_closed_2t",
        label: "breaker, kompoz via try_acquire + success: closed, 2 pinned threads (overhead over \
                bare)",
        contenders: || {
            vec![bare(2), kompoz_guard_closed(2), failsafe_closed(2), recloser_closed(2)]
        },
        ..closed_two_threads()
    }
}

/// [`open_rejection`] with kompoz through its guard face: `try_acquire` fails.
pub fn open_guard() -> Case {
    Case {
        id: "breaker_guard_open",
        label: "breaker, kompoz via try_acquire: open, call rejected, 1 thread",
        contenders: || vec![kompoz_guard_open(), failsafe_open(), recloser_open()],
        ..open_rejection()
    }
}

/// The call without a breaker.
fn bare(threads: usize) -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        single_or_pinned(threads, || {
            black_box(poll_ready(ready_ok()).expect("succeeds"));
        }),
    )
}

/// kompoz with its defaults but for `failures` and `open_for`.
fn kompoz_breaker(failures: u32, open_for: Duration) -> CircuitBreaker<kompoz::StdClock> {
    CircuitBreaker::builder()
        .failure_threshold(failures)
        .recovery_timeout(open_for)
        .build()
        .expect("a valid configuration")
}

fn kompoz_closed(threads: usize) -> Contender {
    let breaker = kompoz_breaker(5, Duration::from_secs(30));
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single_or_pinned(threads, move || {
            black_box(poll_ready(black_box(&breaker).call(ready_ok())).expect("closed"));
        }),
    )
}

fn kompoz_open() -> Contender {
    let breaker = kompoz_breaker(1, OPEN_FOR);
    let tripped = poll_ready(breaker.call(ready(Err::<u64, _>(Failure))));
    assert_eq!(tripped, Err(CallError::Inner(Failure)));
    assert_eq!(breaker.state(), CircuitState::Open);
    let call = poll_ready(breaker.call(ready_ok()));
    assert!(matches!(call, Err(CallError::Rejected(_))), "kompoz is open");
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || {
            let call = poll_ready(black_box(&breaker).call(ready_ok()));
            assert!(matches!(call, Err(CallError::Rejected(_))), "rejected");
        }),
    )
}

fn kompoz_guard_closed(threads: usize) -> Contender {
    let breaker = kompoz_breaker(5, Duration::from_secs(30));
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single_or_pinned(threads, move || {
            let guard = black_box(&breaker).try_acquire().expect("closed");
            black_box(poll_ready(ready_ok()).expect("succeeds"));
            guard.success();
        }),
    )
}

fn kompoz_guard_open() -> Contender {
    let breaker = kompoz_breaker(1, OPEN_FOR);
    breaker.try_acquire().expect("closed").failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || {
            let rejected = black_box(&breaker).try_acquire();
            assert!(rejected.is_err(), "rejected");
        }),
    )
}

/// failsafe with its consecutive-failures policy: `failures` in a row open it for `open_for`.
pub(super) fn failsafe_breaker(
    failures: u32,
    open_for: Duration,
) -> failsafe::StateMachine<failure_policy::ConsecutiveFailures<backoff::Constant>, ()> {
    failsafe::Config::new()
        .failure_policy(failure_policy::consecutive_failures(failures, backoff::constant(open_for)))
        .build()
}

fn failsafe_closed(threads: usize) -> Contender {
    let breaker = failsafe_breaker(5, Duration::from_secs(30));
    Contender::new(
        "failsafe",
        Role::Peer,
        single_or_pinned(threads, move || {
            black_box(poll_ready(black_box(&breaker).call(ready_ok())).expect("closed"));
        }),
    )
}

fn failsafe_open() -> Contender {
    let breaker = failsafe_breaker(1, OPEN_FOR);
    let tripped = poll_ready(breaker.call(ready(Err::<u64, _>(Failure))));
    assert!(matches!(tripped, Err(failsafe::Error::Inner(Failure))));
    let call = poll_ready(breaker.call(ready_ok()));
    assert!(matches!(call, Err(failsafe::Error::Rejected)), "failsafe is open");
    Contender::new(
        "failsafe",
        Role::Peer,
        single(move || {
            let call = poll_ready(black_box(&breaker).call(ready_ok()));
            assert!(matches!(call, Err(failsafe::Error::Rejected)), "rejected");
        }),
    )
}

fn recloser_closed(threads: usize) -> Contender {
    let breaker = recloser::AsyncRecloser::from(recloser::Recloser::custom().build());
    Contender::new(
        "recloser",
        Role::Peer,
        single_or_pinned(threads, move || {
            black_box(poll_ready(black_box(&breaker).call(ready_ok())).expect("closed"));
        }),
    )
}

fn recloser_open() -> Contender {
    let breaker = recloser::AsyncRecloser::from(
        recloser::Recloser::custom().error_rate(0.5).closed_len(1).open_wait(OPEN_FOR).build(),
    );
    // The ring of one call reports a failure rate only once it is full: the first failure
    // fills it, the second one opens the breaker.
    for _ in 0..2 {
        let tripped = poll_ready(breaker.call(ready(Err::<u64, _>(Failure))));
        assert!(matches!(tripped, Err(recloser::Error::Inner(Failure))));
    }
    let call = poll_ready(breaker.call(ready_ok()));
    assert!(matches!(call, Err(recloser::Error::Rejected)), "recloser is open");
    Contender::new(
        "recloser",
        Role::Peer,
        single(move || {
            let call = poll_ready(black_box(&breaker).call(ready_ok()));
            assert!(matches!(call, Err(recloser::Error::Rejected)), "rejected");
        }),
    )
}

/// The call without a breaker, as a synchronous closure (the baseline of the peers'
/// cheapest face).
fn bare_sync(threads: usize) -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        single_or_pinned(threads, || {
            black_box(sync_ok().expect("succeeds"));
        }),
    )
}

/// A synchronous call that succeeds at once.
#[inline(always)]
fn sync_ok() -> Call {
    Ok(black_box(7))
}

/// failsafe through its cheapest face: `failsafe::CircuitBreaker::call` with a closure.
fn failsafe_sync_closed(threads: usize) -> Contender {
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

fn failsafe_sync_open() -> Contender {
    let breaker = failsafe_breaker(1, OPEN_FOR);
    let tripped = failsafe::CircuitBreaker::call(&breaker, || Err::<u64, _>(Failure));
    assert!(matches!(tripped, Err(failsafe::Error::Inner(Failure))));
    Contender::new(
        "failsafe",
        Role::Peer,
        single(move || {
            let call = failsafe::CircuitBreaker::call(black_box(&breaker), sync_ok);
            assert!(matches!(call, Err(failsafe::Error::Rejected)), "rejected");
        }),
    )
}

/// recloser through its cheapest face: `Recloser::call` with a closure.
fn recloser_sync_closed(threads: usize) -> Contender {
    let breaker = recloser::Recloser::custom().build();
    Contender::new(
        "recloser",
        Role::Peer,
        single_or_pinned(threads, move || {
            black_box(black_box(&breaker).call(sync_ok).expect("closed"));
        }),
    )
}

fn recloser_sync_open() -> Contender {
    let breaker =
        recloser::Recloser::custom().error_rate(0.5).closed_len(1).open_wait(OPEN_FOR).build();
    for _ in 0..2 {
        let tripped = breaker.call(|| Err::<u64, _>(Failure));
        assert!(matches!(tripped, Err(recloser::Error::Inner(Failure))));
    }
    Contender::new(
        "recloser",
        Role::Peer,
        single(move || {
            let call = black_box(&breaker).call(sync_ok);
            assert!(matches!(call, Err(recloser::Error::Rejected)), "rejected");
        }),
    )
}

/// kompoz's cheapest face beside the peers' closure call: `try_acquire`, the call,
/// `success`.
fn kompoz_sync_closed(threads: usize) -> Contender {
    let breaker = kompoz_breaker(5, Duration::from_secs(30));
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

/// Closed breaker, 1 thread, every breaker through its cheapest face (the peers'
/// synchronous closure `call`, kompoz's guard).
pub fn closed_cheapest_one_thread() -> Case {
    Case {
        id: "breaker_cheapest_closed_1t",
        label: "breaker, cheapest face (peers: closure call): closed, 1 thread (overhead over bare)",
        target: Target::CostAtMost { max: 0.25, of: Reference::BestPeer },
        contenders: || {
            vec![
                bare_sync(1),
                kompoz_sync_closed(1),
                failsafe_sync_closed(1),
                recloser_sync_closed(1),
            ]
        },
        ..closed_one_thread()
    }
}

/// Open breaker, every breaker through its cheapest face.
pub fn open_cheapest() -> Case {
    Case {
        id: "breaker_cheapest_open",
        label: "breaker, cheapest face (peers: closure call): open, call rejected, 1 thread",
        target: Target::CostAtMost { max: 0.2, of: Reference::BestPeer },
        contenders: || vec![kompoz_guard_open(), failsafe_sync_open(), recloser_sync_open()],
        ..open_rejection()
    }
}
