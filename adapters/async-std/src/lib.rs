//! # kompoz-async-std
//!
//! [kompoz](https://docs.rs/kompoz)'s resilience primitives on async-std's timers.
//!
//! This crate re-exports all of `kompoz`, adds [`AsyncStdClock`] and offers constructors
//! that need no timer plumbing: [`timeout()`], [`timeout_at`] and [`with_timeout`].
//!
//! async-std's timers (`async_std::task::sleep`, `async_std::future::timeout`) are
//! async-io's `Timer`, the very timers smol uses, so the clock is `kompoz-smol`'s under
//! another name: one implementation, two runtimes.
//!
//! ```
//! use std::time::Duration;
//! use kompoz_async_std::{AsyncCombinator, async_rule, with_timeout};
//!
//! async_std::task::block_on(async {
//!     let slow = async_rule(async |n: &mut i32| {
//!         async_std::task::sleep(Duration::from_secs(1)).await;
//!         *n > 0
//!     });
//!     let guarded = with_timeout(slow, Duration::from_millis(20));
//!     assert_eq!(guarded.run_owned(42).await, (false, 42));
//! });
//! ```

pub use kompoz::*;

/// A [`Clock`] and [`Sleep`] for async-std: the system clock with async-io's timers,
/// which async-std's own `task::sleep` uses. It is `kompoz_smol::SmolClock`.
pub use kompoz_smol::SmolClock as AsyncStdClock;
/// The timer of an [`AsyncStdClock`].
pub use kompoz_smol::SmolSleep as AsyncStdSleep;
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
