//! Unit tests of the policies through the breaker, on the manual clock.

use core::time::Duration;

use super::*;
use crate::time::ManualClock;

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn rate_breaker(clock: &ManualClock, rate: FailureRate) -> CircuitBreaker<ManualClock> {
    BreakerBuilder::new().trip_on(rate).recovery_timeout(SECOND).build_with(clock.clone()).unwrap()
}

#[test]
fn a_count_window_of_10_with_5_minimum_opens_on_the_fifth_of_five_failures() {
    let clock = ManualClock::new();
    let b = rate_breaker(&clock, FailureRate::over_calls(10).minimum_calls(5).threshold(0.5));
    for _ in 0..4 {
        b.try_acquire().unwrap().failure();
    }
    let stats = b.stats();
    assert_eq!(
        (stats.state, stats.window_calls, stats.failure_count),
        (CircuitState::Closed, 4, 4)
    );
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn one_failure_in_many_calls_does_not_open_and_successes_never_do() {
    let clock = ManualClock::new();
    let b = rate_breaker(&clock, FailureRate::over_calls(100).minimum_calls(10).threshold(0.5));
    for i in 0..1_000 {
        let guard = b.try_acquire().unwrap();
        if i % 10 == 0 { guard.failure() } else { guard.success() }
    }
    let stats = b.stats();
    assert_eq!(
        (stats.state, stats.window_calls, stats.failure_count),
        (CircuitState::Closed, 100, 10)
    );
    assert_eq!(stats.total_failures, 100);
}

#[test]
fn a_full_window_of_successes_is_still_judged_when_failures_come() {
    let clock = ManualClock::new();
    let b = rate_breaker(&clock, FailureRate::over_calls(4).threshold(0.5));
    for _ in 0..10 {
        b.try_acquire().unwrap().success();
    }
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Closed, "1 of 4");
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open, "2 of 4");
}

#[test]
fn a_time_window_forgets_failures_older_than_the_window_bucket_by_bucket() {
    let clock = ManualClock::new();
    let rate = FailureRate::over_time(10 * SECOND).buckets(10).minimum_calls(3).threshold(0.5);
    let b = rate_breaker(&clock, rate);
    b.try_acquire().unwrap().failure(); // bucket 0 (0 s)
    clock.advance(5 * SECOND);
    b.try_acquire().unwrap().success(); // bucket 5
    clock.advance(5 * SECOND);
    // At 10 s, bucket 0 has left the window (10 buckets end at bucket 10).
    assert_eq!((b.stats().window_calls, b.stats().failure_count), (1, 0));
    b.try_acquire().unwrap().failure();
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), CircuitState::Closed, "1 failure of 3");
    clock.advance(SECOND - MS); // still the bucket of 10 s
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open, "2 failures of 4");
}

#[test]
fn slow_calls_open_at_the_slow_ratio() {
    let clock = ManualClock::new();
    let rate = FailureRate::over_calls(4).threshold(1.0).slow_calls(100 * MS, 0.5);
    let b = rate_breaker(&clock, rate);
    let slow = |b: &CircuitBreaker<ManualClock>| {
        let guard = b.try_acquire().unwrap();
        clock.advance(100 * MS);
        guard.success();
    };
    b.try_acquire().unwrap().success();
    slow(&b);
    b.try_acquire().unwrap().success();
    assert_eq!((b.state(), b.stats().slow_call_count), (CircuitState::Closed, 1));
    slow(&b);
    assert_eq!(b.state(), CircuitState::Open, "2 slow of 4");
    assert_eq!(b.stats().success_count, 4, "slow calls succeeded all the same");
    // A slow probe counts as a failed probe.
    clock.advance(SECOND);
    slow(&b);
    assert_eq!(b.state(), CircuitState::Open);
    clock.advance(SECOND);
    let probe = b.try_acquire().unwrap();
    clock.advance(99 * MS);
    probe.success();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn break_durations_grow_1_2_4_8_8_and_start_again_after_closing() {
    let clock = ManualClock::new();
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .break_duration(BreakDuration::exponential(SECOND, 8 * SECOND))
        .build_with(clock.clone())
        .unwrap();
    assert_eq!(b.stats().break_duration, Duration::ZERO);
    b.try_acquire().unwrap().failure();
    for expected in [1, 2, 4, 8, 8] {
        let pause = expected * SECOND;
        assert_eq!(b.stats().break_duration, pause);
        clock.advance(pause - MS);
        assert!(b.try_acquire().is_err(), "{expected} s break ended early");
        clock.advance(MS);
        b.try_acquire().expect("the break is over").failure();
    }
    clock.advance(8 * SECOND);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), CircuitState::Closed);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.stats().break_duration, SECOND, "closing starts again from the first break");
    b.force_open();
    b.reset();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.stats().break_duration, SECOND);
}

