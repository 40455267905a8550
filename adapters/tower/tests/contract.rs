//! tower's contract, kept: what `poll_ready` reserves, clones, dropped response futures,
//! rejections from `call`, errors that box and can be told apart. Deterministic: requests
//! are held open by hand and time is a `ManualClock`.

use std::error::Error as _;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::oneshot;
use kompoz::breaker::{CallError, CircuitBreaker, CircuitState, Verdict};
use kompoz::limit::{AcquireError, Semaphore};
use kompoz::{Elapsed, ManualClock};
use kompoz_tower::{
    BreakerLayer, ConcurrencyError, LimitLayer, Rejection, TimeoutError, TimeoutLayer, rejection,
};
use tower::{BoxError, Layer, Service, ServiceBuilder, service_fn};

fn poll<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn poll_ready<S: Service<R>, R>(service: &mut S) -> Poll<Result<(), S::Error>> {
    service.poll_ready(&mut Context::from_waker(Waker::noop()))
}

/// A service whose responses wait until the test releases them, counting its calls.
#[derive(Clone, Default)]
struct Held {
    calls: Arc<AtomicUsize>,
}

impl Service<oneshot::Receiver<u32>> for Held {
    type Response = u32;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, release: oneshot::Receiver<u32>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { release.await.map_err(std::io::Error::other) })
    }
}

fn held_request() -> (oneshot::Sender<u32>, oneshot::Receiver<u32>) {
    oneshot::channel()
}

#[test]
fn poll_ready_reserves_a_permit_that_the_next_call_uses() {
    let layer = LimitLayer::new(2).unwrap();
    let semaphore = layer.semaphore().clone();
    let mut service = layer.layer(Held::default());
    assert!(matches!(poll_ready(&mut service), Poll::Ready(Ok(()))));
    assert_eq!(semaphore.available_permits(), 1, "reserved in poll_ready");
    assert!(matches!(poll_ready(&mut service), Poll::Ready(Ok(()))));
    assert_eq!(semaphore.available_permits(), 1, "ready twice reserves once");
    let (release, request) = held_request();
    let mut response = pin!(service.call(request));
    assert_eq!(semaphore.available_permits(), 1, "the call took the reserved permit");
    assert!(poll(response.as_mut()).is_pending());
    release.send(7).unwrap();
    assert!(matches!(poll(response.as_mut()), Poll::Ready(Ok(7))));
    assert_eq!(semaphore.available_permits(), 2, "released when the response is ready");
}

#[test]
fn a_permit_reserved_and_never_used_is_given_back_with_the_service() {
    let layer = LimitLayer::new(1).unwrap();
    let semaphore = layer.semaphore().clone();
    let mut service = layer.layer(Held::default());
    assert!(poll_ready(&mut service).is_ready());
    assert_eq!(semaphore.available_permits(), 0);
    drop(service);
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(semaphore.stats().in_flight, 0);
}

#[test]
fn each_clone_reserves_its_own_permit() {
    let layer = LimitLayer::new(2).unwrap().shed();
    let semaphore = layer.semaphore().clone();
    let mut first = layer.layer(Held::default());
    assert!(poll_ready(&mut first).is_ready());
    let mut second = first.clone();
    assert_eq!(semaphore.available_permits(), 1, "the clone took nothing");
    assert!(poll_ready(&mut second).is_ready());
    assert_eq!(semaphore.available_permits(), 0);
    let mut third = second.clone();
    assert!(poll_ready(&mut third).is_ready(), "shedding: ready, the call rejects");
    let (_release, request) = held_request();
    let rejected = poll(pin!(third.call(request)));
    assert!(matches!(
        rejected,
        Poll::Ready(Err(ConcurrencyError::Rejected(AcquireError::NoPermits)))
    ));
    drop((first, second));
    assert_eq!(semaphore.available_permits(), 2);
}

