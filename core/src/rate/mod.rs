//! Rate limits: how many calls *start* per unit of time (where [`limit`](crate::limit)
//! bounds how many *run* at once). A [`RateLimiter`] shares one quota between all its
//! callers; a [`KeyedRateLimiter`] keeps one per key (client address, API key, tenant).
//!
//! The combinator face is [`rate_limited`](crate::rate_limited) and
//! [`rate_limited_on`](crate::rate_limited_on); the plain-future face is
//! [`RateLimiter::run`] and [`RateLimiter::until_ready`]; the non-waiting face is
//! [`RateLimiter::check`]. Quotas are shared by name through the
//! [`Registry`](crate::limit::Registry).
//!
//! # The algorithm: GCRA, exactly
//!
//! Both limiters run the generic cell rate algorithm (GCRA, the "virtual scheduling" form
//! of a leaky bucket). Its whole state is one number, the *theoretical arrival time*
//! (TAT): the instant at which the limiter will have paid off every cell admitted so far,
//! if cells are paid off at one per interval. A fresh or idle limiter has `TAT <= now`.
//!
//! Every value is an unsigned 64-bit integer of **nanoseconds**: instants on the limiter's
//! [`Clock`](crate::Clock) (`Instant::as_nanos`), durations, and the stored TAT. There is
//! no floating point and no rounding after the quota is built. With
//!
//! * `T` = the quota's interval in nanoseconds (`period / cells`, rounded **up**, >= 1),
//! * `τ` = `burst × T` (the quota guarantees it fits in 64 bits),
//! * `tat` = the stored TAT (0 for a fresh limiter or key; `reset` stores 0 again),
//! * `now` = the clock's reading, `n` = the cells asked for (`1 <= n <= burst`), and
//! * `ahead` = cells that waiting tasks queued earlier still have to take (0 for a keyed
//!   limiter, which has no waiters),
//!
//! a request is decided by this arithmetic, computed exactly (in 128 bits, so nothing
//! overflows before the comparisons):
//!
//! ```text
//! base  = max(tat, now)
//! own   = base + n × T                   the TAT after these cells
//! total = own + ahead × T                the TAT after the queued cells and these
//! if own > 2^64 − 1:     refuse, earliest = 2^64 − 1   (a TAT beyond the end of time)
//! elif total <= now + τ: admit, and store tat := own
//! else:                  refuse, earliest = min(total − τ, 2^64 − 1); tat is unchanged
//! ```
//!
//! `earliest` is the first instant at which the same request would be admitted if nothing
//! else happened meanwhile; the rejection ([`RateLimited`]) carries it, and the wait from
//! the reading it was decided on. A request for more than `burst` cells never conforms
//! and is refused without touching the state ([`ExceedsBurst`]); a request for zero cells
//! is admitted without touching it. Consequences, all tested:
//!
//! * a fresh limiter admits `burst` cells at once, then one per `T`;
//! * over any window of length `W` (on the clock the decisions read), at most
//!   `burst + W / T` cells are admitted (rounded down);
//! * a clock that steps back only makes waits longer; at the end of time
//!   ([`Instant::MAX`](crate::Instant::MAX)) nothing more is admitted.
//!
//! A reimplementation elsewhere (the Redis script) must reproduce exactly these lines.
//! All intermediate values are integers below `2^65`; a language whose numbers are
//! doubles (Lua 5.1) is exact only below `2^53`, so it must keep its values small, for
//! example by storing the TAT relative to a recent epoch.
//!
//! # Which clock reading
//!
//! [`RateLimiter::check`] and [`KeyedRateLimiter::check`] decide on the clock's cheap
//! reading, [`Clock::now_coarse`](crate::Clock::now_coarse), which may lag the precise one
//! by up to [`Clock::coarse_lag`](crate::Clock::coarse_lag) (zero for
//! [`ManualClock`](crate::ManualClock) and the adapters' clocks; two kernel ticks, a few
//! milliseconds, for [`StdClock`](crate::StdClock) on Linux). Since a lagging reading can
//! only make a cell look *less* conforming, an admission decided on it is right; a
//! refusal whose `earliest` lies within `coarse_lag` of the reading is decided again on
//! the precise clock, so refusals are right too, and retrying after the reported wait
//! succeeds. (The direct limiter reads `coarse_lag` once, when it is built.) What the lag can affect is the TAT stored when an idle limiter admits (it
//! counts from the coarse reading, up to `coarse_lag` early): over a window of length `W`
//! at most `burst + (W + coarse_lag) / T` cells are admitted. Waiting
//! ([`until_ready`](RateLimiter::until_ready), and so the combinator in its default mode)
//! reads only the precise clock, so its admissions are exact. For exact windows with
//! `check` on the system clock too, give the limiter
//! [`Precise`](crate::time::Precise)`(StdClock)`.

