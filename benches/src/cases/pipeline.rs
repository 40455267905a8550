//! A pipeline of timeout + concurrency limit + circuit breaker + retry around a ready
//! future, beside the same four primitives each run alone around its own ready future:
//! stacking them must cost no more than their sum (+10 %).
//!
//! The "kompoz parts" contender runs, per operation, `kompoz::timeout`,
//! `Semaphore::run`, `CircuitBreaker::call` and `RetryPolicy::retry`, each around its own
//! ready future; the pipeline runs one ready future through all four. The parts' row
//! therefore carries three more bare futures than the pipeline's (each about as cheap as
//! the `bare` row), which makes the target a little easier, by that much.

use std::time::Duration;

use kompoz::breaker::CircuitBreaker;
use kompoz::limit::Semaphore;
use kompoz::pipeline::{BreakerLayer, LimitLayer, Pipeline, RetryLayer, TimeoutLayer};
use kompoz::{StdClock, timeout};

use super::breaker::{Failure, ready_ok};
use super::retry::policy;
use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, poll_ready, single};

/// The time limit: long enough never to pass.
const LIMIT: Duration = Duration::from_secs(60);

/// The pipeline case.
pub fn stacked() -> Case {
    Case {
        id: "pipeline_stack",
        label: "pipeline: timeout + limit + breaker + retry around a ready future (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 1.1, of: Reference::Peer("kompoz parts") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(), kompoz(), parts()],
    }
}

fn bare() -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        single(|| {
            std::hint::black_box(poll_ready(ready_ok())).expect("ready");
        }),
    )
}

/// The pipeline measured: timeout, limit, breaker and retry, outermost first, around a
/// call of [`ready_ok`]'s type. (Its semaphore and breaker are leaked: a few hundred bytes
/// per contender made.)
#[allow(clippy::type_complexity)]
pub fn stacked_pipeline() -> Pipeline<
    u64,
    Failure,
    StdClock,
    (
        TimeoutLayer,
        (
            LimitLayer<&'static Semaphore>,
            (BreakerLayer<&'static CircuitBreaker<StdClock>>, (RetryLayer, ())),
        ),
    ),
> {
    let semaphore: &'static Semaphore = Box::leak(Box::new(Semaphore::new(64).expect("valid")));
    let breaker: &'static CircuitBreaker<StdClock> =
        Box::leak(Box::new(CircuitBreaker::builder().build().expect("the defaults")));
    Pipeline::<u64, Failure>::new().timeout(LIMIT).limit(semaphore).breaker(breaker).retry(policy())
}

fn kompoz() -> Contender {
    let pipeline = stacked_pipeline();
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || {
            std::hint::black_box(poll_ready(pipeline.call(ready_ok))).expect("ready");
        }),
    )
}

fn parts() -> Contender {
    let semaphore = Semaphore::new(64).expect("valid");
    let breaker = CircuitBreaker::builder().build().expect("the defaults");
    let policy = policy();
    Contender::new(
        "kompoz parts",
        Role::Peer,
        single(move || {
            let timed = poll_ready(timeout(StdClock, LIMIT, ready_ok())).expect("in time");
            let limited = poll_ready(semaphore.run(ready_ok())).expect("a permit");
            let guarded = poll_ready(breaker.call(ready_ok())).expect("closed");
            let retried = poll_ready(policy.retry(StdClock, ready_ok));
            std::hint::black_box((
                timed.expect("ready"),
                limited.expect("ready"),
                guarded,
                retried,
            ))
            .3
            .expect("ready");
        }),
    )
}