#[test]
fn a_dropped_response_future_gives_its_permit_back() {
    let held = Held::default();
    let layer = LimitLayer::new(1).unwrap();
    let semaphore = layer.semaphore().clone();
    let mut service = layer.layer(held.clone());
    assert!(poll_ready(&mut service).is_ready());
    let (_release, request) = held_request();
    let mut response = Box::pin(service.call(request));
    assert!(poll(response.as_mut()).is_pending());
    assert_eq!(semaphore.available_permits(), 0);
    drop(response); // the client went away
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(held.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_shed_request_never_reaches_the_inner_service() {
    let held = Held::default();
    let layer = LimitLayer::new(1).unwrap().shed();
    let semaphore = layer.semaphore().clone();
    let mut service = layer.layer(held.clone());
    let _taken = semaphore.try_acquire().unwrap();
    assert!(matches!(poll_ready(&mut service), Poll::Ready(Ok(()))));
    let (_release, request) = held_request();
    let answer = poll(pin!(service.call(request)));
    assert!(matches!(
        answer,
        Poll::Ready(Err(ConcurrencyError::Rejected(AcquireError::NoPermits)))
    ));
    assert_eq!(held.calls.load(Ordering::SeqCst), 0);
    assert_eq!(semaphore.stats().total_rejected, 1);
}

#[test]
fn waiting_for_a_permit_is_back_pressure_in_line() {
    let layer = LimitLayer::new(1).unwrap();
    let semaphore = layer.semaphore().clone();
    let mut first = layer.layer(Held::default());
    let mut second = first.clone();
    assert!(poll_ready(&mut first).is_ready());
    assert!(poll_ready(&mut second).is_pending(), "no permit: not ready");
    assert_eq!(semaphore.stats().waiting, 1);
    assert_eq!(semaphore.stats().total_rejected, 0, "waiting is not a rejection");
    drop(first); // its unused reservation goes to the waiter
    assert!(matches!(poll_ready(&mut second), Poll::Ready(Ok(()))));
    assert_eq!(semaphore.stats().waiting, 0);
    // A service dropped while waiting leaves the line cleanly.
    let mut third = second.clone();
    assert!(poll_ready(&mut third).is_pending());
    drop(third);
    assert_eq!(semaphore.stats().waiting, 0);
    drop(second);
    assert_eq!(semaphore.available_permits(), 1);
}

#[test]
fn a_maximum_wait_becomes_a_rejection_from_call() {
    let clock = ManualClock::new();
    let layer = LimitLayer::new(1).unwrap().max_wait(clock.clone(), Duration::from_millis(50));
    let semaphore = layer.semaphore().clone();
    let held = Held::default();
    let mut service = layer.layer(held.clone());
    let taken = semaphore.try_acquire().unwrap();
    assert!(poll_ready(&mut service).is_pending());
    clock.advance(Duration::from_millis(49));
    assert!(poll_ready(&mut service).is_pending());
    clock.advance(Duration::from_millis(1));
    assert!(matches!(poll_ready(&mut service), Poll::Ready(Ok(()))));
    assert_eq!(semaphore.stats().waiting, 0, "left the line");
    let (_release, request) = held_request();
    let answer = poll(pin!(service.call(request)));
    assert!(matches!(
        answer,
        Poll::Ready(Err(ConcurrencyError::Rejected(AcquireError::WaitElapsed)))
    ));
    assert_eq!(held.calls.load(Ordering::SeqCst), 0);
    drop(taken);
    // The next request gets the permit at once.
    assert!(matches!(poll_ready(&mut service), Poll::Ready(Ok(()))));
    assert_eq!(semaphore.available_permits(), 0);
}

#[test]
fn call_without_poll_ready_takes_a_free_permit_or_rejects_without_panicking() {
    let layer = LimitLayer::new(1).unwrap();
    let semaphore = layer.semaphore().clone();
    let mut service = layer.layer(Held::default());
    let (release, request) = held_request();
    let mut first = pin!(service.call(request));
    assert_eq!(semaphore.available_permits(), 0);
    let (_release, request) = held_request();
    let second = poll(pin!(service.call(request)));
    assert!(matches!(
        second,
        Poll::Ready(Err(ConcurrencyError::Rejected(AcquireError::NoPermits)))
    ));
    release.send(1).unwrap();
    assert!(matches!(poll(first.as_mut()), Poll::Ready(Ok(1))));
}

fn manual_breaker(clock: &ManualClock) -> Arc<CircuitBreaker<ManualClock>> {
    Arc::new(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .recovery_timeout(Duration::from_secs(10))
            .build_with(clock.clone())
            .unwrap(),
    )
}

fn open_then_half_open(clock: &ManualClock, breaker: &CircuitBreaker<ManualClock>) {
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(10));
}

#[test]
fn the_breaker_reserves_nothing_in_poll_ready() {
    let clock = ManualClock::new();
    let breaker = manual_breaker(&clock);
    open_then_half_open(&clock, &breaker);
    let mut service = BreakerLayer::new(breaker.clone()).layer(Held::default());
    for _ in 0..3 {
        assert!(poll_ready(&mut service).is_ready());
    }
    let mut clone = service.clone();
    assert!(poll_ready(&mut clone).is_ready());
    drop((service, clone));
    assert_eq!(breaker.stats().probes_in_flight, 0);
    assert_eq!(breaker.stats().total_calls, 1, "only the failure that opened it");
}

#[test]
fn a_dropped_probe_response_gives_its_probe_slot_back() {
    let clock = ManualClock::new();
    let breaker = manual_breaker(&clock);
    open_then_half_open(&clock, &breaker);
    let held = Held::default();
    let mut service = BreakerLayer::new(breaker.clone()).layer(held.clone());
    assert!(poll_ready(&mut service).is_ready());
    let (_release, request) = held_request();
    let mut probe = Box::pin(service.call(request));
    assert!(poll(probe.as_mut()).is_pending());
    assert_eq!(breaker.stats().probes_in_flight, 1);
    // Half-open with its one probe slot taken: the next request is refused.
    let (_release2, request) = held_request();
    let refused = poll(pin!(service.call(request)));
    assert!(matches!(refused, Poll::Ready(Err(CallError::Rejected(_)))));
    drop(probe); // cancelled
    let stats = breaker.stats();
    assert_eq!((stats.probes_in_flight, stats.abandoned_calls), (0, 1));
    // The slot is free again: the next probe closes the circuit.
    let (release, request) = held_request();
    let mut probe = pin!(service.call(request));
    release.send(200).unwrap();
    assert!(matches!(poll(probe.as_mut()), Poll::Ready(Ok(200))));
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(held.calls.load(Ordering::SeqCst), 2, "the refused request never ran");
}

#[test]
fn the_classifier_decides_on_the_whole_result() {
    let clock = ManualClock::new();
    let breaker =
        Arc::new(CircuitBreaker::builder().failure_threshold(2).build_with(clock).unwrap());
    let server_errors = |result: &Result<u16, std::io::Error>| match result {
        Ok(status) if *status >= 500 => Verdict::Failure,
        Ok(429) => Verdict::Ignore,
        Ok(_) => Verdict::Success,
        Err(_) => Verdict::Failure,
    };
    let mut service = ServiceBuilder::new()
        .layer(BreakerLayer::new(breaker.clone()).classify(server_errors))
        .service(service_fn(|status: u16| async move { Ok::<_, std::io::Error>(status) }));
    let mut call = |status| {
        assert!(poll_ready(&mut service).is_ready());
        match poll(pin!(service.call(status))) {
            Poll::Ready(answer) => answer,
            Poll::Pending => panic!("the inner service is ready at once"),
        }
    };
    assert!(matches!(call(404), Ok(404)));
    assert!(matches!(call(429), Ok(429)));
    assert!(matches!(call(500), Ok(500)));
    assert_eq!(breaker.stats().failure_count, 1);
    assert!(matches!(call(503), Ok(503)));
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(matches!(call(200), Err(CallError::Rejected(_))));
    let stats = breaker.stats();
    assert_eq!((stats.success_count, stats.total_failures, stats.abandoned_calls), (1, 2, 1));
}

#[test]
fn a_panicking_classifier_counts_as_neither() {
    let breaker = Arc::new(CircuitBreaker::builder().failure_threshold(1).build().unwrap());
    let mut service = BreakerLayer::new(breaker.clone())
        .classify(|_: &Result<u32, std::io::Error>| -> Verdict { panic!("classifier bug") })
        .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = poll(pin!(service.call(1)));
    }));
    assert!(panicked.is_err());
    let stats = breaker.stats();
    assert_eq!(
        (stats.state, stats.abandoned_calls, stats.total_failures),
        (CircuitState::Closed, 1, 0)
    );
}

