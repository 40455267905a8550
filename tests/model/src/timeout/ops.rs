//! The operations of a timeout sequence; they derive [`Arbitrary`] for the fuzzer.

use arbitrary::Arbitrary;

/// A whole run: the operations, in order (the clock starts at zero).
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Scenario {
    /// The operations.
    pub ops: Vec<Op>,
}

/// What the limited future does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Inner {
    /// Ready at once.
    Ready,
    /// Never ready.
    Never,
    /// A `ManualClock` sleep of this many milliseconds, made (so its deadline fixed) when
    /// the timeout is made.
    Sleep(u8),
    /// Ready once [`Op::Open`] opens it (it wakes the task then).
    Gate,
}

/// One operation on the timeouts or the manual clock. Operations that pick a timeout
/// take the index modulo the number that exist, and do nothing when there are none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// `timeout(&clock, limit, inner)`, or with `at`, `timeout_at(&clock, now + limit,
    /// inner)`; polled at once if `poll`.
    Start {
        /// The limit, in milliseconds.
        limit: u8,
        /// Use `timeout_at` with a deadline fixed now.
        at: bool,
        /// The limited future.
        inner: Inner,
        /// Poll it once right away.
        poll: bool,
    },
    /// Polls a timeout.
    Poll {
        /// Which timeout.
        timeout: u8,
    },
    /// Drops a timeout.
    Drop {
        /// Which timeout.
        timeout: u8,
    },
    /// Opens a timeout's gate (if its inner future is a gate).
    Open {
        /// Which timeout.
        timeout: u8,
    },
    /// `ManualClock::advance` by a few milliseconds.
    Advance {
        /// Milliseconds.
        millis: u8,
    },
    /// `ManualClock::advance(Duration::MAX)`.
    AdvanceToTheEnd,
    /// `ManualClock::set`, forwards or back.
    SetClock {
        /// Milliseconds since the epoch.
        millis: u16,
    },
}
