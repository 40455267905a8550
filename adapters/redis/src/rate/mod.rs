//! A fleet-wide rate limit: GCRA in a Lua script, one key per limit (and per user key for
//! keyed limits), with exactly the arithmetic of kompoz's local limiter
//! ([`kompoz::rate`]), on a [`Quota`] of kompoz's own.
//!
//! Each check is one round trip: the script reads the theoretical arrival time (TAT),
//! decides on the Redis clock, and stores the new TAT, atomically. The arithmetic, in
//! unsigned 64-bit nanoseconds, is the one [`kompoz::rate`] documents with nothing waiting
//! ahead: `base = max(tat, now)`, `own = base + n x T`; admitted if `own <= now + tau`
//! (`tau = burst x T`), else refused until `own - tau`; see `rate/gcra.lua`, checked
//! decision for decision against the reference model (`kompoz_model::rate::gcra`) in
//! `tests/rate_scripts.rs`.
//!
//! A refusal is kompoz's own [`RateLimited`] (in [`RateError::Limited`]): the wait Redis
//! reported, and the instant it ends on the limiter's clock. In a
//! [pipeline](crate::pipeline::FleetRateLayer) or a [combinator](fleet_rate_limited) it is
//! [`Rejection::Rate`](kompoz::Rejection::Rate), and retries honour its wait.
//!
//! **Local reservation** ([`RateBuilder::reserve`]): with `reserve(k)`, a check that goes
//! to Redis takes up to `k` cells at once if they conform, and the process spends the
//! spare ones locally, without round trips, within `k x T` of taking them. Fewer round
//! trips for some precision: cells are counted when reserved, so over any window `W` the
//! fleet admits at most `burst + k + W / T` cells per process that reserves, and unspent
//! reserved cells are lost (admitting less than the quota, never more than that bound).
//!
//! **While Redis is unreachable** ([`Degradation::Local`], the default), each process
//! decides with kompoz's own [`RateLimiter`](kompoz::rate::RateLimiter) (or
//! [`KeyedRateLimiter`](kompoz::rate::KeyedRateLimiter), at most [`MAX_LOCAL_KEYS`] keys)
//! on the same quota, on the limiter's clock; when Redis is back the cells it admitted
//! are charged to the fleet's TAT (at most a full burst per key), before the next check
//! of that key.

use std::fmt;
use std::time::Duration;

use kompoz::rate::{ExceedsBurst, Quota, RateLimited, TooManyKeys};
use kompoz::{Clock, RetryAfter, StdClock};

use crate::Degradation;
use crate::error::ConfigError;
use crate::fleet::{Fleet, check_name};
use crate::limit::Admission;

pub(crate) mod combinator;
mod limiter;
mod local;
mod shared;

pub use combinator::{FleetThrottled, fleet_rate_limited};
pub use limiter::{FleetKeyedRateLimiter, FleetRateLimiter};

use shared::RateShared;

/// The largest [`RateBuilder::reserve`].
pub const MAX_RESERVE: u32 = 1_000;
/// At most this many keys are tracked locally while Redis is unreachable: beyond it, a
/// new key is refused ([`RateError::TooManyKeys`]) until older ones are idle.
pub const MAX_LOCAL_KEYS: usize = 100_000;

/// Why a fleet rate limit refused a request. Cheap to copy; never allocates.
///
/// ```
/// use std::time::Duration;
/// use kompoz::RetryAfter;
/// use kompoz::rate::{ExceedsBurst, RateLimited};
/// use kompoz_redis::rate::RateError;
///
/// let limited = RateError::Limited(RateLimited {
///     earliest: kompoz::Instant::from_nanos(5_000_000),
///     wait: Duration::from_millis(5),
/// });
/// assert_eq!(limited.retry_after(), Some(Duration::from_millis(5)));
/// let never = RateError::ExceedsBurst(ExceedsBurst { cells: 9, burst: 4 });
/// assert_eq!(never.retry_after(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateError {
    /// The cells do not conform yet: kompoz's [`RateLimited`], with the wait (measured
    /// from the decision) and the instant it ends, on the limiter's clock.
    Limited(RateLimited),
    /// More cells at once than the burst: they never conform.
    ExceedsBurst(ExceedsBurst),
    /// Redis is unreachable, and the local fallback of a keyed limit already tracks
    /// [`MAX_LOCAL_KEYS`] keys that are not idle: a new key is refused.
    TooManyKeys(TooManyKeys),
    /// Redis is unreachable and the limit fails closed.
    Unavailable,
}

impl RateError {
    /// How long to wait before retrying, when waiting is known to help (a refusal whose
    /// cells conform later).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RateError::Limited(limited) => Some(limited.wait),
            _ => None,
        }
    }
}

impl RetryAfter for RateError {
    fn retry_after(&self) -> Option<Duration> {
        RateError::retry_after(self)
    }
}

impl From<RateLimited> for RateError {
    fn from(limited: RateLimited) -> Self {
        RateError::Limited(limited)
    }
}

