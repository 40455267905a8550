//! `Arbitrary` gives valid configurations whatever the bytes, reaches the edges as well
//! as the small values where behaviour happens, and decodes every kind of operation.
// Safe code only (the kit and arbitrary have no unsafe), thousands of inputs: miri would
// take many minutes over it and could find nothing, so it runs in `cargo test` alone.
#![cfg(all(feature = "arbitrary", not(target_os = "none"), not(miri)))]

use std::collections::BTreeSet;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use kompoz::breaker::{BreakerBuilder, MAX_COUNT};
use kompoz::limit::Semaphore;
use kompoz::sim::{BreakerConfig, LimitConfig, Op, Reply, TimeoutConfig};
use kompoz::{ManualClock, limited};

/// 5,000 byte strings of every length from 0 to 63, from a fixed xorshift generator.
fn inputs() -> impl Iterator<Item = Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..5_000).map(move |n| {
        (0..n % 64)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    })
}

#[test]
fn every_generated_breaker_configuration_builds() {
    let mut failure_thresholds = BTreeSet::new();
    let mut recovery_timeouts = BTreeSet::new();
    for bytes in inputs() {
        let config = BreakerConfig::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let breaker = config.build_with(ManualClock::new());
        assert!(breaker.is_ok(), "{config:?} does not build: {:?}", breaker.err());
        let builder = BreakerBuilder::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        assert!(builder.build_with(ManualClock::new()).is_ok());
        failure_thresholds.insert(config.failure_threshold);
        recovery_timeouts.insert(config.recovery_timeout);
    }
    // Mostly small, where the state machine turns, but the edges too.
    assert!((1..=5).all(|n| failure_thresholds.contains(&n)), "{failure_thresholds:?}");
    assert!(failure_thresholds.contains(&MAX_COUNT));
    assert!(failure_thresholds.iter().any(|&n| n > 5 && n < MAX_COUNT));
    for edge in [Duration::ZERO, Duration::MAX] {
        assert!(recovery_timeouts.contains(&edge), "{edge:?} never generated");
    }
    assert!(recovery_timeouts.iter().any(|d| d.subsec_nanos() % 1_000_000 != 0), "nanoseconds");
}

#[test]
fn every_generated_breaker_policy_builds_and_every_kind_is_generated() {
    use kompoz::breaker::{BreakDuration, FailureRate, MAX_BUCKETS, MAX_WINDOW_CALLS};
    let mut trips = BTreeSet::new();
    let mut breaks = BTreeSet::new();
    let mut waits = BTreeSet::new();
    let mut first_breaks = BTreeSet::new();
    for bytes in inputs() {
        let config = BreakerConfig::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let breaker = config.build_with(ManualClock::new());
        assert!(breaker.is_ok(), "{config:?} does not build: {:?}", breaker.err());
        let breaker = breaker.unwrap();
        // The breaker keeps durations in 64-bit nanoseconds (584 years stand for ever).
        let longest = Duration::from_nanos(u64::MAX);
        assert_eq!(breaker.half_open_max_wait(), config.half_open_max_wait.min(longest));
        assert!(config.half_open_max_wait > Duration::ZERO);
        waits.insert(config.half_open_max_wait);
        // The policies' fields are private: their Debug tells the kinds apart.
        trips.insert(match config.trip_on.map(|rate| format!("{rate:?}")) {
            None => "consecutive failures",
            Some(rate) if rate.contains("Calls") && rate.contains("slow: Some") => "calls, slow",
            Some(rate) if rate.contains("Calls") => "calls",
            Some(rate) if rate.contains("slow: Some") => "time, slow",
            Some(_) => "time",
        });
        breaks.insert(match config.break_duration.map(|breaks| format!("{breaks:?}")) {
            None => "recovery_timeout",
            Some(breaks) if breaks.contains("jitter: Some") => "jittered",
            Some(_) => "unjittered",
        });
        if let Some(breaks) = config.break_duration {
            first_breaks.insert(breaker.recovery_timeout());
            // Each policy on its own builds too.
            let alone = BreakerBuilder::new().break_duration(breaks);
            assert!(alone.build_with(ManualClock::new()).is_ok(), "{breaks:?}");
        }
        if let Some(rate) = config.trip_on {
            let alone = BreakerBuilder::new().trip_on(rate);
            assert!(alone.build_with(ManualClock::new()).is_ok(), "{rate:?}");
        }
        // And generated alone.
        let rate = FailureRate::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        assert!(BreakerBuilder::new().trip_on(rate).build_with(ManualClock::new()).is_ok());
        let breaks = BreakDuration::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let built = BreakerBuilder::new().break_duration(breaks).build_with(ManualClock::new());
        assert!(built.is_ok(), "{breaks:?}");
    }
    assert_eq!(trips.len(), 5, "{trips:?}");
    assert_eq!(breaks.len(), 3, "{breaks:?}");
    for edge in [Duration::from_nanos(1), Duration::MAX] {
        assert!(waits.contains(&edge), "half_open_max_wait {edge:?} never generated");
    }
    assert!(waits.iter().any(|d| *d > Duration::from_secs(1) && *d < Duration::MAX));
    let longest = Duration::from_nanos(u64::MAX);
    assert!(first_breaks.contains(&Duration::ZERO) && first_breaks.contains(&longest));
    // The windows' edges: the largest count window and the most buckets.
    let edges = inputs()
        .filter_map(|bytes| BreakerConfig::arbitrary(&mut Unstructured::new(&bytes)).ok())
        .filter_map(|config| config.trip_on)
        .map(|rate| format!("{rate:?}"))
        .filter(|rate| {
            rate.contains(&format!("Calls({MAX_WINDOW_CALLS})"))
                || rate.contains(&format!("buckets: {MAX_BUCKETS}"))
        })
        .count();
    assert!(edges > 10, "only {edges} windows at their largest");
}

