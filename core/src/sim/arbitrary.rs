//! `Arbitrary` for the simulation's operations and for every configuration and builder
//! (feature `arbitrary`): breakers and their policies, limits, timeouts, rate quotas,
//! retry policies and budgets. A fuzzer's bytes decode into valid values only.
//!
//! Values are drawn where behaviour happens: counts are small (1 to 5) most of the time
//! and occasionally anything valid up to the largest the type supports; durations are
//! mostly milliseconds to a second, sometimes zero, nanoseconds, minutes or
//! [`Duration::MAX`]. Whatever the bytes, the configuration builds.

use arbitrary::{Arbitrary, Result, Unstructured};
use core::time::Duration;

use super::{
    BreakerConfig, LimitConfig, Op, RateLimitConfig, Reply, RetryBudgetConfig, TimeoutConfig,
};
use crate::breaker::{
    BreakDuration, BreakerBuilder, FailureRate, MAX_BUCKETS, MAX_COUNT, MAX_WINDOW_CALLS,
};
use crate::limit::{MAX_PERMITS, Semaphore};
use crate::rate::Quota;
use crate::retry::{MAX_RETRY_PERCENT, RetryBudgetBuilder, RetryPolicy, RetryPolicyBuilder};
use crate::time::duration_to_nanos;

/// A count from 1 (`max` is at least 1): 1 to 5 most of the time, otherwise anything up
/// to `max`.
fn count(u: &mut Unstructured<'_>, max: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => max,
        1 => u.int_in_range(1..=max)?,
        pick => (u64::from(pick % 5) + 1).min(max),
    })
}

/// A duration where behaviour happens: mostly 1 ms to a second, with the edges.
fn duration(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0..=31u8)? {
        0 => Duration::ZERO,
        1 => Duration::MAX,
        2 => Duration::from_nanos(u.int_in_range(1..=999_999)?),
        3 => Duration::from_secs(u.int_in_range(1..=600)?),
        _ => Duration::from_millis(u.int_in_range(1..=1_000)?),
    })
}

/// A latency or a step of time, never the end of time (so a scenario keeps moving).
fn finite_duration(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0..=31u8)? {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(u.int_in_range(1..=999_999)?),
        2 => Duration::from_secs(u.int_in_range(1..=600)?),
        _ => Duration::from_millis(u.int_in_range(1..=1_000)?),
    })
}

fn u32_count(u: &mut Unstructured<'_>) -> Result<u32> {
    // `MAX_COUNT` fits in a u32 by definition.
    Ok(u32::try_from(count(u, u64::from(MAX_COUNT))?).unwrap_or(MAX_COUNT))
}

/// A duration longer than zero where behaviour happens (see [`duration`]).
fn nonzero_duration(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match duration(u)? {
        Duration::ZERO => Duration::from_nanos(1),
        other => other,
    })
}

/// A ratio in (0, 1]: a round one most of the time (whole percents, ½, 1), sometimes the
/// smallest positive `f64`, where one failure in any window is already too many.
fn ratio(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => f64::MIN_POSITIVE,
        1 => 1.0,
        2..=5 => 0.5,
        _ => f64::from(u.int_in_range(1..=100u8)?) / 100.0,
    })
}

/// A policy that always builds: a window of the last 1 to [`MAX_WINDOW_CALLS`] calls
/// (mostly 1 to 5) or of a time span (mostly milliseconds to a second, in 1 to
/// [`MAX_BUCKETS`] buckets, at most one per nanosecond of the span), a minimum number of
/// calls within what the window can hold (or the default), a failure ratio, and half the
/// time slow calls (longer than zero, with their ratio).
impl<'a> Arbitrary<'a> for FailureRate {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut rate = if u.arbitrary()? {
            let calls =
                u32::try_from(count(u, u64::from(MAX_WINDOW_CALLS))?).unwrap_or(MAX_WINDOW_CALLS);
            let rate = FailureRate::over_calls(calls);
            if u.arbitrary()? {
                // At most the window's size.
                let minimum = u32::try_from(count(u, u64::from(calls))?).unwrap_or(calls);
                rate.minimum_calls(minimum)
            } else {
                rate
            }
        } else {
            let span = nonzero_duration(u)?;
            // One nanosecond a bucket at the least.
            let most = u64::from(MAX_BUCKETS).min(duration_to_nanos(span));
            let buckets = u32::try_from(count(u, most)?).unwrap_or(MAX_BUCKETS);
            let rate = FailureRate::over_time(span).buckets(buckets);
            if u.arbitrary()? { rate.minimum_calls(u32_count(u)?) } else { rate }
        };
        rate = rate.threshold(ratio(u)?);
        if u.arbitrary()? {
            rate = rate.slow_calls(nonzero_duration(u)?, ratio(u)?);
        }
        Ok(rate)
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (4, Some(38))
    }
}