use alloc::borrow::Cow;
use core::fmt;
use core::time::Duration;

use crate::time::Instant;

mod direct;
mod keyed;
mod machine;
mod queue;
mod quota;
mod tally;
mod wait;

pub use direct::{AsRateLimiter, RateLimiter};
pub use keyed::{DefaultHasher, KeyedRateLimiter, KeyedStats};
pub use quota::Quota;

/// A rate limiter's name, as it keeps it: one thin pointer (8 bytes on 64-bit targets)
/// rather than a `Cow`'s 24, since it is read only when a refusal is reported and by
/// `Debug`. Naming allocates once; reporting allocates nothing.
pub(crate) type Name = Option<alloc::boxed::Box<Cow<'static, str>>>;

/// Reports a refusal by the rate limiter named `name` to the `tracing` and `metrics`
/// integrations (nothing without them, and the name is not even read):
/// `kompoz_rejections_total{primitive="rate_limiter",name,cause="rate_limited"}`.
#[inline]
pub(crate) fn report_refusal(name: &Name, limited: RateLimited) {
    if crate::events::enabled(None) {
        refused(name.as_deref().map_or("", |name| &**name), limited);
    }
}

#[cold]
fn refused(name: &str, limited: RateLimited) {
    use crate::events::{Event, EventKind, Primitive, Source, report};
    let source = Source { primitive: Primitive::RateLimiter, name };
    report(&Event { source, kind: EventKind::Rejected(crate::Rejection::Rate(limited)) });
}

/// A request refused by a rate limiter: its cells do not conform yet.
///
/// `earliest` is the instant (on the limiter's clock) from which the same request would
/// be admitted if nothing else happened meanwhile, and `wait` how long that is from the
/// reading the decision was made on: a "retry after" hint, never too short. Cheap to
/// make and copy: a rejection allocates nothing.
///
/// ```
/// use std::time::Duration;
/// use kompoz::rate::{Quota, RateLimiter};
/// use kompoz::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::new(Quota::per_second(10)?.with_burst(1)?, clock.clone());
/// limiter.check().expect("the first cell conforms");
/// let refused = limiter.check().unwrap_err();
/// assert_eq!(refused.wait, Duration::from_millis(100));
/// assert_eq!(refused.earliest, clock.now() + refused.wait);
/// # Ok::<(), kompoz::rate::QuotaError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimited {
    /// The first instant at which the request would conform
    /// ([`Instant::MAX`]: never, on this clock).
    pub earliest: Instant,
    /// How long after the decision that is: how long to wait before retrying.
    pub wait: Duration,
}

impl RateLimited {
    #[inline]
    pub(crate) fn at(earliest: u64, now: Instant) -> RateLimited {
        let earliest = Instant::from_nanos(earliest);
        RateLimited { earliest, wait: earliest.saturating_duration_since(now) }
    }

    /// The refusal until `earliest`, `wait` nanoseconds after the reading.
    #[inline(always)]
    pub(crate) fn after(earliest: u64, wait: u64) -> RateLimited {
        RateLimited { earliest: Instant::from_nanos(earliest), wait: Duration::from_nanos(wait) }
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited: retry after {:?}", self.wait)
    }
}

impl core::error::Error for RateLimited {}

/// A request for more cells at once than the quota's burst: it can never conform, so it
/// is refused at once rather than waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExceedsBurst {
    /// The cells asked for.
    pub cells: u32,
    /// The quota's burst: the most cells a request can have.
    pub burst: u32,
}

impl fmt::Display for ExceedsBurst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cells asked for at once, more than the burst of {}", self.cells, self.burst)
    }
}

impl core::error::Error for ExceedsBurst {}

/// Why [`RateLimiter::check_n`] (or a wait for several cells) refused a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatchError {
    /// The cells do not conform yet.
    RateLimited(RateLimited),
    /// More cells than the burst: they never will.
    ExceedsBurst(ExceedsBurst),
}

impl BatchError {
    /// How long to wait before retrying, if waiting can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BatchError::RateLimited(limited) => Some(limited.wait),
            BatchError::ExceedsBurst(_) => None,
        }
    }
}

impl From<RateLimited> for BatchError {
    fn from(limited: RateLimited) -> Self {
        BatchError::RateLimited(limited)
    }
}

impl From<ExceedsBurst> for BatchError {
    fn from(exceeds: ExceedsBurst) -> Self {
        BatchError::ExceedsBurst(exceeds)
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::RateLimited(limited) => limited.fmt(f),
            BatchError::ExceedsBurst(exceeds) => exceeds.fmt(f),
        }
    }
}

impl core::error::Error for BatchError {}

/// A [`KeyedRateLimiter`] with a maximum number of keys is full, and none of its keys is
/// idle enough to forget: a new key cannot be tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TooManyKeys {
    /// The limiter's maximum number of keys.
    pub max_keys: usize,
}

