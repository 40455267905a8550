//! Retry around a call that succeeds first time: what a retry costs when all is well.
//!
//! Peers: backon (`Retryable::retry` on the factory, its future-aware face, with a
//! `ConstantBuilder`: 3 attempts, 1 s apart) and tower's retry middleware
//! (`tower::retry::Retry` around a `service_fn`, with a trivial policy that never
//! retries and clones the request, as tower's policy must). kompoz runs
//! `RetryPolicy::retry` with the same schedule: 3 attempts, a constant 1 s backoff.
//! Every future is ready at once and polled once, as in the breaker cases.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use backon::Retryable as _;
use kompoz::StdClock;
use kompoz::retry::RetryPolicy;
use tower::Service as _;

use super::breaker::{Call, Failure, ready_ok};
use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, poll_ready, single};

/// The retry-around-a-first-time-success case.
pub fn first_time_success() -> Case {
    Case {
        id: "retry_first_success",
        label: "retry around a call that succeeds first time (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 0.5, of: Reference::BestPeer },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(), kompoz(), backon(), tower()],
    }
}

/// kompoz's policy in this case: 3 attempts, 1 s apart, like backon's default.
pub fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Duration::from_secs(1))
        .build()
        .expect("a valid policy")
}

fn bare() -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        single(|| {
            black_box(poll_ready(ready_ok())).expect("ready");
        }),
    )
}

fn kompoz() -> Contender {
    let policy = policy();
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || {
            black_box(poll_ready(policy.retry(StdClock, ready_ok))).expect("ready");
        }),
    )
}

fn backon() -> Contender {
    Contender::new(
        "backon",
        Role::Peer,
        single(|| {
            let retried = ready_ok.retry(backon::ConstantBuilder::default());
            black_box(poll_ready(retried)).expect("ready");
        }),
    )
}

/// tower's trivial policy: never retries; clones the request, as its contract asks.
#[derive(Clone, Copy, Debug)]
pub struct NeverRetry;

impl tower::retry::Policy<u64, u64, Failure> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, _result: &mut Call) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn tower() -> Contender {
    let service = tower::service_fn(|req: u64| ready(Ok::<u64, Failure>(req)));
    let mut retry = tower::retry::Retry::new(NeverRetry, service);
    Contender::new(
        "tower",
        Role::Peer,
        single(move || {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(matches!(retry.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            black_box(poll_ready(retry.call(black_box(7)))).expect("ready");
        }),
    )
}
