//! Events: what the primitives report when something worth knowing happens, for logs,
//! metrics and tests.
//!
//! An [`Event`] names the primitive that reports it ([`Source`]: its kind and its name) and
//! what happened ([`EventKind`]): a breaker's transition, a rejection and its cause, a time
//! limit that passed, a task that waits for a permit, a permit taken or given back, a
//! retry. A [`Listener`] receives them.
//!
//! * **Nothing per successful call.** Events mark what changes or goes wrong. The closed
//!   breaker's path and an uncontended permit report nothing; their counts are in the
//!   primitives' `stats()`, which a metrics exporter reads when it is scraped
//!   (`metrics::record_breaker_stats` and `record_limit_stats`, with the `metrics`
//!   feature).
//! * **Zero cost when unused.** A primitive without a listener, built without the
//!   `tracing` and `metrics` features, checks one `Option` on its slow paths (a
//!   transition, a rejection, a wait) and nothing on its fast ones.
//! * **Outside every lock.** Events are reported after the state change is committed and
//!   outside any critical section, like `on_state_change`: a listener may call back into
//!   the primitive. A listener that panics propagates to the caller whose call reported
//!   the event; the primitive stays consistent.
//! * **`no_std`.** The trait and the events need neither `std` nor an allocator; the
//!   `tracing` feature sends every event to [`tracing`](https://docs.rs/tracing) (also
//!   without `std`), and the `metrics` feature counts them with
//!   [`metrics`](https://docs.rs/metrics) (with `std`).
//!
//! ```
//! use std::sync::Mutex;
//! use kompoz::breaker::CircuitState;
//! use kompoz::events::{Event, EventKind, Listener, Primitive, Source};
//!
//! /// Keeps the transitions it hears about.
//! #[derive(Default)]
//! struct Transitions(Mutex<Vec<(String, CircuitState, CircuitState)>>);
//!
//! impl Listener for Transitions {
//!     fn on_event(&self, event: &Event<'_>) {
//!         if let EventKind::Transition { from, to } = event.kind {
//!             self.0.lock().unwrap().push((event.source.name.to_string(), from, to));
//!         }
//!     }
//! }
//!
//! let listener = Transitions::default();
//! let payments = Source { primitive: Primitive::Breaker, name: "payments" };
//! let opened = EventKind::Transition { from: CircuitState::Closed, to: CircuitState::Open };
//! listener.on_event(&Event { source: payments, kind: opened });
//! assert_eq!(listener.0.lock().unwrap()[0], ("payments".into(), CircuitState::Closed, CircuitState::Open));
//! ```

use core::fmt;
use core::time::Duration;

use crate::breaker::CircuitState;
use crate::combinator::Rejection;
use crate::limit::AcquireError;

#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "tracing")]
mod traced;

/// Which kind of primitive reported an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Primitive {
    /// A circuit breaker.
    Breaker,
    /// A concurrency limit (a semaphore).
    Limit,
    /// A time limit.
    Timeout,
    /// A rate limiter.
    RateLimiter,
    /// A retry.
    Retry,
}

impl Primitive {
    /// The primitive's kind in one lower-case word, as in metric names: `breaker`,
    /// `limit`, `timeout`, `rate_limiter`, `retry`.
    ///
    /// ```
    /// use kompoz::events::Primitive;
    ///
    /// assert_eq!(Primitive::RateLimiter.as_str(), "rate_limiter");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Primitive::Breaker => "breaker",
            Primitive::Limit => "limit",
            Primitive::Timeout => "timeout",
            Primitive::RateLimiter => "rate_limiter",
            Primitive::Retry => "retry",
        }
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who reported an event: the kind of primitive and its name (empty if it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source<'a> {
    /// The kind of primitive.
    pub primitive: Primitive,
    /// The name it was given, or `""`.
    pub name: &'a str,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A breaker changed state (reported once, by the thread that made the change).
    Transition {
        /// The state it left.
        from: CircuitState,
        /// The state it entered.
        to: CircuitState,
    },
    /// A call was refused without running, and why.
    Rejected(Rejection),
    /// A time limit passed and the call was cancelled.
    TimedOut {
        /// The limit.
        after: Duration,
    },
    /// A task found no free permit and queued for one.
    WaitStarted,
    /// A permit was taken after a wait.
    PermitAcquired {
        /// How long the task waited, if the primitive could measure it.
        waited: Option<Duration>,
    },
    /// A permit was given back. (Not reported by kompoz's semaphore: its release is a hot
    /// path, which checks for no listener; for adapters and primitives of your own.)
    PermitReleased,
    /// A failed attempt will be tried again.
    Retry {
        /// The attempt that failed, from 1.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
    },
}

