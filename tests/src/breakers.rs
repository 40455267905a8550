//! Circuit-breaker scenarios: kompoz's own cases and its integration case, on the
//! runtime's clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use kompoz::breaker::{
    BreakDuration, BreakerBuilder, BreakerMapBuilder, CircuitBreaker, CircuitState, FailureRate,
    Verdict,
};
use kompoz::{
    AsyncCombinator, Outcome, Rejection, Sleep, async_rule, circuit_breaker, with_timeout_on,
};

use crate::harness::Runtime;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn breaker<R: Runtime>(rt: &R, failures: u32, recovery: Duration) -> CircuitBreaker<R::Timer> {
    BreakerBuilder::new()
        .failure_threshold(failures)
        .recovery_timeout(recovery)
        .build_with(rt.timer())
        .expect("a valid breaker")
}

/// A rule that counts its calls and passes when `passes(call_number)` says so.
fn counting_rule(
    calls: &Arc<AtomicUsize>,
    passes: fn(usize) -> bool,
) -> impl AsyncCombinator<i32> + use<> {
    let calls = calls.clone();
    async_rule(async move |_: &mut i32| passes(calls.fetch_add(1, Ordering::SeqCst)))
}

/// kompoz: a closed breaker passes verdicts and contexts through.
pub async fn closed_breaker_passes_through<R: Runtime>(rt: &R) {
    let protected =
        circuit_breaker(async_rule(async |n: &mut i32| *n > 0), breaker(rt, 3, ms(10_000)));
    assert_eq!(protected.run_owned(42).await, (true, 42));
    assert_eq!(protected.state(), CircuitState::Closed);
}

