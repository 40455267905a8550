//! One regression test for each bug of the Python kompoz that ARCHITECTURE.md lists ("What
//! the Python library gets wrong"), numbered as there. Each fails on a naive port of
//! kompoz's concurrency module.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::executor::block_on;
use kompoz::breaker::{BreakerBuilder, CircuitBreaker, CircuitState};
use kompoz::limit::{LimitError, Registry};
use kompoz::{
    AsyncCombinator, ManualClock, Outcome, Rejection, Sleep, async_rule, circuit_breaker,
    with_timeout_on,
};

const SECOND: Duration = Duration::from_secs(1);

fn open_breaker(clock: &ManualClock) -> CircuitBreaker<ManualClock> {
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(SECOND)
        .build_with(clock.clone())
        .unwrap();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
    b
}

/// Bug 1: a half-open probe that is cancelled or panics gives its slot back; the breaker
/// never wedges half-open (kompoz never decrements `_half_open_calls`).
#[test]
fn bug1_a_cancelled_or_panicking_probe_gives_its_slot_back() {
    let clock = ManualClock::new();
    let b = open_breaker(&clock);
    clock.advance(SECOND);

    // Cancelled: the probe's run is dropped while it waits.
    let hangs = async_rule(async |_: &mut ()| std::future::pending::<bool>().await);
    let protected = circuit_breaker(hangs, &b);
    {
        let mut ctx = ();
        let mut run = pin!(protected.run(&mut ctx));
        assert!(run.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!((b.state(), b.stats().probes_in_flight), (CircuitState::HalfOpen, 1));
    }
    assert_eq!(b.stats().probes_in_flight, 0, "the dropped probe freed its slot");

    // Panicking: the probe's rule panics.
    let panics = async_rule(async |_: &mut ()| -> bool { panic!("probe blew up") });
    let protected = circuit_breaker(panics, &b);
    assert!(catch_unwind(AssertUnwindSafe(|| block_on(protected.run(&mut ())))).is_err());
    assert_eq!((b.state(), b.stats().probes_in_flight), (CircuitState::HalfOpen, 0));

    // Neither counted as a failure, and the next call is admitted as a probe.
    assert_eq!(b.stats().total_failures, 1);
    let probe = b.try_acquire().expect("a free probe slot");
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(b.state(), CircuitState::Closed);
}

/// Bug 2: `on_state_change` runs after the transition is committed and outside any lock:
/// it may reset the breaker or run it again (kompoz awaits it under its asyncio lock).
#[test]
fn bug2_a_callback_may_reset_or_run_the_breaker_again() {
    let clock = ManualClock::new();
    let cell: Arc<OnceLock<Weak<CircuitBreaker<ManualClock>>>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (cell_in, seen_in) = (cell.clone(), seen.clone());
    let b = Arc::new(
        BreakerBuilder::new()
            .failure_threshold(1)
            .on_state_change(move |old, new, stats| {
                seen_in.lock().unwrap().push((old, new, stats.state));
                let b = cell_in.get().and_then(Weak::upgrade).expect("the breaker");
                if new == CircuitState::Open {
                    // Re-entrant: run the breaker, then reset it, from inside the callback.
                    assert!(b.try_acquire().is_err(), "the new state is already committed");
                    b.reset();
                }
            })
            .build_with(clock.clone())
            .unwrap(),
    );
    cell.set(Arc::downgrade(&b)).unwrap();
    b.try_acquire().unwrap().failure();
    use CircuitState::{Closed, Open};
    assert_eq!(*seen.lock().unwrap(), [(Closed, Open, Open), (Open, Closed, Closed)]);
    assert_eq!(b.state(), Closed);
    assert!(b.try_acquire().is_ok());
}

/// Bug 3: a callback that panics is never counted as a call failure, and leaves the
/// breaker consistent (kompoz's `except Exception: _record_failure()` counts it).
#[test]
fn bug3_a_panicking_callback_is_not_a_call_failure() {
    let clock = ManualClock::new();
    let b = BreakerBuilder::new()
        .failure_threshold(2)
        .recovery_timeout(SECOND)
        .on_state_change(|_, new, _| {
            if new == CircuitState::HalfOpen {
                panic!("the callback failed");
            }
        })
        .build_with(clock.clone())
        .unwrap();
    let rule = async_rule(async |_: &mut ()| false);
    let protected = circuit_breaker(rule, &b);
    block_on(protected.run(&mut ()));
    block_on(protected.run(&mut ()));
    assert_eq!(b.state(), CircuitState::Open);
    clock.advance(SECOND);

    let healthy = circuit_breaker(async_rule(async |_: &mut ()| true), &b);
    let result = catch_unwind(AssertUnwindSafe(|| block_on(healthy.run(&mut ()))));
    assert!(result.is_err(), "the callback's panic reaches the caller");
    let stats = b.stats();
    assert_eq!(stats.state, CircuitState::HalfOpen, "the transition was committed");
    assert_eq!(stats.total_failures, 2, "the panic is not a failure");
    assert_eq!(stats.probes_in_flight, 0, "and the probe it interrupted gave its slot back");
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), CircuitState::Closed);
}

