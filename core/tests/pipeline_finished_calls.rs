//! A pipeline's call is dropped where it ran as soon as it finishes (each layer empties
//! itself then, which is what makes a finished call's future free to drop), and a call
//! whose drop panics there still gives back its permit and settles nothing.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::breaker::CircuitBreaker;
use kompoz::limit::Semaphore;
use kompoz::pipeline::Pipeline;
use kompoz::retry::RetryPolicy;

/// A call ready at once with `7`, which sets `dropped` when dropped, and panics then if
/// `panic_on_drop`.
struct Tracked<'a> {
    dropped: &'a Cell<bool>,
    panic_on_drop: bool,
}

impl Future for Tracked<'_> {
    type Output = Result<u32, ()>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(7))
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.dropped.set(true);
        if self.panic_on_drop {
            panic!("the call's drop panicked");
        }
    }
}

#[test]
fn the_call_is_dropped_when_it_finishes_not_when_the_pipeline_future_is() {
    let clock = ManualClock::new();
    let permits = Semaphore::new(1).unwrap();
    let breaker = CircuitBreaker::builder().build_with(clock.clone()).unwrap();
    let one_layer_each = [false, true];
    for with_retry in one_layer_each {
        let dropped = Cell::new(false);
        let make = || Tracked { dropped: &dropped, panic_on_drop: false };
        let base = Pipeline::<u32, (), _>::with_timer(clock.clone())
            .timeout(Duration::from_secs(1))
            .limit(&permits)
            .breaker(&breaker);
        let mut cx = Context::from_waker(Waker::noop());
        let answer = if with_retry {
            let pipeline = base.retry(RetryPolicy::builder().build().unwrap());
            let mut call = pin!(pipeline.call(make));
            let answer = call.as_mut().poll(&mut cx);
            assert!(dropped.get(), "dropped as it finished (with a retry)");
            answer
        } else {
            let mut call = pin!(base.call(make));
            let answer = call.as_mut().poll(&mut cx);
            assert!(dropped.get(), "dropped as it finished (without a retry)");
            answer
        };
        assert_eq!(answer, Poll::Ready(Ok(7)));
        assert_eq!(permits.available_permits(), 1, "the permit is back");
    }
    assert_eq!(breaker.stats().success_count, 2);
}

#[test]
fn a_call_whose_drop_panics_gives_its_permit_back_and_settles_nothing() {
    let clock = ManualClock::new();
    let permits = Semaphore::new(1).unwrap();
    let breaker = CircuitBreaker::builder().build_with(clock.clone()).unwrap();
    let dropped = Cell::new(false);
    let pipeline = Pipeline::<u32, (), _>::with_timer(clock.clone())
        .timeout(Duration::from_secs(1))
        .limit(&permits)
        .breaker(&breaker);
    let mut call = Box::pin(pipeline.call(|| Tracked { dropped: &dropped, panic_on_drop: true }));
    let mut cx = Context::from_waker(Waker::noop());
    let polled = catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx)));
    assert!(polled.is_err(), "the drop's panic reaches the caller");
    assert!(dropped.get());
    // The future is dropped after the panic, as an executor would: nothing is dropped twice,
    // the permit comes back, and the unsettled guard counts nothing.
    drop(call);
    assert_eq!(permits.available_permits(), 1);
    let stats = breaker.stats();
    assert_eq!((stats.success_count, stats.failure_count), (0, 0));
    // The breaker and the semaphore still serve the next call.
    let ok = Pipeline::<u32, (), _>::with_timer(clock.clone()).limit(&permits).breaker(&breaker);
    let mut next = pin!(ok.call(|| async { Ok(1) }));
    assert_eq!(next.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
}
