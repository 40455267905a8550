//! The layers that run the rest of the stack more than once: retry and hedging.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::stack::{GuardedCall, Layer, Layers};
use crate::error::Error;
use crate::retry::{
    Attempts, Budget, DefaultRetryIf, Hedge, NoBudget, NoHook, OnRetry, RetryIf, RetryPolicy,
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
    fn wrap<'a, R, F, Fut>(
        &'a self,
        rest: &'a R,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let timer = call.timer();
        Retrying { layer: self, timer, attempt: move || rest.run(call), attempts: Attempts::new() }
    }
}

/// The future of a [`RetryLayer`]: the same engine as the plain-future
/// [`Retry`](crate::retry::Retry), borrowing the policy, predicate, hook and budget from
/// the layer, so a call copies none of them. Attempts are made when due.
struct Retrying<'a, S: Sleep, W, O, B, A, Fut> {
    layer: &'a RetryLayer<W, O, B>,
    timer: &'a S,
    /// Makes one attempt: the rest of the stack.
    attempt: A,
    /// Structurally pinned.
    attempts: Attempts<Fut, S::Timer>,
}

impl<T, E, S, W, O, B, A, Fut> Future for Retrying<'_, S, W, O, B, A, Fut>
where
    S: Sleep,
    W: RetryIf<Error<E>>,
    O: OnRetry<Error<E>>,
    B: Budget,
    A: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `attempts` is structurally pinned and nothing else is: it is never moved
        // out of `self`, `Retrying` has no `Drop` impl, and it is `Unpin` only when the
        // attempt future and the timer are (the auto trait).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let attempts = unsafe { Pin::new_unchecked(&mut this.attempts) };
        let layer = this.layer;
        let (policy, when, hook, budget) = (&layer.policy, &layer.when, &layer.hook, &layer.budget);
        attempts.poll(cx, &mut this.attempt, policy, this.timer, when, hook, budget)
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
        rest: &'a R,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        crate::retry::hedge::hedged(self.hedge.borrow(), call.timer(), &self.budget, move || {
            rest.run(call)
        })
    }
}

impl<H: Borrow<Hedge>, B> fmt::Debug for HedgeLayer<H, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer").field("hedge", self.hedge.borrow()).finish_non_exhaustive()
    }
}
