//! # kompoz-tokio
//!
//! [kompoz](https://docs.rs/kompoz)'s guards for the calls async code makes to things that
//! fail (**timeouts**, **concurrency limits**, **rate limits**, **circuit breakers**) on
//! tokio's timers.
//!
//! This crate re-exports all of `kompoz`, adds [`TokioClock`] (a clock and timer backed by
//! `tokio::time`) and offers constructors that need no timer plumbing: [`timeout()`],
//! [`timeout_at()`], [`with_timeout()`], [`retry()`], [`pipeline()`], [`rate_limiter`],
//! [`keyed_rate_limiter`] and [`rate_limited()`].
//!
//! ```
//! use std::time::Duration;
//! use kompoz_tokio::breaker::{CircuitBreaker, CircuitState};
//! use kompoz_tokio::{Elapsed, Semaphore};
//!
//! async fn query(id: u32) -> Result<u32, &'static str> {
//!     if id > 0 { Ok(id * 10) } else { Err("no such row") }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // A time limit around any future: its output, or `Err(Elapsed)` once it passed.
//!     assert_eq!(kompoz_tokio::timeout(Duration::from_secs(1), query(4)).await, Ok(Ok(40)));
//!     let hung = std::future::pending::<()>();
//!     let answer = kompoz_tokio::timeout(Duration::from_millis(20), hung).await;
//!     assert_eq!(answer, Err(Elapsed::new()));
//!
//!     // At most 4 queries at once; the others wait in line, first come first served.
//!     let pool = Semaphore::new(4)?;
//!     assert_eq!(pool.run(query(2)).await?, Ok(20));
//!
//!     // A circuit breaker: 2 failures in a row open it; while open, calls are refused
//!     // at once, without running.
//!     let breaker = CircuitBreaker::builder().failure_threshold(2).build()?;
//!     for _ in 0..2 {
//!         assert!(breaker.call(query(0)).await.is_err());
//!     }
//!     assert_eq!(breaker.state(), CircuitState::Open);
//!     assert!(breaker.call(query(3)).await.is_err_and(|error| error.is_rejected()));
//!     Ok(())
//! }
//! ```
//!
//! Because time comes from `tokio::time`, tokio's paused test clock drives everything
//! (with tokio's `test-util` feature):
//!
//! ```
//! use std::time::Duration;
//! use kompoz_tokio::{AsyncCombinator, async_rule, with_timeout};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let slow = async_rule(async |n: &mut i32| {
//!     tokio::time::sleep(Duration::from_secs(1)).await;
//!     *n > 0
//! });
//! let guarded = with_timeout(slow, Duration::from_millis(50)).on_timeout(|n: &mut i32| *n = 0);
//! // With paused time, tokio jumps straight to the deadline: this takes no real time.
//! assert_eq!(guarded.run_owned(42).await, (false, 0));
//! # }
//! ```
//!
//! A breaker built with `CircuitBreaker::builder().build()` measures time on
//! [`StdClock`]; build it with `build_with(TokioClock)` to drive it with paused time too.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/kompoz-tokio/0.1.0")]

use std::future::IntoFuture;
use std::time::Duration;

pub use kompoz::*;

/// A [`Clock`] and [`Sleep`] on `tokio::time`, so tokio's paused test clock
/// (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) drives kompoz too.
///
/// Its instants share [`StdClock`]'s epoch, so the two clocks agree outside paused tests.
/// Reading it outside a tokio runtime falls back to the system clock; its timers need a
/// runtime with the time driver enabled.
///
/// ```
/// use std::time::Duration;
/// use kompoz_tokio::breaker::{CircuitBreaker, CircuitState};
/// use kompoz_tokio::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In a test with paused time: a breaker on TokioClock recovers when tokio's clock says so.
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(1)
///     .recovery_timeout(Duration::from_secs(30))
///     .build_with(TokioClock)?;
/// let _ = breaker.call(async { Err::<(), _>("down") }).await;
/// assert_eq!(breaker.state(), CircuitState::Open);
///
/// let before = TokioClock.now();
/// tokio::time::advance(Duration::from_secs(30)).await; // no real waiting
/// assert_eq!(TokioClock.now() - before, Duration::from_secs(30));
/// assert!(breaker.call(async { Ok::<_, &str>(()) }).await.is_ok()); // the probe
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        StdClock::from_std(tokio::time::Instant::now().into_std())
    }
}

impl Sleep for TokioClock {
    type Timer = tokio::time::Sleep;

    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        match StdClock::to_std(deadline) {
            Some(at) => tokio::time::sleep_until(at.into()),
            // Unrepresentable: tokio turns an overflowing sleep into its "far future".
            None => tokio::time::sleep(Duration::MAX),
        }
    }

    fn sleep(&self, duration: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(duration)
    }
}

/// [`kompoz::timeout()`] on tokio's timers: runs `future` with a time limit of `duration`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// let slow = tokio::time::sleep(Duration::from_secs(1));
/// let late = kompoz_tokio::timeout(Duration::from_millis(10), slow);
/// assert_eq!(late.await, Err(kompoz_tokio::Elapsed::new()));
/// # }
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<TokioClock, F::IntoFuture> {
    kompoz::timeout(TokioClock, duration, future)
}

