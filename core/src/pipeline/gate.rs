//! The future of a layer that admits a call before running it: a concurrency limit
//! (admission: a permit, held while the call runs) or a rate limit (admission: a cell,
//! nothing held).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::combinator::Rejection;
use crate::error::Error;
use crate::retry::{Slot, end_variant};

/// What a gate's admission decides: what the call holds while it runs (a permit), or
/// why it may not run.
pub(crate) trait Admission {
    /// What the admitted call holds until it finishes (dropped then).
    type Held;
    /// The decision.
    fn admitted(self) -> Result<Self::Held, Rejection>;
}

/// Admitted, always: a wait that ends only in admission.
impl Admission for () {
    type Held = ();

    #[inline(always)]
    fn admitted(self) -> Result<(), Rejection> {
        Ok(())
    }
}

/// Where a gated call stands, while it is not finished. (A plain tag byte: one compare per
/// variant.)
#[repr(u8)]
enum Phase<A, Fut, H> {
    /// Being admitted (the admission is made with the future; it does nothing until
    /// polled).
    Admitting(A),
    /// Admitted: the rest of the stack runs, holding what admission gave. (The call is
    /// declared first, so that a cancelled call is dropped before what it held.)
    Running(Fut, H),
}

/// What admission with `A` gives.
type Held<A> = <<A as Future>::Output as Admission>::Held;

/// Admits, then makes and runs the rest of the stack, holding what admission gave until
/// it finishes. Nothing inside is made before admission, and if the call is cancelled,
/// the inside is dropped before what it held. Once finished (or rejected) it holds
/// nothing: the phase's slot is empty, so dropping it then costs nothing.
pub(crate) struct Gated<A: Future<Output: Admission>, Run, Fut> {
    /// Structurally pinned: the admission, then the call; empty once finished or
    /// rejected.
    phase: Slot<Phase<A, Fut, Held<A>>>,
    /// Makes the rest of the stack.
    run: Run,
}

impl<A: Future<Output: Admission>, Run, Fut> Gated<A, Run, Fut> {
    /// Admits with `admit`, then runs what `run` makes.
    #[inline(always)]
    pub(crate) fn new(admit: A, run: Run) -> Self {
        Gated { phase: Slot::new(Phase::Admitting(admit)), run }
    }
}

impl<T, E, A, Run, Fut> Future for Gated<A, Run, Fut>
where
    A: Future<Output: Admission>,
    Run: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `phase` is structurally pinned and nothing else is: its admission and its
        // call are never moved out of `self` (its variants end in place, through
        // `end_variant`, and the slot drops what is left in place; only what admission
        // gave, which is not pinned, is moved out), `Gated` has no `Drop` impl, and it is
        // `Unpin` only when the admission and the call are (the auto trait).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above; everything written through `phase` below ends a variant in
        // place.
        let phase: *mut Option<Phase<A, Fut, Held<A>>> =
            unsafe { Pin::new_unchecked(&mut this.phase).place() };
        // SAFETY: `phase` points to the pinned phase, borrowed uniquely through `this`; the
        // field of its current variant is never moved out.
        if let Some(Phase::Admitting(admit)) = unsafe { &mut *phase } {
            let admit: *mut A = admit;
            // SAFETY: the admission lives in the pinned phase and is not moved.
            let decision = core::task::ready!(unsafe { Pin::new_unchecked(&mut *admit) }.poll(cx));
            match decision.admitted() {
                Ok(held) => {
                    let call = (this.run)();
                    // SAFETY: `admit` is derived from `phase` and is the `Admitting`
                    // variant's only field.
                    unsafe { end_variant(phase, admit, Some(Phase::Running(call, held))) };
                }
                Err(rejection) => {
                    // SAFETY: as above.
                    unsafe { end_variant(phase, admit, None) };
                    return Poll::Ready(Err(Error::Rejected(rejection)));
                }
            }
        }
        // SAFETY: as above; the admission's borrow ended with its variant.
        if let Some(Phase::Running(call, held)) = unsafe { &mut *phase } {
            let call: *mut Fut = call;
            let held: *mut Held<A> = held;
            // SAFETY: the call lives in the pinned phase and is not moved.
            let output = core::task::ready!(unsafe { Pin::new_unchecked(&mut *call) }.poll(cx));
            // The call finished: drop it where it ran, then what it held.
            // SAFETY: what admission gave is not pinned; it is moved out here, once, and
            // the variant it leaves is ended at once below without dropping it again.
            let held = unsafe { core::ptr::read(held) };
            // SAFETY: `call` is derived from `phase` and, with what admission gave moved
            // out, is the only part of the `Running` variant left to drop. (If dropping it
            // panics, `held` is dropped all the same, while unwinding.)
            unsafe { end_variant(phase, call, None) };
            drop(held);
            // SAFETY: the phase is empty (just written by `end_variant`): writing `None`
            // again drops nothing. It tells the compiler, after the release of what was
            // held, that whoever drops this future next has nothing to drop.
            unsafe { core::ptr::write(phase, None) };
            return Poll::Ready(output);
        }
        // Polled after it completed: it has nothing more to give.
        Poll::Pending
    }
}

/// A layer that waits to admit a call (for a permit, for a cell) and can be told to wait
/// at most so long: what [`Pipeline::max_wait`](super::Pipeline::max_wait) configures.
///
/// ```
/// use std::time::Duration;
/// use kompoz::pipeline::MaxWait;
///
/// /// A layer of your own that waits for a lease, at most `max_wait` once told.
/// struct LeaseLayer {
///     max_wait: Option<Duration>,
/// }
///
/// impl MaxWait for LeaseLayer {
///     type Bounded = LeaseLayer;
///     fn max_wait(self, max_wait: Duration) -> LeaseLayer {
///         LeaseLayer { max_wait: Some(max_wait) }
///     }
/// }
///
/// // With it, `.layer(LeaseLayer { max_wait: None }).max_wait(..)` works on a pipeline.
/// let bounded = LeaseLayer { max_wait: None }.max_wait(Duration::from_secs(1));
/// assert_eq!(bounded.max_wait, Some(Duration::from_secs(1)));
/// ```
pub trait MaxWait {
    /// The same layer, waiting at most a given time.
    type Bounded;
    /// The same layer, waiting at most `max_wait`.
    fn max_wait(self, max_wait: Duration) -> Self::Bounded;
}

impl<L, W> MaxWait for super::LimitLayer<L, W> {
    type Bounded = super::LimitLayer<L, Duration>;

    fn max_wait(self, max_wait: Duration) -> Self::Bounded {
        super::LimitLayer { semaphore: self.semaphore, max_wait }
    }
}

impl<R, M> MaxWait for super::RateLayer<R, M> {
    type Bounded = super::RateLayer<R, Duration>;

    fn max_wait(self, max_wait: Duration) -> Self::Bounded {
        super::RateLayer { limiter: self.limiter, mode: max_wait }
    }
}