impl fmt::Display for TooManyKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the keyed rate limiter tracks its maximum of {} keys, none idle", self.max_keys)
    }
}

impl core::error::Error for TooManyKeys {}

/// Why a [`KeyedRateLimiter`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyedError {
    /// The key's cells do not conform yet.
    RateLimited(RateLimited),
    /// More cells than the burst: they never will.
    ExceedsBurst(ExceedsBurst),
    /// A new key, and no room to track it.
    TooManyKeys(TooManyKeys),
}

impl KeyedError {
    /// How long to wait before retrying, if waiting is known to help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            KeyedError::RateLimited(limited) => Some(limited.wait),
            KeyedError::ExceedsBurst(_) | KeyedError::TooManyKeys(_) => None,
        }
    }
}

impl From<RateLimited> for KeyedError {
    fn from(limited: RateLimited) -> Self {
        KeyedError::RateLimited(limited)
    }
}

impl fmt::Display for KeyedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedError::RateLimited(limited) => limited.fmt(f),
            KeyedError::ExceedsBurst(exceeds) => exceeds.fmt(f),
            KeyedError::TooManyKeys(full) => full.fmt(f),
        }
    }
}

impl core::error::Error for KeyedError {}

/// A quota, a keyed limiter or a shared rate limit that cannot be built as asked. Each
/// variant names the bad value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaError {
    /// `cells` was zero: such a quota would admit nothing.
    ZeroCells,
    /// The period (or interval) was zero.
    ZeroPeriod,
    /// `burst` was zero: no request could ever be admitted.
    ZeroBurst,
    /// More than one cell per nanosecond: `cells` per `period` cannot be represented.
    TooFast {
        /// Cells asked for per period.
        cells: u32,
        /// The period.
        period: Duration,
    },
    /// The period does not fit in 64 bits of nanoseconds (about 584 years).
    PeriodTooLong {
        /// The period asked for.
        period: Duration,
    },
    /// `burst × interval` does not fit in 64 bits of nanoseconds.
    BurstTooLong {
        /// The burst asked for.
        burst: u32,
        /// The quota's interval.
        interval: Duration,
    },
    /// A keyed limiter's `max_keys` was zero: it could track no key.
    ZeroMaxKeys,
    /// The name is already registered with another quota; it is never silently shared.
    QuotaMismatch {
        /// The rate limit's name.
        name: Cow<'static, str>,
        /// The quota it was registered with.
        existing: Quota,
        /// The quota asked for now.
        requested: Quota,
    },
    /// The name is already registered on another type of clock.
    ClockMismatch {
        /// The rate limit's name.
        name: Cow<'static, str>,
        /// The clock type it was registered with.
        existing: &'static str,
        /// The clock type asked for now.
        requested: &'static str,
    },
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::ZeroCells => f.write_str("cells must be at least 1, got 0"),
            QuotaError::ZeroPeriod => f.write_str("the period must be longer than zero, got 0"),
            QuotaError::ZeroBurst => f.write_str("burst must be at least 1, got 0"),
            QuotaError::TooFast { cells, period } => write!(
                f,
                "{cells} cells per {period:?} is faster than one per nanosecond, which cannot \
                 be represented"
            ),
            QuotaError::PeriodTooLong { period } => {
                write!(f, "the period {period:?} exceeds 2^64 nanoseconds (about 584 years)")
            }
            QuotaError::BurstTooLong { burst, interval } => {
                write!(f, "burst {burst} times the interval {interval:?} exceeds 2^64 nanoseconds")
            }
            QuotaError::ZeroMaxKeys => f.write_str("max_keys must be at least 1, got 0"),
            QuotaError::QuotaMismatch { name, existing, requested } => write!(
                f,
                "the rate limit {name:?} exists with the quota ({existing}); it cannot also \
                 have the quota ({requested})"
            ),
            QuotaError::ClockMismatch { name, existing, requested } => write!(
                f,
                "the rate limit {name:?} exists on the clock {existing}; it cannot also be \
                 on the clock {requested}"
            ),
        }
    }
}

impl core::error::Error for QuotaError {}

/// A snapshot of a [`RateLimiter`]'s counters and state. Each field is read atomically,
/// but not all together: under concurrent use they may be a moment apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateStats {
    /// Cells admitted so far (a batch of `n` counts `n`).
    pub admitted: u64,
    /// Requests refused so far (checks, batches and waits that gave up; one each).
    pub rejected: u64,
    /// Tasks waiting in line now.
    pub waiting: usize,
    /// How long a one-cell request made now would wait (zero: it would be admitted).
    pub wait: Duration,
    /// Cells a request made now could have at once, behind the waiting tasks.
    pub available: u32,
}

#[cfg(all(test, not(loom)))]
mod tests;
