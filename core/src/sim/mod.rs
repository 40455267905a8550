//! Deterministic simulation, for users who fuzz or model-check their own failure
//! handling (feature `sim`; `no_std` + `alloc`).
//!
//! A service that guards a flaky dependency with a breaker, a timeout and a limit has
//! failure handling worth testing the way kompoz tests its own: thousands of random
//! sequences of calls, failures, hangs, cancellations and time jumps, each checked
//! against invariants, every failure reproducible from its bytes. This module gives the
//! pieces:
//!
//! * [`Sim`], a single-threaded executor on a [`ManualClock`](crate::ManualClock): it runs
//!   ready tasks in an order drawn from a seed, jumps time to the next timer when every
//!   task waits, reports a deadlock as [`SimError::Deadlock`] instead of hanging, and
//!   cancels tasks by dropping them. The same seed gives the same run, bit for bit.
//! * [`Op`], the vocabulary of a scenario (advance time, a call that succeeds, fails or
//!   hangs, cancel a call, reset, force open, the dependency going down and coming back),
//!   and a simulated dependency that answers as told, [`Backend`].
//! * Configurations as plain values ([`BreakerConfig`], [`LimitConfig`],
//!   [`TimeoutConfig`], [`RateLimitConfig`], [`RetryBudgetConfig`]) that build the real
//!   primitives through their public builders and constructors.
//! * Invariant checkers to call after each step: [`LimitWatch`] (never more than
//!   `max_concurrent` inside a limit), [`BreakerWatch`] (nothing let through an open
//!   circuit, half-open probes within `half_open_max_calls`, nothing around the breaker),
//!   [`RateWatch`] (a rate limit never exceeded over any window), [`RetryWatch`] (retries
//!   within `max_attempts` and the deadline, never through an open circuit, never before a
//!   rate limiter said it would admit, within the retry budget), and, once idle,
//!   [`semaphore_idle`] and [`breaker_idle`] (every permit and probe slot returned). Each
//!   failure is a [`Violation`] that says what broke. A probe's [`ProbeSlot`] tells a
//!   watch of the user's own whether the breaker still counts it, or forgot it.
//! * With the `arbitrary` feature, `Arbitrary` for [`Op`], [`Reply`], the configurations,
//!   [`BreakerBuilder`](crate::breaker::BreakerBuilder) and the breaker's policies
//!   ([`FailureRate`](crate::breaker::FailureRate),
//!   [`BreakDuration`](crate::breaker::BreakDuration)), [`Semaphore`](crate::Semaphore),
//!   [`Quota`](crate::rate::Quota), [`RetryPolicy`](crate::retry::RetryPolicy) and its
//!   builder, and [`RetryBudgetBuilder`](crate::retry::RetryBudgetBuilder): a fuzzer's
//!   bytes decode into valid values only.
//!
//! Everything here runs without `std`. The `arbitrary` crate itself needs `std` (it has
//! no `no_std` support yet), so on bare-metal targets (`target_os = "none"`) the
//! `arbitrary` feature adds nothing: fuzz on the host, where the same core runs.
//!
//! The repository's `fuzz/fuzz_targets/flaky_client.rs` is a worked example: a client of a
//! flaky dependency, retried under a budget, each attempt through
//! `breaker(timeout(limit(rate(call))))`, fuzzed in the simulation against these
//! invariants and a property of its own.
//!
//! ```
//! use core::time::Duration;
//! use kompoz::breaker::{BreakerBuilder, CircuitState};
//! use kompoz::sim::Sim;
//! use kompoz::{ManualClock, Sleep};
//!
//! let clock = ManualClock::new();
//! let breaker = BreakerBuilder::new()
//!     .failure_threshold(2)
//!     .recovery_timeout(Duration::from_secs(30))
//!     .build_with(clock.clone())?;
//! let mut sim = Sim::with_clock(7, clock.clone());
//! for _ in 0..3 {
//!     // Three callers of a dependency that fails after a second.
//!     let (breaker, clock) = (&breaker, clock.clone());
//!     sim.spawn(async move {
//!         breaker.call(async {
//!             clock.sleep(Duration::from_secs(1)).await;
//!             Err::<(), _>("connection reset")
//!         }).await
//!     });
//! }
//! sim.run()?;
//! assert_eq!(breaker.state(), CircuitState::Open);
//! assert_eq!(breaker.stats().total_failures, 3);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

use core::fmt;

use crate::time::Instant;

#[cfg(all(feature = "arbitrary", not(target_os = "none")))]
mod arbitrary;
mod backend;
mod config;
mod executor;
mod invariants;
mod ops;
mod rate_watch;
mod retry_watch;
mod task;
mod trace;

pub use backend::{Backend, BackendError, BackendStats};
pub use config::{BreakerConfig, LimitConfig, RateLimitConfig, RetryBudgetConfig, TimeoutConfig};
pub use executor::{DEFAULT_POLL_LIMIT, Sim, Spawner};
pub use invariants::{
    Admission, BreakerWatch, Inside, LimitWatch, ProbeSlot, Violation, breaker_idle, semaphore_idle,
};
pub use ops::{Op, Reply};
pub use rate_watch::RateWatch;
pub use retry_watch::{RetriedCall, RetryWatch};
pub use task::{JoinError, JoinHandle, TaskId};
pub use trace::SimEvent;

/// Why a [`Sim`] stopped before doing what it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimError {
    /// Every task waits and no timer is pending: nothing can ever wake them.
    Deadlock {
        /// How many tasks wait.
        blocked: usize,
        /// The simulated time.
        at: Instant,
    },
    /// Tasks were polled this many times without time moving: they keep waking each
    /// other (or themselves) while they wait (see [`Sim::set_poll_limit`]).
    Livelock {
        /// The polls made since time last moved.
        polls: u64,
        /// The simulated time.
        at: Instant,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Deadlock { blocked, at } => {
                write!(f, "deadlock at {at:?}: {blocked} task(s) wait and no timer is pending")
            }
            SimError::Livelock { polls, at } => write!(
                f,
                "livelock at {at:?}: {polls} polls without time moving (tasks that keep \
                 waking while they wait?)"
            ),
        }
    }
}

impl core::error::Error for SimError {}