impl From<ExceedsBurst> for RateError {
    fn from(exceeds: ExceedsBurst) -> Self {
        RateError::ExceedsBurst(exceeds)
    }
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::Limited(limited) => limited.fmt(f),
            RateError::ExceedsBurst(exceeds) => exceeds.fmt(f),
            RateError::TooManyKeys(full) => full.fmt(f),
            RateError::Unavailable => {
                f.write_str("Redis is unreachable and the rate limit fails closed")
            }
        }
    }
}

impl std::error::Error for RateError {}

/// An admission by a fleet rate limit: how it was decided, and when, for the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Admitted {
    /// [`Admission::Fleet`]: counted in Redis (now, or when reserved); `Local`: by the
    /// local fallback while Redis was unreachable; `Open`: failing open.
    pub admission: Admission,
    /// For a fleet admission, the instant Redis decided it (nanoseconds since the Unix
    /// epoch on the Redis clock; for a reserved cell, when it was reserved).
    pub decided_at: Option<u64>,
}

impl Fleet {
    /// A builder for the fleet-wide rate limit `name`, admitting kompoz's `quota`. Every
    /// process must use the same quota.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::rate::Quota;
    /// use kompoz_redis::Fleet;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
    /// let api = fleet.rate_limit("api", Quota::per_second(100)?.with_burst(20)?).build()?;
    /// assert_eq!(api.quota().interval(), Duration::from_millis(10));
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(&self, name: impl Into<String>, quota: Quota) -> RateBuilder {
        RateBuilder {
            fleet: self.clone(),
            name: name.into(),
            quota,
            reserve: 1,
            degradation: Degradation::Local,
        }
    }
}

/// Configures a [`FleetRateLimiter`] or a [`FleetKeyedRateLimiter`]; made by
/// [`Fleet::rate_limit`]. The quota was validated when it was made (kompoz's [`Quota`]);
/// the builder checks the name and the reservation.
///
/// ```
/// use kompoz::rate::Quota;
/// use kompoz_redis::{ConfigError, Fleet};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let quota = Quota::per_second(100)?;
/// let refused = fleet.rate_limit("api", quota).reserve(0).build().unwrap_err();
/// assert_eq!(refused, ConfigError::Zero { field: "reserve" });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RateBuilder {
    fleet: Fleet,
    name: String,
    quota: Quota,
    reserve: u32,
    degradation: Degradation,
}

impl RateBuilder {
    /// Reserve up to `k` cells per round trip and spend the spare ones locally (default 1:
    /// no reservation); see the [module documentation](self) for what it costs in
    /// precision. At most [`MAX_RESERVE`].
    pub fn reserve(mut self, k: u32) -> Self {
        self.reserve = k;
        self
    }

    /// What to do while Redis is unreachable (default [`Degradation::Local`]).
    pub fn degradation(mut self, degradation: Degradation) -> Self {
        self.degradation = degradation;
        self
    }

    fn check(&self) -> Result<(), ConfigError> {
        check_name("name", &self.name)?;
        if self.reserve == 0 {
            return Err(ConfigError::Zero { field: "reserve" });
        }
        if self.reserve > MAX_RESERVE {
            return Err(ConfigError::TooLarge {
                field: "reserve",
                value: self.reserve.into(),
                max: MAX_RESERVE.into(),
            });
        }
        Ok(())
    }

    /// Builds a limiter with one quota for the whole fleet, on [`StdClock`].
    pub fn build(self) -> Result<FleetRateLimiter, ConfigError> {
        self.build_with(StdClock)
    }

    /// Builds a limiter with one quota for the whole fleet; the local fallback and the
    /// instants of refusals read `clock`.
    ///
    /// ```
    /// use kompoz::ManualClock;
    /// use kompoz::rate::Quota;
    /// use kompoz_redis::Fleet;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
    /// let clock = ManualClock::new();
    /// let api = fleet.rate_limit("api", Quota::per_second(10)?).build_with(clock.clone())?;
    /// assert_eq!(api.name(), "api");
    /// # Ok(()) }
    /// ```
    pub fn build_with<C: Clock>(self, clock: C) -> Result<FleetRateLimiter<C>, ConfigError> {
        self.check()?;
        let key = format!("{}:rate:{}", self.fleet.shared.prefix, self.name);
        let local = local::Local::direct(self.quota, clock);
        Ok(FleetRateLimiter::new(RateShared::new(self, key, local)))
    }

    /// Builds a limiter with one quota per key (client, account, tenant), each shared by
    /// the fleet, on [`StdClock`].
    pub fn build_keyed(self) -> Result<FleetKeyedRateLimiter, ConfigError> {
        self.build_keyed_with(StdClock)
    }

    /// Builds a limiter with one quota per key; the local fallback and the instants of
    /// refusals read `clock`.
    pub fn build_keyed_with<C: Clock>(
        self,
        clock: C,
    ) -> Result<FleetKeyedRateLimiter<C>, ConfigError> {
        self.check()?;
        let key = format!("{}:rate:{}", self.fleet.shared.prefix, self.name);
        let local = local::Local::keyed(self.quota, clock);
        Ok(FleetKeyedRateLimiter::new(RateShared::new(self, key, local)))
    }
}
