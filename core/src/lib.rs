//! # kompoz
//!
//! Guards for the calls async Rust code makes to things that fail: **timeouts**,
//! **concurrency limits** (shared by name if you like), **rate limits** (direct and per
//! key), **circuit breakers** and **retries** (with a shared budget, hedging and
//! fallback), around any future, on any executor, stacked if you like in a
//! [`Pipeline`] with one flat [`Error`]. This is the core crate: `no_std` + `alloc`,
//! with time read from a [`Clock`] you choose. On a runtime, depend on its adapter
//! instead, which re-exports this crate and plugs in the runtime's timers:
//! [`kompoz-tokio`](https://docs.rs/kompoz-tokio),
//! [`kompoz-smol`](https://docs.rs/kompoz-smol) or
//! [`kompoz-async-std`](https://docs.rs/kompoz-async-std).
//!
//! ```
//! use std::time::Duration;
//! use kompoz::breaker::{CircuitBreaker, CircuitState};
//! use kompoz::{Semaphore, StdClock};
//!
//! async fn query(id: u32) -> Result<u32, &'static str> {
//!     if id > 0 { Ok(id * 10) } else { Err("no such row") }
//! }
//!
//! // Any executor will do: here `futures`' block_on. (On tokio, the same code with
//! // `kompoz_tokio::timeout(duration, future)`.)
//! futures::executor::block_on(async {
//!     // A time limit around any future: its output, or `Err(Elapsed)` once it passed.
//!     let answer = kompoz::timeout(StdClock, Duration::from_secs(1), query(4)).await;
//!     assert_eq!(answer, Ok(Ok(40)));
//!
//!     // At most 4 queries at once; the others wait in line, first come first served.
//!     let pool = Semaphore::new(4)?;
//!     assert_eq!(pool.run(query(2)).await?, Ok(20));
//!
//!     // A circuit breaker: 2 failures in a row open it; while open, calls are refused
//!     // at once, without running, until its recovery time (30 s by default) has passed.
//!     let breaker = CircuitBreaker::builder().failure_threshold(2).build()?;
//!     for _ in 0..2 {
//!         assert!(breaker.call(query(0)).await.is_err());
//!     }
//!     assert_eq!(breaker.state(), CircuitState::Open);
//!     let refused = breaker.call(query(3)).await;
//!     assert!(refused.is_err_and(|error| error.is_rejected()));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Two faces
//!
//! * **Plain futures**, for ordinary Rust code: [`timeout()`] and [`timeout_at()`],
//!   [`Semaphore::run`] and [`Semaphore::acquire`], [`RateLimiter::run`] and
//!   [`RateLimiter::check`], [`CircuitBreaker::call`] and
//!   [`CircuitBreaker::try_acquire`], [`RetryPolicy::retry`](retry::RetryPolicy::retry),
//!   and all of them stacked around one call by a [`Pipeline`](mod@pipeline).
//! * **Rules on a context**: async checks that run on a context you lend them (`&mut
//!   Ctx`) and pass or not ([`AsyncCombinator`], [`async_rule`], [`async_pipe`]). The
//!   guards wrap them and stack ([`with_timeout_on`], [`limited`], [`limited_named`],
//!   [`rate_limited_on`], [`circuit_breaker`], [`retry_on`]), or run side by side ([`parallel_and`],
//!   [`parallel_or`]), and each run says how it ended ([`Outcome`]): passed, failed,
//!   timed out, or refused without running. This is also the face of the Python library
//!   kompoz, whose `with_timeout`, `limited` and `circuit_breaker` it mirrors (the
//!   repository's README maps one API onto the other).
//!
//! # Time
//!
//! Every primitive reads a [`Clock`] and waits on a [`Sleep`], never on the operating
//! system directly. With the `std` feature, [`StdClock`] is the system's monotonic clock
//! with runtime-agnostic timers; the adapters add their runtime's. On a board, implement
//! the two traits over a tick counter. In tests, [`ManualClock`] moves only when told to,
//! so time-dependent behaviour is checked deterministically, without sleeping:
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
//!
//! # Feature flags
//!
//! * `std` (on by default): [`StdClock`]; [`with_timeout`] and
//!   [`CircuitBreaker::builder`] without naming a clock; per-thread breaker counters, so
//!   closed-state calls write nothing shared; a spin lock that yields to the scheduler.
//! * `critical-section`: atomic read-modify-write through the `critical-section` crate,
//!   for targets without compare-and-swap (`thumbv6m-none-eabi`,
//!   `riscv32imc-unknown-none-elf`); the application provides the implementation. It
//!   also makes kompoz safe to use from interrupt handlers (below).
//!
//! # Embedded targets and interrupt handlers
//!
//! A few short internal sections (a semaphore's wait list, the limit registries, the
//! manual clock's timers) take a spin lock. No waker or other user code ever runs under
//! it, but on a single core an **interrupt handler** that preempts a holder and then
//! waits for the same lock would spin forever. So:
//!
//! * **With the `critical-section` feature**, every such section runs inside
//!   `critical_section::with` (interrupts masked, with a single-core implementation such
//!   as cortex-m's `critical-section-single-core`, for a few dozen instructions), and
//!   interrupt handlers may use kompoz freely: drop a permit, add permits, close a
//!   semaphore.
//! * **Without it**, do not touch a kompoz primitive from an interrupt handler, nor from
//!   any context that preempts code using the same primitive (a higher-priority RTIC
//!   task, a signal handler): signal a task and let the task do it.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/kompoz/0.1.0")]

extern crate alloc;
// Unit tests use std (threads, catch_unwind) even when the crate is built without it.
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod breaker;
pub mod combinator;
mod error;
pub mod events;
mod keyed;
pub mod limit;
pub mod pipeline;
pub mod rate;
pub mod retry;
#[cfg(all(feature = "sim", target_has_atomic = "ptr", not(loom)))]
pub mod sim;
mod sync;
#[cfg(all(test, not(loom)))]
mod test_wakers;
pub mod time;
mod timeout;
mod wake;

pub use breaker::{CircuitBreaker, CircuitState};
#[cfg(all(target_has_atomic = "ptr", not(loom)))]
pub use combinator::limited_named;
#[cfg(feature = "std")]
pub use combinator::rate_limited;
#[cfg(all(feature = "std", not(loom)))]
pub use combinator::rate_limited_named;
#[cfg(feature = "std")]
pub use combinator::retry;
#[cfg(feature = "std")]
pub use combinator::with_timeout;
pub use combinator::{
    AsyncCombinator, Limited, Outcome, Protected, Rejection, WithTimeout, async_pipe, async_rule,
    circuit_breaker, limited, limited_on, with_timeout_on,
};
pub use combinator::{
    NoRules, ParallelAnd, ParallelOr, Retried, parallel_and, parallel_or, retry_on,
};
pub use combinator::{Throttled, rate_limited_on};
pub use error::{Error, RetryAfter};
pub use limit::Semaphore;
pub use pipeline::Pipeline;
pub use rate::{KeyedRateLimiter, Quota, RateLimiter};
#[cfg(target_has_atomic = "ptr")]
pub use time::ManualClock;
#[cfg(feature = "std")]
pub use time::StdClock;
pub use time::{Clock, Instant, Sleep};
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
