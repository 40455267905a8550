//! # kompoz
//!
//! Resilience primitives for async Rust: **timeouts**, **concurrency limits** (shared by
//! name if you like) and **circuit breakers**, in a `no_std` + `alloc` core that runs on any
//! executor, with any clock.
//!
//! Every primitive has two faces:
//!
//! * a plain-future face for ordinary Rust code: [`timeout()`], [`Semaphore::run`],
//!   [`CircuitBreaker::call`], and
//! * the *combinator* face of the Python library kompoz: rules that run on a context and
//!   report whether they passed ([`AsyncCombinator`], [`async_rule`], [`with_timeout_on`],
//!   [`limited`], [`limited_named`], [`circuit_breaker`]).
//!
//! Time comes from a [`Clock`] and timers from a [`Sleep`]. The core ships
//! [`ManualClock`], driven by hand for deterministic tests, and, with the `std` feature
//! (on by default), [`StdClock`], a runtime-agnostic clock and timer. The adapter crates
//! `kompoz-tokio`, `kompoz-async-std` and `kompoz-smol` plug in their runtime's timers.
//!
//! ```
//! use core::time::Duration;
//! use kompoz::{AsyncCombinator, ManualClock, Sleep, async_rule, with_timeout_on};
//!
//! let clock = ManualClock::new();
//! let timer = clock.clone();
//! // A rule that needs one second of (manual) time before it answers.
//! let slow = async_rule(async move |n: &mut i32| {
//!     timer.sleep(Duration::from_secs(1)).await;
//!     *n > 0
//! });
//! let guarded = with_timeout_on(clock.clone(), slow, Duration::from_millis(50));
//!
//! let mut run = core::pin::pin!(guarded.run_owned(42));
//! let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! assert!(run.as_mut().poll(&mut cx).is_pending());
//! clock.advance(Duration::from_millis(50));
//! // The time limit passed first: the rule failed and the context came back.
//! assert_eq!(run.as_mut().poll(&mut cx), core::task::Poll::Ready((false, 42)));
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod breaker;
pub mod combinator;
pub mod limit;
mod sync;
pub mod time;
mod timeout;

pub use breaker::{CircuitBreaker, CircuitState};
#[cfg(all(target_has_atomic = "ptr", not(loom)))]
pub use combinator::limited_named;
#[cfg(feature = "std")]
pub use combinator::with_timeout;
pub use combinator::{
    AsyncCombinator, Limited, Outcome, Protected, Rejection, WithTimeout, async_pipe, async_rule,
    circuit_breaker, limited, limited_on, with_timeout_on,
};
pub use limit::Semaphore;
#[cfg(target_has_atomic = "ptr")]
pub use time::ManualClock;
#[cfg(feature = "std")]
pub use time::StdClock;
pub use time::{Clock, Instant, Sleep};
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
