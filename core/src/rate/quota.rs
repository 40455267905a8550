//! [`Quota`]: how many cells a rate limiter admits, and how many at once.

use core::fmt;
use core::time::Duration;

use super::QuotaError;

/// How fast a rate limiter admits cells (calls, requests, bytes: whatever one unit of work
/// is): one cell every `interval`, with up to `burst` cells at once after a quiet spell.
///
/// `Quota::per_second(100)` admits 100 cells a second, all 100 at once if they come
/// together; `.with_burst(20)` keeps the rate but admits at most 20 at once, then one
/// every 10 ms. Built once and validated then: a zero, or a rate that 64 bits of
/// nanoseconds cannot represent, is a [`QuotaError`] naming the field and the value.
///
/// The interval is a whole number of nanoseconds: `cells` per `period` becomes one cell
/// every `period / cells`, **rounded up**, so the limiter never admits faster than asked
/// (3 per second is one cell every 333,333,334 ns).
///
/// ```
/// use core::time::Duration;
/// use kompoz::rate::{Quota, QuotaError};
///
/// let quota = Quota::per_second(100)?.with_burst(20)?;
/// assert_eq!(quota.interval(), Duration::from_millis(10));
/// assert_eq!(quota.burst(), 20);
/// assert_eq!(Quota::per_minute(0), Err(QuotaError::ZeroCells));
/// assert_eq!(Quota::per_second(100)?.with_burst(0), Err(QuotaError::ZeroBurst));
/// # Ok::<(), QuotaError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Nanoseconds per cell (>= 1).
    interval: u64,
    /// Cells admitted at once (>= 1); `burst * interval` fits in a `u64`.
    burst: u32,
}

impl Quota {
    /// `cells` per second, all of them at once if they come together.
    pub const fn per_second(cells: u32) -> Result<Quota, QuotaError> {
        Quota::per(cells, Duration::from_secs(1))
    }

    /// `cells` per minute, all of them at once if they come together.
    pub const fn per_minute(cells: u32) -> Result<Quota, QuotaError> {
        Quota::per(cells, Duration::from_secs(60))
    }

    /// `cells` per hour, all of them at once if they come together.
    pub const fn per_hour(cells: u32) -> Result<Quota, QuotaError> {
        Quota::per(cells, Duration::from_secs(3_600))
    }

    /// `cells` per `period`, with a burst of `cells`.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::rate::{Quota, QuotaError};
    ///
    /// let quota = Quota::per(3, Duration::from_secs(1))?;
    /// assert_eq!(quota.interval(), Duration::from_nanos(333_333_334)); // rounded up
    /// assert!(matches!(Quota::per(2, Duration::from_nanos(1)), Err(QuotaError::TooFast { .. })));
    /// # Ok::<(), QuotaError>(())
    /// ```
    pub const fn per(cells: u32, period: Duration) -> Result<Quota, QuotaError> {
        if cells == 0 {
            return Err(QuotaError::ZeroCells);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        let nanos = period.as_nanos();
        if nanos > u64::MAX as u128 {
            return Err(QuotaError::PeriodTooLong { period });
        }
        let nanos = nanos as u64;
        let cells64 = cells as u64;
        if nanos < cells64 {
            return Err(QuotaError::TooFast { cells, period });
        }
        // Rounded up: never faster than asked.
        let interval = nanos.div_ceil(cells64);
        Quota::from_parts(interval, cells)
    }

    /// One cell every `interval`, with a burst of one.
    pub const fn every(interval: Duration) -> Result<Quota, QuotaError> {
        if interval.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        let nanos = interval.as_nanos();
        if nanos > u64::MAX as u128 {
            return Err(QuotaError::PeriodTooLong { period: interval });
        }
        Quota::from_parts(nanos as u64, 1)
    }

    /// The same rate with at most `burst` cells at once.
    pub const fn with_burst(self, burst: u32) -> Result<Quota, QuotaError> {
        Quota::from_parts(self.interval, burst)
    }

    const fn from_parts(interval: u64, burst: u32) -> Result<Quota, QuotaError> {
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        if interval.checked_mul(burst as u64).is_none() {
            return Err(QuotaError::BurstTooLong {
                burst,
                interval: Duration::from_nanos(interval),
            });
        }
        Ok(Quota { interval, burst })
    }

    /// The time one cell costs: the limiter admits one cell per interval on average.
    pub const fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The most cells admitted at once.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The interval in nanoseconds.
    pub(crate) const fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// The quota of parameters that were validated when it was first built.
    pub(crate) const fn from_valid(interval: u64, burst: u32) -> Quota {
        Quota { interval, burst }
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("interval", &self.interval())
            .field("burst", &self.burst)
            .finish()
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one cell every {:?}, burst {}", self.interval(), self.burst)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn constructors_validate_every_field() {
        assert_eq!(Quota::per_second(100).unwrap().interval(), Duration::from_millis(10));
        assert_eq!(Quota::per_minute(60).unwrap().interval(), Duration::from_secs(1));
        assert_eq!(Quota::per_hour(1).unwrap().burst(), 1);
        assert_eq!(Quota::per(1, Duration::ZERO), Err(QuotaError::ZeroPeriod));
        assert_eq!(Quota::every(Duration::ZERO), Err(QuotaError::ZeroPeriod));
        assert_eq!(
            Quota::per(1, Duration::MAX),
            Err(QuotaError::PeriodTooLong { period: Duration::MAX })
        );
        assert_eq!(
            Quota::every(Duration::MAX),
            Err(QuotaError::PeriodTooLong { period: Duration::MAX })
        );
        assert_eq!(
            Quota::per_second(1_000_000_001),
            Err(QuotaError::TooFast { cells: 1_000_000_001, period: Duration::from_secs(1) })
        );
        assert_eq!(Quota::per_second(1_000_000_000).unwrap().interval(), Duration::from_nanos(1));
        let slow = Quota::every(Duration::from_nanos(u64::MAX / 2)).unwrap();
        assert_eq!(slow.with_burst(2).unwrap().burst(), 2);
        assert_eq!(
            slow.with_burst(3),
            Err(QuotaError::BurstTooLong { burst: 3, interval: slow.interval() })
        );
    }

    #[test]
    fn display_names_the_interval_and_the_burst() {
        let quota = Quota::per_second(100).unwrap().with_burst(20).unwrap();
        assert_eq!(alloc::format!("{quota}"), "one cell every 10ms, burst 20");
    }
}