#[test]
fn a_timeout_cancels_the_inner_response() {
    let clock = ManualClock::new();
    let held = Held::default();
    let mut service = TimeoutLayer::new(clock.clone(), Duration::from_millis(100)).layer(held);
    let (release, request) = held_request();
    let mut response = pin!(service.call(request));
    assert!(poll(response.as_mut()).is_pending());
    clock.advance(Duration::from_millis(100));
    assert!(matches!(poll(response.as_mut()), Poll::Ready(Err(TimeoutError::Elapsed(_)))));
    assert!(release.is_canceled(), "the inner response future was dropped");
}

#[test]
fn a_ready_response_makes_no_timer() {
    let clock = ManualClock::new();
    let mut service = TimeoutLayer::new(clock.clone(), Duration::from_millis(1))
        .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    assert!(matches!(poll(pin!(service.call(3))), Poll::Ready(Ok(3))));
    assert_eq!(clock.pending_timers(), 0);
}

/// One stack: breaker(timeout(limit(held))).
#[test]
fn every_rejection_boxes_and_is_told_apart_from_the_inner_error() {
    let clock = ManualClock::new();
    let breaker = manual_breaker(&clock);
    let limit = LimitLayer::new(1).unwrap().shed();
    let semaphore: Arc<Semaphore> = limit.semaphore().clone();
    let mut service = ServiceBuilder::new()
        .layer(BreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(clock.clone(), Duration::from_millis(100)))
        .layer(limit)
        .service(Held::default());
    let boxed = |error: CallError<TimeoutError<ConcurrencyError<std::io::Error>>>| -> BoxError {
        error.into()
    };

    // The inner service's own error: no rejection, and it is found by downcasting to the
    // stack's error (the layers are transparent for it: its message, once, then its own
    // source, of which this one has none).
    assert!(poll_ready(&mut service).is_ready());
    let (release, request) = held_request();
    drop(release);
    let Poll::Ready(Err(failed)) = poll(pin!(service.call(request))) else { panic!("failed") };
    let failed = boxed(failed);
    assert_eq!(rejection(&*failed), None);
    let Some(CallError::Inner(TimeoutError::Inner(ConcurrencyError::Inner(io)))) =
        failed.downcast_ref::<CallError<TimeoutError<ConcurrencyError<std::io::Error>>>>()
    else {
        panic!("the stack's error, with the service's inside: {failed:?}")
    };
    assert_eq!(failed.to_string(), io.to_string());
    assert_eq!(failed.source().map(|e| e.to_string()), io.source().map(|e| e.to_string()));
    breaker.reset();

    // Shed by the limit.
    let taken = semaphore.try_acquire().unwrap();
    assert!(poll_ready(&mut service).is_ready());
    let Poll::Ready(Err(shed)) = poll(pin!(service.call(held_request().1))) else { panic!() };
    assert_eq!(rejection(&*boxed(shed)), Some(Rejection::Limit(AcquireError::NoPermits)));
    drop(taken);
    // With the default classifier, a rejection by a layer inside the breaker is a failure
    // of the call like any other.
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker.reset();

    // Timed out.
    assert!(poll_ready(&mut service).is_ready());
    let (_release, request) = held_request();
    let mut slow = pin!(service.call(request));
    assert!(poll(slow.as_mut()).is_pending());
    clock.advance(Duration::from_millis(100));
    let Poll::Ready(Err(late)) = poll(slow.as_mut()) else { panic!("timed out") };
    let late = boxed(late);
    assert_eq!(rejection(&*late), Some(Rejection::TimedOut(Elapsed::new())));
    assert_eq!(rejection(&*late).map(|r| r.http_status()), Some(504));

    // The timeout counted as a failure: the circuit is open.
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(poll_ready(&mut service).is_ready());
    let Poll::Ready(Err(open)) = poll(pin!(service.call(held_request().1))) else { panic!() };
    let open = rejection(&*boxed(open));
    assert!(matches!(open, Some(Rejection::Circuit(_))));
    assert_eq!(open.map(|r| r.http_status()), Some(503));
    // The refused request never reached the limit's `call`: the permit that the limit
    // reserved in `poll_ready` stays with the service for its next request, and goes back
    // when the service is dropped.
    assert_eq!(semaphore.available_permits(), 0);
    drop(service);
    assert_eq!(semaphore.available_permits(), 1);
}