/// A break duration that always builds: fixed (any duration, zero and [`Duration::MAX`]
/// included) or exponential (from a start longer than zero to a cap at or above it),
/// jittered half the time, with the seed drawn from the bytes.
impl<'a> Arbitrary<'a> for BreakDuration {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let breaks = if u.arbitrary()? {
            BreakDuration::fixed(duration(u)?)
        } else {
            let initial = nonzero_duration(u)?;
            BreakDuration::exponential(initial, initial.saturating_add(duration(u)?))
        };
        Ok(if u.arbitrary()? { breaks.jitter(ratio(u)?, u.arbitrary()?) } else { breaks })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (3, Some(38))
    }
}

/// A configuration that always builds, under every policy: consecutive failures (half the
/// time) or a [`FailureRate`], a fixed `recovery_timeout` (half the time) or a
/// [`BreakDuration`], and any `half_open_max_wait` longer than zero. The plain fields are
/// drawn whatever the policies, so an input decodes the same way whichever it picks.
impl<'a> Arbitrary<'a> for BreakerConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(BreakerConfig {
            failure_threshold: u32_count(u)?,
            recovery_timeout: duration(u)?,
            half_open_max_calls: u32_count(u)?,
            success_threshold: u32_count(u)?,
            trip_on: if u.arbitrary()? { Some(FailureRate::arbitrary(u)?) } else { None },
            break_duration: if u.arbitrary()? { Some(BreakDuration::arbitrary(u)?) } else { None },
            half_open_max_wait: nonzero_duration(u)?,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (7, Some(24 + 2 + 38 + 38 + 9))
    }
}

/// A builder that always builds (see [`BreakerConfig`]'s `Arbitrary`).
impl<'a> Arbitrary<'a> for BreakerBuilder {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(BreakerConfig::arbitrary(u)?.builder())
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        BreakerConfig::size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for LimitConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let max_permits = u64::try_from(MAX_PERMITS).unwrap_or(u64::MAX);
        let max_concurrent = usize::try_from(count(u, max_permits)?).unwrap_or(MAX_PERMITS);
        let max_wait = if u.arbitrary()? { Some(duration(u)?) } else { None };
        Ok(LimitConfig { max_concurrent, max_wait })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (2, Some(20))
    }
}

/// A semaphore of a valid limit's size (at least one permit).
impl<'a> Arbitrary<'a> for Semaphore {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        LimitConfig::arbitrary(u)?.semaphore().map_err(|_| arbitrary::Error::IncorrectFormat)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        LimitConfig::size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for TimeoutConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TimeoutConfig { time_limit: duration(u)? })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(9))
    }
}

/// A quota built with the public constructors, `Quota::every(interval)?.with_burst(burst)`,
/// that always builds: an interval of mostly a millisecond to a second (sometimes
/// nanoseconds, up to an hour, or the longest 64 bits of nanoseconds hold), and a burst of
/// mostly 1 to 5, sometimes anything that keeps `burst × interval` within 64 bits of
/// nanoseconds.
impl<'a> Arbitrary<'a> for Quota {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let interval = match u.int_in_range(0..=31u8)? {
            0 => Duration::from_nanos(u64::MAX),
            1 => Duration::from_nanos(u.int_in_range(1..=999_999)?),
            2 => Duration::from_secs(u.int_in_range(1..=3_600)?),
            _ => Duration::from_millis(u.int_in_range(1..=1_000)?),
        };
        // At least 1: the interval is at least a nanosecond.
        let max_burst = (u64::MAX / duration_to_nanos(interval)).min(u64::from(u32::MAX));
        let burst = u32::try_from(count(u, max_burst)?).unwrap_or(u32::MAX);
        Quota::every(interval)
            .and_then(|quota| quota.with_burst(burst))
            .map_err(|_| arbitrary::Error::IncorrectFormat)
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (2, Some(26))
    }
}

