//! The pipeline on the manual clock: layers run in the order written, every failure and
//! rejection lands in its variant of the one flat `Error`, closures need no annotations,
//! and the futures are `Send` for spawning.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::{CircuitBreaker, CircuitState, Verdict};
use kompoz::limit::{AcquireError, Semaphore};
use kompoz::pipeline::Pipeline;
use kompoz::retry::{Hedge, RetryBudget, RetryPolicy};
use kompoz::{Clock, Elapsed, Error, Instant, ManualClock, Rejection, Sleep};

const MS: Duration = Duration::from_millis(1);

fn drive<F: Future>(clock: &ManualClock, future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let next = clock.next_deadline().expect("waiting with no timer");
        clock.advance(next - clock.now());
    }
}

/// An HTTP-like error: a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Status(u16);

/// A call that takes `ms` of manual time and answers `answer`, counting its runs.
fn slow<'a>(
    clock: &'a ManualClock,
    runs: &'a Cell<u32>,
    ms: u64,
    answer: Result<u32, Status>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<u32, Status>> + 'a>> + 'a {
    move || {
        runs.set(runs.get() + 1);
        let timer = clock.clone();
        Box::pin(async move {
            timer.sleep(MS * ms as u32).await;
            answer
        })
    }
}

#[test]
fn a_timeout_inside_the_retry_bounds_each_attempt() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .retry(RetryPolicy::builder().max_attempts(3).build().unwrap())
        .timeout(MS * 50);
    let result = drive(&clock, pipeline.call(slow(&clock, &runs, 80, Ok(1))));
    assert_eq!(result, Err(Error::TimedOut(Elapsed::new())));
    assert_eq!(runs.get(), 3, "each attempt had its own 50 ms");
    assert_eq!(clock.now(), Instant::ZERO + MS * 150);
}

#[test]
fn a_timeout_outside_the_retry_bounds_all_attempts() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .timeout(MS * 100)
        .retry(RetryPolicy::builder().max_attempts(3).build().unwrap());
    let result = drive(&clock, pipeline.call(slow(&clock, &runs, 80, Err(Status(503)))));
    assert_eq!(result, Err(Error::TimedOut(Elapsed::new())));
    assert_eq!(runs.get(), 2, "the second attempt was cut at 100 ms");
    assert_eq!(clock.now(), Instant::ZERO + MS * 100);
    assert_eq!(clock.pending_timers(), 0, "the cut attempt's timer is gone");
}

#[test]
fn every_failure_and_rejection_lands_in_its_variant() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    // The call's own error.
    let bare = Pipeline::<u32, Status, _>::with_timer(clock.clone());
    let own = drive(&clock, bare.call(slow(&clock, &runs, 0, Err(Status(500)))));
    assert_eq!(own, Err(Error::Inner(Status(500))));
    // A concurrency limit with no permit free and no wait.
    let none_free = Semaphore::new(0).unwrap();
    let limited =
        Pipeline::<u32, Status, _>::with_timer(clock.clone()).limit(&none_free).max_wait(MS * 5);
    let rejected = drive(&clock, limited.call(slow(&clock, &runs, 0, Ok(1))));
    assert_eq!(rejected, Err(Error::Rejected(Rejection::Limit(AcquireError::WaitElapsed))));
    none_free.close();
    let closed = drive(&clock, limited.call(slow(&clock, &runs, 0, Ok(1))));
    assert_eq!(closed, Err(Error::Rejected(Rejection::Limit(AcquireError::Closed))));
    // An open circuit.
    let breaker = CircuitBreaker::builder().build_with(clock.clone()).unwrap();
    breaker.force_open();
    let guarded = Pipeline::<u32, Status, _>::with_timer(clock.clone()).breaker(&breaker);
    let open = drive(&clock, guarded.call(slow(&clock, &runs, 0, Ok(1))));
    assert!(
        matches!(open, Err(Error::Rejected(Rejection::Circuit(o))) if o.state == CircuitState::Open)
    );
    // A time limit.
    let timed = Pipeline::<u32, Status, _>::with_timer(clock.clone()).timeout(MS);
    let late = drive(&clock, timed.call(slow(&clock, &runs, 5, Ok(1))));
    assert_eq!(late, Err(Error::TimedOut(Elapsed::new())));
    assert_eq!(runs.get(), 2, "rejected calls never ran");
}

