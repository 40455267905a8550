//! Retries, hedges and pipelines polled with wakers that misbehave: a waker whose clone,
//! wake or drop panics, and one whose wake re-enters kompoz (moves the clock, asks the
//! budget). The waker passes through them to what they wait on (attempts, backoff and
//! hedge timers), so these are the user code a retry runs without running it itself.
//!
//! Each test checks that the panic reaches whoever called (the poll or the clock's
//! `advance`), that nothing is left registered or leaked (no timer waiting, every waker
//! handle released), and that the future can then carry on or be dropped cleanly. Run
//! under miri too:
//!
//! ```text
//! cargo +nightly miri test -p kompoz --test retry_hostile_wakers
//! ```

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use kompoz::limit::Semaphore;
use kompoz::pipeline::Pipeline;
use kompoz::retry::{Budget, Hedge, RetryBudget, RetryPolicy};
use kompoz::{Clock, Instant, ManualClock, Sleep};

const MS: Duration = Duration::from_millis(1);

type Hook = Box<dyn Fn() + Send + Sync>;

/// The shared state of one family of hostile waker handles (one and its clones).
#[derive(Default)]
struct Hostile {
    panic_on_clone: AtomicBool,
    panic_on_wake: AtomicBool,
    panic_on_drop: AtomicBool,
    /// Runs on every wake, before panicking if armed: code that re-enters kompoz.
    on_wake: Mutex<Option<Hook>>,
    clones: AtomicUsize,
    wakes: AtomicUsize,
    /// Handles released: dropped, or consumed by a by-value wake.
    released: AtomicUsize,
}

impl Hostile {
    fn arm(flag: &AtomicBool, armed: bool) {
        flag.store(armed, Ordering::SeqCst);
    }

    /// Clones alive (the test's own handle aside, while it lives): zero once everything
    /// that held one let go.
    fn others_alive(&self) -> usize {
        self.clones.load(Ordering::SeqCst) - self.released.load(Ordering::SeqCst)
    }

    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

/// The test's own handle of a family (released by the vtable's drop like any other).
fn hostile() -> (Arc<Hostile>, Waker) {
    let state = Arc::new(Hostile::default());
    let data = Arc::into_raw(state.clone()).cast::<()>();
    // SAFETY: `data` is a strong count of an `Arc<Hostile>`, which every function of
    // VTABLE treats as exactly that.
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
    (state, waker)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_handle);

/// Releases one handle's strong count when dropped, also when a hook or an armed panic
/// unwinds.
struct Release(*const Hostile);

impl Drop for Release {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the strong count owned by the handle being released.
        unsafe {
            (*self.0).released.fetch_add(1, Ordering::SeqCst);
            Arc::decrement_strong_count(self.0);
        }
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live handle's strong count (the caller holds the handle).
    let state = unsafe { &*data.cast::<Hostile>() };
    assert!(!state.panic_on_clone.load(Ordering::SeqCst), "hostile waker: clone panics");
    // SAFETY: as above; the new handle owns the new count.
    unsafe { Arc::increment_strong_count(data.cast::<Hostile>()) };
    state.clones.fetch_add(1, Ordering::SeqCst);
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // The handle is consumed whatever happens below.
    let _release = Release(data.cast());
    // SAFETY: the consumed handle holds its strong count until `_release` drops.
    unsafe { wake_by_ref(data) };
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: `data` is a live handle's strong count.
    let state = unsafe { &*data.cast::<Hostile>() };
    state.wakes.fetch_add(1, Ordering::SeqCst);
    // Taken out while it runs, so that a hook which wakes again does not deadlock here.
    let hook = state.on_wake.lock().unwrap().take();
    if let Some(hook) = hook {
        hook();
        *state.on_wake.lock().unwrap() = Some(hook);
    }
    assert!(!state.panic_on_wake.load(Ordering::SeqCst), "hostile waker: wake panics");
}

unsafe fn drop_handle(data: *const ()) {
    let _release = Release(data.cast());
    // SAFETY: the dropped handle holds its strong count until `_release` drops.
    let state = unsafe { &*data.cast::<Hostile>() };
    assert!(!state.panic_on_drop.load(Ordering::SeqCst), "hostile waker: drop panics");
}

fn poll<F: Future>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

/// A factory whose attempts fail, each after `takes` of manual time, until attempt
/// `ok_at` succeeds; `runs` counts them.
fn flaky<'a>(
    clock: &'a ManualClock,
    runs: &'a Cell<u32>,
    takes: Duration,
    ok_at: u32,
) -> impl Fn() -> Pin<Box<dyn Future<Output = Result<u32, u32>> + 'a>> + 'a {
    move || {
        runs.set(runs.get() + 1);
        let (n, timer) = (runs.get(), clock.clone());
        Box::pin(async move {
            if takes > Duration::ZERO {
                timer.sleep(takes).await;
            }
            if n >= ok_at { Ok(n) } else { Err(n) }
        })
    }
}

fn backoff_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder().max_attempts(attempts).backoff(MS * 10).build().unwrap()
}

