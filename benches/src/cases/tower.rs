//! tower layers: each stack around a `service_fn` whose response is ready at once,
//! driven the way tower drives a service (`poll_ready`, `call`, poll the response), on one
//! thread inside a tokio runtime (tower's own timeout and rate limit read tokio's clock).
//!
//! Peers: tower's own `Timeout`, `ConcurrencyLimit` and `RateLimit` (tower 0.5.3), and
//! tower-resilience's circuit breaker layer (0.13.0) with a like-for-like configuration
//! (5 consecutive failures, 30 s open), which is its cheapest failure model.

use std::fmt::Debug;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use kompoz::breaker::CircuitBreaker;
use kompoz::rate::{Quota, RateLimiter};
use kompoz_tokio::TokioClock;
use kompoz_tower::{BreakerLayer, LimitLayer, RateLimitLayer, TimeoutLayer};
use tower::{Layer, Service, service_fn};

use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, MEASURING, Role, Runner, Sample, poll_ready};

/// The inner service's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure")
    }
}

impl std::error::Error for Failure {}

/// A service whose response is ready at once.
fn ready_service()
-> impl Service<u64, Response = u64, Error = Failure, Future = Ready<Result<u64, Failure>>>
+ Clone
+ Send
+ 'static {
    service_fn(|request: u64| ready(Ok(black_box(request))))
}

/// Timeout layer.
pub fn timeout() -> Case {
    Case {
        id: "tower_timeout",
        label: "tower: timeout layer around a ready service",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("tower") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            let limit = Duration::from_secs(1);
            vec![
                service("bare", Role::Baseline, ready_service),
                service("kompoz", Role::Kompoz, move || {
                    TimeoutLayer::new(TokioClock, limit).layer(ready_service())
                }),
                service("tower", Role::Peer, move || {
                    tower::timeout::TimeoutLayer::new(limit).layer(ready_service())
                }),
            ]
        },
    }
}

/// Concurrency limit layer, uncontended: a permit per request.
pub fn concurrency_limit() -> Case {
    Case {
        id: "tower_limit",
        label: "tower: concurrency limit layer around a ready service, uncontended",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("tower") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            let kompoz = LimitLayer::new(64).expect("a valid limit");
            vec![
                service("bare", Role::Baseline, ready_service),
                service("kompoz", Role::Kompoz, move || kompoz.layer(ready_service())),
                service("tower", Role::Peer, || {
                    tower::limit::ConcurrencyLimitLayer::new(64).layer(ready_service())
                }),
            ]
        },
    }
}

/// Rate limit layer, under its rate.
pub fn rate_limit() -> Case {
    Case {
        id: "tower_rate",
        label: "tower: rate limit layer around a ready service, under the rate",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("tower") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            // Rates no benchmark reaches: every request is under them.
            let rate = tower::limit::RateLimitLayer::new(u64::MAX / 2, Duration::from_secs(3600));
            let quota = Quota::per_second(1_000_000_000)
                .and_then(|quota| quota.with_burst(1_000_000_000))
                .expect("a valid quota");
            let limiter = Arc::new(RateLimiter::new(quota, kompoz::StdClock));
            vec![
                service("bare", Role::Baseline, ready_service),
                service("kompoz", Role::Kompoz, move || {
                    RateLimitLayer::new(limiter).layer(ready_service())
                }),
                service("tower", Role::Peer, move || rate.layer(ready_service())),
            ]
        },
    }
}

/// Circuit breaker layer, closed.
pub fn breaker_closed() -> Case {
    Case {
        id: "tower_breaker_closed",
        label: "tower: circuit breaker layer, closed, around a ready service (overhead over bare)",
        metric: Metric::OverheadOverBaseline,
        target: Target::CostAtMost { max: 1.0 / 3.0, of: Reference::Peer("tower-resilience") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || {
            let breaker = Arc::new(
                CircuitBreaker::builder()
                    .failure_threshold(5)
                    .recovery_timeout(Duration::from_secs(30))
                    .build()
                    .expect("a valid breaker"),
            );
            let resilience = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                .consecutive_failures(5)
                .wait_duration_in_open(Duration::from_secs(30))
                .build()
                .expect("a valid breaker");
            vec![
                service("bare", Role::Baseline, ready_service),
                service("kompoz", Role::Kompoz, move || {
                    BreakerLayer::new(breaker).layer(ready_service())
                }),
                service("tower-resilience", Role::Peer, move || resilience.layer(ready_service())),
            ]
        },
    }
}

/// A contender that drives the service `make` builds as tower does: `poll_ready`,
/// `call` and one poll of the response (which must be ready), `n` times, in the context of
/// a current-thread tokio runtime of its own (also while it is built: tower's rate limit
/// makes a timer).
fn service<S>(name: &'static str, role: Role, make: impl FnOnce() -> S) -> Contender
where
    S: Service<u64, Response = u64> + 'static,
    S::Error: Debug,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut service = {
        let _context = runtime.enter();
        make()
    };
    let run: Runner = Box::new(move |n| {
        let _context = runtime.enter();
        let mut cx = Context::from_waker(Waker::noop());
        MEASURING.store(true, Ordering::SeqCst);
        let start = Instant::now();
        for _ in 0..n {
            match service.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {}
                _ => panic!("the service was not ready"),
            }
            let response = poll_ready(service.call(black_box(7)));
            black_box(response.expect("the request failed"));
        }
        let elapsed = start.elapsed();
        MEASURING.store(false, Ordering::SeqCst);
        Sample { elapsed, ops: n, waited: None }
    });
    Contender::new(name, role, run)
}