/// kompoz: an always-failing rule, threshold 3, five runs: open, and the rule was called
/// exactly three times.
pub async fn threshold_failures_open_the_circuit<R: Runtime>(rt: &R) {
    let calls = Arc::new(AtomicUsize::new(0));
    let protected = circuit_breaker(counting_rule(&calls, |_| false), breaker(rt, 3, ms(10_000)));
    for _ in 0..5 {
        assert!(!protected.run_owned(1).await.0);
    }
    assert_eq!(protected.state(), CircuitState::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// kompoz: threshold 2, recovery 100 s: once open, five more runs are rejected without
/// calling the rule, and told apart from failures.
pub async fn an_open_circuit_rejects_without_calling<R: Runtime>(rt: &R) {
    let calls = Arc::new(AtomicUsize::new(0));
    let protected = circuit_breaker(counting_rule(&calls, |_| false), breaker(rt, 2, ms(100_000)));
    assert_eq!(protected.run_detailed(&mut 1).await, Outcome::Failed);
    assert_eq!(protected.run_detailed(&mut 1).await, Outcome::Failed);
    assert_eq!(protected.state(), CircuitState::Open);
    for _ in 0..5 {
        let outcome = protected.run_detailed(&mut 1).await;
        assert!(matches!(outcome, Outcome::Rejected(Rejection::Circuit(_))), "{outcome:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(protected.stats().rejected_calls, 5);
}

/// kompoz: after the recovery time a failing probe opens the circuit again; the
/// transitions are reported in order.
pub async fn a_failing_probe_reopens<R: Runtime>(rt: &R) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    let b = BreakerBuilder::new()
        .failure_threshold(2)
        .recovery_timeout(ms(50))
        .on_state_change(move |old, new, _| seen.lock().expect("not poisoned").push((old, new)))
        .build_with(rt.timer())
        .expect("a valid breaker");
    let calls = Arc::new(AtomicUsize::new(0));
    let protected = circuit_breaker(counting_rule(&calls, |_| false), b);
    protected.run(&mut 1).await;
    protected.run(&mut 1).await;
    assert_eq!(protected.state(), CircuitState::Open);
    rt.timer().sleep(ms(100)).await;
    assert!(!protected.run(&mut 1).await);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the probe ran");
    assert_eq!(protected.state(), CircuitState::Open);
    use CircuitState::{Closed, HalfOpen, Open};
    assert_eq!(
        *changes.lock().expect("not poisoned"),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
    );
}

/// kompoz: after the recovery time a succeeding probe closes the circuit.
pub async fn a_succeeding_probe_closes<R: Runtime>(rt: &R) {
    let calls = Arc::new(AtomicUsize::new(0));
    let protected = circuit_breaker(counting_rule(&calls, |n| n >= 2), breaker(rt, 2, ms(50)));
    protected.run(&mut 1).await;
    protected.run(&mut 1).await;
    assert_eq!(protected.state(), CircuitState::Open);
    rt.timer().sleep(ms(100)).await;
    assert_eq!(protected.run_owned(1).await, (true, 1));
    assert_eq!(protected.state(), CircuitState::Closed);
}

/// kompoz: the callback records `(Closed, Open)`.
pub async fn the_callback_sees_closed_to_open<R: Runtime>(rt: &R) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    let b = BreakerBuilder::new()
        .failure_threshold(2)
        .on_state_change(move |old, new, stats| {
            seen.lock().expect("not poisoned").push((old, new, stats.times_opened))
        })
        .build_with(rt.timer())
        .expect("a valid breaker");
    let protected = circuit_breaker(async_rule(async |_: &mut i32| false), b);
    protected.run(&mut 1).await;
    protected.run(&mut 1).await;
    assert_eq!(
        *changes.lock().expect("not poisoned"),
        [(CircuitState::Closed, CircuitState::Open, 1)]
    );
}

/// kompoz: one success and one failure are counted; the circuit stays closed.
pub async fn stats_count_successes_and_failures<R: Runtime>(rt: &R) {
    let protected =
        circuit_breaker(async_rule(async |n: &mut i32| *n > 0), breaker(rt, 5, ms(10_000)));
    protected.run(&mut 1).await;
    protected.run(&mut -1).await;
    let stats = protected.stats();
    assert_eq!(stats.state, CircuitState::Closed);
    assert_eq!((stats.success_count, stats.failure_count, stats.total_failures), (1, 1, 1));
    assert!(stats.last_success_time.is_some() && stats.last_failure_time.is_some());
    assert_eq!(stats.total_calls, 2);
}

/// kompoz: `reset()` closes an open circuit.
pub async fn reset_closes<R: Runtime>(rt: &R) {
    let protected =
        circuit_breaker(async_rule(async |_: &mut i32| false), breaker(rt, 2, ms(100_000)));
    protected.run(&mut 1).await;
    protected.run(&mut 1).await;
    assert_eq!(protected.state(), CircuitState::Open);
    protected.reset();
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.run_detailed(&mut 1).await, Outcome::Failed, "runs again");
}

/// kompoz's integration case: a breaker around `with_timeout(rule, 100 ms)`, where the
/// rule takes 500 ms on its first two calls and then answers at once. With threshold 5,
/// after three runs the circuit is closed; with threshold 2 the timeouts open it.
pub async fn timeouts_count_as_failures_inside_a_breaker<R: Runtime>(rt: &R) {
    for (threshold, expected) in [(5, CircuitState::Closed), (2, CircuitState::Open)] {
        let calls = Arc::new(AtomicUsize::new(0));
        let (counter, timer) = (calls.clone(), rt.timer());
        let slow_then_fast = async_rule(async move |_: &mut i32| {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                timer.sleep(ms(500)).await;
            }
            true
        });
        let protected = circuit_breaker(
            with_timeout_on(rt.timer(), slow_then_fast, ms(100)),
            breaker(rt, threshold, ms(100_000)),
        );
        let outcomes = [
            protected.run_detailed(&mut 0).await,
            protected.run_detailed(&mut 0).await,
            protected.run_detailed(&mut 0).await,
        ];
        assert_eq!(outcomes[..2], [Outcome::TimedOut, Outcome::TimedOut]);
        assert_eq!(protected.state(), expected, "threshold {threshold}");
        if expected == CircuitState::Closed {
            assert_eq!(outcomes[2], Outcome::Passed);
        } else {
            assert!(outcomes[2].is_rejected());
        }
    }
}