#[test]
fn a_classifier_counting_only_5xx_keeps_the_circuit_closed_on_4xx() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let breaker = CircuitBreaker::builder().failure_threshold(2).build_with(clock.clone()).unwrap();
    // No annotation on `outcome`: its type comes from the pipeline's `u32, Status`.
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .breaker(&breaker)
        .classify(|outcome| match outcome {
            Err(Error::Inner(Status(code))) if *code >= 500 => Verdict::Failure,
            Err(Error::TimedOut(_)) => Verdict::Failure,
            _ => Verdict::Success,
        });
    for _ in 0..5 {
        let _ = drive(&clock, pipeline.call(slow(&clock, &runs, 0, Err(Status(404)))));
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    for _ in 0..2 {
        let _ = drive(&clock, pipeline.call(slow(&clock, &runs, 0, Err(Status(503)))));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[test]
fn a_limit_rejection_inside_a_breaker_is_not_a_failure() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let breaker = CircuitBreaker::builder().failure_threshold(1).build_with(clock.clone()).unwrap();
    let none_free = Semaphore::new(0).unwrap();
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .breaker(&breaker)
        .limit(&none_free)
        .max_wait(Duration::ZERO);
    let rejected = drive(&clock, pipeline.call(slow(&clock, &runs, 0, Ok(1))));
    assert!(rejected.unwrap_err().is_rejected());
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.stats().abandoned_calls, 1, "counted as neither");
}

#[test]
fn retry_with_a_budget_and_on_retry_infers_its_closures() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let heard = Cell::new(0);
    let budget = RetryBudget::builder().build_with(clock.clone()).unwrap();
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .retry(RetryPolicy::builder().max_attempts(4).backoff(MS * 10).build().unwrap())
        .retry_if(|error| matches!(error, Error::Inner(Status(500..)) | Error::TimedOut(_)))
        .on_retry(|attempt, error, delay| {
            assert_eq!((error, delay), (&Error::Inner(Status(503)), MS * 10));
            heard.set(attempt);
        })
        .budget(&budget);
    let result = drive(&clock, pipeline.call(slow(&clock, &runs, 0, Err(Status(503)))));
    assert_eq!((result, runs.get(), heard.get()), (Err(Error::Inner(Status(503))), 4, 3));
    runs.set(0);
    let not_found = drive(&clock, pipeline.call(slow(&clock, &runs, 0, Err(Status(404)))));
    assert_eq!((not_found, runs.get()), (Err(Error::Inner(Status(404))), 1), "4xx not retried");
}

#[test]
fn a_fallback_turns_any_error_into_a_value() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let breaker = CircuitBreaker::builder().build_with(clock.clone()).unwrap();
    breaker.force_open();
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .fallback(|error| if error.is_rejected() { 0 } else { 1 })
        .breaker(&breaker);
    assert_eq!(drive(&clock, pipeline.call(slow(&clock, &runs, 0, Ok(7)))), Ok(0));
    breaker.reset();
    assert_eq!(drive(&clock, pipeline.call(slow(&clock, &runs, 0, Err(Status(500))))), Ok(1));
    assert_eq!(drive(&clock, pipeline.call(slow(&clock, &runs, 0, Ok(7)))), Ok(7));
}

