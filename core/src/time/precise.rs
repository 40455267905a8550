//! [`Precise`]: a clock whose cheap reading is its precise one.

use core::time::Duration;

use super::{Clock, Instant, Sleep};

/// Wraps a clock so that [`now_coarse`](Clock::now_coarse) is [`now`](Clock::now), with no
/// lag: for primitives that decide on the coarse reading (rate limiters' `check`, breakers'
/// rejections), when exact decisions matter more than the few nanoseconds a precise
/// reading costs. Timers are the inner clock's.
///
/// ```
/// use core::time::Duration;
/// use kompoz::time::Precise;
/// use kompoz::{Clock, StdClock};
///
/// let exact = Precise(StdClock);
/// assert_eq!(exact.coarse_lag(), Duration::ZERO);
/// assert!(exact.now_coarse() <= exact.now());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Precise<C>(pub C);

impl<C: Clock> Clock for Precise<C> {
    #[inline]
    fn now(&self) -> Instant {
        self.0.now()
    }

    #[inline]
    fn now_coarse(&self) -> Instant {
        self.0.now()
    }

    fn coarse_lag(&self) -> Duration {
        Duration::ZERO
    }
}

impl<S: Sleep> Sleep for Precise<S> {
    type Timer = S::Timer;

    fn sleep_until(&self, deadline: Instant) -> S::Timer {
        self.0.sleep_until(deadline)
    }

    fn sleep(&self, duration: Duration) -> S::Timer {
        self.0.sleep(duration)
    }
}
