//! The `metrics` feature: the primitives' events and counters through the
//! [`metrics`](https://docs.rs/metrics) facade, under Prometheus-style names, labelled by
//! the primitive's name.
//!
//! Two sources, so that nothing is counted per successful call on a hot path:
//!
//! * **Events**, as they happen (after the change, outside every lock):
//!
//!   | metric | kind | labels |
//!   | --- | --- | --- |
//!   | `kompoz_breaker_transitions_total` | counter | `name`, `from`, `to` (`closed`, `open`, `half_open`) |
//!   | `kompoz_breaker_state` | gauge: 0 closed, 1 open, 2 half-open | `name` |
//!   | `kompoz_rejections_total` | counter | `primitive`, `name`, `cause` (`open`, `half_open`, `no_permits`, `wait_elapsed`, `closed`, `rate_limited`) |
//!   | `kompoz_limit_wait_seconds` | histogram of the time a task waited for a permit | `name` |
//!   | `kompoz_timeouts_total` | counter | `primitive`, `name` |
//!   | `kompoz_retries_total` | counter | `primitive`, `name` |
//!
//! * **Counters the primitives keep anyway**, copied from their `stats()` when you call
//!   [`record_breaker_stats`] or [`record_limit_stats`] (for example in the handler that
//!   serves the scrape, or on a timer):
//!
//!   | metric | kind | labels |
//!   | --- | --- | --- |
//!   | `kompoz_breaker_calls_total` | counter | `name`, `outcome` (`success`, `failure`, `rejected`, `abandoned`) |
//!   | `kompoz_breaker_state` | gauge | `name` |
//!   | `kompoz_limit_permits` | gauge: the permits it owns | `name` |
//!   | `kompoz_limit_permits_in_use` | gauge | `name` |
//!   | `kompoz_limit_waiters` | gauge | `name` |
//!   | `kompoz_limit_acquired_total` | counter | `name` |
//!   | `kompoz_limit_rejected_total` | counter | `name` |
//!
//! Events are counted once you call [`enable`], after installing your recorder (for
//! example `metrics-exporter-prometheus`): until then the feature costs a load of a flag
//! per event and registers nothing, so a program (or a test) that installs no recorder
//! allocates nothing for it. A handle is registered with the recorder the first time a
//! primitive's name needs it, and kept: reporting then allocates nothing. Registering
//! calls into the recorder, never while holding the cache's lock.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram};

use super::{Event, EventKind, Primitive, cause};
use crate::breaker::{BreakerStats, CircuitState};
use crate::limit::SemaphoreStats;

/// One metric of one primitive: which family, with which fixed labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Transition(u8, u8),
    BreakerState,
    Rejection(Primitive, &'static str),
    WaitSeconds,
    Timeouts(Primitive),
    Retries(Primitive),
    Calls(&'static str),
    Permits,
    PermitsInUse,
    Waiters,
    Acquired,
    LimitRejected,
}

#[derive(Clone, Debug)]
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// Registered handles, by name then slot. Looked up with a borrowed name, so a lookup
/// allocates nothing; only a handle's first use registers it (and allocates). Read-mostly:
/// threads that report at once (an open breaker refusing on every core) share the read
/// lock.
static HANDLES: RwLock<BTreeMap<String, BTreeMap<Slot, Handle>>> = RwLock::new(BTreeMap::new());

fn state_label(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half_open",
    }
}

fn state_index(state: CircuitState) -> u8 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
    }
}

fn state_of(index: u8) -> CircuitState {
    match index {
        0 => CircuitState::Closed,
        1 => CircuitState::Open,
        _ => CircuitState::HalfOpen,
    }
}

/// Registers the handle of `slot` for the primitive named `name` with the recorder.
fn register(name: &str, slot: Slot) -> Handle {
    let name = name.to_string();
    match slot {
        Slot::Transition(from, to) => Handle::Counter(metrics::counter!(
            "kompoz_breaker_transitions_total",
            "name" => name,
            "from" => state_label(state_of(from)),
            "to" => state_label(state_of(to)),
        )),
        Slot::BreakerState => {
            Handle::Gauge(metrics::gauge!("kompoz_breaker_state", "name" => name))
        }
        Slot::Rejection(primitive, cause) => Handle::Counter(metrics::counter!(
            "kompoz_rejections_total",
            "primitive" => primitive.as_str(),
            "name" => name,
            "cause" => cause,
        )),
        Slot::WaitSeconds => {
            Handle::Histogram(metrics::histogram!("kompoz_limit_wait_seconds", "name" => name))
        }
        Slot::Timeouts(primitive) => Handle::Counter(metrics::counter!(
            "kompoz_timeouts_total", "primitive" => primitive.as_str(), "name" => name,
        )),
        Slot::Retries(primitive) => Handle::Counter(metrics::counter!(
            "kompoz_retries_total", "primitive" => primitive.as_str(), "name" => name,
        )),
        Slot::Calls(outcome) => Handle::Counter(metrics::counter!(
            "kompoz_breaker_calls_total", "name" => name, "outcome" => outcome,
        )),
        Slot::Permits => Handle::Gauge(metrics::gauge!("kompoz_limit_permits", "name" => name)),
        Slot::PermitsInUse => {
            Handle::Gauge(metrics::gauge!("kompoz_limit_permits_in_use", "name" => name))
        }
        Slot::Waiters => Handle::Gauge(metrics::gauge!("kompoz_limit_waiters", "name" => name)),
        Slot::Acquired => {
            Handle::Counter(metrics::counter!("kompoz_limit_acquired_total", "name" => name))
        }
        Slot::LimitRejected => {
            Handle::Counter(metrics::counter!("kompoz_limit_rejected_total", "name" => name))
        }
    }
}

