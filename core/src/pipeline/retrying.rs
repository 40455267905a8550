//! The layers that run the rest of the stack more than once: retry and hedging.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use super::stack::{Layer, Layers};
use crate::error::Error;
use crate::retry::{
    Budget, DefaultRetryIf, Hedge, NoBudget, NoHook, OnRetry, Progress, RetryIf, RetryPolicy,
};
use crate::time::Sleep;

/// A retry: made by [`Pipeline::retry`](super::Pipeline::retry). Each attempt runs
/// everything inside it again (a timeout inside bounds each attempt); backoffs wait on
/// the pipeline's timer.
#[derive(Clone, Copy)]
pub struct RetryLayer<W = DefaultRetryIf, O = NoHook, B = NoBudget> {
    pub(crate) policy: RetryPolicy,
    pub(crate) when: W,
    pub(crate) hook: O,
    pub(crate) budget: B,
}

impl<T, E, S, W, O, B> Layer<T, E, S> for RetryLayer<W, O, B>
where
    S: Sleep,
    W: RetryIf<Error<E>>,
    O: OnRetry<Error<E>>,
    B: Budget,
{
    #[inline]
    async fn wrap<'a, R, F, Fut>(
        &'a self,
        timer: &'a S,
        rest: &'a R,
        make: &'a F,
    ) -> Result<T, Error<E>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut progress = Progress::begin(&self.policy, timer, &self.budget);
        loop {
            let error = match rest.run(timer, make).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let wait = progress.after_failure(
                &self.policy,
                timer,
                &self.when,
                &self.hook,
                &self.budget,
                &error,
            );
            match wait {
                None => return Err(error),
                Some(Duration::ZERO) => {}
                Some(delay) => {
                    drop(error);
                    timer.sleep(delay).await;
                }
            }
        }
    }
}

impl<W, O, B> fmt::Debug for RetryLayer<W, O, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// Hedging: made by [`Pipeline::hedge`](super::Pipeline::hedge). Runs everything inside
/// it once, and again beside it when that is slow or fails, as the [`Hedge`] says.
#[derive(Clone, Copy)]
pub struct HedgeLayer<H, B = NoBudget> {
    pub(crate) hedge: H,
    pub(crate) budget: B,
}

impl<T, E, S, H, B> Layer<T, E, S> for HedgeLayer<H, B>
where
    S: Sleep,
    H: Borrow<Hedge>,
    B: Budget,
{
    fn wrap<'a, R, F, Fut>(
        &'a self,
        timer: &'a S,
        rest: &'a R,
        make: &'a F,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        crate::retry::hedge::hedged(self.hedge.borrow(), timer, &self.budget, move || {
            rest.run(timer, make)
        })
    }
}

impl<H: Borrow<Hedge>, B> fmt::Debug for HedgeLayer<H, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer").field("hedge", self.hedge.borrow()).finish_non_exhaustive()
    }
}
