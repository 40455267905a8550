//! The operations a sequence is made of. They derive [`Arbitrary`], so a fuzzer's bytes
//! decode straight into a [`Scenario`]; the proptest driver builds the same values.

use std::time::Duration;

use arbitrary::Arbitrary;

/// A whole run: the semaphore's initial permits, then the operations.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Scenario {
    /// Initial permits, taken modulo 4 so that tasks actually compete.
    pub permits: u8,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Scenario {
    /// The semaphore's initial number of permits.
    pub fn initial_permits(&self) -> usize {
        usize::from(self.permits % 4)
    }
}

/// One operation on the semaphore, its waiters, its permits, or the manual clock.
///
/// Operations that pick a waiter or a permit take their index modulo the number that
/// exist, and do nothing when there are none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// `acquire()` (or `acquire_owned()` on an `Arc`), polled once; if pending it stays
    /// as a waiter.
    Acquire {
        /// Use the owned variant.
        owned: bool,
    },
    /// `acquire_with_max_wait(&clock, limit)`, polled once; if pending it stays as a
    /// waiter.
    AcquireWithMaxWait {
        /// The maximum wait.
        limit: WaitLimit,
    },
    /// `try_acquire()` (or `try_acquire_owned()`).
    TryAcquire {
        /// Use the owned variant.
        owned: bool,
    },
    /// Polls a waiter again.
    Poll {
        /// Which waiter.
        waiter: u8,
    },
    /// Polls a waiter again with a new waker, as when a task moves to another executor:
    /// the semaphore (and a maximum wait's timer) must swap the stored waker, and later
    /// wake-ups reach only the new one. Its wake-ups are counted on from the old one's.
    PollWithNewWaker {
        /// Which waiter.
        waiter: u8,
    },
    /// Drops a waiter's future, whether a permit was handed to it or not.
    DropWaiter {
        /// Which waiter.
        waiter: u8,
    },
    /// Drops a held permit.
    DropPermit {
        /// Which permit.
        permit: u8,
    },
    /// `close()`.
    Close,
    /// `add_permits(n % 4)`.
    AddPermits {
        /// How many, modulo 4.
        n: u8,
    },
    /// `add_permits(MAX_PERMITS)`: always too many once the semaphore has a permit.
    AddTooManyPermits,
    /// `ManualClock::advance` by a few milliseconds.
    Advance {
        /// Milliseconds.
        millis: u8,
    },
    /// `ManualClock::advance(Duration::MAX)`: the clock saturates at the end of time.
    AdvanceToTheEnd,
    /// `ManualClock::set`, to any instant from 0 to 65.535 s: forwards, or back.
    SetClock {
        /// Milliseconds since the clock's epoch.
        millis: u16,
    },
}

/// The maximum wait of [`Op::AcquireWithMaxWait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum WaitLimit {
    /// Some milliseconds (zero included: take a permit only if one is free now).
    Millis(u8),
    /// `Duration::MAX`: never expires (unless the clock reaches the end of time).
    Forever,
}

impl WaitLimit {
    /// As a duration.
    pub fn duration(self) -> Duration {
        match self {
            WaitLimit::Millis(ms) => Duration::from_millis(u64::from(ms)),
            WaitLimit::Forever => Duration::MAX,
        }
    }
}
