//! [`SharedGuard`]: permission to make one call through a [`SharedBreaker`](super::SharedBreaker).

use std::fmt;
use std::sync::atomic::Ordering;

use kompoz::Clock;
use kompoz::breaker::{BreakerGuard, CircuitState, Verdict};

use super::BreakerShared;
use super::reporter::Report;

/// What a guard holds. Plain fields (no nested enums), so that moving a guard through
/// the admission future is a few plain copies on the closed path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An ordinary call, admitted by the local breaker (`local`) while the fleet's view
    /// was closed in `generation`.
    Local,
    /// A fleet-wide probe, holding the probe lease `probe` (of this process) of
    /// `generation`.
    Probe,
    /// A probe admitted locally while Redis was unreachable (`Degradation::Local`).
    LocalProbe,
    /// Admitted without a probe lease while Redis was unreachable (`FailOpen`).
    Unguarded,
    /// The verdict is recorded.
    Settled,
}

/// Permission to make one call, from
/// [`SharedBreaker::try_acquire`](super::SharedBreaker::try_acquire). Record the outcome
/// with [`success`](SharedGuard::success) or [`failure`](SharedGuard::failure); dropped
/// without a verdict (cancellation, panic), it gives back its probe slot and records
/// nothing. A success of an ordinary call touches only the local breaker; a failure is
/// also sent to the fleet (by a background task: recording never waits on Redis).
#[must_use = "a guard dropped at once records nothing; call success() or failure()"]
pub struct SharedGuard<'a, C: Clock + Send + Sync> {
    breaker: &'a BreakerShared<C>,
    local: Option<BreakerGuard<'a, C>>,
    generation: u64,
    probe: u64,
    mode: Mode,
}

impl<'a, C: Clock + Send + Sync> SharedGuard<'a, C> {
    #[inline]
    pub(crate) fn local(
        breaker: &'a BreakerShared<C>,
        guard: BreakerGuard<'a, C>,
        generation: u64,
    ) -> Self {
        SharedGuard { breaker, local: Some(guard), generation, probe: 0, mode: Mode::Local }
    }

    pub(crate) fn probe(breaker: &'a BreakerShared<C>, n: u64, generation: u64) -> Self {
        SharedGuard { breaker, local: None, generation, probe: n, mode: Mode::Probe }
    }

    pub(crate) fn local_probe(breaker: &'a BreakerShared<C>) -> Self {
        SharedGuard { breaker, local: None, generation: 0, probe: 0, mode: Mode::LocalProbe }
    }

    pub(crate) fn unguarded(breaker: &'a BreakerShared<C>) -> Self {
        SharedGuard { breaker, local: None, generation: 0, probe: 0, mode: Mode::Unguarded }
    }

    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        if let Some(guard) = self.local.take() {
            self.mode = Mode::Settled;
            guard.success();
        } else {
            self.settle(Verdict::Success);
        }
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.settle(Verdict::Failure);
    }

    /// Records `verdict` for the call.
    #[inline]
    pub fn record(mut self, verdict: Verdict) {
        match verdict {
            Verdict::Success => self.success(),
            other => self.settle(other),
        }
    }

    /// Whether this call is a half-open probe (fleet-wide, or local while Redis is
    /// unreachable).
    pub fn is_probe(&self) -> bool {
        matches!(self.mode, Mode::Probe | Mode::LocalProbe)
    }

    fn settle(&mut self, verdict: Verdict) {
        let breaker = self.breaker;
        match std::mem::replace(&mut self.mode, Mode::Settled) {
            Mode::Settled | Mode::Unguarded => {}
            Mode::Local => {
                if let Some(guard) = self.local.take() {
                    guard.record(verdict);
                }
                if verdict == Verdict::Failure {
                    let generation = self.generation;
                    let _ = breaker.reporter.send(Report::Failure { generation });
                    // The local breaker opened by itself: tell the fleet.
                    if breaker.view_is_closed() && breaker.local.state() == CircuitState::Open {
                        let _ = breaker.reporter.send(Report::Opened { generation });
                    }
                }
            }
            Mode::Probe => {
                let (n, generation) = (self.probe, self.generation);
                let _ = breaker.reporter.send(Report::Settle { n, generation, verdict });
            }
            Mode::LocalProbe => {
                breaker.local_probes.fetch_sub(1, Ordering::AcqRel);
                match verdict {
                    Verdict::Success => breaker.settle_locally(true),
                    Verdict::Failure => breaker.settle_locally(false),
                    Verdict::Ignore => {}
                }
            }
        }
    }
}

impl<C: Clock + Send + Sync> Drop for SharedGuard<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if self.mode != Mode::Settled {
            self.settle(Verdict::Ignore);
        }
    }
}

impl<C: Clock + Send + Sync> fmt::Debug for SharedGuard<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard").field("probe", &self.is_probe()).finish_non_exhaustive()
    }
}
