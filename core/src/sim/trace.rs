//! What a simulation did, step by step: [`SimEvent`]s, and a fingerprint of them all.

use core::fmt;

use super::TaskId;
use crate::time::Instant;

/// One step of a [`Sim`](super::Sim), as recorded by
/// [`Sim::record_events`](super::Sim::record_events).
///
/// Two runs with the same seed and the same inputs record the same events: that is the
/// simulation's promise of determinism, and the way to check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimEvent {
    /// A task was spawned.
    Spawned {
        /// The new task.
        task: TaskId,
        /// The simulated time.
        at: Instant,
    },
    /// A task was polled.
    Polled {
        /// The task.
        task: TaskId,
        /// The simulated time.
        at: Instant,
        /// Whether the poll finished the task.
        finished: bool,
    },
    /// A task was cancelled: its future dropped before it finished.
    Cancelled {
        /// The task.
        task: TaskId,
        /// The simulated time.
        at: Instant,
    },
    /// Every task was waiting, so time jumped to the earliest timer.
    TimeJumped {
        /// The time before the jump.
        from: Instant,
        /// The time after: the earliest timer's deadline.
        to: Instant,
    },
}

impl SimEvent {
    /// The event as three words, for the fingerprint.
    fn words(self) -> [u64; 3] {
        match self {
            SimEvent::Spawned { task, at } => [1, task.0, at.as_nanos()],
            SimEvent::Polled { task, at, finished } => {
                [2 | u64::from(finished) << 8, task.0, at.as_nanos()]
            }
            SimEvent::Cancelled { task, at } => [3, task.0, at.as_nanos()],
            SimEvent::TimeJumped { from, to } => [4, from.as_nanos(), to.as_nanos()],
        }
    }
}

impl fmt::Display for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::Spawned { task, at } => write!(f, "{at:?}: {task} spawned"),
            SimEvent::Polled { task, at, finished: true } => {
                write!(f, "{at:?}: {task} polled, finished")
            }
            SimEvent::Polled { task, at, finished: false } => write!(f, "{at:?}: {task} polled"),
            SimEvent::Cancelled { task, at } => write!(f, "{at:?}: {task} cancelled"),
            SimEvent::TimeJumped { from, to } => write!(f, "time jumped from {from:?} to {to:?}"),
        }
    }
}

/// A running FNV-1a hash of every event: equal for equal runs, and almost surely
/// different for different ones, at the cost of a few multiplications per event (so it
/// is always on, unlike the event log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint(u64);

impl Fingerprint {
    pub(super) const fn new() -> Fingerprint {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }

    pub(super) fn add(&mut self, event: SimEvent) {
        for word in event.words() {
            for byte in word.to_le_bytes() {
                self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }

    pub(super) const fn get(self) -> u64 {
        self.0
    }
}
