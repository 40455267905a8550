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
/// to distinct values); its instants are comparable across all `StdClock` values. Adapter crates use it as the clock behind
/// their runtime's timers too, so instants from `kompoz-smol` and `kompoz-async-std` agree
/// with it.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{Clock, Sleep, StdClock};
///
/// let clock = StdClock;
/// let start = clock.now();
/// futures::executor::block_on(clock.sleep(Duration::from_millis(5)));
/// assert!(clock.now() - start >= Duration::from_millis(5));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StdClock;

fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = std::time::Instant::now();
        // Back-date by a margin, as far as the platform's `Instant` can go.
        [86_400, 3_600, 60, 1]
            .into_iter()
            .find_map(|secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now)
    })
}

impl StdClock {
    /// Converts a `std::time::Instant` to this clock's [`Instant`]. Instants before the
    /// epoch saturate to [`Instant::ZERO`].
    pub fn from_std(instant: std::time::Instant) -> Instant {
        let since = instant.saturating_duration_since(epoch());
        Instant::ZERO.saturating_add(since)
    }

    /// Converts this clock's [`Instant`] to a `std::time::Instant`, or `None` if the
    /// platform cannot represent it (a deadline centuries away).
    pub fn to_std(instant: Instant) -> Option<std::time::Instant> {
        epoch().checked_add(Duration::from_nanos(instant.as_nanos()))
    }
}

impl Clock for StdClock {
    fn now(&self) -> Instant {
        StdClock::from_std(std::time::Instant::now())
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

/// The timer of a [`StdClock`], backed by `futures-timer`'s helper thread.
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
    fn an_unrepresentable_sleep_is_pending_forever_instead_of_panicking() {
        let mut never = StdClock.sleep(Duration::MAX);
        let mut cx = Context::from_waker(core::task::Waker::noop());
        assert!(Pin::new(&mut never).poll(&mut cx).is_pending());
        let mut never = StdClock.sleep_until(Instant::MAX);
        assert!(Pin::new(&mut never).poll(&mut cx).is_pending());
    }
}
