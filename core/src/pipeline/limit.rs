//! The concurrency limit's layer: a permit held while everything inside it runs.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::stack::{GuardedCall, Layer, Layers};
use crate::combinator::Rejection;
use crate::error::Error;
use crate::limit::{AcquireError, Permit, Semaphore};
use crate::retry::end_variant;
use crate::time::Sleep;

/// A concurrency limit: made by [`Pipeline::limit`](super::Pipeline::limit). Holds a
/// semaphore (owned, borrowed or in an `Arc`). `W` is how long a call waits for its
/// permit: `()`, as long as it takes, or a `Duration` set by
/// [`max_wait`](super::Pipeline::max_wait). (Two types rather than an `Option`, so that
/// a limit without a `max_wait` carries no timer in its calls' futures.)
#[derive(Clone, Copy)]
pub struct LimitLayer<L, W = ()> {
    pub(crate) semaphore: L,
    pub(crate) max_wait: W,
}

impl<T, E, S: Sleep, L: Borrow<Semaphore>> Layer<T, E, S> for LimitLayer<L> {
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
        Limited::new(self.semaphore.borrow().acquire(), move || rest.run(call))
    }
}

impl<T, E, S: Sleep, L: Borrow<Semaphore>> Layer<T, E, S> for LimitLayer<L, Duration> {
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
        let acquire = self.semaphore.borrow().acquire_with_max_wait(call.timer(), self.max_wait);
        Limited::new(acquire, move || rest.run(call))
    }
}

impl<L: Borrow<Semaphore>, W: fmt::Debug> fmt::Debug for LimitLayer<L, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitLayer")
            .field("semaphore", self.semaphore.borrow())
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

/// Where a limited call stands. (A plain tag byte: one compare per variant.)
#[repr(u8)]
enum Phase<A, Fut> {
    /// Waiting for a permit (the wait is made with the future; it does nothing until
    /// polled).
    Acquiring(A),
    /// Granted: the rest of the stack runs while `Limited::permit` holds the permit. Once
    /// it finished, the permit is gone and the finished call is kept until the future is
    /// dropped (dropping it sooner would cost a call to its drop glue for nothing).
    Running(Fut),
    /// Rejected.
    Done,
}

/// The future of a [`LimitLayer`]: waits for a permit, then makes and runs the rest of the
/// stack while holding it. Nothing inside is made before the permit is granted, and the
/// inside is dropped before the permit is given back if the call is cancelled.
struct Limited<'a, A, Run, Fut> {
    /// Structurally pinned: the acquisition, then the call. Declared before `permit`, so
    /// that a cancelled call is dropped before its permit.
    phase: Phase<A, Fut>,
    permit: Option<Permit<'a>>,
    /// Makes the rest of the stack.
    run: Run,
}

impl<'a, A, Run, Fut> Limited<'a, A, Run, Fut> {
    #[inline(always)]
    fn new(acquire: A, run: Run) -> Self {
        Limited { phase: Phase::Acquiring(acquire), permit: None, run }
    }
}

impl<'a, T, E, A, Run, Fut> Future for Limited<'a, A, Run, Fut>
where
    A: Future<Output = Result<Permit<'a>, AcquireError>>,
    Run: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `phase` is structurally pinned and nothing else is: it is never moved out
        // of `self` (its variants end in place, through `end_variant` or `Pin::set`),
        // `Limited` has no `Drop` impl, and it is `Unpin` only when the acquisition and the
        // call are (the auto trait).
        let this = unsafe { self.get_unchecked_mut() };
        let phase: *mut Phase<A, Fut> = &mut this.phase;
        // SAFETY (each projection below): `phase` points to the pinned phase; the field of
        // its current variant is never moved out.
        if let Phase::Acquiring(acquire) = unsafe { &mut *phase } {
            let acquire: *mut A = acquire;
            // SAFETY: the acquisition lives in the pinned phase and is not moved.
            match core::task::ready!(unsafe { Pin::new_unchecked(&mut *acquire) }.poll(cx)) {
                Ok(permit) => {
                    this.permit = Some(permit);
                    let call = (this.run)();
                    // SAFETY: `acquire` is derived from `phase` and is the `Acquiring`
                    // variant's only field.
                    unsafe { end_variant(phase, acquire, Phase::Running(call)) };
                }
                Err(error) => {
                    // SAFETY: as above.
                    unsafe { end_variant(phase, acquire, Phase::Done) };
                    return Poll::Ready(Err(Error::Rejected(Rejection::Limit(error))));
                }
            }
        }
        if let Phase::Running(call) = unsafe { &mut *phase } {
            if this.permit.is_some() {
                // SAFETY: the call lives in the pinned phase and is not moved.
                let output = core::task::ready!(unsafe { Pin::new_unchecked(call) }.poll(cx));
                this.permit = None;
                return Poll::Ready(output);
            }
        }
        // Polled after it completed: it has nothing more to give.
        Poll::Pending
    }
}
