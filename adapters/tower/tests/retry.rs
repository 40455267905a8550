//! The retry layer: attempts, backoffs on a manual clock, readiness for every attempt after
//! the first, the budget, the default that leaves an open circuit alone, cancellation.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::breaker::{CallError, CircuitBreaker, CircuitState};
use kompoz::retry::{RetryBudget, RetryPolicy};
use kompoz_tower::{BreakerLayer, LimitLayer, RetryLayer};
use tower::{Layer, Service, ServiceBuilder};

fn poll<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn ready<S: Service<R>, R>(service: &mut S) {
    match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
}

/// Fails its first `failures` calls, then answers; counts calls and readiness checks.
#[derive(Clone)]
struct Flaky {
    failures: u32,
    calls: Arc<AtomicU32>,
    readied: Arc<AtomicUsize>,
}

impl Flaky {
    fn new(failures: u32) -> Flaky {
        Flaky { failures, calls: Arc::default(), readied: Arc::default() }
    }
}

impl Service<u32> for Flaky {
    type Response = u32;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u32, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.readied.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u32) -> Self::Future {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready(if call <= self.failures {
            Err(std::io::Error::other(format!("attempt {call} failed")))
        } else {
            Ok(n * 10)
        })
    }
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Duration::from_millis(100))
        .exponential(true)
        .build()
        .unwrap()
}

#[test]
fn failed_attempts_are_retried_after_their_backoffs() {
    let clock = ManualClock::new();
    let flaky = Flaky::new(2);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let heard = heard.clone();
        move |attempt: u32, error: &std::io::Error, delay: Duration| {
            heard.lock().unwrap().push((attempt, error.to_string(), delay));
        }
    };
    let mut service = RetryLayer::new(policy(3), clock.clone()).on_retry(hook).layer(flaky.clone());
    ready(&mut service);
    let mut response = pin!(service.call(4));
    assert!(poll(response.as_mut()).is_pending(), "attempt 1 failed: 100 ms");
    clock.advance(Duration::from_millis(99));
    assert!(poll(response.as_mut()).is_pending());
    clock.advance(Duration::from_millis(1));
    assert!(poll(response.as_mut()).is_pending(), "attempt 2 failed: 200 ms");
    clock.advance(Duration::from_millis(200));
    assert!(matches!(poll(response.as_mut()), Poll::Ready(Ok(40))));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(flaky.readied.load(Ordering::SeqCst), 3, "every attempt made ready first");
    let heard = heard.lock().unwrap();
    assert_eq!(
        *heard,
        [
            (1, "attempt 1 failed".to_string(), Duration::from_millis(100)),
            (2, "attempt 2 failed".to_string(), Duration::from_millis(200)),
        ]
    );
}

#[test]
fn the_last_attempts_error_is_the_answer() {
    let clock = ManualClock::new();
    let flaky = Flaky::new(10);
    let mut service = RetryLayer::new(policy(2), clock.clone()).layer(flaky.clone());
    ready(&mut service);
    let mut response = pin!(service.call(1));
    assert!(poll(response.as_mut()).is_pending());
    clock.advance(Duration::from_millis(100));
    let Poll::Ready(Err(error)) = poll(response.as_mut()) else { panic!("gave up") };
    assert_eq!(error.to_string(), "attempt 2 failed");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn an_open_circuit_is_not_retried_by_default() {
    let clock = ManualClock::new();
    let breaker =
        Arc::new(CircuitBreaker::builder().failure_threshold(1).build_with(clock.clone()).unwrap());
    let flaky = Flaky::new(10);
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy(5), clock.clone()))
        .layer(BreakerLayer::new(breaker.clone()))
        .service(flaky.clone());
    ready(&mut service);
    let mut response = pin!(service.call(1));
    // Attempt 1 fails and opens the circuit; attempt 2 is refused; no attempt 3.
    assert!(poll(response.as_mut()).is_pending());
    clock.advance(Duration::from_millis(100));
    assert!(matches!(poll(response.as_mut()), Poll::Ready(Err(CallError::Rejected(_)))));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(clock.pending_timers(), 0);
}

#[test]
fn the_budget_stops_retries_it_cannot_pay_for() {
    let clock = ManualClock::new();
    let budget = Arc::new(
        RetryBudget::builder()
            .retry_percent(0)
            .min_per_second(0)
            .build_with(clock.clone())
            .unwrap(),
    );
    let flaky = Flaky::new(10);
    let mut service =
        RetryLayer::new(policy(5), clock.clone()).budget(budget.clone()).layer(flaky.clone());
    ready(&mut service);
    let answer = poll(pin!(service.call(1)));
    assert!(matches!(answer, Poll::Ready(Err(_))), "no retry allowed: the first error");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_dropped_response_cancels_the_backoff_and_the_permits_go_back() {
    let clock = ManualClock::new();
    let limit = LimitLayer::new(1).unwrap();
    let semaphore = limit.semaphore().clone();
    let flaky = Flaky::new(10);
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy(5), clock.clone()))
        .layer(limit)
        .service(flaky.clone());
    ready(&mut service);
    let mut response = Box::pin(service.call(1));
    assert!(poll(response.as_mut()).is_pending());
    assert_eq!(clock.pending_timers(), 1, "waiting out the backoff");
    drop(response);
    assert_eq!(clock.pending_timers(), 0);
    drop(service);
    assert_eq!(semaphore.available_permits(), 1);
}
