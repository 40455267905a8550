//! [`SharedGuard`]: permission to make one call through a [`SharedBreaker`](super::SharedBreaker).

use std::fmt;
use std::sync::atomic::Ordering;

use kompoz::Clock;
use kompoz::breaker::{BreakerGuard, CircuitState, Verdict};

use super::BreakerShared;
use super::reporter::Report;

enum Kind<'a, C: Clock + Send + Sync> {
    /// An ordinary call, admitted by the local breaker while the fleet's view was closed
    /// in `generation`.
    Local { guard: BreakerGuard<'a, C>, generation: u64 },
    /// A fleet-wide probe, holding the probe lease `n` (of this process) of `generation`.
    Probe { n: u64, generation: u64 },
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
pub struct SharedGuard<'a, C: Clock + Send + Sync> {
    breaker: &'a BreakerShared<C>,
    kind: Option<Kind<'a, C>>,
}

impl<'a, C: Clock + Send + Sync> SharedGuard<'a, C> {
    #[inline]
    pub(crate) fn local(
        breaker: &'a BreakerShared<C>,
        guard: BreakerGuard<'a, C>,
        generation: u64,
    ) -> Self {
        SharedGuard { breaker, kind: Some(Kind::Local { guard, generation }) }
    }

    pub(crate) fn probe(breaker: &'a BreakerShared<C>, n: u64, generation: u64) -> Self {
        SharedGuard { breaker, kind: Some(Kind::Probe { n, generation }) }
    }

    pub(crate) fn local_probe(breaker: &'a BreakerShared<C>) -> Self {
        SharedGuard { breaker, kind: Some(Kind::LocalProbe) }
    }

    pub(crate) fn unguarded(breaker: &'a BreakerShared<C>) -> Self {
        SharedGuard { breaker, kind: Some(Kind::Unguarded) }
    }

    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        match self.kind.take() {
            Some(Kind::Local { guard, .. }) => guard.success(),
            other => settle(self.breaker, other, Verdict::Success),
        }
    }

    /// The call failed.
    pub fn failure(mut self) {
        let kind = self.kind.take();
        settle(self.breaker, kind, Verdict::Failure);
    }

    /// Records `verdict` for the call.
    #[inline]
    pub fn record(self, verdict: Verdict) {
        match verdict {
            Verdict::Success => self.success(),
            other => {
                let mut this = self;
                let kind = this.kind.take();
                settle(this.breaker, kind, other);
            }
        }
    }

    /// Whether this call is a half-open probe (fleet-wide, or local while Redis is
    /// unreachable).
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, Some(Kind::Probe { .. } | Kind::LocalProbe))
    }
}

fn settle<C: Clock + Send + Sync>(
    breaker: &BreakerShared<C>,
    kind: Option<Kind<'_, C>>,
    verdict: Verdict,
) {
    match kind {
        None | Some(Kind::Unguarded) => {}
        Some(Kind::Local { guard, generation }) => {
            guard.record(verdict);
            if verdict == Verdict::Failure {
                let _ = breaker.reporter.send(Report::Failure { generation });
                // The local breaker opened by itself: tell the fleet.
                if breaker.view_is_closed() && breaker.local.state() == CircuitState::Open {
                    let _ = breaker.reporter.send(Report::Opened { generation });
                }
            }
        }
        Some(Kind::Probe { n, generation }) => {
            let _ = breaker.reporter.send(Report::Settle { n, generation, verdict });
        }
        Some(Kind::LocalProbe) => {
            breaker.local_probes.fetch_sub(1, Ordering::AcqRel);
            match verdict {
                Verdict::Success => breaker.settle_locally(true),
                Verdict::Failure => breaker.settle_locally(false),
                Verdict::Ignore => {}
            }
        }
    }
}

impl<C: Clock + Send + Sync> Drop for SharedGuard<'_, C> {
    fn drop(&mut self) {
        if let Some(kind) = self.kind.take() {
            settle(self.breaker, Some(kind), Verdict::Ignore);
        }
    }
}

impl<C: Clock + Send + Sync> fmt::Debug for SharedGuard<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard").field("probe", &self.is_probe()).finish_non_exhaustive()
    }
}
