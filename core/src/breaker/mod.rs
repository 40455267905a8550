//! Circuit breakers: a lock-free [`CircuitBreaker`] with kompoz's semantics and without
//! its bugs.
//!
//! The state machine is a pure function over a plain value, applied to one atomic word
//! by compare-exchange (`portable-atomic`, so it runs where 64-bit atomics do not
//! exist). The faces:
//!
//! * futures: [`CircuitBreaker::call`] / [`call_with`](CircuitBreaker::call_with) for
//!   futures of `Result`, with a classifier;
//! * guards: [`CircuitBreaker::try_acquire`] and [`BreakerGuard`], for framework
//!   integrations;
//! * combinators: [`circuit_breaker`](crate::circuit_breaker), kompoz's
//!   `circuit_breaker(rule, ...)`.
//!
//! Policies, chosen when the breaker is built: the circuit opens on `failure_threshold`
//! consecutive failures (kompoz's rule, the default), or on a failure or slow-call rate
//! over a window of calls ([`FailureRate`]); it stays open for a fixed break or one that
//! grows while the dependency stays down ([`BreakDuration`]). The default policy's closed
//! path pays nothing for the others: a rate policy sets a flag in the state word that makes
//! the closed-success fast path miss, and is dispatched on the slow path.
//!
//! The layering (each file one concept): `machine.rs` is the pure state machine; `cell.rs`
//! packs it into one atomic word with a 64-bit epoch beside it; `circuit.rs` applies it
//! and owns the memory layout; `extras.rs` holds what it reports beyond its stats (its
//! name, its events, `on_state_change`); `counters.rs` keeps the totals per thread;
//! `thread_token.rs` names threads so that counters follow them; `policy.rs` holds the
//! policies' configuration, `window/` the failure-rate windows and `breaks.rs` the break
//! durations; `guard.rs` and `call.rs` are the two ways to make a call; `keyed.rs` keeps a
//! breaker per key ([`BreakerMap`]) in the crate's sharded map (`crate::keyed`).

use core::fmt;
use core::time::Duration;

mod breaks;
mod builder;
mod call;
mod cell;
mod circuit;
mod counters;
mod extras;
mod guard;
#[cfg(target_has_atomic = "ptr")]
mod keyed;
mod machine;
mod owned;
mod policy;
#[cfg(all(feature = "std", not(loom)))]
mod thread_token;
mod window;

pub use builder::BreakerBuilder;
pub use call::{Call, Classify, ErrIsFailure};
pub use circuit::CircuitBreaker;
pub use counters::CELLS;
pub use guard::BreakerGuard;
#[cfg(target_has_atomic = "ptr")]
pub use keyed::{BreakerMap, BreakerMapBuilder, DEFAULT_IDLE_AFTER};
pub use machine::MAX_COUNT;
pub use owned::OwnedBreakerGuard;
pub use policy::{BreakDuration, FailureRate, MAX_BUCKETS, MAX_WINDOW_CALLS};

use crate::time::Instant;

/// The three states of a circuit.
///
/// ```
/// use kompoz::breaker::CircuitState;
///
/// assert_eq!(CircuitState::HalfOpen.to_string(), "half-open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Normal operation: calls pass through.
    Closed,
    /// Too many failures: calls are rejected at once.
    Open,
    /// Testing whether the dependency recovered: a few probe calls pass.
    HalfOpen,
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        })
    }
}

/// How a call went, as far as the breaker is concerned.
///
/// ```
/// use kompoz::breaker::Verdict;
///
/// let answer: Result<u8, &str> = Err("timed out");
/// assert_eq!(Verdict::from(answer.is_ok()), Verdict::Failure);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Counts as a success.
    Success,
    /// Counts as a failure.
    Failure,
    /// Counts as neither: the call's probe slot is given back and the state is untouched.
    Ignore,
}

impl From<bool> for Verdict {
    fn from(ok: bool) -> Verdict {
        if ok { Verdict::Success } else { Verdict::Failure }
    }
}

/// A call refused by the breaker: the circuit is open, or half-open with all its probe
/// slots taken. Cheap to make and copy: a rejection allocates nothing.
///
/// ```
/// use kompoz::breaker::{CircuitBreaker, CircuitOpen, CircuitState};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// breaker.force_open();
/// let refused: CircuitOpen = breaker.try_acquire().unwrap_err();
/// assert_eq!(refused.state, CircuitState::Open);
/// assert_eq!(refused.to_string(), "call rejected: the circuit is open");
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CircuitOpen {
    /// The state the breaker was in when it refused (`Open` or `HalfOpen`).
    pub state: CircuitState,
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            CircuitState::HalfOpen => {
                f.write_str("call rejected: the circuit is half-open and its probe slots are taken")
            }
            _ => f.write_str("call rejected: the circuit is open"),
        }
    }
}

