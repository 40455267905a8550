//! The futures that hold others pinned (`Retry`, the pipeline's layers, hedges,
//! `parallel_and`) never move a future they have polled, and drop it where it lies: the
//! pinning contract their `unsafe` projections rely on. Each attempt here is a future
//! that notes its address when first polled and checks it on every later poll and in its
//! `Drop`; every attempt is dropped at some point (cancelled mid-way, or after it
//! failed). Run under miri too: `cargo +nightly miri test -p kompoz --test pinned_attempts`.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::pipeline::Pipeline;
use kompoz::retry::{Hedge, NoBudget, RetryPolicy};
use kompoz::{Clock, ManualClock, Sleep};

const MS: Duration = Duration::from_millis(1);

/// Pending until `clock` reaches `ready_at`, then `result`; checks it never moves once
/// polled, and counts itself alive in `alive`.
struct Anchored<'a> {
    clock: ManualClock,
    timer: Option<Pin<Box<kompoz::time::ManualSleep>>>,
    ready_at: kompoz::Instant,
    result: Result<u32, u32>,
    at: Cell<usize>,
    alive: &'a Cell<i32>,
    _pinned: PhantomPinned,
}

impl<'a> Anchored<'a> {
    fn new(
        clock: &ManualClock,
        after: Duration,
        result: Result<u32, u32>,
        alive: &'a Cell<i32>,
    ) -> Self {
        alive.set(alive.get() + 1);
        Anchored {
            clock: clock.clone(),
            timer: None,
            ready_at: clock.now() + after,
            result,
            at: Cell::new(0),
            alive,
            _pinned: PhantomPinned,
        }
    }

    fn check_place(&self) {
        let here = self as *const Self as usize;
        match self.at.get() {
            0 => self.at.set(here),
            at => assert_eq!(at, here, "a polled future was moved"),
        }
    }
}

impl Future for Anchored<'_> {
    type Output = Result<u32, u32>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.check_place();
        // SAFETY: `timer` is not structurally pinned (it is boxed); nothing is moved out.
        let this = unsafe { self.get_unchecked_mut() };
        if this.clock.now() >= this.ready_at {
            return Poll::Ready(this.result);
        }
        let timer =
            this.timer.get_or_insert_with(|| Box::pin(this.clock.sleep_until(this.ready_at)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(this.result),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Anchored<'_> {
    fn drop(&mut self) {
        if self.at.get() != 0 {
            assert_eq!(self.at.get(), self as *const Self as usize, "dropped somewhere else");
        }
        self.alive.set(self.alive.get() - 1);
    }
}

fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn retry_keeps_each_attempt_in_place_and_drops_it_there() {
    let clock = ManualClock::new();
    let alive = Cell::new(0);
    let n = Cell::new(0u32);
    let policy = RetryPolicy::builder().max_attempts(4).backoff(MS * 10).build().unwrap();
    let make = || {
        n.set(n.get() + 1);
        let result = if n.get() < 3 { Err(n.get()) } else { Ok(n.get()) };
        Anchored::new(&clock, MS * 5, result, &alive)
    };
    let mut retried = pin!(policy.retry(&clock, make));
    // Attempts 1 and 2 fail after 5 ms each, with 10 ms of backoff after each; the third
    // succeeds after its 5 ms.
    for _ in 0..2 {
        assert!(poll(retried.as_mut()).is_pending());
        clock.advance(MS * 5);
        assert!(poll(retried.as_mut()).is_pending(), "failed: backing off");
        clock.advance(MS * 10);
    }
    assert!(poll(retried.as_mut()).is_pending());
    clock.advance(MS * 5);
    assert_eq!(poll(retried.as_mut()), Poll::Ready(Ok(3)));
    assert_eq!(alive.get(), 0);

    // Cancelled while an attempt runs, and while it waits out a backoff.
    for cancel_after in [MS * 2, MS * 7] {
        n.set(0);
        let mut retried = Box::pin(policy.retry(&clock, make));
        assert!(poll(retried.as_mut()).is_pending());
        clock.advance(cancel_after);
        assert!(poll(retried.as_mut()).is_pending());
        drop(retried);
        assert_eq!(alive.get(), 0, "the attempt was dropped with the retry");
    }
}

#[test]
fn a_pipeline_keeps_each_attempt_in_place_through_its_layers() {
    let clock = ManualClock::new();
    let alive = Cell::new(0);
    let n = Cell::new(0u32);
    let permits = kompoz::Semaphore::new(1).unwrap();
    let hedge = Hedge::builder().delay(MS * 2).max_hedges(2).build().unwrap();
    let pipeline = Pipeline::<u32, u32, _>::with_timer(clock.clone())
        .timeout(MS * 200)
        .retry(RetryPolicy::builder().max_attempts(3).backoff(MS).build().unwrap())
        .hedge(&hedge)
        .timeout(MS * 50)
        .limit(&permits);
    let make = || {
        n.set(n.get() + 1);
        let result = if n.get() % 4 == 0 { Ok(n.get()) } else { Err(n.get()) };
        Anchored::new(&clock, MS * 3, result, &alive)
    };
    for cancel_at in [Some(MS), Some(MS * 3), Some(MS * 6), None] {
        n.set(0);
        let mut call = Box::pin(pipeline.call(make));
        let mut elapsed = Duration::ZERO;
        let mut done = false;
        while !done && elapsed < MS * 40 {
            done = poll(call.as_mut()).is_ready();
            if cancel_at == Some(elapsed) {
                break;
            }
            clock.advance(MS);
            elapsed += MS;
        }
        drop(call);
        assert_eq!(alive.get(), 0, "every attempt dropped (cancelled at {cancel_at:?})");
        assert_eq!(permits.available_permits(), 1);
    }
}

#[test]
fn a_hedge_keeps_its_first_attempt_in_place_beside_the_boxed_ones() {
    let clock = ManualClock::new();
    let alive = Cell::new(0);
    let n = Cell::new(0u32);
    let hedge = Hedge::builder().delay(MS * 2).max_hedges(3).build().unwrap();
    let make = || {
        n.set(n.get() + 1);
        Anchored::new(&clock, MS * 10, Err(n.get()), &alive)
    };
    let mut hedged = Box::pin(hedge.run(&clock, &NoBudget, make));
    for _ in 0..5 {
        assert!(poll(hedged.as_mut()).is_pending());
        clock.advance(MS * 2);
    }
    assert_eq!(alive.get(), 4, "the first attempt and three hedges run");
    drop(hedged);
    assert_eq!(alive.get(), 0);
}