/// A service that is not ready until told, then fails its readiness once if told to.
#[derive(Clone, Default)]
struct Gate {
    state: Arc<AtomicUsize>, // 0 not ready, 1 ready, 2 broken
}

impl Service<u32> for Gate {
    type Response = u32;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u32, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.state.load(Ordering::SeqCst) {
            0 => Poll::Pending,
            1 => Poll::Ready(Ok(())),
            _ => Poll::Ready(Err(std::io::Error::other("broken"))),
        }
    }

    fn call(&mut self, n: u32) -> Self::Future {
        std::future::ready(Ok(n))
    }
}

#[test]
fn the_permit_waits_with_the_service_for_the_inner_readiness() {
    let gate = Gate::default();
    let layer = LimitLayer::new(1).unwrap();
    let semaphore = layer.semaphore().clone();
    let mut service = layer.layer(gate.clone());
    assert!(poll_ready(&mut service).is_pending(), "the inner service is not ready");
    assert_eq!(semaphore.available_permits(), 0, "the permit is reserved meanwhile");
    gate.state.store(1, Ordering::SeqCst);
    assert!(matches!(poll_ready(&mut service), Poll::Ready(Ok(()))));
    assert_eq!(semaphore.stats().total_acquired, 1, "reserved once, not once per poll");
    drop(service);
    assert_eq!(semaphore.available_permits(), 1);
}

#[test]
fn the_inner_services_readiness_errors_pass_through_every_layer() {
    let gate = Gate { state: Arc::new(AtomicUsize::new(2)) };
    let clock = ManualClock::new();
    let mut service = ServiceBuilder::new()
        .layer(BreakerLayer::new(manual_breaker(&clock)))
        .layer(TimeoutLayer::new(clock.clone(), Duration::from_secs(1)))
        .layer(LimitLayer::new(1).unwrap())
        .service(gate);
    match poll_ready(&mut service) {
        Poll::Ready(Err(CallError::Inner(TimeoutError::Inner(ConcurrencyError::Inner(error))))) => {
            assert_eq!(error.to_string(), "broken");
        }
        _ => panic!("the inner error, wrapped once per layer"),
    }
}
