//! [`shared_circuit_breaker`]: a shared breaker around any combinator.

use std::fmt;

use kompoz::breaker::Verdict;
use kompoz::{AsyncCombinator, Clock, Outcome, Rejection};

use super::SharedBreaker;

/// Protects `rule` with the shared `breaker`: kompoz's `circuit_breaker(rule, ...)` with
/// the decisions shared by the fleet. A run that does not pass counts as a failure; while
/// the circuit is open (anywhere in the fleet, as this process sees it) runs are rejected
/// without running the rule, with [`Outcome::Rejected`]`(`[`Rejection::Circuit`]`(..))`.
///
/// ```no_run
/// use kompoz::{AsyncCombinator, async_rule};
/// use kompoz_redis::Fleet;
/// use kompoz_redis::breaker::shared_circuit_breaker;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let check = async_rule(async |id: &mut u32| *id > 0);
/// let protected = shared_circuit_breaker(check, fleet.breaker("checks").build()?);
/// assert_eq!(protected.run_owned(7).await, (true, 7));
/// # Ok(()) }
/// ```
pub fn shared_circuit_breaker<R, C: Clock + Send + Sync>(
    rule: R,
    breaker: SharedBreaker<C>,
) -> SharedProtected<R, C> {
    SharedProtected { rule, breaker }
}

/// A combinator protected by a shared breaker, made by [`shared_circuit_breaker`].
pub struct SharedProtected<R, C: Clock + Send + Sync> {
    rule: R,
    breaker: SharedBreaker<C>,
}

impl<R, C: Clock + Send + Sync> SharedProtected<R, C> {
    /// The breaker.
    pub fn breaker(&self) -> &SharedBreaker<C> {
        &self.breaker
    }

    /// The wrapped rule.
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx: ?Sized, R: AsyncCombinator<Ctx>, C: Clock + Send + Sync> AsyncCombinator<Ctx>
    for SharedProtected<R, C>
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        let guard = match self.breaker.try_acquire().await {
            Ok(guard) => guard,
            Err(open) => return Outcome::Rejected(Rejection::Circuit(open)),
        };
        let outcome = self.rule.run_detailed(ctx).await;
        guard.record(Verdict::from(outcome.passed()));
        outcome
    }
}

impl<R: fmt::Debug, C: Clock + Send + Sync> fmt::Debug for SharedProtected<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedProtected")
            .field("rule", &self.rule)
            .field("breaker", &self.breaker)
            .finish()
    }
}
