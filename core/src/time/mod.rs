//! Time: a monotonic [`Instant`], the [`Clock`] and [`Sleep`] traits, and clocks to use.
//!
//! Everything time-dependent in kompoz reads a [`Clock`] and waits on a [`Sleep`], never on
//! the operating system directly, so the same code runs on tokio, smol, async-std, an
//! embedded executor with a hardware tick counter, or a [`ManualClock`] in a test.
//!
//! All arithmetic on [`Instant`] saturates: a clock that steps backwards or a deadline
//! that lies beyond the end of time gives a zero duration or [`Instant::MAX`], never a
//! panic.

use core::fmt;
use core::future::Future;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

// The manual clock shares its time line through an `Arc`, which needs pointer-sized
// atomic compare-and-swap.
#[cfg(target_has_atomic = "ptr")]
mod manual;
mod precise;
#[cfg(feature = "std")]
mod std_clock;

#[cfg(target_has_atomic = "ptr")]
pub use manual::{ManualClock, ManualSleep};
pub use precise::Precise;
#[cfg(feature = "std")]
pub use std_clock::{StdClock, StdSleep};

/// A point in time on one monotonic clock, as nanoseconds since that clock's epoch.
///
/// Each [`Clock`] chooses its own epoch (the moment the process started, the board booted,
/// or zero for a [`ManualClock`]), so instants are only comparable when they come from the
/// same clock. 64 bits of nanoseconds span about 584 years.
///
/// All arithmetic saturates instead of overflowing or panicking:
///
/// ```
/// use core::time::Duration;
/// use kompoz::Instant;
///
/// let t = Instant::from_nanos(1_000);
/// assert_eq!(t + Duration::MAX, Instant::MAX);
/// // A clock that stepped back: the elapsed time is zero, not a panic.
/// assert_eq!(Instant::from_nanos(10) - t, Duration::ZERO);
/// assert_eq!(t - Duration::from_secs(1), Instant::ZERO);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The epoch of the clock: where a [`ManualClock`] starts.
    ///
    /// ```
    /// use kompoz::{Clock, Instant, ManualClock};
    ///
    /// assert_eq!(ManualClock::new().now(), Instant::ZERO);
    /// ```
    pub const ZERO: Instant = Instant { nanos: 0 };
    /// The latest representable instant; a deadline of `MAX` is never reached.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    ///
    /// // "Never" is a deadline, not an overflow.
    /// assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
    /// ```
    pub const MAX: Instant = Instant { nanos: u64::MAX };

    /// The instant `nanos` nanoseconds after the clock's epoch.
    ///
    /// ```
    /// use kompoz::Instant;
    ///
    /// // A clock over a 1 kHz tick counter: tick 1500 is 1.5 s after boot.
    /// let ticks: u64 = 1_500;
    /// let at = Instant::from_nanos(ticks.saturating_mul(1_000_000));
    /// assert_eq!(at.as_nanos(), 1_500_000_000);
    /// ```
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    /// Nanoseconds since the clock's epoch.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    ///
    /// let deadline = Instant::ZERO + Duration::from_millis(250);
    /// assert_eq!(deadline.as_nanos(), 250_000_000);
    /// ```
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// `self + duration`, or `None` if that lies beyond [`Instant::MAX`].
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    ///
    /// let t = Instant::from_nanos(1_000);
    /// assert_eq!(t.checked_add(Duration::from_nanos(500)), Some(Instant::from_nanos(1_500)));
    /// assert_eq!(t.checked_add(Duration::MAX), None);
    /// ```
    pub fn checked_add(self, duration: Duration) -> Option<Instant> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.nanos.checked_add(nanos).map(Instant::from_nanos)
    }

    /// `self + duration`, clamped to [`Instant::MAX`]: a deadline "`Duration::MAX` from
    /// now" is never reached, rather than an overflow. Also the `+` operator.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    ///
    /// let t = Instant::from_nanos(1_000);
    /// assert_eq!(t.saturating_add(Duration::from_micros(1)), Instant::from_nanos(2_000));
    /// assert_eq!(t.saturating_add(Duration::MAX), Instant::MAX);
    /// assert_eq!(t + Duration::MAX, Instant::MAX);
    /// ```
    pub fn saturating_add(self, duration: Duration) -> Instant {
        Instant::from_nanos(self.nanos.saturating_add(duration_to_nanos(duration)))
    }

    /// `self - duration`, clamped to [`Instant::ZERO`]. Also the `-` operator with a
    /// [`Duration`].
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    ///
    /// let t = Instant::from_nanos(1_000);
    /// assert_eq!(t.saturating_sub(Duration::from_nanos(400)), Instant::from_nanos(600));
    /// assert_eq!(t - Duration::from_secs(1), Instant::ZERO);
    /// ```
    pub fn saturating_sub(self, duration: Duration) -> Instant {
        Instant::from_nanos(self.nanos.saturating_sub(duration_to_nanos(duration)))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is in fact later (a clock
    /// that stepped back). Also the `-` operator between instants.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    ///
    /// let (earlier, later) = (Instant::from_nanos(1_000), Instant::from_nanos(3_000));
    /// assert_eq!(later.saturating_duration_since(earlier), Duration::from_nanos(2_000));
    /// assert_eq!(earlier.saturating_duration_since(later), Duration::ZERO);
    /// assert_eq!(later - earlier, Duration::from_nanos(2_000));
    /// ```
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

/// Converts a duration to whole nanoseconds, clamped to `u64::MAX` (about 584 years).
pub(crate) fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: see [`Instant::saturating_add`].
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturating: see [`Instant::saturating_sub`].
    fn sub(self, rhs: Duration) -> Instant {
        self.saturating_sub(rhs)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: see [`Instant::saturating_duration_since`].
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", Duration::from_nanos(self.nanos))
    }
}

/// A monotonic source of [`Instant`]s.
///
/// Implement it for whatever counts time on your platform. Readings must not go backwards
/// in normal operation; if they do, kompoz treats the lost time as zero rather than
/// panicking. A hardware tick counter that wraps must be widened to 64 bits by the
/// implementation (count the wraps), since an [`Instant`] never wraps.
///
/// ```
/// use core::sync::atomic::{AtomicU64, Ordering};
/// use kompoz::{Clock, Instant};
///
/// /// A 1 kHz tick counter incremented by a timer interrupt.
/// struct Ticks(AtomicU64);
///
/// impl Clock for Ticks {
///     fn now(&self) -> Instant {
///         Instant::from_nanos(self.0.load(Ordering::Relaxed).saturating_mul(1_000_000))
///     }
/// }
///
/// let ticks = Ticks(AtomicU64::new(1_500));
/// assert_eq!(ticks.now().as_nanos(), 1_500_000_000);
/// ```
pub trait Clock {
    /// The current time.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let start = clock.now();
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.now() - start, Duration::from_secs(2));
    /// ```
    fn now(&self) -> Instant;

    /// A cheaper reading of the time, for hot paths that only need to know roughly when
    /// it is: it may lag behind [`now`](Clock::now) by up to
    /// [`coarse_lag`](Clock::coarse_lag), and is never ahead of it.
    ///
    /// The default is `now()` with no lag. [`StdClock`] on Linux reads the kernel's
    /// coarse monotonic clock, which costs a few nanoseconds instead of a few dozen.
    /// Circuit breakers use it to reject calls cheaply while open (falling back to `now()`
    /// when the coarse reading is within `coarse_lag` of the recovery deadline, so the
    /// deadline itself stays exact) and to stamp successes.
    ///
    /// ```
    /// use kompoz::{Clock, StdClock};
    ///
    /// // Bracketed by precise readings: never ahead, and behind by at most `coarse_lag`.
    /// let before = StdClock.now();
    /// let coarse = StdClock.now_coarse();
    /// let after = StdClock.now();
    /// assert!(coarse <= after);
    /// assert!(before <= coarse + StdClock.coarse_lag());
    /// ```
    fn now_coarse(&self) -> Instant {
        self.now()
    }

    /// How far [`now_coarse`](Clock::now_coarse) may lag behind [`now`](Clock::now).
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, ManualClock};
    ///
    /// // A clock without a cheaper reading keeps the defaults: no lag at all.
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.coarse_lag(), Duration::ZERO);
    /// assert_eq!(clock.now_coarse(), clock.now());
    /// ```
    fn coarse_lag(&self) -> Duration {
        Duration::ZERO
    }
}