#[test]
fn a_clone_that_panics_in_the_backoff_reaches_the_poll_and_the_retry_carries_on() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let policy = backoff_policy(3);
    let (state, waker) = hostile();
    {
        let mut retried = pin!(policy.retry(&clock, flaky(&clock, &runs, Duration::ZERO, 3)));
        Hostile::arm(&state.panic_on_clone, true);
        // Attempt 1 fails at once; registering the backoff's timer clones the waker.
        let panicked = catch_unwind(AssertUnwindSafe(|| poll(retried.as_mut(), &waker)));
        assert!(panicked.is_err(), "the clone's panic reached the poll");
        assert_eq!((runs.get(), clock.pending_timers()), (1, 0), "nothing registered");
        Hostile::arm(&state.panic_on_clone, false);
        // Polled again, it waits out the same backoff (no attempt was skipped or lost).
        assert!(poll(retried.as_mut(), &waker).is_pending());
        assert_eq!((runs.get(), clock.pending_timers()), (1, 1));
        clock.advance(MS * 10);
        assert!(poll(retried.as_mut(), &waker).is_pending(), "attempt 2 failed");
        clock.advance(MS * 10);
        assert_eq!(poll(retried.as_mut(), &waker), Poll::Ready(Ok(3)));
        assert_eq!(clock.now(), Instant::ZERO + MS * 20);
    }
    assert_eq!(clock.pending_timers(), 0);
    assert_eq!(state.others_alive(), 0, "every clone released");
    assert_eq!(state.wakes(), 2, "woken by each backoff's end");
}

#[test]
fn a_retry_dropped_after_its_waker_panicked_leaves_nothing_behind() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let policy = backoff_policy(5);
    let budget = RetryBudget::builder().build_with(clock.clone()).unwrap();
    let (state, waker) = hostile();
    {
        // The attempt itself waits on the clock, so the waker reaches it too.
        let retried = policy.retry(&clock, flaky(&clock, &runs, MS * 5, 9)).budget(&budget);
        let mut retried = pin!(retried);
        assert!(poll(retried.as_mut(), &waker).is_pending());
        assert_eq!(clock.pending_timers(), 1, "attempt 1 waits");
        // Its timer fires, but the wake panics: the panic is the clock's caller's.
        Hostile::arm(&state.panic_on_wake, true);
        let panicked = catch_unwind(AssertUnwindSafe(|| clock.advance(MS * 5)));
        assert!(panicked.is_err(), "the wake's panic reached advance");
        Hostile::arm(&state.panic_on_wake, false);
        // Attempt 1 failed; the backoff's timer registers a clone; then the retry goes.
        assert!(poll(retried.as_mut(), &waker).is_pending());
        assert_eq!(clock.pending_timers(), 1, "the backoff waits");
    }
    assert_eq!(clock.pending_timers(), 0, "the backoff's timer went with the retry");
    assert_eq!(state.others_alive(), 0, "every clone released");
    // The reserve (10 a second over 10 s) and the call's fifth of a retry, less the one
    // retry spent: the call and its retry were counted once each.
    assert_eq!(budget.available(), 99);
    clock.advance(Duration::from_secs(60));
    assert_eq!(runs.get(), 1, "no attempt started after the drop");
}

#[test]
fn a_drop_that_panics_when_the_waker_is_replaced_reaches_the_poll() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let policy = backoff_policy(3);
    let (first, first_waker) = hostile();
    let (second, second_waker) = hostile();
    {
        let mut retried = pin!(policy.retry(&clock, flaky(&clock, &runs, Duration::ZERO, 2)));
        assert!(poll(retried.as_mut(), &first_waker).is_pending(), "in its backoff");
        // Polled from another task: the timer swaps wakers and drops the first one's.
        Hostile::arm(&first.panic_on_drop, true);
        let panicked = catch_unwind(AssertUnwindSafe(|| poll(retried.as_mut(), &second_waker)));
        assert!(panicked.is_err(), "the old waker's drop panicked through the poll");
        Hostile::arm(&first.panic_on_drop, false);
        assert_eq!(first.others_alive(), 0, "the old waker was released all the same");
        assert!(poll(retried.as_mut(), &second_waker).is_pending());
        clock.advance(MS * 10);
        assert_eq!(second.wakes(), 1, "the new task is the one woken");
        assert_eq!(poll(retried.as_mut(), &second_waker), Poll::Ready(Ok(2)));
    }
    assert_eq!((runs.get(), clock.pending_timers()), (2, 0));
    assert_eq!(second.others_alive(), 0);
}