#[test]
fn a_forced_opening_does_not_grow_the_breaks() {
    let clock = ManualClock::new();
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .break_duration(BreakDuration::exponential(SECOND, 8 * SECOND))
        .build_with(clock.clone())
        .unwrap();
    b.try_acquire().unwrap().failure();
    clock.advance(SECOND);
    let probe = b.try_acquire().unwrap();
    b.force_open();
    drop(probe);
    assert_eq!(b.stats().break_duration, SECOND);
}

#[test]
fn jittered_breaks_stay_within_their_ratio_and_repeat_with_the_seed() {
    let breaks = |seed| {
        let clock = ManualClock::new();
        let b = BreakerBuilder::new()
            .failure_threshold(1)
            .break_duration(BreakDuration::fixed(10 * SECOND).jitter(0.5, seed))
            .build_with(clock.clone())
            .unwrap();
        (0..20)
            .map(|_| {
                b.try_acquire().unwrap().failure();
                let pause = b.stats().break_duration;
                clock.advance(pause);
                b.try_acquire().expect("recovered exactly after the jittered break").success();
                pause
            })
            .collect::<alloc::vec::Vec<_>>()
    };
    let first = breaks(3);
    assert!(first.iter().all(|p| (5 * SECOND..=10 * SECOND).contains(p)), "{first:?}");
    assert!(first.iter().any(|p| *p != first[0]));
    assert_eq!(first, breaks(3));
}

#[test]
fn a_rate_policy_and_a_failure_threshold_together_are_an_error() {
    let error = BreakerBuilder::new()
        .failure_threshold(3)
        .trip_on(FailureRate::over_calls(10))
        .build_with(ManualClock::new())
        .unwrap_err();
    assert_eq!(error, BreakerError::Conflict { field: "failure_threshold", with: "trip_on" });
    assert_eq!(
        alloc::format!("{error}"),
        "failure_threshold has no effect with trip_on: give one of them"
    );
    let error = BreakerBuilder::new()
        .trip_on(FailureRate::over_calls(10).threshold(2.0))
        .build_with(ManualClock::new())
        .unwrap_err();
    assert_eq!(alloc::format!("{error}"), "threshold = 2 is not a ratio in (0, 1]");
}

#[test]
fn late_outcomes_never_enter_the_window() {
    let clock = ManualClock::new();
    let b = rate_breaker(&clock, FailureRate::over_calls(2).minimum_calls(1).threshold(1.0));
    let slow_failure = b.try_acquire().unwrap();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
    clock.advance(SECOND);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), CircuitState::Closed);
    slow_failure.failure(); // admitted two periods ago: late
    let stats = b.stats();
    assert_eq!(
        (stats.state, stats.window_calls, stats.total_failures),
        (CircuitState::Closed, 0, 2)
    );
}

#[test]
fn a_time_window_loses_no_outcome_of_an_owner_and_other_threads_at_once() {
    let clock = ManualClock::new();
    let b = alloc::sync::Arc::new(rate_breaker(
        &clock,
        FailureRate::over_time(60 * SECOND).minimum_calls(1).threshold(1.0),
    ));
    b.try_acquire().unwrap().success(); // this thread owns the counters (and the tally)
    // Fewer under miri (safe code, minutes there).
    const CALLS: u32 = if cfg!(miri) { 500 } else { 20_000 };
    let other = b.clone();
    let thread = std::thread::spawn(move || {
        for i in 0..CALLS {
            let guard = other.try_acquire().unwrap();
            if i % 100 == 0 { guard.failure() } else { guard.success() }
        }
    });
    for _ in 0..CALLS {
        b.try_acquire().unwrap().success();
    }
    thread.join().unwrap();
    let stats = b.stats();
    assert_eq!((stats.window_calls, stats.failure_count), (2 * CALLS + 1, CALLS / 100));
    assert_eq!(stats.state, CircuitState::Closed);
}