#[test]
fn a_hedged_pipeline_takes_the_faster_attempt() {
    let clock = ManualClock::new();
    let n = Cell::new(0);
    let hedge = Hedge::builder().delay(MS * 20).build().unwrap();
    let pipeline =
        Pipeline::<u32, Status, _>::with_timer(clock.clone()).hedge(&hedge).timeout(MS * 500);
    let call = || {
        n.set(n.get() + 1);
        let (k, timer) = (n.get(), clock.clone());
        async move {
            timer.sleep(if k == 1 { MS * 1000 } else { MS * 5 }).await;
            Ok::<u32, Status>(k)
        }
    };
    assert_eq!(drive(&clock, pipeline.call(call)), Ok(2));
    assert_eq!(clock.now(), Instant::ZERO + MS * 25);
    assert_eq!(clock.pending_timers(), 0);
}

#[test]
fn one_breaker_guards_several_pipelines_through_an_arc() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let breaker =
        Arc::new(CircuitBreaker::builder().failure_threshold(2).build_with(clock.clone()).unwrap());
    let a = Pipeline::<u32, Status, _>::with_timer(clock.clone()).breaker(breaker.clone());
    let b = Pipeline::<String, (), _>::with_timer(clock.clone()).breaker(breaker.clone());
    let _ = drive(&clock, a.call(slow(&clock, &runs, 0, Err(Status(500)))));
    let _ = drive(&clock, b.call(|| async { Err::<String, ()>(()) }));
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(
        drive(&clock, b.call(|| async { Ok::<_, ()>(String::new()) })).unwrap_err().is_rejected()
    );
}

#[test]
fn pipeline_futures_are_send_for_spawning() {
    fn assert_send<F: Future + Send>(_: &F) {}
    let clock = ManualClock::new();
    let permits = Semaphore::new(4).unwrap();
    let breaker = CircuitBreaker::builder().build_with(clock.clone()).unwrap();
    let budget = RetryBudget::builder().build_with(clock.clone()).unwrap();
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .timeout(MS * 100)
        .retry(RetryPolicy::default())
        .budget(&budget)
        .limit(&permits)
        .breaker(&breaker);
    let call = pipeline.call(|| async { Ok(1) });
    assert_send(&call);
    assert_eq!(drive(&clock, call), Ok(1));
}

#[test]
fn dropping_a_call_midway_gives_back_its_permit_and_probe_slot() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let permits = Semaphore::new(1).unwrap();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(MS)
        .build_with(clock.clone())
        .unwrap();
    breaker.force_open();
    breaker.reset();
    let pipeline =
        Pipeline::<u32, Status, _>::with_timer(clock.clone()).breaker(&breaker).limit(&permits);
    {
        let mut call = pin!(pipeline.call(slow(&clock, &runs, 1000, Ok(1))));
        assert!(call.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(permits.available_permits(), 0);
    }
    assert_eq!(permits.available_permits(), 1);
    assert_eq!(clock.pending_timers(), 0);
    assert_eq!(breaker.stats().abandoned_calls, 1);
}

#[test]
fn a_panicking_classifier_counts_nothing_and_gives_back_the_permit() {
    let clock = ManualClock::new();
    let permits = Semaphore::new(1).unwrap();
    let breaker = CircuitBreaker::builder().failure_threshold(1).build_with(clock.clone()).unwrap();
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .limit(&permits)
        .breaker(&breaker)
        .classify(|_| panic!("a classifier bug"));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(&clock, pipeline.call(|| async { Err(Status(500)) }))
    }));
    assert!(caught.is_err(), "the panic reaches the caller");
    assert_eq!(breaker.state(), CircuitState::Closed, "not counted as a failure");
    assert_eq!(breaker.stats().abandoned_calls, 1);
    assert_eq!(permits.available_permits(), 1, "the permit came back");
}

#[test]
fn a_panicking_on_retry_abandons_the_retry_and_leaves_nothing_running() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let pipeline = Pipeline::<u32, Status, _>::with_timer(clock.clone())
        .retry(RetryPolicy::builder().max_attempts(5).backoff(MS).build().unwrap())
        .on_retry(|_, _, _| panic!("a hook bug"));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(&clock, pipeline.call(slow(&clock, &runs, 0, Err(Status(503)))))
    }));
    assert!(caught.is_err());
    assert_eq!(runs.get(), 1);
    assert_eq!(clock.pending_timers(), 0);
}
