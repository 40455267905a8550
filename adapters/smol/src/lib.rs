//! # kompoz-smol
//!
//! [kompoz](https://docs.rs/kompoz)'s resilience primitives on smol's timers.
//!
//! This crate re-exports all of `kompoz`, adds [`SmolClock`] (the system clock with
//! smol's `Timer`, which is async-io's) and offers constructors that need no timer
//! plumbing: [`timeout()`], [`timeout_at`] and [`with_timeout`].
//!
//! ```
//! use std::time::Duration;
//! use kompoz_smol::{AsyncCombinator, async_rule, with_timeout};
//!
//! smol::block_on(async {
//!     let slow = async_rule(async |n: &mut i32| {
//!         smol::Timer::after(Duration::from_secs(1)).await;
//!         *n > 0
//!     });
//!     let guarded = with_timeout(slow, Duration::from_millis(20));
//!     assert_eq!(guarded.run_owned(42).await, (false, 42));
//! });
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use kompoz::*;

/// A [`Clock`] and [`Sleep`] for smol: the system clock ([`StdClock`], whose instants it
/// shares) with smol's timers. The timers are driven by async-io's reactor, which
/// `smol::block_on` and smol's executors run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SmolClock;

impl Clock for SmolClock {
    fn now(&self) -> Instant {
        StdClock.now()
    }
}

impl Sleep for SmolClock {
    type Timer = SmolSleep;

    fn sleep_until(&self, deadline: Instant) -> SmolSleep {
        SmolSleep(match StdClock::to_std(deadline) {
            Some(at) => async_io::Timer::at(at),
            None => async_io::Timer::never(),
        })
    }

    fn sleep(&self, duration: Duration) -> SmolSleep {
        // `Timer::after` turns an overflowing deadline into `Timer::never()`.
        SmolSleep(async_io::Timer::after(duration))
    }
}

/// The timer of a [`SmolClock`]: smol's `Timer`, completing with `()`.
#[derive(Debug)]
#[must_use = "a timer does nothing unless polled"]
pub struct SmolSleep(async_io::Timer);

impl Future for SmolSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

/// [`kompoz::timeout()`] on smol's timers: runs `future` with a time limit of `duration`.
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<SmolClock, F::IntoFuture> {
    kompoz::timeout(SmolClock, duration, future)
}

/// [`kompoz::timeout_at()`] on smol's timers: runs `future` until `deadline` of
/// [`SmolClock`].
pub fn timeout_at<F: IntoFuture>(
    deadline: Instant,
    future: F,
) -> Timeout<SmolClock, F::IntoFuture> {
    kompoz::timeout_at(SmolClock, deadline, future)
}

/// kompoz's `with_timeout(rule, timeout)` on smol's timers; see [`kompoz::with_timeout_on`].
pub fn with_timeout<R>(rule: R, duration: Duration) -> WithTimeout<R, SmolClock> {
    kompoz::with_timeout_on(SmolClock, rule, duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "miri cannot run async-io's reactor")]
    fn timers_complete_at_their_deadline_and_far_ones_never() {
        smol::block_on(async {
            let start = SmolClock.now();
            SmolClock.sleep_until(start + Duration::from_millis(5)).await;
            assert!(SmolClock.now() - start >= Duration::from_millis(5));
            let never = timeout_at(Instant::MAX, std::future::pending::<()>());
            assert_eq!(timeout(Duration::from_millis(5), never).await, Err(Elapsed::new()));
        });
    }
}
