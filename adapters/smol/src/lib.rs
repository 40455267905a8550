//! # kompoz-smol
//!
//! [kompoz](https://docs.rs/kompoz)'s guards for the calls async code makes to things that
//! fail (**timeouts**, **concurrency limits**, **rate limits**, **circuit breakers**) on
//! smol's timers.
//!
//! This crate re-exports all of `kompoz`, adds [`SmolClock`] (the system clock with
//! smol's `Timer`, which is async-io's) and offers constructors that need no timer
//! plumbing: [`timeout()`], [`timeout_at()`], [`with_timeout()`], [`retry()`],
//! [`pipeline()`], [`rate_limiter`], [`keyed_rate_limiter`] and [`rate_limited()`].
//!
//! ```
//! use std::time::Duration;
//! use kompoz_smol::breaker::{CircuitBreaker, CircuitState};
//! use kompoz_smol::{AsyncCombinator, Semaphore, async_rule, with_timeout};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         // A time limit around any future.
//!         let slow = smol::Timer::after(Duration::from_secs(5));
//!         assert!(kompoz_smol::timeout(Duration::from_millis(10), slow).await.is_err());
//!
//!         // At most 4 at once, first come first served.
//!         let pool = Semaphore::new(4)?;
//!         assert_eq!(pool.run(async { 42 }).await?, 42);
//!
//!         // A breaker: 2 failures in a row open it.
//!         let breaker = CircuitBreaker::builder().failure_threshold(2).build()?;
//!         for _ in 0..2 {
//!             let _ = breaker.call(async { Err::<(), _>("connection refused") }).await;
//!         }
//!         assert_eq!(breaker.state(), CircuitState::Open);
//!
//!         // Rules on a context, with a time limit: the context comes back either way.
//!         let slow_rule = async_rule(async |n: &mut i32| {
//!             smol::Timer::after(Duration::from_secs(5)).await;
//!             *n > 0
//!         });
//!         let guarded = with_timeout(slow_rule, Duration::from_millis(10));
//!         assert_eq!(guarded.run_owned(42).await, (false, 42));
//!         Ok(())
//!     })
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/kompoz-smol/0.1.0")]

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use kompoz::*;

/// A [`Clock`] and [`Sleep`] for smol: the system clock ([`StdClock`], whose instants it
/// shares) with smol's timers. The timers are driven by async-io's reactor, which
/// `smol::block_on` and smol's executors run.
///
/// ```
/// use std::time::Duration;
/// use kompoz_smol::{Clock, Sleep, SmolClock};
///
/// smol::block_on(async {
///     let start = SmolClock.now();
///     SmolClock.sleep(Duration::from_millis(5)).await;
///     assert!(SmolClock.now() - start >= Duration::from_millis(5));
/// });
/// ```
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
///
/// ```
/// use std::time::Duration;
/// use kompoz_smol::{Sleep, SmolClock, SmolSleep};
///
/// let timer: SmolSleep = SmolClock.sleep(Duration::from_millis(1));
/// smol::block_on(timer);
/// ```
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
///
/// ```
/// use std::time::Duration;
///
/// smol::block_on(async {
///     assert_eq!(kompoz_smol::timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
///     let slow = smol::Timer::after(Duration::from_secs(5));
///     assert!(kompoz_smol::timeout(Duration::from_millis(10), slow).await.is_err());
/// });
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<SmolClock, F::IntoFuture> {
    kompoz::timeout(SmolClock, duration, future)
}

/// [`kompoz::timeout_at()`] on smol's timers: runs `future` until `deadline` of
/// [`SmolClock`].
///
/// ```
/// use std::time::Duration;
/// use kompoz_smol::{Clock, SmolClock};
///
/// smol::block_on(async {
///     let deadline = SmolClock.now() + Duration::from_millis(10);
///     let hung = std::future::pending::<()>();
///     assert!(kompoz_smol::timeout_at(deadline, hung).await.is_err());
///     assert!(SmolClock.now() >= deadline);
/// });
/// ```
pub fn timeout_at<F: IntoFuture>(
    deadline: Instant,
    future: F,
) -> Timeout<SmolClock, F::IntoFuture> {
    kompoz::timeout_at(SmolClock, deadline, future)
}

/// kompoz's `with_timeout(rule, timeout)` on smol's timers; see [`kompoz::with_timeout_on`].
///
/// ```
/// use std::time::Duration;
/// use kompoz_smol::{AsyncCombinator, Outcome, async_rule, with_timeout};
///
/// let hangs = async_rule(async |_: &mut ()| std::future::pending::<bool>().await);
/// let guarded = with_timeout(hangs, Duration::from_millis(10));
/// assert_eq!(smol::block_on(guarded.run_detailed(&mut ())), Outcome::TimedOut);
/// ```
pub fn with_timeout<R>(rule: R, duration: Duration) -> WithTimeout<R, SmolClock> {
    kompoz::with_timeout_on(SmolClock, rule, duration)
}

/// A [`Pipeline`] on smol's timers: name the call's value and error types once, and
/// every closure after infers from them.
pub fn pipeline<T, E>() -> Pipeline<T, E, SmolClock> {
    Pipeline::with_timer(SmolClock)
}

/// kompoz's `AsyncRetry(rule, ...)` on smol's timers; see [`kompoz::retry_on`].
pub fn retry<R>(rule: R, policy: retry::RetryPolicy) -> Retried<R, SmolClock> {
    kompoz::retry_on(SmolClock, rule, policy)
}

/// A [`RateLimiter`] on smol's timers.
///
/// ```
/// use kompoz_smol::rate::Quota;
///
/// let limiter = kompoz_smol::rate_limiter(Quota::per_second(100)?);
/// smol::block_on(limiter.run(async { /* a polite call */ }));
/// assert_eq!(limiter.stats().admitted, 1);
/// # Ok::<(), kompoz_smol::rate::QuotaError>(())
/// ```
pub fn rate_limiter(quota: rate::Quota) -> RateLimiter<SmolClock> {
    RateLimiter::new(quota, SmolClock)
}

/// A [`KeyedRateLimiter`] on smol's clock, one `quota` per key.
pub fn keyed_rate_limiter<K: std::hash::Hash + Eq + Clone>(
    quota: rate::Quota,
) -> KeyedRateLimiter<K, SmolClock> {
    KeyedRateLimiter::new(quota, SmolClock)
}

/// kompoz's rate limit around a rule, on smol's timers; see [`kompoz::rate_limited_on`].
pub fn rate_limited<R>(rule: R, quota: rate::Quota) -> Throttled<R, RateLimiter<SmolClock>> {
    kompoz::rate_limited_on(rule, rate_limiter(quota))
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
