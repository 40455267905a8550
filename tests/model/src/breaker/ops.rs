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
    /// `recovery_timeout` (the first break) in milliseconds, taken modulo 51.
    pub recovery_millis: u8,
    /// `half_open_max_wait` in milliseconds, taken modulo 100, plus 1.
    pub max_wait_millis: u8,
    /// The trip policy: modulo 3, consecutive failures, a count window or a time window.
    pub policy: u8,
    /// The window: calls (modulo 8, plus 1) or buckets of 10 ms (modulo 8, plus 1).
    pub window: u8,
    /// `minimum_calls`, modulo the window's calls (or 6), plus 1.
    pub minimum_calls: u8,
    /// The failure threshold: modulo 4, 0.25, 0.5, 0.75 or 1.0.
    pub threshold: u8,
    /// Slow calls: slower than this many milliseconds (modulo 20, plus 1), at a ratio of
    /// 0.5.
    pub slow_millis: Option<u8>,
    /// Break durations: modulo 3, fixed, exponential up to 4 times the first, or that with
    /// jitter of up to half a break, seeded with the value.
    pub breaks: u8,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Scenario {
    /// The breaker's configuration.
    pub fn config(&self) -> Config {
        let ms = |n: u64| Duration::from_millis(n);
        let calls = u32::from(self.window % 8) + 1;
        let rate = |window: Window, minimum_cap: u32| Rate {
            window,
            minimum_calls: u32::from(self.minimum_calls) % minimum_cap + 1,
            threshold: f64::from(self.threshold % 4 + 1) / 4.0,
            slow: self.slow_millis.map(|n| (ms(u64::from(n % 20) + 1), 0.5)),
        };
        let trip = match self.policy % 3 {
            0 => Trip::Consecutive(u32::from(self.failure_threshold % 3) + 1),
            1 => Trip::Rate(rate(Window::Calls(calls), calls)),
            _ => Trip::Rate(rate(Window::Time { span: ms(10) * calls, buckets: calls }, 6)),
        };
        let first = ms(u64::from(self.recovery_millis % 51));
        let breaks = match self.breaks % 3 {
            0 => Breaks { initial: first, max: first, jitter: None },
            // Exponential breaks need a first break longer than zero.
            1 => Breaks { initial: first + ms(1), max: (first + ms(1)) * 4, jitter: None },
            _ => Breaks {
                initial: first + ms(1),
                max: (first + ms(1)) * 4,
                jitter: Some((0.5, u64::from(self.breaks))),
            },
        };
        Config {
            trip,
            half_open_max_calls: u32::from(self.half_open_max_calls % 3) + 1,
            success_threshold: self.success_threshold.map(|n| u32::from(n % 3) + 1),
            breaks,
            half_open_max_wait: ms(u64::from(self.max_wait_millis % 100) + 1),
        }
    }
}

/// A breaker's configuration, as given to `BreakerBuilder`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// What trips a closed circuit.
    pub trip: Trip,
    /// Probes in flight at once.
    pub half_open_max_calls: u32,
    /// Successful probes that close a half-open circuit (`None`: the builder's default).
    pub success_threshold: Option<u32>,
    /// How long the circuit stays open.
    pub breaks: Breaks,
    /// How long a probe may hold its slot.
    pub half_open_max_wait: Duration,
}

impl Config {
    /// kompoz's rule with `failure_threshold`, a fixed break of `recovery`, and
    /// `half_open_max_wait` of 40 ms.
    pub fn consecutive(
        failure_threshold: u32,
        half_open_max_calls: u32,
        success_threshold: Option<u32>,
        recovery: Duration,
    ) -> Config {
        Config {
            trip: Trip::Consecutive(failure_threshold),
            half_open_max_calls,
            success_threshold,
            breaks: Breaks { initial: recovery, max: recovery, jitter: None },
            half_open_max_wait: Duration::from_millis(40),
        }
    }
}

/// What trips a closed circuit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trip {
    /// `failure_threshold` consecutive failures (`BreakerBuilder::failure_threshold`).
    Consecutive(u32),
    /// A failure rate (`BreakerBuilder::trip_on(FailureRate)`).
    Rate(Rate),
}

/// A `FailureRate`, field by field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// The window.
    pub window: Window,
    /// `minimum_calls`.
    pub minimum_calls: u32,
    /// `threshold`.
    pub threshold: f64,
    /// `slow_calls(slower_than, ratio)`.
    pub slow: Option<(Duration, f64)>,
}

/// A failure-rate window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// `FailureRate::over_calls(n)`.
    Calls(u32),
    /// `FailureRate::over_time(span).buckets(buckets)`.
    Time {
        /// The span.
        span: Duration,
        /// The buckets.
        buckets: u32,
    },
}

/// A `BreakDuration`, field by field (`initial == max` and no jitter: fixed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breaks {
    /// The first break.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
    /// `jitter(ratio, seed)`.
    pub jitter: Option<(f64, u64)>,
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
    /// Moves the clock on by a few milliseconds, then ends a kept guard: a slow call.
    FinishLater {
        /// Which guard.
        guard: u8,
        /// How.
        how: Finish,
        /// Milliseconds the call takes, from now.
        millis: u8,
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
