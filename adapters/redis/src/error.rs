//! Errors: configurations refused when built, and why a fleet-wide operation gave no
//! answer from Redis.

use std::fmt;
use std::time::Duration;

/// A configuration that cannot be built. Each variant names the field and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count or a duration that must not be zero was zero.
    Zero {
        /// The field: `capacity`, `local_limit`, `call_timeout`, `poll_interval`, ...
        field: &'static str,
    },
    /// A value above the largest the Redis scripts can track exactly.
    TooLarge {
        /// The field.
        field: &'static str,
        /// The value given, in the field's unit (a count, or microseconds for durations).
        value: u128,
        /// The largest accepted value, in the same unit.
        max: u128,
    },
    /// `lease_time` leaves no room to renew a lease before it ends: it must be at least
    /// four `call_timeout`s (a holder renews every third of the lease, and each renewal
    /// may take up to one `call_timeout`).
    LeaseTooShort {
        /// The lease time asked for.
        lease_time: Duration,
        /// The fleet's call timeout.
        call_timeout: Duration,
    },
    /// A name that cannot be part of a Redis key: empty, or containing `{`, `}` or
    /// whitespace (they would break the keys' hash tag or the wake-up messages).
    InvalidName {
        /// The field: `name` or `prefix`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// The Redis URL could not be parsed.
    InvalidUrl {
        /// Why, as the `redis` crate tells it.
        reason: String,
    },
    /// Built outside a tokio runtime: the fleet's background tasks (lease renewal,
    /// reconnection, pub/sub) need one.
    NoRuntime,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero { field } => write!(f, "{field} must not be zero"),
            ConfigError::TooLarge { field, value, max } => {
                write!(f, "{field} = {value} is above the largest supported value, {max}")
            }
            ConfigError::LeaseTooShort { lease_time, call_timeout } => write!(
                f,
                "lease_time = {lease_time:?} must be at least 4 x call_timeout ({call_timeout:?}) \
                 so that a lease can be renewed before it ends"
            ),
            ConfigError::InvalidName { field, value } => write!(
                f,
                "{field} = {value:?} cannot name Redis keys: it must be non-empty, without \
                 braces or whitespace"
            ),
            ConfigError::InvalidUrl { reason } => write!(f, "invalid Redis URL: {reason}"),
            ConfigError::NoRuntime => {
                f.write_str("kompoz-redis must be built inside a tokio runtime")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a call to Redis gave no answer: the link is known to be down, the call timed out,
/// or Redis answered with an error.
///
/// Like every error of kompoz-redis, its message says everything and it has no `source()`
/// (so a reporter that walks the chain prints each message once): a failed call's message
/// includes Redis's own, and the
/// [`redis::RedisError`](https://docs.rs/redis/1/redis/struct.RedisError.html) is kept in
/// the variant for matching.
/// (It is not a source: `redis` says an I/O error's message in its own and returns it as
/// its source too, which would print it twice.)
///
/// ```
/// use std::error::Error as _;
/// use kompoz_redis::Unreachable;
///
/// let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
/// let failed = Unreachable::Redis(reset.into());
/// assert_eq!(failed.to_string(), "Redis call failed: connection reset");
/// assert!(failed.source().is_none());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Unreachable {
    /// The link to Redis is down (a recent call failed); a background task is
    /// reconnecting with backoff, and calls are not attempted until it succeeds.
    Down,
    /// The call did not finish within the fleet's `call_timeout`.
    TimedOut(Duration),
    /// Redis or the connection returned an error.
    Redis(redis::RedisError),
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreachable::Down => f.write_str("Redis is unreachable; reconnecting"),
            Unreachable::TimedOut(after) => write!(f, "Redis did not answer within {after:?}"),
            Unreachable::Redis(error) => write!(f, "Redis call failed: {error}"),
        }
    }
}

/// No source: the message says Redis's error already.
impl std::error::Error for Unreachable {}