#[test]
fn the_default_configuration_is_kompozs_defaults() {
    use kompoz::breaker::{DEFAULT_HALF_OPEN_MAX_WAIT, DEFAULT_RECOVERY_TIMEOUT};
    let config = BreakerConfig::default();
    assert_eq!((config.trip_on, config.break_duration), (None, None));
    let breaker = config.build_with(ManualClock::new()).unwrap();
    let builder = BreakerBuilder::new().build_with(ManualClock::new()).unwrap();
    assert_eq!(breaker.recovery_timeout(), DEFAULT_RECOVERY_TIMEOUT);
    assert_eq!(breaker.half_open_max_wait(), DEFAULT_HALF_OPEN_MAX_WAIT);
    assert_eq!(breaker.recovery_timeout(), builder.recovery_timeout());
    assert_eq!(breaker.half_open_max_wait(), builder.half_open_max_wait());
    assert_eq!(
        (config.failure_threshold, config.half_open_max_calls, config.success_threshold),
        (5, 1, 1)
    );
}

#[test]
fn every_generated_limit_builds_and_limited_accepts_it() {
    let mut sizes = BTreeSet::new();
    let mut waits = 0;
    for bytes in inputs() {
        let config = LimitConfig::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let semaphore = config.semaphore().unwrap();
        assert_eq!(semaphore.available_permits(), config.max_concurrent);
        assert!(limited((), config.max_concurrent).is_ok());
        assert!(Semaphore::arbitrary(&mut Unstructured::new(&bytes)).is_ok());
        sizes.insert(config.max_concurrent);
        waits += usize::from(config.max_wait.is_some());
    }
    assert!(sizes.contains(&1) && sizes.contains(&kompoz::limit::MAX_PERMITS), "{sizes:?}");
    assert!(waits > 500 && waits < 4_500, "some limits wait for ever, some do not: {waits}");
}

#[test]
fn every_kind_of_operation_and_reply_is_generated() {
    let mut kinds = BTreeSet::new();
    let mut replies = BTreeSet::new();
    let mut limits = BTreeSet::new();
    for bytes in inputs() {
        let ops = Vec::<Op>::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        for op in ops {
            kinds.insert(match op {
                Op::Advance(by) => {
                    assert_ne!(by, Duration::MAX, "time keeps moving");
                    "advance"
                }
                Op::Call(reply) => {
                    replies.insert(match reply {
                        Reply::Succeed { .. } => "succeed",
                        Reply::Fail { .. } => "fail",
                        Reply::Hang => "hang",
                    });
                    "call"
                }
                Op::Cancel { .. } => "cancel",
                Op::Reset => "reset",
                Op::ForceOpen => "force open",
                Op::BackendDown => "down",
                Op::BackendUp => "up",
                _ => "new",
            });
        }
        limits.insert(TimeoutConfig::arbitrary(&mut Unstructured::new(&bytes)).unwrap().time_limit);
    }
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(limits.contains(&Duration::ZERO) && limits.contains(&Duration::MAX));
}

