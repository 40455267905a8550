//! The layers that only map what passes through them: time limit and fallback.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::stack::{GuardedCall, Layer, Layers, Map};
use crate::error::Error;
use crate::retry::Slot;
use crate::time::Sleep;
use crate::timeout::Elapsed;

/// A time limit on everything inside it: made by
/// [`Pipeline::timeout`](super::Pipeline::timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeoutLayer {
    pub(crate) duration: Duration,
}

impl<T, E, S: Sleep> Layer<T, E, S> for TimeoutLayer {
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
        TimeLimited { call: Slot::new(rest.run(call)), sleep: Slot::empty(), timer, layer: self }
    }
}

/// The future of a [`TimeoutLayer`]: [`Timeout`](crate::timeout::Timeout)'s logic (poll
/// the call first, start the timer only when it is pending), answering in the flat
/// [`Error`] directly and compiled into its caller, so that a call ready at once costs a
/// check and a branch. It empties both slots when it completes, so that dropping it then
/// costs nothing.
struct TimeLimited<'a, S: Sleep, Fut> {
    /// Structurally pinned; empty once the call completed or the time limit passed.
    call: Slot<Fut>,
    /// Structurally pinned; started on the first pending poll.
    sleep: Slot<S::Timer>,
    timer: &'a S,
    /// The layer, for its duration (read only if the call is not ready at once).
    layer: &'a TimeoutLayer,
}

impl<T, E, S: Sleep, Fut> Future for TimeLimited<'_, S, Fut>
where
    Fut: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `call` and `sleep` are structurally pinned and nothing else is: their
        // values are never moved out (`Slot` drops them in place), `TimeLimited` has no
        // `Drop` impl, and it is `Unpin` only when both are (the auto trait).
        let (mut call, mut sleep, timer, layer) = unsafe {
            let this = self.get_unchecked_mut();
            (
                Pin::new_unchecked(&mut this.call),
                Pin::new_unchecked(&mut this.sleep),
                this.timer,
                this.layer,
            )
        };
        // Read before the call runs (which cannot start it): on a first poll the compiler
        // knows it, and the check after a call ready at once costs nothing.
        let timing = sleep.is_some();
        match call.as_mut().as_pin_mut() {
            // Polled again after it completed, or after the limit passed: nothing more to
            // give (a call that timed out keeps reporting it).
            None => {
                return if timing {
                    Poll::Ready(Err(Error::TimedOut(Elapsed::new())))
                } else {
                    Poll::Pending
                };
            }
            Some(running) => {
                if let Poll::Ready(output) = running.poll(cx) {
                    call.clear();
                    if timing {
                        sleep.clear();
                    } else {
                        // SAFETY: the timer's slot is empty (it was before the call ran,
                        // which cannot start it): writing it empty drops nothing. It tells
                        // the compiler that whoever drops this future next has nothing to
                        // drop.
                        unsafe { core::ptr::write(sleep.get_unchecked_mut(), Slot::empty()) };
                    }
                    return Poll::Ready(output);
                }
            }
        }
        let timer = match sleep.as_mut().as_pin_mut() {
            Some(started) => started,
            None => sleep.as_mut().fill(timer.sleep(layer.duration)),
        };
        if timer.poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Cancel the call now rather than when the future is dropped. The fired timer is
        // kept: it says the limit passed, if polled again.
        call.clear();
        Poll::Ready(Err(Error::TimedOut(Elapsed::new())))
    }
}

/// A fallback: made by [`Pipeline::fallback`](super::Pipeline::fallback). Turns every
/// error from inside it (the call's own, a timeout, a rejection) into a value.
#[derive(Clone, Copy)]
pub struct FallbackLayer<G> {
    pub(crate) fallback: G,
}

impl<T, E, S, G> Layer<T, E, S> for FallbackLayer<G>
where
    G: Fn(Error<E>) -> T,
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
        Map::new(rest.run(call), |result: Result<T, Error<E>>| {
            Ok(result.unwrap_or_else(&self.fallback))
        })
    }
}

impl<G> fmt::Debug for FallbackLayer<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer").finish_non_exhaustive()
    }
}