/// Half-open lets `half_open_max_calls` probes in at once and rejects the rest.
pub async fn half_open_admits_only_its_probes<R: Runtime>(rt: &R) {
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(ms(50))
        .half_open_max_calls(2)
        .build_with(rt.timer())
        .expect("a valid breaker");
    let timer = rt.timer();
    let slow = async_rule(async move |ok: &mut bool| {
        timer.sleep(ms(20)).await;
        *ok
    });
    let protected = circuit_breaker(slow, b);
    assert!(!protected.run(&mut false).await);
    rt.timer().sleep(ms(60)).await;
    let mut contexts = [true, true, true];
    let outcomes = join_all(contexts.iter_mut().map(|ok| protected.run_detailed(ok))).await;
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    let rejected = outcomes.iter().filter(|o| o.is_rejected()).count();
    assert_eq!((passed, rejected), (2, 1), "{outcomes:?}");
    assert_eq!(protected.state(), CircuitState::Closed);
}

/// The policies' time unit: a second where time is simulated, else short enough for a
/// real-time run (what a scenario checks does not depend on how late a timer fires).
fn unit<R: Runtime>(rt: &R) -> Duration {
    if rt.simulated_time() { Duration::from_secs(1) } else { ms(40) }
}

/// Count window of 10, minimum 5, threshold 50%: four failures of four calls do not open
/// the circuit, the fifth does.
pub async fn a_count_window_opens_at_its_minimum_and_threshold<R: Runtime>(rt: &R) {
    let b = BreakerBuilder::new()
        .trip_on(FailureRate::over_calls(10).minimum_calls(5).threshold(0.5))
        .build_with(rt.timer())
        .expect("a valid breaker");
    let protected = circuit_breaker(async_rule(async |_: &mut i32| false), &b);
    for _ in 0..4 {
        assert_eq!(protected.run_detailed(&mut 0).await, Outcome::Failed);
    }
    assert_eq!((b.state(), b.stats().window_calls), (CircuitState::Closed, 4));
    protected.run(&mut 0).await;
    assert_eq!(b.state(), CircuitState::Open);
}

/// Time window: failures older than the window no longer count, a whole bucket at a time.
pub async fn a_time_window_forgets_old_failures<R: Runtime>(rt: &R) {
    let u = unit(rt);
    let b = BreakerBuilder::new()
        .trip_on(FailureRate::over_time(10 * u).buckets(10).minimum_calls(2).threshold(0.5))
        .build_with(rt.timer())
        .expect("a valid breaker");
    if rt.simulated_time() {
        // Buckets are aligned to the clock's instants, not to the breaker's start: the
        // failure is recorded at the start of a bucket, so that bucket is the window's
        // oldest 9 units later and leaves it at 10. (tokio's paused clock reads wherever
        // StdClock's epoch happens to put it: a failure late in its bucket left the
        // window before 9.5 units, and the scenario failed when run alone.)
        let width = u.as_nanos() as u64;
        let into_bucket = kompoz::Clock::now(&rt.timer()).as_nanos() % width;
        if into_bucket != 0 {
            rt.timer().sleep(Duration::from_nanos(width - into_bucket)).await;
        }
    }
    b.try_acquire().expect("closed").failure();
    if rt.simulated_time() {
        // To the bucket: 9.5 units later the failure (in the oldest bucket) still counts.
        rt.timer().sleep(9 * u + u / 2).await;
        assert_eq!(b.stats().failure_count, 1);
        rt.timer().sleep(u / 2).await;
    } else {
        rt.timer().sleep(11 * u).await;
    }
    assert_eq!((b.stats().window_calls, b.stats().failure_count), (0, 0), "out of the window");
    b.try_acquire().expect("closed").failure();
    assert_eq!(b.state(), CircuitState::Closed, "one call: below the minimum");
    b.try_acquire().expect("closed").failure();
    assert_eq!(b.state(), CircuitState::Open, "two failures of two");
}

/// Slow calls open the circuit at the slow-call ratio, though every call succeeded.
pub async fn slow_calls_open_at_the_slow_ratio<R: Runtime>(rt: &R) {
    let u = unit(rt);
    let b = BreakerBuilder::new()
        .trip_on(FailureRate::over_calls(4).threshold(1.0).slow_calls(u, 0.5))
        .build_with(rt.timer())
        .expect("a valid breaker");
    let timer = rt.timer();
    let answer = async_rule(async move |slow: &mut bool| {
        if *slow {
            timer.sleep(2 * u).await;
        }
        true
    });
    let protected = circuit_breaker(answer, &b);
    for slow in [false, true, false] {
        assert!(protected.run_owned(slow).await.0);
    }
    // The window is judged once it holds 4 calls. (In real time a call meant to be fast may
    // be slowed by a busy machine: then it is slow, rightly.)
    assert_eq!(b.state(), CircuitState::Closed);
    let slow = b.stats().slow_call_count;
    assert!(if rt.simulated_time() { slow == 1 } else { slow >= 1 }, "{slow} slow calls");
    assert!(protected.run_owned(true).await.0, "the call itself succeeded");
    assert_eq!(b.state(), CircuitState::Open, "2 slow calls of 4");
}

