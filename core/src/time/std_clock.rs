//! The operating system's monotonic clock, with a runtime-agnostic timer.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::OnceLock;

use super::{Clock, Instant, Sleep};

/// The operating system's monotonic clock (`std::time::Instant`), with timers from
/// `futures-timer` that work on any executor.
///
/// Its epoch is one day before the first time any `StdClock` was read in this process (so
/// that instants taken a little earlier, such as a paused tokio clock's base, still map
/// to distinct values); its instants are comparable across all `StdClock` values.
/// Adapter crates use it as the clock behind their runtime's timers too, so instants from
/// `kompoz-smol` and `kompoz-async-std` agree with it.
///
/// On Linux, [`now_coarse`](Clock::now_coarse) reads the kernel's coarse monotonic clock
/// (`CLOCK_MONOTONIC_COARSE`, a few nanoseconds instead of the ~20 of a precise reading),
/// mapped onto the same time line so that it is never ahead of [`now`](Clock::now);
/// [`coarse_lag`](Clock::coarse_lag) is twice the kernel's tick. Elsewhere, and under
/// valgrind (whose 3.19 release crashes on rustix's direct vDSO call, rustix issue #1559;
/// detected by the core it preloads), the coarse reading is the precise one.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{Clock, Sleep, StdClock};
///
/// let clock = StdClock;
/// let start = clock.now();
/// futures::executor::block_on(clock.sleep(Duration::from_millis(5)));
/// assert!(clock.now() - start >= Duration::from_millis(5));
/// assert!(clock.now_coarse() <= clock.now());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StdClock;

/// The clock's epoch, and how coarse readings map onto it.
struct Epoch {
    std: std::time::Instant,
    #[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
    coarse: Option<coarse::Mapping>,
}

#[inline]
fn epoch() -> &'static Epoch {
    static EPOCH: OnceLock<Epoch> = OnceLock::new();
    EPOCH.get_or_init(|| {
        let now = std::time::Instant::now();
        // Back-date by a margin, as far as the platform's `Instant` can go.
        let std = [86_400, 3_600, 60, 1]
            .into_iter()
            .find_map(|secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now);
        Epoch {
            std,
            // Under miri (which cannot read the coarse clock) and valgrind (see
            // `under_valgrind`) the coarse reading is the precise one.
            #[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
            coarse: if cfg!(miri) || under_valgrind() { None } else { coarse::Mapping::new(std) },
        }
    })
}

/// Whether the process runs under valgrind, which preloads its core into every program it
/// runs. rustix reads the coarse clock by calling the kernel's vDSO directly, after parsing
/// it from the auxiliary vector, and valgrind 3.19 does not map it where rustix looks: the
/// process dies with SIGSEGV in `rustix::backend::param::auxv::check_elf_base` (rustix
/// issue #1559). So under valgrind (and callgrind, cachegrind, ...) the coarse reading is
/// the precise one, through `std`, unless the program is built with
/// `RUSTFLAGS="--cfg rustix_use_libc"`: then rustix reads the clock through libc, which
/// valgrind handles, and the coarse clock is read (and profiled) as it is in production.
#[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
fn under_valgrind() -> bool {
    if cfg!(rustix_use_libc) {
        return false;
    }
    std::env::var_os("LD_PRELOAD").is_some_and(|preload| {
        preload.as_encoded_bytes().windows(b"vgpreload".len()).any(|w| w == b"vgpreload")
    })
}

impl StdClock {
    /// Converts a `std::time::Instant` to this clock's [`Instant`]. Instants before the
    /// epoch saturate to [`Instant::ZERO`].
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::StdClock;
    ///
    /// // An instant another library gave you, ten seconds from now, as a kompoz deadline.
    /// let later = std::time::Instant::now() + Duration::from_secs(10);
    /// let deadline = StdClock::from_std(later);
    /// assert_eq!(StdClock::to_std(deadline), Some(later));
    /// ```
    pub fn from_std(instant: std::time::Instant) -> Instant {
        let since = instant.saturating_duration_since(epoch().std);
        Instant::ZERO.saturating_add(since)
    }

    /// Converts this clock's [`Instant`] to a `std::time::Instant`, or `None` if the
    /// platform cannot represent it (a deadline centuries away).
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, StdClock};
    ///
    /// let deadline = StdClock.now() + Duration::from_secs(1);
    /// let std_deadline = StdClock::to_std(deadline).expect("a second away is representable");
    /// assert!(std_deadline > std::time::Instant::now());
    /// assert_eq!(StdClock::from_std(std_deadline), deadline);
    /// ```
    pub fn to_std(instant: Instant) -> Option<std::time::Instant> {
        epoch().std.checked_add(Duration::from_nanos(instant.as_nanos()))
    }
}

impl Clock for StdClock {
    fn now(&self) -> Instant {
        StdClock::from_std(std::time::Instant::now())
    }

    #[inline]
    fn now_coarse(&self) -> Instant {
        #[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
        if let Some(mapping) = &epoch().coarse {
            return mapping.now();
        }
        self.now()
    }

    #[inline]
    fn coarse_lag(&self) -> Duration {
        #[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
        if let Some(mapping) = &epoch().coarse {
            return mapping.lag;
        }
        Duration::ZERO
    }
}

/// `CLOCK_MONOTONIC_COARSE`, mapped onto `StdClock`'s time line (read with rustix, which
/// calls the vDSO directly: no system call, no libc wrapper).
#[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
mod coarse {
    use core::time::Duration;

    use rustix::time::ClockId;

    use crate::time::Instant;