/// Bug 4: outcomes of calls admitted before a transition do not count as probe results of
/// the new state (kompoz counts a slow call's late result against the new state).
#[test]
fn bug4_late_outcomes_are_not_probe_results() {
    let clock = ManualClock::new();
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(SECOND)
        .build_with(clock.clone())
        .unwrap();
    let slow_success = b.try_acquire().unwrap(); // admitted while closed
    let slow_failure = b.try_acquire().unwrap();
    b.try_acquire().unwrap().failure(); // opens
    clock.advance(SECOND);
    let probe = b.try_acquire().unwrap();
    assert_eq!(b.state(), CircuitState::HalfOpen);

    slow_success.success();
    assert_eq!(b.state(), CircuitState::HalfOpen, "a late success does not close it");
    slow_failure.failure();
    assert_eq!(b.state(), CircuitState::HalfOpen, "a late failure does not reopen it");
    let stats = b.stats();
    assert_eq!((stats.success_count, stats.total_failures), (1, 2), "but both are counted");

    probe.success();
    assert_eq!(b.state(), CircuitState::Closed);
}

/// Bug 5: a rejection (open circuit, full limiter) is told apart from a failure of the
/// call itself (kompoz returns `(False, ctx)` for both). Allocation-free rejection is
/// checked in `hot_paths_allocate_nothing.rs`.
#[test]
fn bug5_a_rejection_is_not_a_failure() {
    let clock = ManualClock::new();
    let b = BreakerBuilder::new().failure_threshold(1).build_with(clock.clone()).unwrap();
    let rule = async_rule(async |_: &mut ()| false);
    let protected = circuit_breaker(rule, &b);
    assert_eq!(block_on(protected.run_detailed(&mut ())), Outcome::Failed);
    let rejected = block_on(protected.run_detailed(&mut ()));
    assert!(matches!(rejected, Outcome::Rejected(Rejection::Circuit(_))));
    assert!(!rejected.passed() && rejected.is_rejected());

    let limited = kompoz::limited(rule, 1).unwrap().max_wait(clock.clone(), Duration::ZERO);
    let _held = limited.semaphore().try_acquire().unwrap();
    assert!(matches!(
        block_on(limited.run_detailed(&mut ())),
        Outcome::Rejected(Rejection::Limit(_))
    ));
}

/// Bug 6: nothing is tied to one runtime or event loop (kompoz's `asyncio.Lock` and
/// `asyncio.Semaphore` bind to one loop). The same breaker serves plain threads and any
/// executor; the conformance suite runs every scenario on tokio, async-std, smol and the
/// manual clock.
#[test]
fn bug6_one_breaker_serves_threads_and_executors_alike() {
    let clock = ManualClock::new();
    let b = Arc::new(BreakerBuilder::new().failure_threshold(1_000).build_with(clock).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let guard = b.try_acquire().unwrap();
                    if i % 2 == 0 {
                        guard.success()
                    } else {
                        guard.failure()
                    }
                    b.try_acquire().unwrap().success();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(block_on(b.call(async { Ok::<_, ()>(5) })), Ok(5));
    let stats = b.stats();
    assert_eq!((stats.success_count, stats.total_failures), (4 * 750 + 1, 4 * 250));
    assert_eq!(b.state(), CircuitState::Closed);
}

/// Bug 7: a named limit asked for with another size is an error (kompoz silently shares
/// the first size), and the registry is thread-safe (kompoz creates its lock lazily,
/// racily).
#[test]
fn bug7_named_limits_refuse_mismatched_sizes_across_threads() {
    let registry = Arc::new(Registry::new());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let registry = registry.clone();
            std::thread::spawn(move || {
                registry.get_or_create("api_pool", if i == 7 { 5 } else { 10 })
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let sizes: Vec<_> =
        results.iter().filter_map(|r| r.as_ref().ok()).map(|s| s.stats().capacity).collect();
    assert!(sizes.iter().all(|&size| size == sizes[0]), "one size wins: {sizes:?}");
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), if sizes[0] == 10 { 1 } else { 7 });
    assert!(matches!(errors[0], LimitError::SizeMismatch { name, .. } if name == "api_pool"));
    let first = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    assert!(results.iter().filter_map(|r| r.as_ref().ok()).all(|s| Arc::ptr_eq(s, first)));
}

/// Bug 8: timeout state is per call (kompoz keeps one `timed_out` flag per combinator,
/// overwritten by concurrent runs).
#[test]
fn bug8_each_run_gets_its_own_timeout_verdict() {
    let clock = ManualClock::new();
    let timer = clock.clone();
    let takes = async_rule(async move |ms: &mut u64| {
        timer.sleep(Duration::from_millis(*ms)).await;
        true
    });
    let guarded = with_timeout_on(clock.clone(), takes, Duration::from_millis(100));
    let (mut fast_ctx, mut slow_ctx) = (10, 1_000);
    let mut fast = pin!(guarded.run_detailed(&mut fast_ctx));
    let mut slow = pin!(guarded.run_detailed(&mut slow_ctx));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fast.as_mut().poll(&mut cx).is_pending());
    assert!(slow.as_mut().poll(&mut cx).is_pending());
    clock.advance(Duration::from_millis(10));
    assert_eq!(fast.as_mut().poll(&mut cx), Poll::Ready(Outcome::Passed));
    clock.advance(Duration::from_millis(90));
    assert_eq!(slow.as_mut().poll(&mut cx), Poll::Ready(Outcome::TimedOut));
}