#[test]
fn one_input_decodes_to_one_scenario() {
    for bytes in inputs().take(200) {
        let decode = || {
            let mut u = Unstructured::new(&bytes);
            (BreakerConfig::arbitrary(&mut u).unwrap(), Vec::<Op>::arbitrary_take_rest(u).unwrap())
        };
        assert_eq!(decode(), decode());
    }
}

#[test]
fn every_generated_retry_policy_and_budget_builds_and_replays() {
    use kompoz::retry::{Backoff, RetryBudgetBuilder, RetryPolicy, RetryPolicyBuilder};
    let mut shapes = BTreeSet::new();
    let (mut capped, mut jittered, mut deadlines) = (0, 0, 0);
    for bytes in inputs() {
        let policy = RetryPolicy::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let builder = RetryPolicyBuilder::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        assert_eq!(builder.build(), Ok(policy));
        assert!(policy.seed().is_some(), "a simulation replays only with seeded jitter");
        assert!(policy.max_attempts() >= 1);
        shapes.insert(match policy.backoff() {
            Backoff::None => "none",
            Backoff::Constant(_) => "constant",
            Backoff::Exponential { base, max } => {
                capped += usize::from(max < Duration::MAX);
                assert!(base <= max);
                "exponential"
            }
            Backoff::DecorrelatedJitter { base, max } => {
                assert!(base <= max);
                "decorrelated"
            }
        });
        jittered += usize::from(policy.jitter() > Duration::ZERO);
        deadlines += usize::from(policy.deadline().is_some());
        let budget = RetryBudgetBuilder::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        assert!(budget.build_with(ManualClock::new()).is_ok(), "{budget:?}");
    }
    assert_eq!(shapes.len(), 4, "{shapes:?}");
    assert!(capped > 100 && jittered > 500 && deadlines > 500, "{capped} {jittered} {deadlines}");
}

#[test]
fn every_generated_quota_and_rate_limit_builds_through_the_public_constructors() {
    use kompoz::rate::{Quota, RateLimiter};
    use kompoz::sim::RateLimitConfig;
    let (mut intervals, mut bursts, mut waits) = (BTreeSet::new(), BTreeSet::new(), 0);
    for bytes in inputs() {
        let quota = Quota::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        // Valid by construction: the same quota comes out of the public constructors.
        let rebuilt = Quota::every(quota.interval()).unwrap().with_burst(quota.burst());
        assert_eq!(rebuilt, Ok(quota));
        assert!(quota.interval().as_nanos() * u128::from(quota.burst()) <= u128::from(u64::MAX));
        let config = RateLimitConfig::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        assert_eq!(config.quota, quota, "the quota is decoded first");
        let limiter: RateLimiter<ManualClock> = config.limiter_with(ManualClock::new());
        assert!(limiter.check_n(quota.burst()).is_ok(), "a fresh limiter admits its burst");
        intervals.insert(quota.interval());
        bursts.insert(quota.burst());
        waits += usize::from(config.max_wait.is_some());
    }
    // Mostly where behaviour happens, with the edges.
    assert!(intervals.contains(&Duration::from_nanos(u64::MAX)), "the longest interval");
    assert!(intervals.iter().any(|d| *d < Duration::from_millis(1)), "nanoseconds");
    assert!(intervals.iter().any(|d| *d > Duration::from_secs(1)), "minutes");
    assert!((1..=5).all(|n| bursts.contains(&n)), "{bursts:?}");
    assert!(bursts.contains(&u32::MAX), "the largest burst a short interval allows");
    assert!(bursts.iter().any(|&b| b > 5 && b < u32::MAX));
    assert!(waits > 500 && waits < 4_500, "some wait for ever, some do not: {waits}");
}

#[test]
fn a_generated_budget_configuration_and_builder_are_the_same_budget() {
    use kompoz::retry::RetryBudgetBuilder;
    use kompoz::sim::RetryBudgetConfig;
    for bytes in inputs() {
        let config = RetryBudgetConfig::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        let builder = RetryBudgetBuilder::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        assert_eq!(config.builder(), builder);
        assert!(config.build_with(ManualClock::new()).is_ok(), "{config:?}");
    }
}