/// One event: who reported it and what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event<'a> {
    /// The primitive that reported it.
    pub source: Source<'a>,
    /// What happened.
    pub kind: EventKind,
}

/// Receives the events of the primitives it is given to.
///
/// Called after the change it reports is committed, outside any lock, on the thread
/// whose call caused it; keep it short (count, log, send on a channel). It may call back
/// into the primitive. Implemented for closures, for `Arc<L>`, and for
/// pairs, which tell both.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use kompoz::events::{Event, EventKind, Listener, Primitive, Source};
///
/// let rejections = AtomicUsize::new(0);
/// let count = |event: &Event<'_>| {
///     if let EventKind::Rejected(_) = event.kind {
///         rejections.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// let open = kompoz::breaker::CircuitOpen { state: kompoz::CircuitState::Open };
/// let source = Source { primitive: Primitive::Breaker, name: "db" };
/// count.on_event(&Event { source, kind: EventKind::Rejected(kompoz::Rejection::Circuit(open)) });
/// assert_eq!(rejections.load(Ordering::Relaxed), 1);
/// ```
pub trait Listener: Send + Sync {
    /// One event.
    fn on_event(&self, event: &Event<'_>);
}

impl<F: Fn(&Event<'_>) + Send + Sync> Listener for F {
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

impl<A: Listener, B: Listener> Listener for (A, B) {
    fn on_event(&self, event: &Event<'_>) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<L: Listener + ?Sized> Listener for alloc::sync::Arc<L> {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event)
    }
}

/// A listener that ignores everything: what a primitive has when it was given none.
///
/// ```
/// use kompoz::events::{Event, EventKind, Listener, NoListener, Primitive, Source};
///
/// let source = Source { primitive: Primitive::Limit, name: "" };
/// NoListener.on_event(&Event { source, kind: EventKind::WaitStarted }); // does nothing
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoListener;

impl Listener for NoListener {
    #[inline(always)]
    fn on_event(&self, _: &Event<'_>) {}
}

/// A rejection's cause in one word, as in the `cause` label of
/// `kompoz_rejections_total`: `open`, `half_open`, `no_permits`, `wait_elapsed`,
/// `closed` or `rate_limited`.
///
/// ```
/// use kompoz::Rejection;
/// use kompoz::events::cause;
/// use kompoz::limit::AcquireError;
///
/// assert_eq!(cause(&Rejection::Limit(AcquireError::WaitElapsed)), "wait_elapsed");
/// ```
pub fn cause(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::Circuit(open) => match open.state {
            CircuitState::HalfOpen => "half_open",
            _ => "open",
        },
        Rejection::Limit(AcquireError::NoPermits) => "no_permits",
        Rejection::Limit(AcquireError::WaitElapsed) => "wait_elapsed",
        Rejection::Limit(_) => "closed",
        Rejection::Rate(_) => "rate_limited",
    }
}

/// Reports `event` to the `tracing` and `metrics` integrations that are compiled in, then
/// to `listener`. Called from slow paths only, after the change is committed and outside
/// every lock.
#[cold]
#[inline(never)]
pub(crate) fn emit(listener: Option<&dyn Listener>, event: &Event<'_>) {
    #[cfg(feature = "tracing")]
    traced::record(event);
    #[cfg(feature = "metrics")]
    self::metrics::record(event);
    if let Some(listener) = listener {
        listener.on_event(event);
    }
}

/// Reports `event` to the integrations compiled in (`tracing`, `metrics`), as the
/// primitives do: for adapters (the tower crate's time limits) and for primitives of your
/// own. Without either feature it does nothing.
///
/// ```
/// use core::time::Duration;
/// use kompoz::events::{Event, EventKind, Primitive, Source, report};
///
/// let source = Source { primitive: Primitive::Timeout, name: "upstream" };
/// report(&Event { source, kind: EventKind::TimedOut { after: Duration::from_secs(2) } });
/// ```
pub fn report(event: &Event<'_>) {
    emit(None, event);
}

/// Whether [`emit`] would do anything: a listener, or an integration compiled in. Lets a
/// primitive skip preparing an event (reading a clock, say) that nobody would see.
#[inline(always)]
pub(crate) fn enabled(listener: Option<&dyn Listener>) -> bool {
    cfg!(any(feature = "tracing", feature = "metrics")) || listener.is_some()
}

#[cfg(test)]
mod tests;
