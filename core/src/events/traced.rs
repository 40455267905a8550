//! The `tracing` feature: every event as a structured `tracing` event with target
//! `kompoz`, the primitive's kind and name as fields, at a level that says how much it
//! matters. Nothing is logged per successful call.
//!
//! | event | level |
//! | --- | --- |
//! | a breaker opens | WARN |
//! | a breaker closes or goes half-open | INFO |
//! | a rejection, a time limit that passed, a retry | DEBUG |
//! | a task queued for a permit, a permit taken after a wait | TRACE |

use tracing::{debug, info, trace, warn};

use super::{Event, EventKind, cause};
use crate::breaker::CircuitState;

/// Sends `event` to the current `tracing` subscriber.
pub(super) fn record(event: &Event<'_>) {
    let primitive = event.source.primitive.as_str();
    let name = event.source.name;
    match event.kind {
        EventKind::Transition { from, to: CircuitState::Open } => warn!(
            target: "kompoz", primitive, name, %from, to = %CircuitState::Open,
            "circuit breaker {name:?} opened"
        ),
        EventKind::Transition { from, to } => info!(
            target: "kompoz", primitive, name, %from, %to,
            "circuit breaker {name:?}: {from} -> {to}"
        ),
        EventKind::Rejected(rejection) => debug!(
            target: "kompoz", primitive, name, cause = cause(&rejection),
            "{primitive} {name:?} rejected a call: {rejection}"
        ),
        EventKind::TimedOut { after } => debug!(
            target: "kompoz", primitive, name, after_ms = after.as_millis() as u64,
            "{primitive} {name:?}: the time limit passed"
        ),
        EventKind::Retry { attempt, delay } => debug!(
            target: "kompoz", primitive, name, attempt, delay_ms = delay.as_millis() as u64,
            "{primitive} {name:?}: attempt {attempt} failed, retrying"
        ),
        EventKind::WaitStarted => {
            trace!(target: "kompoz", primitive, name, "{primitive} {name:?}: waiting for a permit")
        }
        EventKind::PermitAcquired { waited } => trace!(
            target: "kompoz", primitive, name,
            waited_us = waited.map(|waited| waited.as_micros() as u64),
            "{primitive} {name:?}: permit taken after a wait"
        ),
        EventKind::PermitReleased => {}
    }
}