/// A [`Clock`] that can also wait: it makes timers that complete at an instant of its own
/// time.
///
/// A timer must complete once `now() >= deadline`, and must wake the task that polled it
/// when it does. [`Sleep::sleep`] measures from `now()`.
///
/// Code that waits takes any `Sleep`, so the same code runs on tokio, smol, a board's
/// timer, or a [`ManualClock`] in a test:
///
/// ```
/// use core::future::Future;
/// use core::pin::pin;
/// use core::task::{Context, Poll, Waker};
/// use core::time::Duration;
/// use kompoz::{Clock, ManualClock, Sleep};
///
/// /// Waits until the next whole second of `timer`'s clock.
/// async fn until_the_next_second<S: Sleep>(timer: &S) {
///     let second = Duration::from_secs(1).as_nanos() as u64;
///     let now = timer.now().as_nanos();
///     timer.sleep_until(kompoz::Instant::from_nanos((now / second + 1) * second)).await
/// }
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(300));
/// let mut wait = pin!(until_the_next_second(&clock));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(wait.as_mut().poll(&mut cx).is_pending());
/// clock.advance(Duration::from_millis(700));
/// assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
/// ```
pub trait Sleep: Clock {
    /// The future that completes at the deadline.
    type Timer: Future<Output = ()>;

