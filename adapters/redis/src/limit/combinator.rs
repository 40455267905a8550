//! [`fleet_limited`]: a fleet-wide limit around any combinator.

use std::fmt;

use kompoz::{AsyncCombinator, Outcome, Rejection};

use super::FleetLimit;

/// Runs `rule` under the fleet-wide `limit`: kompoz's `limited(rule, ...)`, with the
/// permits shared by every process of the fleet. A run that gets no permit (its maximum
/// wait passed, or Redis is unreachable and the limit fails closed) is not run and ends
/// with [`Outcome::Rejected`]`(`[`Rejection::Limit`]`(..))`, told apart from a failure.
///
/// ```no_run
/// use kompoz::{AsyncCombinator, async_rule};
/// use kompoz_redis::Fleet;
/// use kompoz_redis::limit::fleet_limited;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let check = async_rule(async |id: &mut u32| *id > 0);
/// let limited = fleet_limited(check, fleet.limit("checks", 4).build()?);
/// assert_eq!(limited.run_owned(7).await, (true, 7));
/// # Ok(()) }
/// ```
pub fn fleet_limited<R>(rule: R, limit: FleetLimit) -> FleetLimited<R> {
    FleetLimited { rule, limit }
}

/// A combinator under a fleet-wide limit, made by [`fleet_limited`].
#[derive(Clone)]
pub struct FleetLimited<R> {
    rule: R,
    limit: FleetLimit,
}

impl<R> FleetLimited<R> {
    /// The limit.
    pub fn limit(&self) -> &FleetLimit {
        &self.limit
    }

    /// The wrapped rule.
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx: ?Sized, R: AsyncCombinator<Ctx>> AsyncCombinator<Ctx> for FleetLimited<R> {
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        match self.limit.acquire().await {
            Ok(_permit) => self.rule.run_detailed(ctx).await,
            Err(error) => Outcome::Rejected(Rejection::Limit(error.into())),
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for FleetLimited<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLimited")
            .field("rule", &self.rule)
            .field("limit", &self.limit)
            .finish()
    }
}