impl core::error::Error for CircuitOpen {}

/// The error of [`CircuitBreaker::call`]: the breaker refused the call, or the call
/// itself failed.
///
/// It follows kompoz's [chain convention](crate::Error#messages-and-sources): transparent
/// for the call's own error (its message, and its source); a refusal says `rejected by a
/// circuit breaker`, with the [`CircuitOpen`] as source, which says why (and which
/// `kompoz_tower::rejection` finds in a boxed one).
///
/// ```
/// use kompoz::breaker::{CallError, CircuitBreaker};
///
/// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
/// let run = |answer: Result<u8, &'static str>| {
///     futures::executor::block_on(breaker.call(async move { answer }))
/// };
/// assert_eq!(run(Err("refused")), Err(CallError::Inner("refused")));
/// assert!(run(Ok(1)).unwrap_err().is_rejected(), "open after one failure");
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallError<E> {
    /// Not run: the circuit is open.
    Rejected(CircuitOpen),
    /// Run, and it returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// Whether the breaker refused the call (as opposed to the call failing).
    ///
    /// ```
    /// use kompoz::breaker::{CallError, CircuitOpen, CircuitState};
    ///
    /// let refused = CallError::<()>::Rejected(CircuitOpen { state: CircuitState::Open });
    /// assert!(refused.is_rejected());
    /// assert!(!CallError::Inner("boom").is_rejected());
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }

    /// The call's own error, if it ran.
    ///
    /// ```
    /// use kompoz::breaker::CallError;
    ///
    /// assert_eq!(CallError::Inner("boom").into_inner(), Some("boom"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(error) => Some(error),
            CallError::Rejected(_) => None,
        }
    }
}

/// The call's own error's message; or what refused, whose details are the source's.
impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(_) => f.write_str("rejected by a circuit breaker"),
            CallError::Inner(error) => error.fmt(f),
        }
    }
}

/// The refusal's [`CircuitOpen`], or the call's own error's source (the call's error itself
/// is this entry of the chain).
impl<E: core::error::Error + 'static> core::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CallError::Rejected(open) => Some(open),
            CallError::Inner(error) => error.source(),
        }
    }
}

/// A snapshot of a breaker, from [`CircuitBreaker::stats`]: kompoz's fields and more.
///
/// ```
/// use kompoz::breaker::{CircuitBreaker, CircuitState};
///
/// let breaker = CircuitBreaker::builder().failure_threshold(2).build()?;
/// breaker.try_acquire()?.failure();
/// let stats = breaker.stats();
/// assert_eq!((stats.state, stats.failure_count, stats.total_calls), (CircuitState::Closed, 1, 1));
/// assert!(stats.last_failure_time.is_some() && stats.last_success_time.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BreakerStats {
    /// The committed state.
    pub state: CircuitState,
    /// Consecutive failures in the current closed period (kompoz's `failure_count`); under
    /// a [`FailureRate`] policy, the failures in the window.
    pub failure_count: u32,
    /// Under a [`FailureRate`] policy, the calls in the window (0 otherwise, and while not
    /// closed).
    pub window_calls: u32,
    /// Under a [`FailureRate`] policy with slow calls, the slow calls in the window.
    pub slow_call_count: u32,
    /// The break of the current open period, or of the last one (zero if the circuit never
    /// opened, or only by `force_open`).
    pub break_duration: Duration,
    /// Successful calls since creation.
    pub success_count: u64,
    /// The latest clock reading at which a failure was recorded (precise clock). On a
    /// clock that never steps back, when the latest failure was recorded.
    pub last_failure_time: Option<Instant>,
    /// When the latest success was recorded, from the clock's coarse reading
    /// ([`Clock::now_coarse`](crate::Clock::now_coarse): on `StdClock` under Linux, up to
    /// a couple of kernel ticks early). To keep the clock off the closed path, each
    /// counter shard (the owner thread's, or one that contending threads share) reads it
    /// on its first success, then once per `stride` successes, where the stride
    /// doubles (up to 16) while successive readings are less than the clock's
    /// [`coarse_lag`](crate::Clock::coarse_lag) (at least a millisecond) apart, and falls
    /// back to 1 as soon as they are further apart: in a steady stream of calls this is
    /// within a few milliseconds; calls spread further apart are stamped one by one; what
    /// can go unstamped is at most 15 successes of a thread right after a burst.
    pub last_success_time: Option<Instant>,
    /// Successful probes since the circuit last went half-open.
    pub half_open_successes: u32,
    /// Probes in flight (of this half-open period or an earlier one), until they end or are
    /// forgotten by `reset` or expiry.
    pub probes_in_flight: u32,
    /// Whether the circuit was opened by `force_open` (and stays open until `reset`).
    pub forced_open: bool,
    /// Failed calls since creation.
    pub total_failures: u64,
    /// Calls that ended without a verdict: cancelled, panicked, or ignored.
    pub abandoned_calls: u64,
    /// Calls refused since creation.
    pub rejected_calls: u64,
    /// Every call that asked to be let in and has finished: successes, failures,
    /// abandoned and rejected calls. Calls still running are not counted yet.
    pub total_calls: u64,
    /// How many times the circuit opened.
    pub times_opened: u64,
}

