//! [`rate_limited`]: a rate limit around any combinator.

use core::fmt;
use core::time::Duration;

use super::{AsyncCombinator, Outcome, Rejection};
use crate::rate::{AsRateLimiter, RateLimiter, RateStats};
use crate::time::Sleep;

/// Starts at most `quota`'s cells of runs of `rule`, on the runtime-agnostic
/// [`StdClock`](crate::StdClock): each run takes one cell, waiting for it in line (first
/// come, first served) unless told otherwise with [`Throttled::reject`] or
/// [`Throttled::max_wait`]. A run that is refused is not run: `ok == false` with
/// [`Outcome::Rejected`]`(`[`Rejection::Rate`]`(..))`, carrying when to retry.
///
/// Adapter crates offer the same on their runtime's clock
/// (`kompoz_tokio::rate_limited`, ...); [`rate_limited_on`] takes any limiter.
///
/// ```
/// use kompoz::rate::Quota;
/// use kompoz::{AsyncCombinator, Outcome, Rejection, async_rule, rate_limited};
///
/// let call_api = async_rule(async |n: &mut u32| *n > 0);
/// let polite = rate_limited(call_api, Quota::per_minute(2)?).reject();
/// futures::executor::block_on(async {
///     assert_eq!(polite.run_owned(1).await, (true, 1));
///     assert_eq!(polite.run_owned(2).await, (true, 2));
///     // The third run in the same minute is refused, not failed.
///     assert!(matches!(polite.run_detailed(&mut 3).await, Outcome::Rejected(Rejection::Rate(_))));
/// });
/// # Ok::<(), kompoz::rate::QuotaError>(())
/// ```
#[cfg(feature = "std")]
pub fn rate_limited<R>(
    rule: R,
    quota: crate::rate::Quota,
) -> Throttled<R, RateLimiter<crate::StdClock>> {
    rate_limited_on(rule, RateLimiter::new(quota, crate::StdClock))
}

/// Limits the rate of runs of `rule` with a limiter of the caller's: owned, borrowed, in
/// an `Arc` (several rules sharing one quota), or from a
/// [`Registry`](crate::limit::Registry) by name.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::rate::{Quota, RateLimiter};
/// use kompoz::{AsyncCombinator, ManualClock, async_rule, rate_limited_on};
///
/// let shared = Arc::new(RateLimiter::new(Quota::per_second(5)?, ManualClock::new()));
/// let read = rate_limited_on(async_rule(async |_: &mut ()| true), shared.clone());
/// let write = rate_limited_on(async_rule(async |_: &mut ()| true), shared.clone());
/// futures::executor::block_on(async {
///     assert!(read.run(&mut ()).await);
///     assert!(write.run(&mut ()).await);
/// });
/// assert_eq!(shared.stats().admitted, 2);
/// # Ok::<(), kompoz::rate::QuotaError>(())
/// ```
pub fn rate_limited_on<R, L: AsRateLimiter>(rule: R, limiter: L) -> Throttled<R, L> {
    Throttled { rule, limiter, mode: Mode::Wait }
}

/// The quota named `name` in the [`default_registry`](crate::limit::default_registry),
/// on [`StdClock`](crate::StdClock): every rule limited under one name shares its cells.
/// The same name with another quota is a
/// [`QuotaError::QuotaMismatch`](crate::rate::QuotaError::QuotaMismatch) naming both.
///
/// ```
/// use kompoz::rate::{Quota, QuotaError};
/// use kompoz::{async_rule, rate_limited_named};
///
/// let rule = async_rule(async |_: &mut ()| true);
/// let a = rate_limited_named(rule, "docs.api_quota", Quota::per_second(10)?)?;
/// let b = rate_limited_named(rule, "docs.api_quota", Quota::per_second(10)?)?;
/// assert!(std::ptr::eq(a.limiter(), b.limiter()));
/// assert!(matches!(
///     rate_limited_named(rule, "docs.api_quota", Quota::per_second(20)?),
///     Err(QuotaError::QuotaMismatch { .. })
/// ));
/// # Ok::<(), QuotaError>(())
/// ```
#[cfg(all(feature = "std", not(loom)))]
pub fn rate_limited_named<R>(
    rule: R,
    name: impl Into<alloc::borrow::Cow<'static, str>>,
    quota: crate::rate::Quota,
) -> Result<Throttled<R, alloc::sync::Arc<RateLimiter<crate::StdClock>>>, crate::rate::QuotaError> {
    let limiter = crate::limit::default_registry().rate_limiter(name, quota, crate::StdClock)?;
    Ok(rate_limited_on(rule, limiter))
}

/// How a [`Throttled`] combinator gets its cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    /// In line, as long as it takes.
    Wait,
    /// In line, at most this long.
    MaxWait(Duration),
    /// Now or never.
    Reject,
}

/// A combinator with a rate limit, made by [`rate_limited`], [`rate_limited_on`] or
/// [`rate_limited_named`].
#[derive(Clone, Copy)]
pub struct Throttled<R, L> {
    rule: R,
    limiter: L,
    mode: Mode,
}

impl<R, L: AsRateLimiter> Throttled<R, L> {
    /// Refuses a run at once when its cell does not conform now, instead of waiting
    /// (a server shedding load).
    pub fn reject(self) -> Self {
        Throttled { mode: Mode::Reject, ..self }
    }

    /// Waits at most `max_wait` for the cell; a run that could not have it by then is
    /// refused (at once, when that is already certain).
    pub fn max_wait(self, max_wait: Duration) -> Self {
        Throttled { mode: Mode::MaxWait(max_wait), ..self }
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter<L::Clock> {
        self.limiter.as_rate_limiter()
    }

    /// The limiter's counters.
    pub fn stats(&self) -> RateStats {
        self.limiter().stats()
    }

    /// The wrapped rule.
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx, R, L> AsyncCombinator<Ctx> for Throttled<R, L>
where
    Ctx: ?Sized,
    R: AsyncCombinator<Ctx>,
    L: AsRateLimiter,
    L::Clock: Sleep,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        let limiter = self.limiter();
        let admitted = match self.mode {
            Mode::Wait => {
                limiter.until_ready().await;
                Ok(())
            }
            Mode::MaxWait(max_wait) => limiter.until_ready_within(max_wait).await,
            Mode::Reject => limiter.check(),
        };
        match admitted {
            Ok(()) => self.rule.run_detailed(ctx).await,
            Err(limited) => Outcome::Rejected(Rejection::Rate(limited)),
        }
    }
}

impl<R: fmt::Debug, L: AsRateLimiter> fmt::Debug for Throttled<R, L>
where
    L::Clock: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttled")
            .field("rule", &self.rule)
            .field("limiter", self.limiter())
            .field("mode", &self.mode)
            .finish()
    }
}
