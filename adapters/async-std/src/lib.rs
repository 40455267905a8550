//! # kompoz-async-std
//!
//! [kompoz](https://docs.rs/kompoz)'s guards for the calls async code makes to things that
//! fail (**timeouts**, **concurrency limits**, **rate limits**, **circuit breakers**) on
//! async-std's timers.
//!
//! This crate re-exports all of `kompoz`, adds [`AsyncStdClock`] and offers constructors
//! that need no timer plumbing: [`timeout()`], [`timeout_at()`], [`with_timeout()`],
//! [`retry()`], [`pipeline()`], [`rate_limiter`], [`keyed_rate_limiter`] and
//! [`rate_limited()`].
//!
//! async-std's timers (`async_std::task::sleep`, `async_std::future::timeout`) are
//! async-io's `Timer`, the very timers smol uses, so the clock is `kompoz-smol`'s under
//! another name: one implementation, two runtimes.
//!
//! ```
//! use std::time::Duration;
//! use kompoz_async_std::breaker::{CircuitBreaker, CircuitState};
//! use kompoz_async_std::{AsyncCombinator, Semaphore, async_rule, with_timeout};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     async_std::task::block_on(async {
//!         // A time limit around any future.
//!         let slow = async_std::task::sleep(Duration::from_secs(5));
//!         assert!(kompoz_async_std::timeout(Duration::from_millis(10), slow).await.is_err());
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
//!             async_std::task::sleep(Duration::from_secs(5)).await;
//!             *n > 0
//!         });
//!         let guarded = with_timeout(slow_rule, Duration::from_millis(10));
//!         assert_eq!(guarded.run_owned(42).await, (false, 42));
//!         Ok(())
//!     })
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/kompoz-async-std/0.1.0")]

pub use kompoz::*;

/// A [`Clock`] and [`Sleep`] for async-std: the system clock with async-io's timers,
/// which async-std's own `task::sleep` uses. It is `kompoz_smol::SmolClock`.
pub use kompoz_smol::SmolClock as AsyncStdClock;
/// The timer of an [`AsyncStdClock`].
pub use kompoz_smol::SmolSleep as AsyncStdSleep;
/// A [`KeyedRateLimiter`] on async-std's clock.
pub use kompoz_smol::keyed_rate_limiter;
/// A [`Pipeline`] on async-std's timers.
pub use kompoz_smol::pipeline;
/// kompoz's rate limit around a rule, on async-std's timers.
pub use kompoz_smol::rate_limited;
/// A [`RateLimiter`] on async-std's timers.
pub use kompoz_smol::rate_limiter;
/// kompoz's `AsyncRetry(rule, ...)` on async-std's timers.
pub use kompoz_smol::retry;
/// [`kompoz::timeout()`] on async-std's timers: runs a future with a time limit.
pub use kompoz_smol::timeout;
/// [`kompoz::timeout_at()`] on async-std's timers: runs a future until a deadline.
pub use kompoz_smol::timeout_at;
/// kompoz's `with_timeout(rule, timeout)` on async-std's timers.
pub use kompoz_smol::with_timeout;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[async_std::test]
    #[cfg_attr(miri, ignore = "miri cannot run async-io's reactor")]
    async fn timers_run_inside_async_std() {
        let start = AsyncStdClock.now();
        AsyncStdClock.sleep(Duration::from_millis(5)).await;
        assert!(AsyncStdClock.now() - start >= Duration::from_millis(5));
        let slow = async_std::task::sleep(Duration::from_secs(5));
        assert_eq!(timeout(Duration::from_millis(5), slow).await, Err(Elapsed::new()));
    }
}
