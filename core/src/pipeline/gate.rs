//! The future of a layer that admits a call before running it: a concurrency limit
//! (admission: a permit, held while the call runs) or a rate limit (admission: a cell,
//! nothing held).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::combinator::Rejection;
use crate::error::Error;
use crate::retry::end_variant;

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

/// Where a gated call stands. (A plain tag byte: one compare per variant.)
#[repr(u8)]
enum Phase<A, Fut> {
    /// Being admitted (the admission is made with the future; it does nothing until
    /// polled).
    Admitting(A),
    /// Admitted: the rest of the stack runs while `Gated::held` holds what admission
    /// gave. Once it finished, `held` is empty and the finished call is kept until the
    /// future is dropped (dropping it sooner would cost a call to its drop glue for
    /// nothing).
    Running(Fut),
    /// Rejected.
    Done,
}

/// Admits, then makes and runs the rest of the stack, holding what admission gave until
/// it finishes. Nothing inside is made before admission, and if the call is cancelled,
/// the inside is dropped before what it held.
pub(crate) struct Gated<A: Future<Output: Admission>, Run, Fut> {
    /// Structurally pinned: the admission, then the call. Declared before `held`, so that
    /// a cancelled call is dropped before its permit.
    phase: Phase<A, Fut>,
    held: Option<<A::Output as Admission>::Held>,
    /// Makes the rest of the stack.
    run: Run,
}

impl<A: Future<Output: Admission>, Run, Fut> Gated<A, Run, Fut> {
    /// Admits with `admit`, then runs what `run` makes.
    #[inline(always)]
    pub(crate) fn new(admit: A, run: Run) -> Self {
        Gated { phase: Phase::Admitting(admit), held: None, run }
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
        // SAFETY: `phase` is structurally pinned and nothing else is: it is never moved out
        // of `self` (its variants end in place, through `end_variant`), `Gated` has no
        // `Drop` impl, and it is `Unpin` only when the admission and the call are (the
        // auto trait).
        let this = unsafe { self.get_unchecked_mut() };
        let phase: *mut Phase<A, Fut> = &mut this.phase;
        // SAFETY: `phase` points to the pinned phase, borrowed uniquely through `this`; the
        // field of its current variant is never moved out.
        if let Phase::Admitting(admit) = unsafe { &mut *phase } {
            let admit: *mut A = admit;
            // SAFETY: the admission lives in the pinned phase and is not moved.
            let decision = core::task::ready!(unsafe { Pin::new_unchecked(&mut *admit) }.poll(cx));
            match decision.admitted() {
                Ok(held) => {
                    this.held = Some(held);
                    let call = (this.run)();
                    // SAFETY: `admit` is derived from `phase` and is the `Admitting`
                    // variant's only field.
                    unsafe { end_variant(phase, admit, Phase::Running(call)) };
                }
                Err(rejection) => {
                    // SAFETY: as above.
                    unsafe { end_variant(phase, admit, Phase::Done) };
                    return Poll::Ready(Err(Error::Rejected(rejection)));
                }
            }
        }
        // SAFETY: as above; the admission's borrow ended with its variant.
        if let Phase::Running(call) = unsafe { &mut *phase } {
            if this.held.is_some() {
                // SAFETY: the call lives in the pinned phase and is not moved.
                let output = core::task::ready!(unsafe { Pin::new_unchecked(call) }.poll(cx));
                this.held = None;
                return Poll::Ready(output);
            }
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
