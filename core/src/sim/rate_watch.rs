//! [`RateWatch`]: checks that a rate limit was never exceeded over any window.

use alloc::vec::Vec;
use core::time::Duration;

use super::Violation;
use super::invariants::FirstViolation;
use crate::rate::Quota;
use crate::sync::SpinMutex;
use crate::time::{Instant, duration_to_nanos};

/// Watches a rate limit of one cell per `interval` with bursts of up to `burst` cells:
/// call [`admitted`](RateWatch::admitted) where a call has passed the limiter, and
/// [`check`](RateWatch::check) that over **every** window of time the calls let through
/// stayed within what the rate allows.
///
/// The bound is the one a GCRA limiter (and any token bucket of that rate and size)
/// guarantees: over any closed window `[a, b]`, at most `burst + floor((b - a) / interval)`
/// cells. Each admission is checked against every window that ends with it, so the
/// watch costs time and memory proportional to the admissions so far: meant for
/// simulations, not production.
///
/// ```
/// use core::time::Duration;
/// use kompoz::Instant;
/// use kompoz::sim::{RateWatch, Violation};
///
/// // 10 a second (one every 100 ms), at most 3 at once.
/// let watch = RateWatch::new(3, Duration::from_millis(100));
/// let at = |ms| Instant::ZERO + Duration::from_millis(ms);
/// for ms in [0, 0, 0, 100, 200, 300] {
///     watch.admitted(at(ms), 1);
/// }
/// assert_eq!(watch.check(), Ok(()));
/// watch.admitted(at(350), 1); // a fourth within 350 ms of the first three
/// assert_eq!(
///     watch.check(),
///     Err(Violation::RateExceeded {
///         admitted: 7,
///         window: Duration::from_millis(350),
///         allowed: 6,
///     }),
/// );
/// ```
#[derive(Debug)]
pub struct RateWatch {
    burst: u64,
    interval_nanos: u64,
    /// Every admission: when, and how many cells.
    admissions: SpinMutex<Vec<(Instant, u64)>>,
    violation: FirstViolation,
}

impl RateWatch {
    /// A watch of a limit of one cell per `interval` (at least a nanosecond), `burst`
    /// cells at once.
    pub fn new(burst: u32, interval: Duration) -> RateWatch {
        RateWatch {
            burst: u64::from(burst),
            interval_nanos: duration_to_nanos(interval).max(1),
            admissions: SpinMutex::new(Vec::new()),
            violation: FirstViolation::default(),
        }
    }

    /// A watch of a limiter of `quota`: the bound its [`RateLimiter`](crate::RateLimiter)
    /// (or [`KeyedRateLimiter`](crate::KeyedRateLimiter), for one key) guarantees on a
    /// clock without coarse lag, such as the [`ManualClock`](crate::ManualClock).
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::sim::RateWatch;
    /// use kompoz::{Clock, ManualClock};
    ///
    /// let quota = Quota::per_second(20)?.with_burst(4)?;
    /// let (clock, watch) = (ManualClock::new(), RateWatch::for_quota(&quota));
    /// let limiter = RateLimiter::new(quota, clock.clone());
    /// for _ in 0..100 {
    ///     if limiter.check().is_ok() {
    ///         watch.admitted(clock.now(), 1); // where the call passed the limiter
    ///     }
    ///     clock.advance(Duration::from_millis(7));
    /// }
    /// assert_eq!(watch.check(), Ok(()));
    /// assert_eq!(watch.total(), limiter.stats().admitted);
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub fn for_quota(quota: &Quota) -> RateWatch {
        RateWatch::new(quota.burst(), quota.interval())
    }

    /// Records that `cells` cells passed the limiter at `now` (the limiter's clock; it
    /// must not step back), and checks every window that ends now.
    pub fn admitted(&self, now: Instant, cells: u32) {
        let found = self.admissions.with(|admissions| {
            admissions.push((now, u64::from(cells)));
            let mut in_window = 0u64;
            for &(since, cells) in admissions.iter().rev() {
                in_window += cells;
                let window = now.saturating_duration_since(since);
                let allowed =
                    self.burst.saturating_add(duration_to_nanos(window) / self.interval_nanos);
                if in_window > allowed {
                    return Some(Violation::RateExceeded { admitted: in_window, window, allowed });
                }
            }
            None
        });
        if let Some(violation) = found {
            self.violation.record(violation);
        }
    }

    /// Cells admitted so far.
    pub fn total(&self) -> u64 {
        self.admissions.with(|admissions| admissions.iter().map(|&(_, cells)| cells).sum())
    }

    /// The first violation seen, if any.
    pub fn check(&self) -> Result<(), Violation> {
        self.violation.check()
    }
}