    /// `std::time::Instant` reads `CLOCK_MONOTONIC` on Linux; the coarse clock is the same
    /// time line, updated only at each tick, so it is never ahead of it. The mapping takes
    /// one `CLOCK_MONOTONIC` reading `raw` just after a `std` reading `at` (our instant
    /// `base`): since `raw` is at or after the true raw value of `at`, coarse instants
    /// `base + (coarse - raw)` are never ahead of precise ones, and lag them by at most a
    /// tick plus the gap between the two readings.
    pub(super) struct Mapping {
        /// Our instant at the pair of readings: the coarse instant is `base + coarse - raw`.
        base: u64,
        raw: u64,
        pub(super) lag: Duration,
    }

    /// Nanoseconds of `clock` (rustix calls the vDSO directly where it can).
    #[inline]
    fn read(clock: ClockId) -> u64 {
        let ts = rustix::time::clock_gettime(clock);
        // A monotonic clock's fields are never negative; the casts cannot wrap.
        (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
    }

    impl Mapping {
        pub(super) fn new(epoch: std::time::Instant) -> Option<Mapping> {
            let res = rustix::time::clock_getres(ClockId::MonotonicCoarse);
            let tick =
                Duration::new(u64::try_from(res.tv_sec).ok()?, u32::try_from(res.tv_nsec).ok()?);
            if tick.is_zero() {
                return None;
            }
            // Take the two readings close together; keep the tightest pair of a few tries.
            let mut best: Option<(Duration, std::time::Instant, u64)> = None;
            for _ in 0..8 {
                let before = std::time::Instant::now();
                let raw = read(ClockId::Monotonic);
                let gap = before.elapsed();
                if best.as_ref().is_none_or(|(best_gap, ..)| gap < *best_gap) {
                    best = Some((gap, before, raw));
                }
                if gap < Duration::from_micros(1) {
                    break;
                }
            }
            let (gap, at, raw) = best?;
            let base = u64::try_from(at.saturating_duration_since(epoch).as_nanos()).ok()?;
            Some(Mapping { base, raw, lag: tick.saturating_mul(2).saturating_add(gap) })
        }

        /// The coarse time.
        #[inline]
        pub(super) fn now(&self) -> Instant {
            let coarse = read(ClockId::MonotonicCoarse);
            // base + (coarse - raw); `base + coarse` fits easily in 64 bits.
            Instant::from_nanos(self.base.wrapping_add(coarse).saturating_sub(self.raw))
        }
    }
}

impl Sleep for StdClock {
    type Timer = StdSleep;

    fn sleep_until(&self, deadline: Instant) -> StdSleep {
        if deadline == Instant::MAX {
            return StdSleep { delay: None };
        }
        self.sleep(deadline - self.now())
    }

    fn sleep(&self, duration: Duration) -> StdSleep {
        // `futures_timer::Delay::new` panics if `now + duration` overflows; such a deadline
        // is never reached, so it becomes a timer that never completes.
        let representable = std::time::Instant::now().checked_add(duration).is_some();
        StdSleep { delay: representable.then(|| futures_timer::Delay::new(duration)) }
    }
}

/// The timer of a [`StdClock`], backed by `futures-timer`'s helper thread: it works on
/// any executor. A deadline too far away to represent never completes.
///
/// ```
/// use core::time::Duration;
/// use kompoz::time::StdSleep;
/// use kompoz::{Sleep, StdClock};
///
/// let short: StdSleep = StdClock.sleep(Duration::from_millis(1));
/// futures::executor::block_on(short);
/// // "Never" is a timer that stays pending, not a panic.
/// let never: StdSleep = StdClock.sleep(Duration::MAX);
/// let limited = kompoz::timeout(StdClock, Duration::from_millis(1), never);
/// let answer = futures::executor::block_on(limited);
/// assert!(answer.is_err());
/// ```
#[derive(Debug)]
#[must_use = "a timer does nothing unless polled"]
pub struct StdSleep {
    /// `None` for a deadline too far away to represent: it never completes.
    delay: Option<futures_timer::Delay>,
}

impl Future for StdSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().delay {
            Some(delay) => Pin::new(delay).poll(cx),
            None => Poll::Pending,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn std_instants_round_trip() {
        let _ = StdClock.now(); // fixes the epoch before `now` is taken
        let now = std::time::Instant::now();
        let ours = StdClock::from_std(now);
        let back = StdClock::to_std(ours).unwrap();
        assert!(back <= now && now - back < Duration::from_micros(1));
    }

    #[test]
    fn coarse_readings_are_never_ahead_and_lag_within_the_bound() {
        let lag = StdClock.coarse_lag();
        for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
            // Bracketed by precise readings, so the check holds however the thread is
            // scheduled: the coarse reading is not ahead of the one after it, and lags the
            // one before it by at most `lag`.
            let before = StdClock.now();
            let coarse = StdClock.now_coarse();
            let after = StdClock.now();
            assert!(coarse <= after, "{coarse:?} is ahead of {after:?}");
            assert!(before <= coarse + lag, "{coarse:?} lags {before:?} by more than {lag:?}");
        }
        #[cfg(all(target_os = "linux", not(miri)))]
        assert!(lag > Duration::ZERO && lag < Duration::from_millis(100), "lag {lag:?}");
    }

    #[test]
    fn an_unrepresentable_sleep_is_pending_forever_instead_of_panicking() {
        let mut never = StdClock.sleep(Duration::MAX);
        let mut cx = Context::from_waker(core::task::Waker::noop());
        assert!(Pin::new(&mut never).poll(&mut cx).is_pending());
        let mut never = StdClock.sleep_until(Instant::MAX);
        assert!(Pin::new(&mut never).poll(&mut cx).is_pending());
    }
}
