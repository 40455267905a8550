//! [`SharedGuard`]: permission to make one call through a [`SharedBreaker`](super::SharedBreaker).

use std::fmt;
use std::mem::ManuallyDrop;

use kompoz::Clock;
use kompoz::breaker::{BreakerGuard, Verdict};

use super::{BreakerShared, OtherPass};

/// How a call was let through.
enum Pass<'a, C: Clock> {
    /// An ordinary call, admitted by the local breaker while the fleet's view was closed
    /// in the guard's generation.
    Local(BreakerGuard<'a, C>),
    /// A fleet-wide probe, holding the probe lease `n` (of this process) of the guard's
    /// generation.
    Probe(u64),
    /// A probe admitted locally while Redis was unreachable (`Degradation::Local`).
    LocalProbe,
    /// Admitted without a probe lease while Redis was unreachable (`FailOpen`).
    Unguarded,
}

/// Permission to make one call, from
/// [`SharedBreaker::try_acquire`](super::SharedBreaker::try_acquire). Record the outcome
/// with [`success`](SharedGuard::success) or [`failure`](SharedGuard::failure); dropped
/// without a verdict (cancellation, panic), it gives back its probe slot and records
/// nothing. A success of an ordinary call touches only the local breaker; a failure is
/// also sent to the fleet (by a background task: recording never waits on Redis).
#[must_use = "a guard dropped at once records nothing; call success() or failure()"]
#[repr(C)]
pub struct SharedGuard<'a, C: Clock + Send + Sync> {
    /// First, and alone in its word: the error of the admission's `Result` (a byte)
    /// overlays it. Without it the error would lie over the low byte of a pointer,
    /// the compiler would carry that pointer in pieces, and a whole-word read of a word
    /// written in pieces stalls the CPU (measured: the guard face took 16 ns a call
    /// without the marker, 6 with it, for nearly the same instructions).
    marker: Marker,
    generation: u64,
    breaker: &'a BreakerShared<C>,
    /// Taken when the verdict is recorded.
    pass: Option<Pass<'a, C>>,
}

/// A byte with one valid value (see [`SharedGuard::marker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Marker {
    Guard = 0,
}

impl<'a, C: Clock + Send + Sync> SharedGuard<'a, C> {
    #[inline(always)]
    pub(crate) fn local(
        breaker: &'a BreakerShared<C>,
        guard: BreakerGuard<'a, C>,
        generation: u64,
    ) -> Self {
        SharedGuard { marker: Marker::Guard, breaker, generation, pass: Some(Pass::Local(guard)) }
    }

    pub(crate) fn probe(breaker: &'a BreakerShared<C>, n: u64, generation: u64) -> Self {
        SharedGuard { marker: Marker::Guard, breaker, generation, pass: Some(Pass::Probe(n)) }
    }

    pub(crate) fn local_probe(breaker: &'a BreakerShared<C>) -> Self {
        SharedGuard { marker: Marker::Guard, breaker, generation: 0, pass: Some(Pass::LocalProbe) }
    }

    pub(crate) fn unguarded(breaker: &'a BreakerShared<C>) -> Self {
        SharedGuard { marker: Marker::Guard, breaker, generation: 0, pass: Some(Pass::Unguarded) }
    }

    /// The call succeeded.
    #[inline(always)]
    pub fn success(self) {
        self.record(Verdict::Success);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Verdict::Failure);
    }

    /// Records `verdict` for the call.
    #[inline(always)]
    pub fn record(self, verdict: Verdict) {
        // Not dropped: the verdict replaces the drop's "no verdict", and if recording
        // panics (the local breaker's state callback), nothing records the call twice.
        // Nothing here takes the guard's address (the slow path gets its fields by
        // value), so that the guard stays in registers from admission to verdict.
        let mut this = ManuallyDrop::new(self);
        let (breaker, generation, pass) = (this.breaker, this.generation, this.pass.take());
        match pass {
            // The closed path's success: the local breaker's alone.
            Some(Pass::Local(guard)) if verdict == Verdict::Success => guard.success(),
            pass => settle(breaker, generation, pass, verdict),
        }
    }

    /// Whether this call is a half-open probe (fleet-wide, or local while Redis is
    /// unreachable).
    pub fn is_probe(&self) -> bool {
        matches!(self.pass, Some(Pass::Probe(_) | Pass::LocalProbe))
    }
}

/// Records `verdict` for a call let in by `pass` (all but a closed-path success, and the
/// drop's "no verdict"). Takes the guard's fields by value, never the guard's address.
#[inline(never)]
fn settle<C: Clock + Send + Sync>(
    breaker: &BreakerShared<C>,
    generation: u64,
    pass: Option<Pass<'_, C>>,
    verdict: Verdict,
) {
    let other = match pass {
        None => return,
        Some(Pass::Local(guard)) => {
            guard.record(verdict);
            if verdict == Verdict::Failure {
                breaker.report_failure(generation);
            }
            return;
        }
        Some(Pass::Probe(n)) => OtherPass::Probe(n),
        Some(Pass::LocalProbe) => OtherPass::LocalProbe,
        Some(Pass::Unguarded) => OtherPass::Unguarded,
    };
    breaker.settle_unguarded(other, generation, verdict);
}

impl<C: Clock + Send + Sync> Drop for SharedGuard<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if let Some(pass) = self.pass.take() {
            settle(self.breaker, self.generation, Some(pass), Verdict::Ignore);
        }
    }
}

impl<C: Clock + Send + Sync> fmt::Debug for SharedGuard<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard").field("probe", &self.is_probe()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use kompoz::breaker::CircuitOpen;

    use super::*;

    #[test]
    fn the_admissions_tags_fit_in_the_guard() {
        type Guard = SharedGuard<'static, kompoz::StdClock>;
        // The admission's `Poll<Result<..>>` needs no word of its own: its tags take
        // spare values of the guard's fields.
        assert_eq!(size_of::<Poll<Result<Guard, CircuitOpen>>>(), size_of::<Guard>());
    }
}
