//! [`fleet_rate_limited`]: a fleet-wide rate limit around any combinator.

use std::fmt;
use std::time::Duration;

use kompoz::{AsyncCombinator, Clock, Outcome};

use super::FleetRateLimiter;

/// How a [`FleetThrottled`] combinator gets its cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    /// As long as it takes.
    Wait,
    /// At most this long.
    MaxWait(Duration),
    /// Now or never.
    Reject,
}

impl Mode {
    /// Asks `limiter` for one cell as the mode says.
    pub(crate) async fn admit<C: Clock>(
        self,
        limiter: &FleetRateLimiter<C>,
    ) -> Result<(), super::RateError> {
        match self {
            Mode::Wait => limiter.wait(None).await,
            Mode::MaxWait(max_wait) => limiter.wait(Some(max_wait)).await,
            Mode::Reject => limiter.check().await,
        }
    }
}

/// Starts runs of `rule` at the rate of the fleet-wide `limiter`: kompoz's
/// `rate_limited_on(rule, ...)`, with the quota shared by every process of the fleet.
/// Each run takes one cell, waiting for it (sleeping the wait Redis reports) unless told
/// otherwise with [`FleetThrottled::reject`] or [`FleetThrottled::max_wait`]. A run that is
/// refused is not run and ends with
/// [`Outcome::Rejected`]`(`[`Rejection::Rate`](kompoz::Rejection::Rate)`(..))`, carrying
/// when to retry.
///
/// ```no_run
/// use kompoz::rate::Quota;
/// use kompoz::{AsyncCombinator, async_rule};
/// use kompoz_redis::Fleet;
/// use kompoz_redis::rate::fleet_rate_limited;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let call_partner = async_rule(async |id: &mut u32| *id > 0);
/// let limiter = fleet.rate_limit("partner", Quota::per_second(50)?).build()?;
/// let polite = fleet_rate_limited(call_partner, limiter).reject();
/// assert_eq!(polite.run_owned(7).await, (true, 7));
/// # Ok(()) }
/// ```
pub fn fleet_rate_limited<R, C: Clock>(
    rule: R,
    limiter: FleetRateLimiter<C>,
) -> FleetThrottled<R, C> {
    FleetThrottled { rule, limiter, mode: Mode::Wait }
}

/// A combinator under a fleet-wide rate limit, made by [`fleet_rate_limited`].
pub struct FleetThrottled<R, C: Clock> {
    rule: R,
    limiter: FleetRateLimiter<C>,
    mode: Mode,
}

impl<R, C: Clock> FleetThrottled<R, C> {
    /// Refuses a run at once when its cell does not conform now, instead of waiting.
    pub fn reject(self) -> Self {
        FleetThrottled { mode: Mode::Reject, ..self }
    }

    /// Waits at most `max_wait` for the cell; a run that could not have it by then is
    /// refused (at once, when Redis's wait already says so).
    pub fn max_wait(self, max_wait: Duration) -> Self {
        FleetThrottled { mode: Mode::MaxWait(max_wait), ..self }
    }

    /// The limiter.
    pub fn limiter(&self) -> &FleetRateLimiter<C> {
        &self.limiter
    }

    /// The wrapped rule.
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<R: Clone, C: Clock> Clone for FleetThrottled<R, C> {
    fn clone(&self) -> Self {
        FleetThrottled { rule: self.rule.clone(), limiter: self.limiter.clone(), mode: self.mode }
    }
}

impl<Ctx: ?Sized, R: AsyncCombinator<Ctx>, C: Clock> AsyncCombinator<Ctx> for FleetThrottled<R, C> {
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        match self.mode.admit(&self.limiter).await {
            Ok(()) => self.rule.run_detailed(ctx).await,
            Err(error) => Outcome::Rejected(self.limiter.rejection(error)),
        }
    }
}

impl<R: fmt::Debug, C: Clock> fmt::Debug for FleetThrottled<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetThrottled")
            .field("rule", &self.rule)
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .finish()
    }
}
