//! The circuit breaker's layer and how it counts outcomes ([`Classifier`]).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::stack::{GuardedCall, Layer, Layers};
use crate::breaker::{BreakerGuard, Verdict};
use crate::combinator::{AsBreaker, Rejection};
use crate::error::Error;
use crate::retry::Slot;

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
        Guarded {
            call: Slot::empty(),
            guard: Slot::empty(),
            fresh: true,
            layer: self,
            run: move || rest.run(call),
        }
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

/// The future of a [`BreakerLayer`]: asks the breaker for admission when first polled,
/// makes and runs the rest of the stack, then records the classifier's verdict. Dropped
/// while running (cancelled), or if the classifier panics, the guard is dropped unsettled
/// and counts nothing. Once finished (or rejected) it holds nothing, so dropping it then
/// costs nothing.
struct Guarded<'a, B: AsBreaker, K, Run, Fut> {
    /// Structurally pinned; empty until admitted and once finished. Declared before
    /// `guard`, so that a cancelled call is dropped before its guard.
    call: Slot<Fut>,
    /// The admitted call's guard: it settles the call, or gives its slot back if dropped.
    guard: Slot<BreakerGuard<'a, B::Clock>>,
    /// Not polled yet: not admitted.
    fresh: bool,
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
        // SAFETY: `call` is structurally pinned and nothing else is: its value is never
        // moved out of `self` (`Slot` drops it in place), `Guarded` has no `Drop` impl, and
        // it is `Unpin` only when the call is (the auto trait). `guard` is not pinned: the
        // guard is taken out by value (`Slot::take`; a guard is `Unpin`).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let mut call = unsafe { Pin::new_unchecked(&mut this.call) };
        if this.fresh {
            this.fresh = false;
            match this.layer.breaker.as_breaker().try_acquire() {
                Ok(guard) => {
                    // SAFETY: both slots are empty until admission (made so, and only
                    // filled here, once): writing over them drops nothing.
                    unsafe {
                        core::ptr::write(&mut this.guard, Slot::new(guard));
                        core::ptr::write(
                            call.as_mut().get_unchecked_mut(),
                            Slot::new((this.run)()),
                        );
                    }
                }
                Err(open) => {
                    return Poll::Ready(Err(Error::Rejected(Rejection::Circuit(open))));
                }
            }
        }
        // The call, dropped where it ran as soon as it finishes, before settling.
        let outcome = match call.as_mut().poll_once(|running| running.poll(cx)) {
            Some(polled) => core::task::ready!(polled),
            // Polled after it completed (or was rejected): it has nothing more to give.
            None => return Poll::Pending,
        };
        if this.guard.is_some() {
            // If the classifier panics, the guard is dropped unsettled (with the future),
            // and counts nothing.
            let verdict = this.layer.classify.classify(&outcome);
            if let Some(guard) = this.guard.take() {
                guard.record(verdict);
            }
        }
        // SAFETY: both slots are empty (the call dropped by `poll_once`, the guard taken or
        // never given, just above): writing them empty again drops nothing. It tells the compiler, after
        // the breaker's bookkeeping, that whoever drops this future next has nothing to
        // drop.
        unsafe {
            core::ptr::write(&mut this.guard, Slot::empty());
            core::ptr::write(call.as_mut().get_unchecked_mut(), Slot::empty());
        }
        Poll::Ready(outcome)
    }
}