/// Growing breaks of 1, 2, 4, 8, 8 units with a cap of 8, and back to 1 after closing.
pub async fn break_durations_grow_to_their_cap_and_start_again_after_closing<R: Runtime>(rt: &R) {
    let u = unit(rt);
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .break_duration(BreakDuration::exponential(u, 8 * u))
        .build_with(rt.timer())
        .expect("a valid breaker");
    b.try_acquire().expect("closed").failure();
    for expected in [1, 2, 4, 8, 8] {
        let pause = b.stats().break_duration;
        assert_eq!(pause, expected * u);
        if rt.simulated_time() {
            rt.timer().sleep(pause - ms(1)).await;
            assert!(b.try_acquire().is_err(), "a break of {expected} ended early");
            rt.timer().sleep(ms(1)).await;
        } else {
            rt.timer().sleep(pause).await;
        }
        let probe = b.try_acquire().expect("the break is over");
        assert!(probe.is_probe());
        probe.failure();
    }
    rt.timer().sleep(b.stats().break_duration).await;
    b.try_acquire().expect("the break is over").success();
    assert_eq!(b.state(), CircuitState::Closed);
    b.try_acquire().expect("closed").failure();
    assert_eq!(b.stats().break_duration, u, "closing starts again from the first break");
}

/// kompoz's integration case, with timeouts classified as neither success nor failure:
/// the timeouts no longer open the circuit.
pub async fn a_classifier_keeps_timeouts_out_of_the_breaker<R: Runtime>(rt: &R) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (counter, timer) = (calls.clone(), rt.timer());
    let slow_then_fast = async_rule(async move |_: &mut i32| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            timer.sleep(ms(500)).await;
        }
        true
    });
    let protected = circuit_breaker(
        with_timeout_on(rt.timer(), slow_then_fast, ms(100)),
        breaker(rt, 2, ms(100_000)),
    )
    .classify(|outcome: Outcome| match outcome {
        Outcome::TimedOut => Verdict::Ignore,
        other => Verdict::from(other.passed()),
    });
    assert_eq!(protected.run_detailed(&mut 0).await, Outcome::TimedOut);
    assert_eq!(protected.run_detailed(&mut 0).await, Outcome::TimedOut);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().abandoned_calls, 2);
    assert_eq!(protected.run_detailed(&mut 0).await, Outcome::Passed);
}

/// Per-key breakers: a failing host opens only its own circuit, and breakers idle for
/// longer than `idle_after` are dropped (a key seen again starts afresh).
pub async fn per_key_breakers_isolate_keys_and_evict_idle_ones<R: Runtime>(rt: &R) {
    let u = unit(rt);
    let per_host = BreakerMapBuilder::new(BreakerBuilder::new().failure_threshold(2))
        .idle_after(10 * u)
        .build_with(rt.timer())
        .expect("a valid map");
    let flaky = per_host.get(&"flaky");
    for _ in 0..2 {
        flaky.try_acquire().expect("closed").failure();
    }
    drop(flaky);
    assert_eq!(per_host.state(&"flaky"), Some(CircuitState::Open));
    let healthy = circuit_breaker(async_rule(async |_: &mut ()| true), per_host.get(&"healthy"));
    assert!(healthy.run(&mut ()).await, "another host's breaker is closed");
    drop(healthy);
    rt.timer().sleep(11 * u).await;
    assert_eq!(per_host.evict_idle(), 1, "the healthy host's breaker was idle");
    assert_eq!(per_host.state(&"healthy"), None);
    assert_eq!(per_host.state(&"flaky"), Some(CircuitState::Open), "an open one is kept");
    assert_eq!(per_host.len(), 1);
}
