//! [`OwnedSharedGuard`]: a [`SharedGuard`](super::SharedGuard) that owns its handle on the
//! breaker, for the `'static` response futures of the tower layer.

use std::fmt;
use std::sync::Arc;

use kompoz::Clock;
use kompoz::breaker::{CircuitBreaker, CircuitOpen, OwnedBreakerGuard, Verdict};
use kompoz::combinator::AsBreaker;

use super::{BreakerShared, FLAGS, GENERATION_SHIFT, OPEN, OpenDecision, OtherPass, SharedBreaker};

/// The local breaker of a shared breaker, as a handle kompoz's owned guard can keep.
/// Private: a shared breaker is never handed to kompoz's local layers as if it were a
/// local breaker.
pub(crate) struct LocalBreaker<C: Clock + Send + Sync>(Arc<BreakerShared<C>>);

impl<C: Clock + Send + Sync> Clone for LocalBreaker<C> {
    fn clone(&self) -> Self {
        LocalBreaker(Arc::clone(&self.0))
    }
}

impl<C: Clock + Send + Sync> AsBreaker for LocalBreaker<C> {
    type Clock = C;

    #[inline]
    fn as_breaker(&self) -> &CircuitBreaker<C> {
        &self.0.local
    }
}

impl<C: Clock + Send + Sync> LocalBreaker<C> {
    pub(crate) fn of(breaker: &SharedBreaker<C>) -> Self {
        LocalBreaker(Arc::clone(&breaker.shared))
    }
}

enum Pass<C: Clock + Send + Sync> {
    /// An ordinary call: the local breaker's owned guard (which holds the handle).
    Local(OwnedBreakerGuard<LocalBreaker<C>>),
    /// Anything else, with a handle of its own.
    Other(Arc<BreakerShared<C>>, OtherPass),
}

/// Permission to make one call through a shared breaker, owning its handle. Behaves as
/// a [`SharedGuard`](super::SharedGuard): a verdict recorded once, none if dropped.
pub(crate) struct OwnedSharedGuard<C: Clock + Send + Sync> {
    generation: u64,
    /// Taken when the verdict is recorded.
    pass: Option<Pass<C>>,
}

/// What admission decided without a round trip.
pub(crate) enum Admitted<C: Clock + Send + Sync> {
    /// Let in, or refused.
    Now(Result<OwnedSharedGuard<C>, CircuitOpen>),
    /// The view is open and its open period has passed: the fleet decides, with
    /// [`OwnedSharedGuard::admit_open`].
    Open,
}

impl<C: Clock + Send + Sync> OwnedSharedGuard<C> {
    /// Admission without waiting, on the shared breaker of `local`: the closed path is one
    /// load of the view and the local breaker's own admission.
    #[inline]
    pub(crate) fn admit(local: &LocalBreaker<C>) -> Admitted<C> {
        let shared = &*local.0;
        let word = shared.view.word.load(std::sync::atomic::Ordering::Acquire);
        if word & FLAGS != 0 {
            if word & OPEN != 0 {
                if shared.open_period_rejects() {
                    let open = CircuitOpen { state: kompoz::breaker::CircuitState::Open };
                    return Admitted::Now(Err(open));
                }
                return Admitted::Open;
            }
            if !shared.fleet.link.is_up() {
                let open = CircuitOpen { state: kompoz::breaker::CircuitState::Open };
                return Admitted::Now(Err(open));
            }
        }
        let generation = word >> GENERATION_SHIFT;
        Admitted::Now(
            OwnedBreakerGuard::try_acquire(local)
                .map(|guard| OwnedSharedGuard { generation, pass: Some(Pass::Local(guard)) }),
        )
    }

    /// Admission while the view is open: the fleet's decision (a round trip for a probe
    /// lease once the open period has passed).
    pub(crate) async fn admit_open(local: LocalBreaker<C>) -> Result<Self, CircuitOpen> {
        let decision = local.0.decide_open().await?;
        let (generation, other) = match decision {
            OpenDecision::Closed { generation } => {
                let guard = OwnedBreakerGuard::try_acquire(&local)?;
                return Ok(OwnedSharedGuard { generation, pass: Some(Pass::Local(guard)) });
            }
            OpenDecision::Probe { n, generation } => (generation, OtherPass::Probe(n)),
            OpenDecision::LocalProbe => (0, OtherPass::LocalProbe),
            OpenDecision::Unguarded => (0, OtherPass::Unguarded),
        };
        Ok(OwnedSharedGuard { generation, pass: Some(Pass::Other(local.0, other)) })
    }

    /// Records `verdict` for the call.
    #[inline]
    pub(crate) fn record(mut self, verdict: Verdict) {
        if let Some(pass) = self.pass.take() {
            settle(pass, self.generation, verdict);
        }
    }
}

#[inline]
fn settle<C: Clock + Send + Sync>(pass: Pass<C>, generation: u64, verdict: Verdict) {
    match pass {
        Pass::Local(guard) if verdict == Verdict::Failure => {
            let shared = Arc::clone(&guard.breaker().0);
            guard.failure();
            shared.report_failure(generation);
        }
        Pass::Local(guard) => guard.record(verdict),
        Pass::Other(shared, other) => shared.settle_unguarded(other, generation, verdict),
    }
}

impl<C: Clock + Send + Sync> Drop for OwnedSharedGuard<C> {
    fn drop(&mut self) {
        if let Some(pass) = self.pass.take() {
            settle(pass, self.generation, Verdict::Ignore);
        }
    }
}

impl<C: Clock + Send + Sync> fmt::Debug for OwnedSharedGuard<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let probe =
            matches!(self.pass, Some(Pass::Other(_, OtherPass::Probe(_) | OtherPass::LocalProbe)));
        f.debug_struct("OwnedSharedGuard").field("probe", &probe).finish_non_exhaustive()
    }
}
