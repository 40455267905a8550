//! Retry around a call that succeeds first time: what a retry costs when all is well.
//!
//! Peers, each through the face its users call:
//!
//! * backon: `Retryable::retry` on the factory (its future-aware face) with a
//!   `ConstantBuilder`: 3 attempts, 1 s apart.
//! * tower: the `tower::retry::Retry` service around a `service_fn` that answers at once,
//!   with the policy tower's own docs give (`Attempts`: `clone_request` returns
//!   `Some(req.clone())`, and `retry` decides per result, retrying an error while
//!   attempts are left: 3 attempts in all), called as a tower user calls a service:
//!   `ready().await`, then `call(request).await`, in one future polled once. (A policy
//!   whose `retry` never looks at the result lets the compiler remove the whole retry,
//!   which measures nothing a user runs.)
//!
//! kompoz runs `RetryPolicy::retry` with backon's schedule: 3 attempts, a constant 1 s
//! backoff. Every future is ready at once and polled once, as in the breaker cases.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use backon::Retryable as _;
use kompoz::StdClock;
use kompoz::retry::RetryPolicy;
use tower::{Service as _, ServiceExt as _};

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

/// The policy of tower's docs: retries an error while attempts are left (3 in all, the
/// first included), and clones the request for each attempt.
#[derive(Clone, Copy, Debug)]
pub struct Attempts(pub usize);

impl tower::retry::Policy<u64, u64, Failure> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Call) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    // Written as tower's docs write it: the same code clones a request that is not `Copy`.
    #[allow(clippy::clone_on_copy)]
    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(req.clone())
    }
}

fn tower() -> Contender {
    let service = tower::service_fn(|req: u64| ready(Ok::<u64, Failure>(req)));
    let mut retry = tower::retry::Retry::new(Attempts(2), service);
    Contender::new(
        "tower",
        Role::Peer,
        single(move || {
            let retry = &mut retry;
            let answer = poll_ready(async move {
                retry.ready().await.expect("always ready").call(black_box(7)).await
            });
            black_box(answer).expect("ready");
        }),
    )
}