    /// A timer that completes once this clock reads `deadline` or later. A deadline of
    /// [`Instant::MAX`] is never reached by a real clock.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, Sleep, StdClock};
    ///
    /// let deadline = StdClock.now() + Duration::from_millis(5);
    /// futures::executor::block_on(StdClock.sleep_until(deadline));
    /// assert!(StdClock.now() >= deadline);
    /// ```
    fn sleep_until(&self, deadline: Instant) -> Self::Timer;

    /// A timer that completes after `duration`, measured from [`Clock::now`]. The deadline
    /// saturates, so [`Duration::MAX`] means "never" rather than an overflow.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, Sleep, StdClock};
    ///
    /// let start = StdClock.now();
    /// futures::executor::block_on(StdClock.sleep(Duration::from_millis(5)));
    /// assert!(StdClock.now() - start >= Duration::from_millis(5));
    /// ```
    fn sleep(&self, duration: Duration) -> Self::Timer {
        self.sleep_until(self.now().saturating_add(duration))
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn now_coarse(&self) -> Instant {
        (**self).now_coarse()
    }
    fn coarse_lag(&self) -> Duration {
        (**self).coarse_lag()
    }
}

impl<S: Sleep + ?Sized> Sleep for &S {
    type Timer = S::Timer;
    fn sleep_until(&self, deadline: Instant) -> S::Timer {
        (**self).sleep_until(deadline)
    }
    fn sleep(&self, duration: Duration) -> S::Timer {
        (**self).sleep(duration)
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<C: Clock + ?Sized> Clock for alloc::sync::Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn now_coarse(&self) -> Instant {
        (**self).now_coarse()
    }
    fn coarse_lag(&self) -> Duration {
        (**self).coarse_lag()
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<S: Sleep + ?Sized> Sleep for alloc::sync::Arc<S> {
    type Timer = S::Timer;
    fn sleep_until(&self, deadline: Instant) -> S::Timer {
        (**self).sleep_until(deadline)
    }
    fn sleep(&self, duration: Duration) -> S::Timer {
        (**self).sleep(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(5);
        assert_eq!(t + Duration::MAX, Instant::MAX);
        assert_eq!(Instant::MAX + Duration::from_nanos(1), Instant::MAX);
        assert_eq!(t.checked_add(Duration::MAX), None);
        assert_eq!(t.checked_add(Duration::from_nanos(3)), Some(Instant::from_nanos(8)));
        assert_eq!(t - Duration::from_nanos(9), Instant::ZERO);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_nanos(5));
        let mut u = t;
        u += Duration::from_secs(1);
        assert_eq!(u.as_nanos(), 1_000_000_005);
    }

    #[test]
    fn debug_shows_a_duration() {
        assert_eq!(alloc::format!("{:?}", Instant::from_nanos(1_500_000)), "Instant(1.5ms)");
    }
}
