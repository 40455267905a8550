//! The pipeline's rate limit on the manual clock: each call takes a cell (waiting in line,
//! at most a `max_wait`, or not at all), a refusal lands in `Rejected(Rate(..))` with the
//! wait it names, and a retry outside the rate limit waits exactly that long, not its
//! backoff.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::{CircuitBreaker, CircuitState};
use kompoz::pipeline::Pipeline;
use kompoz::rate::{Quota, RateLimited, RateLimiter};
use kompoz::retry::RetryPolicy;
use kompoz::{Clock, Error, Instant, ManualClock, Rejection};

const MS: Duration = Duration::from_millis(1);

/// Polls `future` to the end, moving the clock to the next timer whenever it waits.
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

/// Ten cells a second, one at a time: after a cell, the next conforms 100 ms later.
fn ten_a_second(clock: &ManualClock) -> RateLimiter<ManualClock> {
    let quota = Quota::per_second(10).and_then(|q| q.with_burst(1)).unwrap();
    RateLimiter::new(quota, clock.clone())
}

#[test]
fn a_rate_limit_rejection_is_retried_exactly_after_its_wait() {
    let clock = ManualClock::new();
    let limiter = ten_a_second(&clock);
    let heard = RefCell::new(Vec::new());
    let runs = Cell::new(0);
    // A backoff of a whole second: a retry that waited it would be easy to tell apart.
    let policy = RetryPolicy::builder().max_attempts(3).backoff(MS * 1_000).build().unwrap();
    let pipeline = Pipeline::<u32, (), _>::with_timer(clock.clone())
        .retry(policy)
        .on_retry(|attempt, error, delay| heard.borrow_mut().push((attempt, *error, delay)))
        .rate_limit(&limiter)
        .reject();
    let call = || {
        runs.set(runs.get() + 1);
        let n = runs.get();
        async move { Ok(n) }
    };
    assert_eq!(drive(&clock, pipeline.call(call)), Ok(1), "the first cell conforms");
    clock.advance(MS * 30);
    assert_eq!(drive(&clock, pipeline.call(call)), Ok(2));
    assert_eq!(clock.now(), Instant::ZERO + MS * 100, "retried when the cell conformed");
    let refusal = RateLimited { earliest: Instant::ZERO + MS * 100, wait: MS * 70 };
    assert_eq!(heard.take(), [(1, Error::Rejected(Rejection::Rate(refusal)), MS * 70)]);
    assert_eq!(runs.get(), 2, "a refused call never runs");
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected), (2, 1));
}

#[test]
fn a_waiting_rate_limit_admits_each_call_when_its_cell_conforms() {
    let clock = ManualClock::new();
    let limiter = ten_a_second(&clock);
    let pipeline = Pipeline::<Instant, (), _>::with_timer(clock.clone()).rate_limit(&limiter);
    let started = |clock: &ManualClock| {
        let now = clock.now();
        async move { Ok(now) }
    };
    let starts: Vec<_> =
        (0..3).map(|_| drive(&clock, pipeline.call(|| started(&clock))).unwrap()).collect();
    assert_eq!(starts, [Instant::ZERO, Instant::ZERO + MS * 100, Instant::ZERO + MS * 200]);
    assert_eq!(limiter.stats().rejected, 0, "waiting refuses nothing");
}

#[test]
fn max_wait_refuses_at_once_a_cell_too_far_off_and_waits_for_one_near_enough() {
    let clock = ManualClock::new();
    let limiter = ten_a_second(&clock);
    let impatient =
        Pipeline::<u32, (), _>::with_timer(clock.clone()).rate_limit(&limiter).max_wait(MS * 50);
    let patient =
        Pipeline::<u32, (), _>::with_timer(clock.clone()).rate_limit(&limiter).max_wait(MS * 150);
    assert_eq!(drive(&clock, impatient.call(|| async { Ok(1) })), Ok(1));
    let refused = drive(&clock, impatient.call(|| async { Ok(2) }));
    let wait = RateLimited { earliest: Instant::ZERO + MS * 100, wait: MS * 100 };
    assert_eq!(refused, Err(Error::Rejected(Rejection::Rate(wait))));
    assert_eq!(clock.now(), Instant::ZERO, "refused at once: waiting could only fail");
    assert_eq!(drive(&clock, patient.call(|| async { Ok(3) })), Ok(3));
    assert_eq!(clock.now(), Instant::ZERO + MS * 100);
}

#[test]
fn a_rate_rejection_inside_a_breaker_is_not_a_failure_and_is_not_retried_past_the_deadline() {
    let clock = ManualClock::new();
    let limiter = ten_a_second(&clock);
    let breaker = CircuitBreaker::builder().failure_threshold(1).build_with(clock.clone()).unwrap();
    let policy = RetryPolicy::builder().max_attempts(5).deadline(MS * 50).build().unwrap();
    let pipeline = Pipeline::<u32, (), _>::with_timer(clock.clone())
        .retry(policy)
        .breaker(&breaker)
        .rate_limit(&limiter)
        .reject();
    assert_eq!(drive(&clock, pipeline.call(|| async { Ok(1) })), Ok(1));
    // The next cell is 100 ms off, past the retry's 50 ms deadline: given up at once.
    let result = drive(&clock, pipeline.call(|| async { Ok(2) }));
    assert!(matches!(result, Err(Error::Rejected(Rejection::Rate(_)))), "{result:?}");
    assert_eq!(clock.now(), Instant::ZERO);
    assert_eq!(breaker.state(), CircuitState::Closed, "a refusal says nothing of health");
    assert_eq!(breaker.stats().total_failures, 0);
}

#[test]
fn pipelines_share_one_quota_through_an_arc_and_a_cancelled_wait_gives_back_its_place() {
    let clock = ManualClock::new();
    let limiter = Arc::new(ten_a_second(&clock));
    let reads = Pipeline::<u32, (), _>::with_timer(clock.clone()).rate_limit(limiter.clone());
    let writes = Pipeline::<u32, (), _>::with_timer(clock.clone()).rate_limit(limiter.clone());
    assert_eq!(drive(&clock, reads.call(|| async { Ok(1) })), Ok(1));
    {
        // The write waits in line for the next cell; dropped, it leaves the line.
        let mut waiting = pin!(writes.call(|| async { Ok(2) }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(limiter.stats().waiting, 1);
    }
    assert_eq!((limiter.stats().waiting, clock.pending_timers()), (0, 0));
    clock.advance(MS * 100);
    assert_eq!(drive(&clock, writes.call(|| async { Ok(3) })), Ok(3), "the cell was not lost");
    assert_eq!(clock.now(), Instant::ZERO + MS * 100);
    assert_eq!(limiter.stats().admitted, 2);
}
