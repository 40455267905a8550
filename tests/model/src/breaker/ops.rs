//! The operations a sequence is made of. They derive [`Arbitrary`], so a fuzzer's bytes
//! decode straight into a [`Scenario`]; the proptest driver builds the same values.

use std::time::Duration;

use arbitrary::Arbitrary;
use kompoz::breaker::Verdict;

/// A whole run: the breaker's configuration (raw, normalised by [`Scenario::config`] into
/// small values so that every state is reached), then the operations.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Scenario {
    /// `failure_threshold`, taken modulo 3, plus 1.
    pub failure_threshold: u8,
    /// `half_open_max_calls`, taken modulo 3, plus 1.
    pub half_open_max_calls: u8,
    /// `success_threshold`, taken modulo 3, plus 1; `None` leaves the builder's default
    /// (`half_open_max_calls`).
    pub success_threshold: Option<u8>,
    /// `recovery_timeout` in milliseconds, taken modulo 51.
    pub recovery_millis: u8,
    /// `half_open_max_wait` in milliseconds, taken modulo 100, plus 1.
    pub max_wait_millis: u8,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Scenario {
    /// The breaker's configuration.
    pub fn config(&self) -> Config {
        Config {
            failure_threshold: u32::from(self.failure_threshold % 3) + 1,
            half_open_max_calls: u32::from(self.half_open_max_calls % 3) + 1,
            success_threshold: self.success_threshold.map(|n| u32::from(n % 3) + 1),
            recovery_timeout: Duration::from_millis(u64::from(self.recovery_millis % 51)),
            half_open_max_wait: Duration::from_millis(u64::from(self.max_wait_millis % 100) + 1),
        }
    }
}

/// A breaker's configuration, as given to `BreakerBuilder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Consecutive failures that open a closed circuit.
    pub failure_threshold: u32,
    /// Probes in flight at once.
    pub half_open_max_calls: u32,
    /// Successful probes that close a half-open circuit (`None`: the builder's default).
    pub success_threshold: Option<u32>,
    /// How long the circuit stays open.
    pub recovery_timeout: Duration,
    /// How long a probe may hold its slot.
    pub half_open_max_wait: Duration,
}

/// One operation on the breaker, the guards and calls it admitted, or the manual clock.
///
/// Operations that pick a guard or a call take their index modulo the number that exist,
/// and do nothing when there are none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// `try_acquire()`; an admitted call's guard is kept.
    TryAcquire,
    /// Ends a kept guard.
    Finish {
        /// Which guard.
        guard: u8,
        /// How.
        how: Finish,
    },
    /// `call(inner)` (or `call_with(classifier, inner)`), polled once; if the inner future
    /// is pending the call is kept.
    Call {
        /// `None`: `call`, errors are failures. `Some`: `call_with` this classifier.
        classify: Option<Classifier>,
        /// The inner future's result if it is ready at once; `None`: it is pending.
        ready: Option<Result<u8, u8>>,
    },
    /// Completes a kept call's inner future with `result`, then polls the call.
    Complete {
        /// Which call.
        call: u8,
        /// The inner future's result.
        result: Result<u8, u8>,
    },
    /// Polls a kept call again without completing its inner future.
    Poll {
        /// Which call.
        call: u8,
    },
    /// Drops a kept call while its inner future is still running (a cancelled call).
    DropCall {
        /// Which call.
        call: u8,
    },
    /// Makes a call future and drops it without polling it: it never asks to be let in.
    DropUnpolled,
    /// `reset()`.
    Reset,
    /// `force_open()`.
    ForceOpen,
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

/// How [`Op::Finish`] ends a guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Finish {
    /// `guard.success()`.
    Success,
    /// `guard.failure()`.
    Failure,
    /// `guard.record(verdict)`.
    Record(Judged),
    /// `drop(guard)`: no verdict.
    Drop,
    /// `mem::forget(guard)`: the call never ends (a hung or leaked probe).
    Forget,
}

/// A [`Verdict`], decodable by a fuzzer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Judged {
    /// [`Verdict::Success`].
    Success,
    /// [`Verdict::Failure`].
    Failure,
    /// [`Verdict::Ignore`].
    Ignore,
}

impl From<Judged> for Verdict {
    fn from(judged: Judged) -> Verdict {
        match judged {
            Judged::Success => Verdict::Success,
            Judged::Failure => Verdict::Failure,
            Judged::Ignore => Verdict::Ignore,
        }
    }
}

/// The classifier of a `call_with`: a verdict for any `Ok`, another for any `Err`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub struct Classifier {
    /// The verdict on `Ok(_)`.
    pub ok: Judged,
    /// The verdict on `Err(_)`.
    pub err: Judged,
}

impl Classifier {
    /// The verdict on `result`.
    pub fn verdict<T, E>(self, result: &Result<T, E>) -> Verdict {
        match result {
            Ok(_) => self.ok.into(),
            Err(_) => self.err.into(),
        }
    }
}
