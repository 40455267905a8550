//! The rate limit's layer: a cell of a [`RateLimiter`] taken before everything inside it
//! starts.

use core::fmt;
use core::future::{Future, Ready, ready};
use core::time::Duration;

use super::gate::{Admission, Gated};
use super::stack::{GuardedCall, Layer, Layers};
use crate::combinator::Rejection;
use crate::error::Error;
use crate::rate::{AsRateLimiter, RateLimited, RateLimiter};
use crate::time::Sleep;

/// The mode of a [`RateLayer`] that refuses a call at once when its cell does not conform
/// now (set by [`Pipeline::reject`](super::Pipeline::reject)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reject;

/// A rate limit: made by [`Pipeline::rate_limit`](super::Pipeline::rate_limit). Holds a
/// [`RateLimiter`] (owned, borrowed or in an `Arc`, so several pipelines can share one
/// quota); each call takes one cell before anything inside the layer starts.
///
/// `M` is what a call does when its cell does not conform yet: `()`, wait in line for it
/// (first come, first served, on the limiter's clock) as long as it takes; a `Duration`
/// set by [`max_wait`](super::Pipeline::max_wait), wait at most that long; or
/// [`Reject`], refuse at once. A refused call ends with
/// [`Error::Rejected`]`(`[`Rejection::Rate`]`(..))`, whose [`RateLimited`] says when the
/// cell will conform: a retry outside the layer waits exactly that long by default.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::pipeline::Pipeline;
/// use kompoz::rate::{Quota, RateLimiter};
/// use kompoz::ManualClock;
///
/// // One quota shared by two pipelines: 100 calls a minute between them.
/// let limiter = Arc::new(RateLimiter::new(Quota::per_minute(100)?, ManualClock::new()));
/// let reads = Pipeline::<u32, ()>::new().rate_limit(limiter.clone()).reject();
/// let writes = Pipeline::<u32, ()>::new().rate_limit(limiter.clone());
/// assert_eq!(futures::executor::block_on(reads.call(|| async { Ok(1) })), Ok(1));
/// assert_eq!(futures::executor::block_on(writes.call(|| async { Ok(2) })), Ok(2));
/// assert_eq!(limiter.stats().admitted, 2);
/// # Ok::<(), kompoz::rate::QuotaError>(())
/// ```
#[derive(Clone, Copy)]
pub struct RateLayer<R, M = ()> {
    pub(crate) limiter: R,
    pub(crate) mode: M,
}

impl<T, E, S, R> Layer<T, E, S> for RateLayer<R>
where
    R: AsRateLimiter,
    R::Clock: Sleep,
{
    #[inline]
    fn wrap<'a, N, F, Fut>(
        &'a self,
        rest: &'a N,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        N: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Gated::new(self.limiter.as_rate_limiter().until_ready(), move || rest.run(call))
    }
}

impl<T, E, S, R> Layer<T, E, S> for RateLayer<R, Duration>
where
    R: AsRateLimiter,
    R::Clock: Sleep,
{
    #[inline]
    fn wrap<'a, N, F, Fut>(
        &'a self,
        rest: &'a N,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        N: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let limiter = self.limiter.as_rate_limiter();
        Gated::new(limiter.until_ready_within(self.mode), move || rest.run(call))
    }
}

impl<T, E, S, R: AsRateLimiter> Layer<T, E, S> for RateLayer<R, Reject> {
    #[inline]
    fn wrap<'a, N, F, Fut>(
        &'a self,
        rest: &'a N,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        N: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Decided when the layer starts (on its caller's poll): now or never.
        let checked: Ready<Result<(), RateLimited>> = ready(self.limiter.as_rate_limiter().check());
        Gated::new(checked, move || rest.run(call))
    }
}

/// A cell, or when it will conform.
impl Admission for Result<(), RateLimited> {
    type Held = ();

    #[inline(always)]
    fn admitted(self) -> Result<(), Rejection> {
        self.map_err(Rejection::Rate)
    }
}

impl<R: AsRateLimiter, M: fmt::Debug> fmt::Debug for RateLayer<R, M>
where
    R::Clock: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limiter: &RateLimiter<R::Clock> = self.limiter.as_rate_limiter();
        f.debug_struct("RateLayer").field("limiter", limiter).field("mode", &self.mode).finish()
    }
}
