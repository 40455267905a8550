//! The operations a sequence is made of. They derive [`Arbitrary`], so a fuzzer's bytes
//! decode straight into a [`Scenario`]; the proptest driver builds the same values.

use arbitrary::Arbitrary;

/// A whole run: the quota (raw, normalised by [`Scenario::config`] into small values so
/// that bursts run out and waits are short), then the operations.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Scenario {
    /// The interval in milliseconds, taken modulo 20, plus 1.
    pub interval_millis: u8,
    /// The burst, taken modulo 4, plus 1.
    pub burst: u8,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Scenario {
    /// The quota's parameters.
    pub fn config(&self) -> Config {
        Config {
            interval_nanos: (u64::from(self.interval_millis % 20) + 1) * 1_000_000,
            burst: u32::from(self.burst % 4) + 1,
        }
    }
}

/// A quota: one cell every `interval_nanos`, `burst` at once. The keyed limiter of a run
/// has the same quota and tracks at most [`MAX_KEYS`] keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Nanoseconds per cell.
    pub interval_nanos: u64,
    /// Cells at once.
    pub burst: u32,
}

/// The keyed limiter's maximum of keys (keys are taken modulo one more, so it fills up).
pub const MAX_KEYS: usize = 3;

/// One operation on the limiters, a waiting task, or the manual clock.
///
/// Operations that pick a waiting task take its index modulo the number waiting, and do
/// nothing when there are none. Cell counts are taken modulo `burst + 2`, so that zero
/// and one more than the burst come up too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// `check()`.
    Check,
    /// `check_n(cells)`.
    CheckN {
        /// Cells (see above).
        cells: u8,
    },
    /// A new waiting task, polled once: `until_ready()` / `until_n_ready(cells)`, or with
    /// a maximum wait `until_ready_within` / `until_n_ready_within`.
    Wait {
        /// Cells (see above); `None`: `until_ready()`'s one cell.
        cells: Option<u8>,
        /// The maximum wait in milliseconds, if any.
        max_wait_millis: Option<u8>,
    },
    /// Polls a waiting task.
    Poll {
        /// Which task.
        waiter: u8,
    },
    /// Drops a waiting task (cancellation).
    Cancel {
        /// Which task.
        waiter: u8,
    },
    /// `reset()`.
    Reset,
    /// The keyed limiter's `check_n(key, cells)`.
    KeyedCheck {
        /// The key, taken modulo `MAX_KEYS + 1`.
        key: u8,
        /// Cells (see above).
        cells: u8,
    },
    /// The keyed limiter's `retain_recent()`.
    RetainRecent,
    /// The keyed limiter's `reset()`.
    KeyedReset,
    /// `ManualClock::advance` by a few milliseconds.
    Advance {
        /// Milliseconds.
        millis: u8,
    },
    /// `ManualClock::set`, to any instant from 0 to 65.535 s: forwards, or back.
    SetClock {
        /// Milliseconds since the clock's epoch.
        millis: u16,
    },
    /// `ManualClock::advance(Duration::MAX)`: the clock saturates at the end of time.
    AdvanceToTheEnd,
}