impl<'a> Arbitrary<'a> for RateLimitConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let quota = Quota::arbitrary(u)?;
        let max_wait = if u.arbitrary()? { Some(duration(u)?) } else { None };
        Ok(RateLimitConfig { quota, max_wait })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (3, Some(44))
    }
}

impl<'a> Arbitrary<'a> for Reply {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=9u8)? {
            0..=4 => Reply::Succeed { after: finite_duration(u)? },
            5..=7 => Reply::Fail { after: finite_duration(u)? },
            _ => Reply::Hang,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(10))
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=99u8)? {
            0..=39 => Op::Call(Reply::arbitrary(u)?),
            40..=69 => Op::Advance(finite_duration(u)?),
            70..=81 => Op::Cancel { call: u.arbitrary()? },
            82..=84 => Op::Reset,
            85..=86 => Op::ForceOpen,
            87..=93 => Op::BackendDown,
            _ => Op::BackendUp,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(11))
    }
}

/// A policy that always builds, of 1 to 100 attempts (mostly 1 to 5), and always draws its
/// jitter from a seed (also drawn from the bytes): without one, each call would draw from
/// a fresh generator and a simulation would no longer replay bit for bit.
impl<'a> Arbitrary<'a> for RetryPolicyBuilder {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Up to a hundred attempts: more would only repeat what the first hundred did,
        // and make every input that fails fast slow to run.
        let attempts = u32::try_from(count(u, 100)?).unwrap_or(100);
        let backoff = if u.ratio(1, 4)? { Duration::ZERO } else { finite_duration(u)? };
        // Exponential, decorrelated jitter or neither: the two together are refused.
        let shape = u.int_in_range(0..=2u8)?;
        let mut builder = RetryPolicyBuilder::new()
            .max_attempts(attempts)
            .backoff(backoff)
            .exponential(shape == 1)
            .decorrelated_jitter(shape == 2)
            .seed(u.arbitrary()?);
        if u.arbitrary()? {
            // A cap at or above the base delay.
            builder = builder.max_backoff(backoff.saturating_add(finite_duration(u)?));
        }
        if u.arbitrary()? {
            builder = builder.jitter(finite_duration(u)?);
        }
        if u.arbitrary()? {
            builder = builder.deadline(duration(u)?);
        }
        Ok(builder)
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (13, Some(60))
    }
}

impl<'a> Arbitrary<'a> for RetryPolicy {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        RetryPolicyBuilder::arbitrary(u)?.build().map_err(|_| arbitrary::Error::IncorrectFormat)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        RetryPolicyBuilder::size_hint(depth)
    }
}

/// A retry budget's configuration that always builds: a window of a millisecond to an
/// hour, at most a thousand retries a second.
impl<'a> Arbitrary<'a> for RetryBudgetConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let window = match u.int_in_range(0..=3u8)? {
            0 => Duration::from_secs(u.int_in_range(1..=3_600)?),
            _ => Duration::from_millis(u.int_in_range(1..=10_000)?),
        };
        Ok(RetryBudgetConfig {
            retry_percent: u.int_in_range(0..=MAX_RETRY_PERCENT)?,
            min_per_second: u.int_in_range(0..=1_000)?,
            window,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (4, Some(10))
    }
}

/// A budget's builder that always builds (see [`RetryBudgetConfig`]'s `Arbitrary`).
impl<'a> Arbitrary<'a> for RetryBudgetBuilder {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(RetryBudgetConfig::arbitrary(u)?.builder())
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        RetryBudgetConfig::size_hint(depth)
    }
}