/// The handle of `slot` for `name`: from the cache, or registered (outside the lock:
/// the recorder is user code) and cached.
fn handle(name: &str, slot: Slot) -> Handle {
    {
        let handles = HANDLES.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(handle) = handles.get(name).and_then(|slots| slots.get(&slot)) {
            return handle.clone();
        }
    }
    let registered = register(name, slot);
    let mut handles = HANDLES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slots = match handles.get_mut(name) {
        Some(slots) => slots,
        None => handles.entry(name.to_string()).or_default(),
    };
    slots.entry(slot).or_insert(registered).clone()
}

fn counter(name: &str, slot: Slot) -> Counter {
    match handle(name, slot) {
        Handle::Counter(counter) => counter,
        _ => Counter::noop(),
    }
}

fn gauge(name: &str, slot: Slot) -> Gauge {
    match handle(name, slot) {
        Handle::Gauge(gauge) => gauge,
        _ => Gauge::noop(),
    }
}

fn histogram(name: &str, slot: Slot) -> Histogram {
    match handle(name, slot) {
        Handle::Histogram(histogram) => histogram,
        _ => Histogram::noop(),
    }
}

/// Whether [`enable`] was called.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Starts counting events with the recorder installed now. Call it once, after
/// installing the recorder; until then events are not counted (and register nothing).
/// The counters copied from `stats()` ([`record_breaker_stats`], [`record_limit_stats`])
/// need no call.
///
/// ```
/// // let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
/// kompoz::events::metrics::enable();
/// ```
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

/// Counts `event`.
pub(super) fn record(event: &Event<'_>) {
    if !ENABLED.load(Ordering::Acquire) {
        return;
    }
    let name = event.source.name;
    let primitive = event.source.primitive;
    match event.kind {
        EventKind::Transition { from, to } => {
            counter(name, Slot::Transition(state_index(from), state_index(to))).increment(1);
            gauge(name, Slot::BreakerState).set(f64::from(state_index(to)));
        }
        EventKind::Rejected(rejection) => {
            counter(name, Slot::Rejection(primitive, cause(&rejection))).increment(1);
        }
        EventKind::TimedOut { .. } => counter(name, Slot::Timeouts(primitive)).increment(1),
        EventKind::Retry { .. } => counter(name, Slot::Retries(primitive)).increment(1),
        EventKind::PermitAcquired { waited: Some(waited) } => {
            histogram(name, Slot::WaitSeconds).record(waited.as_secs_f64());
        }
        EventKind::PermitAcquired { waited: None }
        | EventKind::WaitStarted
        | EventKind::PermitReleased => {}
    }
}

/// Copies a breaker's counters and state into `kompoz_breaker_calls_total{name, outcome}`
/// and `kompoz_breaker_state{name}`.
///
/// ```
/// use kompoz::breaker::CircuitBreaker;
/// use kompoz::events::metrics::record_breaker_stats;
///
/// let breaker = CircuitBreaker::builder().build()?;
/// breaker.try_acquire()?.success();
/// // Without a recorder installed this does nothing; with one, the counters equal the stats.
/// record_breaker_stats("payments", &breaker.stats());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn record_breaker_stats(name: &str, stats: &BreakerStats) {
    let outcomes: [(&'static str, u64); 4] = [
        ("success", stats.success_count),
        ("failure", stats.total_failures),
        ("rejected", stats.rejected_calls),
        ("abandoned", stats.abandoned_calls),
    ];
    for (outcome, count) in outcomes {
        counter(name, Slot::Calls(outcome)).absolute(count);
    }
    gauge(name, Slot::BreakerState).set(f64::from(state_index(stats.state)));
}

/// Copies a concurrency limit's counters into `kompoz_limit_permits`,
/// `kompoz_limit_permits_in_use`, `kompoz_limit_waiters`, `kompoz_limit_acquired_total`
/// and `kompoz_limit_rejected_total`, labelled `name`.
///
/// ```
/// use kompoz::events::metrics::record_limit_stats;
/// use kompoz::limit::Semaphore;
///
/// let pool = Semaphore::new(4)?;
/// let _permit = pool.try_acquire()?;
/// record_limit_stats("db_pool", &pool.stats());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn record_limit_stats(name: &str, stats: &SemaphoreStats) {
    gauge(name, Slot::Permits).set(stats.capacity as f64);
    gauge(name, Slot::PermitsInUse).set(stats.in_flight as f64);
    gauge(name, Slot::Waiters).set(stats.waiting as f64);
    counter(name, Slot::Acquired).absolute(stats.total_acquired);
    counter(name, Slot::LimitRejected).absolute(stats.total_rejected);
}

/// Forgets every registered handle, so that the next report registers them again with
/// the recorder installed now (for tests that install one recorder after another).
pub fn forget_handles() {
    let drained: Vec<_> = {
        let mut handles = HANDLES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        core::mem::take(&mut *handles).into_iter().collect()
    };
    // The handles are dropped here, outside the lock: dropping one is recorder code.
    drop(drained);
}

/// For the unit tests: the handle cache holds `name`'s slots.
#[cfg(test)]
pub(super) fn cached(name: &str) -> usize {
    HANDLES.read().map(|handles| handles.get(name).map_or(0, BTreeMap::len)).unwrap_or(0)
}