/// [`kompoz::timeout_at()`] on tokio's timers: runs `future` until `deadline` of
/// [`TokioClock`].
///
/// ```
/// use std::time::Duration;
/// use kompoz_tokio::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // One deadline for two steps: the second gets what the first left.
/// let deadline = TokioClock.now() + Duration::from_millis(100);
/// let first = tokio::time::sleep(Duration::from_millis(60));
/// assert!(kompoz_tokio::timeout_at(deadline, first).await.is_ok());
/// let second = tokio::time::sleep(Duration::from_millis(60));
/// assert!(kompoz_tokio::timeout_at(deadline, second).await.is_err());
/// # }
/// ```
pub fn timeout_at<F: IntoFuture>(
    deadline: Instant,
    future: F,
) -> Timeout<TokioClock, F::IntoFuture> {
    kompoz::timeout_at(TokioClock, deadline, future)
}

/// kompoz's `with_timeout(rule, timeout)` on tokio's timers; see [`kompoz::with_timeout_on`].
///
/// ```
/// use std::time::Duration;
/// use kompoz_tokio::{AsyncCombinator, Outcome, async_rule, with_timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let slow = async_rule(async |_: &mut ()| {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     true
/// });
/// let guarded = with_timeout(slow, Duration::from_millis(50));
/// assert_eq!(guarded.run_detailed(&mut ()).await, Outcome::TimedOut);
/// # }
/// ```
pub fn with_timeout<R>(rule: R, duration: Duration) -> WithTimeout<R, TokioClock> {
    kompoz::with_timeout_on(TokioClock, rule, duration)
}

/// A [`Pipeline`] on tokio's timers: name the call's value and error types once, and
/// every closure after infers from them.
///
/// ```
/// use std::time::Duration;
/// use kompoz_tokio::retry::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), kompoz_tokio::retry::RetryError> {
/// let pipeline = kompoz_tokio::pipeline::<u32, std::io::Error>()
///     .retry(RetryPolicy::builder().max_attempts(3).backoff(Duration::from_millis(10)).build()?)
///     .timeout(Duration::from_millis(100));
/// assert_eq!(pipeline.call(|| async { Ok(7) }).await.ok(), Some(7));
/// # Ok(())
/// # }
/// ```
pub fn pipeline<T, E>() -> Pipeline<T, E, TokioClock> {
    Pipeline::with_timer(TokioClock)
}

/// kompoz's `AsyncRetry(rule, ...)` on tokio's timers; see [`kompoz::retry_on`].
pub fn retry<R>(rule: R, policy: retry::RetryPolicy) -> Retried<R, TokioClock> {
    kompoz::retry_on(TokioClock, rule, policy)
}

/// A [`RateLimiter`] on tokio's clock: waits sleep on tokio's timers, and tokio's paused
/// test clock drives it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), kompoz_tokio::rate::QuotaError> {
/// use kompoz_tokio::rate::Quota;
///
/// let limiter = kompoz_tokio::rate_limiter(Quota::per_second(10)?.with_burst(1)?);
/// let start = tokio::time::Instant::now();
/// limiter.until_ready().await;
/// limiter.until_ready().await; // paused time jumps the 100 ms
/// assert_eq!(start.elapsed(), std::time::Duration::from_millis(100));
/// # Ok(())
/// # }
/// ```
pub fn rate_limiter(quota: rate::Quota) -> RateLimiter<TokioClock> {
    RateLimiter::new(quota, TokioClock)
}

/// A [`KeyedRateLimiter`] on tokio's clock, one `quota` per key.
pub fn keyed_rate_limiter<K: std::hash::Hash + Eq + Clone>(
    quota: rate::Quota,
) -> KeyedRateLimiter<K, TokioClock> {
    KeyedRateLimiter::new(quota, TokioClock)
}

/// kompoz's rate limit around a rule, on tokio's timers; see [`kompoz::rate_limited_on`].
pub fn rate_limited<R>(rule: R, quota: rate::Quota) -> Throttled<R, RateLimiter<TokioClock>> {
    kompoz::rate_limited_on(rule, rate_limiter(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_drives_the_clock_and_the_timers() {
        let start = TokioClock.now();
        TokioClock.sleep(Duration::from_secs(3)).await;
        assert_eq!(TokioClock.now() - start, Duration::from_secs(3));
        let deadline = TokioClock.now() + Duration::from_secs(2);
        TokioClock.sleep_until(deadline).await;
        assert_eq!(TokioClock.now(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_wait_on_paused_time() {
        let quota = rate::Quota::per_second(100).unwrap().with_burst(2).unwrap();
        let limiter = rate_limiter(quota);
        let start = TokioClock.now();
        for _ in 0..4 {
            limiter.until_ready().await;
        }
        assert_eq!(TokioClock.now() - start, Duration::from_millis(20));
        let keyed = keyed_rate_limiter::<&str>(quota);
        keyed.check_n(&"a", 2).unwrap();
        assert!(keyed.check(&"a").is_err() && keyed.check(&"b").is_ok());
        let rule = rate_limited(async_rule(async |_: &mut ()| true), quota);
        assert!(rule.run(&mut ()).await);
    }

    #[tokio::test(start_paused = true)]
    async fn far_deadlines_do_not_overflow() {
        let never = timeout_at(Instant::MAX, std::future::pending::<()>());
        assert_eq!(timeout(Duration::from_secs(3600), never).await, Err(Elapsed::new()));
        let never = timeout(Duration::MAX, std::future::pending::<()>());
        assert_eq!(timeout(Duration::from_secs(3600), never).await, Err(Elapsed::new()));
    }
}
