//! What a breaker tells the world beyond its `stats()`: its name, its events (to the
//! `tracing` and `metrics` integrations and to an events [`Listener`]) and the user's
//! `on_state_change` callback, kept in one box of [`Extras`] beside the cold configuration.

use alloc::borrow::Cow;
use alloc::boxed::Box;

use super::{BreakerStats, CircuitBreaker, CircuitOpen, CircuitState};
use crate::combinator::Rejection;
use crate::events::{self, EventKind, Listener, Primitive, Source};
use crate::time::Clock;

/// The callback of [`BreakerBuilder::on_state_change`](super::BreakerBuilder::on_state_change).
pub(crate) type OnStateChange =
    Box<dyn Fn(CircuitState, CircuitState, &BreakerStats) + Send + Sync>;

/// What a breaker has only if it was given it: a name, an events [`Listener`], an
/// `on_state_change` callback. Kept in one box, made only if any is set, so that a plain
/// breaker pays one null pointer for all three and the cold line keeps its size.
#[derive(Default)]
pub(crate) struct Extras {
    /// The name its events and `Debug` carry.
    pub(crate) name: Option<Cow<'static, str>>,
    /// Hears the breaker's events (transitions and rejections).
    pub(crate) listener: Option<Box<dyn Listener>>,
    /// The user's `on_state_change`.
    pub(crate) on_state_change: Option<OnStateChange>,
}

impl Extras {
    /// `None` if nothing is set: no box for a plain breaker.
    pub(super) fn boxed(self) -> Option<Box<Extras>> {
        let empty =
            self.name.is_none() && self.listener.is_none() && self.on_state_change.is_none();
        if empty { None } else { Some(Box::new(self)) }
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// Reports a committed transition: first as an event (to the `tracing` and `metrics`
    /// integrations compiled in, then to the listener), then to `on_state_change`.
    ///
    /// The event goes first so that the integrations see every transition in the order
    /// it was made: a callback that calls back into the breaker (`reset`) makes a nested
    /// transition, which is reported, event and callback, before this call returns; were
    /// the event sent after the callback, the nested transition's event would come out
    /// ahead of this one's. It also means a panicking callback cannot keep the
    /// transition from the metrics. (A panicking listener keeps it from the callback.)
    pub(super) fn report(&self, old: CircuitState, new: CircuitState) {
        if old == new {
            return;
        }
        let extras = self.cold.extras.as_deref();
        if events::enabled(extras.and_then(|extras| extras.listener.as_deref())) {
            self.emit(EventKind::Transition { from: old, to: new });
        }
        if let Some(callback) = extras.and_then(|extras| extras.on_state_change.as_ref()) {
            callback(old, new, &self.stats());
        }
    }

    /// Reports a rejection made while in `state`, if anyone may hear it: the check is of
    /// the cold line's `extras` pointer (which the open circuit's rejection reads the
    /// line of, for `coarse_lag`), or nothing at all with an integration compiled in.
    #[inline(always)]
    pub(super) fn rejected(&self, state: CircuitState) {
        if cfg!(any(feature = "tracing", feature = "metrics")) || self.cold.extras.is_some() {
            self.emit(EventKind::Rejected(Rejection::Circuit(CircuitOpen { state })));
        }
    }

    /// Sends `kind` with the breaker's name to the integrations and to its listener.
    #[cold]
    #[inline(never)]
    fn emit(&self, kind: EventKind) {
        let extras = self.cold.extras.as_deref();
        let name = extras.and_then(|extras| extras.name.as_deref()).unwrap_or("");
        let source = Source { primitive: Primitive::Breaker, name };
        let listener = extras.and_then(|extras| extras.listener.as_deref());
        events::emit(listener, &events::Event { source, kind });
    }
}

impl<C> CircuitBreaker<C> {
    /// The name given with [`BreakerBuilder::name`](super::BreakerBuilder::name), if any.
    /// It labels the breaker's events (and so its `tracing` events and metrics) and shows
    /// in its `Debug`.
    ///
    /// ```
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().name("payments").build()?;
    /// assert_eq!(breaker.name(), Some("payments"));
    /// assert!(format!("{breaker:?}").contains("payments"));
    /// assert_eq!(CircuitBreaker::builder().build()?.name(), None);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.cold.extras.as_deref().and_then(|extras| extras.name.as_deref())
    }
}