#[test]
fn a_wake_that_reenters_the_clock_and_the_budget_deadlocks_nothing() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let policy = backoff_policy(4);
    let budget = Arc::new(RetryBudget::builder().build_with(clock.clone()).unwrap());
    let (state, waker) = hostile();
    let (inner_clock, inner_budget) = (clock.clone(), budget.clone());
    // On every wake: move the clock on (firing timers from inside the clock's own
    // wake-ups) and count a call in the budget and read it back (its lock).
    *state.on_wake.lock().unwrap() = Some(Box::new(move || {
        inner_clock.advance(MS);
        inner_budget.deposit();
        let _ = inner_budget.available();
    }));
    let result = {
        let flaky = flaky(&clock, &runs, Duration::ZERO, 4);
        let mut retried = pin!(policy.retry(&clock, flaky).budget(budget.as_ref()));
        loop {
            if let Poll::Ready(result) = poll(retried.as_mut(), &waker) {
                break result;
            }
            let next = clock.next_deadline().expect("waiting on a timer");
            clock.advance(next.saturating_duration_since(clock.now()));
        }
    };
    assert_eq!(result, Ok(4), "every attempt ran, the last one succeeded");
    assert!(state.wakes() >= 3, "woken for each backoff");
    assert_eq!((clock.pending_timers(), state.others_alive()), (0, 0));
}

#[test]
fn a_hedge_whose_waker_panics_can_be_dropped_and_cancels_every_attempt() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let hedge = Hedge::builder().delay(MS * 10).max_hedges(2).build().unwrap();
    let budget = RetryBudget::builder().build_with(clock.clone()).unwrap();
    let (state, waker) = hostile();
    {
        let hedged = hedge.run(&clock, &budget, flaky(&clock, &runs, MS * 100, 1));
        let mut hedged = pin!(hedged);
        assert!(poll(hedged.as_mut(), &waker).is_pending(), "attempt 1 and the hedge timer");
        assert_eq!(clock.pending_timers(), 2);
        // The hedge's delay passes; starting the hedge registers its timer with a clone.
        Hostile::arm(&state.panic_on_clone, true);
        clock.advance(MS * 10);
        let panicked = catch_unwind(AssertUnwindSafe(|| poll(hedged.as_mut(), &waker)));
        assert!(panicked.is_err(), "the clone's panic reached the poll");
        Hostile::arm(&state.panic_on_clone, false);
        assert_eq!(runs.get(), 2, "the hedge had started");
    }
    assert_eq!(clock.pending_timers(), 0, "both attempts and every timer were dropped");
    assert_eq!(state.others_alive(), 0, "every clone released");
    clock.advance(Duration::from_secs(60));
    assert_eq!(runs.get(), 2, "nothing started after the drop");
}

#[test]
fn a_hedge_woken_reentrantly_takes_the_faster_attempt() {
    let clock = ManualClock::new();
    let attempts = Cell::new(0u32);
    let hedge = Hedge::builder().delay(MS * 10).max_hedges(1).build().unwrap();
    let (state, waker) = hostile();
    let inner = clock.clone();
    // Each wake moves the clock a further millisecond, from inside the clock's wake-ups.
    *state.on_wake.lock().unwrap() = Some(Box::new(move || inner.advance(MS)));
    let call = || {
        attempts.set(attempts.get() + 1);
        let (n, timer) = (attempts.get(), clock.clone());
        async move {
            timer.sleep(MS * if n == 1 { 200 } else { 5 }).await;
            Ok::<_, ()>(n)
        }
    };
    let result = {
        let mut hedged = pin!(hedge.run(&clock, &kompoz::retry::NoBudget, call));
        loop {
            if let Poll::Ready(result) = poll(hedged.as_mut(), &waker) {
                break result;
            }
            let next = clock.next_deadline().expect("waiting on a timer");
            clock.advance(next.saturating_duration_since(clock.now()));
        }
    };
    assert_eq!(result, Ok(2), "the hedge won");
    assert!(clock.now() < Instant::ZERO + MS * 200, "before the first attempt could end");
    assert_eq!((clock.pending_timers(), state.others_alive()), (0, 0), "the loser dropped");
}

#[test]
fn a_pipeline_whose_waker_panics_gives_back_its_permit() {
    let clock = ManualClock::new();
    let runs = Cell::new(0);
    let permits = Semaphore::new(1).unwrap();
    let pipeline =
        Pipeline::<u32, u32, _>::with_timer(clock.clone()).retry(backoff_policy(3)).limit(&permits);
    let (state, waker) = hostile();
    {
        let mut call = pin!(pipeline.call(flaky(&clock, &runs, Duration::ZERO, 3)));
        Hostile::arm(&state.panic_on_clone, true);
        let panicked = catch_unwind(AssertUnwindSafe(|| poll(call.as_mut(), &waker)));
        assert!(panicked.is_err(), "the backoff's clone panicked through the pipeline");
        Hostile::arm(&state.panic_on_clone, false);
        assert_eq!(permits.available_permits(), 1, "attempt 1's permit was given back");
    }
    assert_eq!((clock.pending_timers(), state.others_alive()), (0, 0));
    assert_eq!(permits.available_permits(), 1);
    // And the pipeline is as good as new for the next call.
    let mut call = pin!(pipeline.call(flaky(&clock, &runs, Duration::ZERO, 0)));
    assert_eq!(poll(call.as_mut(), &waker), Poll::Ready(Ok(2)));
}
