//! The circuit breaker's layer and how it counts outcomes ([`Classifier`]).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::stack::{GuardedCall, Layer, Layers};
use crate::breaker::{BreakerGuard, Verdict};
use crate::combinator::{AsBreaker, Rejection};
use crate::error::Error;
use crate::retry::fill;
use crate::time::Clock;

/// How a pipeline's breaker counts an outcome: any `Fn(&Result<T, Error<E>>) -> Verdict`,
/// or [`DefaultClassifier`].
pub trait Classifier<T, E> {
    /// The verdict on `outcome`.
    fn classify(&self, outcome: &Result<T, Error<E>>) -> Verdict;
}

impl<T, E, K: Fn(&Result<T, Error<E>>) -> Verdict> Classifier<T, E> for K {
    #[inline]
    fn classify(&self, outcome: &Result<T, Error<E>>) -> Verdict {
        self(outcome)
    }
}

/// The breaker layer's default: a value is a success; the call's own error or a time
/// limit is a failure; a rejection by a guard inside the breaker (a concurrency limit)
/// counts as neither, since it says nothing of the dependency's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DefaultClassifier;

impl<T, E> Classifier<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, outcome: &Result<T, Error<E>>) -> Verdict {
        match outcome {
            Ok(_) => Verdict::Success,
            Err(Error::Rejected(_)) => Verdict::Ignore,
            Err(_) => Verdict::Failure,
        }
    }
}

/// A circuit breaker: made by [`Pipeline::breaker`](super::Pipeline::breaker). Holds the
/// breaker (owned, borrowed or in an `Arc`, so one breaker can guard several pipelines)
/// and its [`Classifier`].
#[derive(Clone, Copy)]
pub struct BreakerLayer<B, K = DefaultClassifier> {
    pub(crate) breaker: B,
    pub(crate) classify: K,
}

impl<T, E, S, B, K> Layer<T, E, S> for BreakerLayer<B, K>
where
    B: AsBreaker,
    K: Classifier<T, E>,
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
        Guarded { call: None, stage: Stage::Fresh, layer: self, run: move || rest.run(call) }
    }
}

impl<B: AsBreaker, K> fmt::Debug for BreakerLayer<B, K>
where
    B::Clock: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", self.breaker.as_breaker())
            .finish_non_exhaustive()
    }
}

/// Where a guarded call stands.
enum Stage<'a, C: Clock> {
    /// Not polled yet: not admitted.
    Fresh,
    /// Admitted: the guard settles the call, or gives its slot back if dropped.
    Admitted(BreakerGuard<'a, C>),
    /// Finished (the finished call is kept in `Guarded::call`), or rejected.
    Done,
}

/// The future of a [`BreakerLayer`]: asks the breaker for admission when first polled,
/// makes and runs the rest of the stack, then records the classifier's verdict. Dropped
/// while running (cancelled), or if the classifier panics, the guard is dropped unsettled
/// and counts nothing.
struct Guarded<'a, B: AsBreaker, K, Run, Fut> {
    /// Structurally pinned. Declared before `stage`, so that a cancelled call is dropped
    /// before its guard.
    call: Option<Fut>,
    stage: Stage<'a, B::Clock>,
    layer: &'a BreakerLayer<B, K>,
    /// Makes the rest of the stack.
    run: Run,
}

impl<T, E, B, K, Run, Fut> Future for Guarded<'_, B, K, Run, Fut>
where
    B: AsBreaker,
    K: Classifier<T, E>,
    Run: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `call` is structurally pinned and nothing else is: it is never moved out
        // of `self` (only replaced in place with `Pin::set`), `Guarded` has no `Drop` impl,
        // and it is `Unpin` only when the call is (the auto trait).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let mut call = unsafe { Pin::new_unchecked(&mut this.call) };
        match this.stage {
            Stage::Fresh => match this.layer.breaker.as_breaker().try_acquire() {
                Ok(guard) => {
                    this.stage = Stage::Admitted(guard);
                    fill(call.as_mut(), (this.run)());
                }
                Err(open) => {
                    this.stage = Stage::Done;
                    return Poll::Ready(Err(Error::Rejected(Rejection::Circuit(open))));
                }
            },
            Stage::Admitted(_) => {}
            // Polled after it completed: it has nothing more to give.
            Stage::Done => return Poll::Pending,
        }
        let outcome = match call.as_mut().as_pin_mut() {
            Some(running) => core::task::ready!(running.poll(cx)),
            None => return Poll::Pending,
        };
        // The finished call is kept until the future is dropped: dropping it sooner would
        // cost a call to its drop glue for nothing.
        if let Stage::Admitted(guard) = core::mem::replace(&mut this.stage, Stage::Done) {
            // If the classifier panics, the guard is dropped unsettled.
            let verdict = this.layer.classify.classify(&outcome);
            guard.record(verdict);
        }
        Poll::Ready(outcome)
    }
}
