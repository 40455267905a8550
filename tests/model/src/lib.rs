//! Reference models of kompoz's state machines, and one driver per model that applies the
//! same operation sequence to the model and to the real type, comparing every result.
//!
//! Each model is tiny and obviously correct: a plain struct, no atomics, no cleverness. The
//! real type runs on a [`ManualClock`](kompoz::ManualClock), with its futures polled by
//! hand under counting wakers, so every run is deterministic. After each operation the
//! driver compares the operation's result, the wake-ups every pending future received,
//! the stats, and the manual clock's registered timers; the first difference is returned
//! as a [`Divergence`] naming the step.
//!
//! Two drivers share this crate:
//!
//! * proptest sequence tests in `tests/` (plain `cargo test`), and
//! * cargo-fuzz targets in the repository's `fuzz/` crate, which decode the same
//!   operations with [`arbitrary`].
//!
//! One module per state machine, each with the same shape (`model`, `ops`, `driver`):
//! [`breaker`] (proptest and the `breaker_ops` fuzz target: the circuit breaker through
//! its guards and call futures, with the transitions reported to `on_state_change`),
//! [`rate`] (proptest and the `rate_ops` fuzz target: the direct limiter's checks and fair
//! line of waiters, and a keyed limiter with a maximum of keys, on a clock that moves both
//! ways), [`semaphore`] (proptest and the `semaphore_ops` fuzz target) and [`timeout`] (proptest
//! only: a `timeout_ops` fuzz target ran 900,000 sequences and found nothing that
//! `semaphore_ops` does not, so it was left out), and [`retry`] (proptest and the
//! `retry_ops` fuzz target: a retried call's whole schedule, through the plain-future
//! face and the pipeline).

use core::fmt;

pub mod breaker;
pub mod rate;
pub mod retry;
pub mod semaphore;
pub mod timeout;
pub mod waker;

/// The first point where the real type and the model disagreed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the operation in the sequence (`None`: the final check after the sequence).
    pub step: Option<usize>,
    /// The operation, as `Debug` text.
    pub op: String,
    /// What was compared.
    pub what: String,
    /// The real type's answer, as `Debug` text.
    pub real: String,
    /// The model's answer, as `Debug` text.
    pub model: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(step) => write!(f, "step {step} ({}): ", self.op)?,
            None => write!(f, "final check: ")?,
        }
        write!(f, "{} differs\n  real:  {}\n  model: {}", self.what, self.real, self.model)
    }
}

impl std::error::Error for Divergence {}

/// `Ok` if the real type's answer equals the model's, else the [`Divergence`] naming
/// `step`, `op` and `what` was compared.
pub(crate) fn check<T: PartialEq + fmt::Debug>(
    step: Option<usize>,
    op: &dyn fmt::Debug,
    what: &str,
    real: T,
    model: T,
) -> Result<(), Divergence> {
    if real == model {
        return Ok(());
    }
    Err(Divergence {
        step,
        op: format!("{op:?}"),
        what: what.to_owned(),
        real: format!("{real:?}"),
        model: format!("{model:?}"),
    })
}
