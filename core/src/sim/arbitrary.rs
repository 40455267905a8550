//! `Arbitrary` for the simulation's operations and for every configuration and builder
//! (feature `arbitrary`): a fuzzer's bytes decode into valid values only.
//!
//! Values are drawn where behaviour happens: counts are small (1 to 5) most of the time
//! and occasionally anything valid up to the largest the type supports; durations are
//! mostly milliseconds to a second, sometimes zero, nanoseconds, minutes or
//! [`Duration::MAX`]. Whatever the bytes, the configuration builds.

use arbitrary::{Arbitrary, Result, Unstructured};
use core::time::Duration;

use super::{BreakerConfig, LimitConfig, Op, Reply, TimeoutConfig};
use crate::breaker::{BreakerBuilder, MAX_COUNT};
use crate::limit::{MAX_PERMITS, Semaphore};

/// A count from 1: 1 to 5 most of the time, otherwise anything up to `max`.
fn count(u: &mut Unstructured<'_>, max: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => max,
        1 => u.int_in_range(1..=max)?,
        pick => u64::from(pick % 5) + 1,
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

impl<'a> Arbitrary<'a> for BreakerConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(BreakerConfig {
            failure_threshold: u32_count(u)?,
            recovery_timeout: duration(u)?,
            half_open_max_calls: u32_count(u)?,
            success_threshold: u32_count(u)?,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (4, Some(24))
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
