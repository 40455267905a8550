//! [`SharedGuard`]: permission to make one call through a [`SharedBreaker`](super::SharedBreaker).

use std::fmt;

use kompoz::Clock;
use kompoz::breaker::{BreakerGuard, Verdict};

use super::{BreakerShared, OtherPass};

/// How a call was let through. The closed path's pass is the local breaker's own guard,
/// and the other passes fit beside its fields, so that a guard is three words and moves
/// through the admission future in a few plain copies.
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
    /// First, and with more spare values than any other field: the tags of the
    /// admission's `Result` and `Poll` go here, and the error beside it, so that moving
    /// a guard through the admission future moves whole words.
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
    pub fn record(mut self, verdict: Verdict) {
        match self.pass.take() {
            // The closed path's success: the local breaker's alone, and nothing left
            // for the guard's drop to do.
            Some(Pass::Local(guard)) if verdict == Verdict::Success => {
                std::mem::forget(self);
                guard.success();
            }
            pass => self.settle(pass, verdict),
        }
    }

    /// Whether this call is a half-open probe (fleet-wide, or local while Redis is
    /// unreachable).
    pub fn is_probe(&self) -> bool {
        matches!(self.pass, Some(Pass::Probe(_) | Pass::LocalProbe))
    }

    #[inline(never)]
    fn settle(&mut self, pass: Option<Pass<'a, C>>, verdict: Verdict) {
        let (breaker, generation) = (self.breaker, self.generation);
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
}

impl<C: Clock + Send + Sync> Drop for SharedGuard<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if let Some(pass) = self.pass.take() {
            self.settle(Some(pass), Verdict::Ignore);
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