/// A breaker configuration that cannot be built. Names the field and its value.
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::{BreakerError, CircuitBreaker};
///
/// let error = CircuitBreaker::builder().half_open_max_wait(Duration::ZERO).build().unwrap_err();
/// assert_eq!(error, BreakerError::ZeroDuration { field: "half_open_max_wait" });
/// assert_eq!(error.to_string(), "half_open_max_wait must be longer than zero");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum BreakerError {
    /// A count that must be at least 1 was 0.
    Zero {
        /// The field: `failure_threshold`, `half_open_max_calls` or `success_threshold`.
        field: &'static str,
    },
    /// A count above [`MAX_COUNT`], the largest the breaker's state word can track.
    TooLarge {
        /// The field.
        field: &'static str,
        /// The value given.
        value: u32,
        /// [`MAX_COUNT`].
        max: u32,
    },
    /// A duration that must be longer than zero was zero.
    ZeroDuration {
        /// The field, e.g. `half_open_max_wait`.
        field: &'static str,
    },
    /// A ratio outside (0, 1] (or not a number).
    Ratio {
        /// The field, e.g. `threshold`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count window's `minimum_calls` above the window's size: it would never be judged.
    MinimumAboveWindow {
        /// The `minimum_calls` given.
        minimum_calls: u32,
        /// The window's size (`over_calls`).
        window_calls: u32,
    },
    /// A growing break duration whose cap is below its first break.
    MaxBelowInitial {
        /// The first break.
        initial: Duration,
        /// The cap.
        max: Duration,
    },
    /// Two settings that exclude each other were both given.
    Conflict {
        /// The setting that would be ignored.
        field: &'static str,
        /// The one that overrides it.
        with: &'static str,
    },
}

impl fmt::Display for BreakerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerError::Zero { field } => write!(f, "{field} must be at least 1, got 0"),
            BreakerError::TooLarge { field, value, max } => {
                write!(f, "{field} = {value} is above the largest supported value, {max}")
            }
            BreakerError::ZeroDuration { field } => write!(f, "{field} must be longer than zero"),
            BreakerError::Ratio { field, value } => {
                write!(f, "{field} = {value} is not a ratio in (0, 1]")
            }
            BreakerError::MinimumAboveWindow { minimum_calls, window_calls } => write!(
                f,
                "minimum_calls = {minimum_calls} is above the window's {window_calls} calls"
            ),
            BreakerError::MaxBelowInitial { initial, max } => {
                write!(f, "break_duration: max = {max:?} is below initial = {initial:?}")
            }
            BreakerError::Conflict { field, with } => {
                write!(f, "{field} has no effect with {with}: give one of them")
            }
        }
    }
}

impl core::error::Error for BreakerError {}

/// kompoz's default `recovery_timeout`: 30 seconds.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default `half_open_max_wait`: a probe that has not answered in a minute is presumed
/// hung, and its slot goes to the next call.
pub const DEFAULT_HALF_OPEN_MAX_WAIT: Duration = Duration::from_secs(60);

#[cfg(all(test, feature = "std", not(loom)))]
mod event_tests;
#[cfg(all(test, feature = "std", not(loom)))]
mod policy_tests;
#[cfg(all(test, feature = "std", not(loom)))]
mod tests;
