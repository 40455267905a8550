//! [`Call`]: the future of [`CircuitBreaker::call`] and
//! [`call_with`](CircuitBreaker::call_with).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::circuit::{CircuitBreaker, Pass};
use super::guard::BreakerGuard;
use super::{CallError, Verdict};
use crate::time::Clock;

/// Decides how a call's result counts: [`ErrIsFailure`] (the default of
/// [`CircuitBreaker::call`]), or any `FnOnce(&Result<T, E>) -> Verdict`.
///
/// ```
/// use kompoz::breaker::{Classify, Verdict};
///
/// /// HTTP-like status codes: a 5xx is the dependency's fault, a 4xx the caller's.
/// struct ServerErrors;
///
/// impl<T> Classify<T, u16> for ServerErrors {
///     fn classify(self, result: &Result<T, u16>) -> Verdict {
///         match result {
///             Ok(_) => Verdict::Success,
///             Err(status) if *status >= 500 => Verdict::Failure,
///             Err(_) => Verdict::Ignore,
///         }
///     }
/// }
///
/// let breaker = kompoz::breaker::CircuitBreaker::builder().failure_threshold(1).build()?;
/// let answer = futures::executor::block_on(breaker.call_with(ServerErrors, async { Err::<(), _>(404) }));
/// assert_eq!(answer.unwrap_err().into_inner(), Some(404));
/// assert_eq!(breaker.stats().failure_count, 0, "a 404 is not the dependency's failure");
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
pub trait Classify<T, E> {
    /// The verdict on `result`.
    fn classify(self, result: &Result<T, E>) -> Verdict;
}

impl<T, E, F: FnOnce(&Result<T, E>) -> Verdict> Classify<T, E> for F {
    fn classify(self, result: &Result<T, E>) -> Verdict {
        self(result)
    }
}

/// The default classifier: `Ok` is a success, `Err` a failure.
///
/// ```
/// use kompoz::breaker::{Classify, ErrIsFailure, Verdict};
///
/// assert_eq!(ErrIsFailure.classify(&Ok::<_, ()>(1)), Verdict::Success);
/// assert_eq!(ErrIsFailure.classify(&Err::<(), _>("boom")), Verdict::Failure);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrIsFailure;

impl<T, E> Classify<T, E> for ErrIsFailure {
    #[inline]
    fn classify(self, result: &Result<T, E>) -> Verdict {
        Verdict::from(result.is_ok())
    }
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Not polled yet: not admitted.
    Fresh,
    /// Admitted with this pass; the inner future is running.
    Running(Pass),
    /// Completed (or rejected).
    Done,
}

/// The future of [`CircuitBreaker::call`] and [`CircuitBreaker::call_with`]: asks the
/// breaker for admission when first polled, runs the inner future, and records its
/// verdict. Dropped while running, it records no verdict and gives back its probe slot.
///
/// ```
/// use kompoz::breaker::{Call, CircuitBreaker, ErrIsFailure};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let call: Call<'_, _, _, ErrIsFailure> = breaker.call(async { Ok::<_, ()>("pong") });
/// assert_eq!(futures::executor::block_on(call), Ok("pong"));
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Call<'a, C: Clock, F, K> {
    breaker: &'a CircuitBreaker<C>,
    /// The guarded future (structurally pinned).
    future: F,
    /// Taken when the inner future completes.
    classify: Option<K>,
    stage: Stage,
}

impl<'a, C: Clock, F, K> Call<'a, C, F, K> {
    pub(super) fn new(breaker: &'a CircuitBreaker<C>, future: F, classify: K) -> Self {
        Call { breaker, future, classify: Some(classify), stage: Stage::Fresh }
    }

    #[allow(clippy::type_complexity)]
    fn project(
        self: Pin<&mut Self>,
    ) -> (Pin<&mut F>, &'a CircuitBreaker<C>, &mut Option<K>, &mut Stage) {
        // SAFETY: `future` is structurally pinned and nothing else is: it is never moved
        // out of `self`, not even by `Drop` (which reads only `stage` and `breaker`), and
        // `Call` is `Unpin` only when `F` is (the auto trait). The other fields are handed
        // out as ordinary, disjoint references.
        unsafe {
            let this = self.get_unchecked_mut();
            (
                Pin::new_unchecked(&mut this.future),
                this.breaker,
                &mut this.classify,
                &mut this.stage,
            )
        }
    }
}

impl<C, F, K, T, E> Future for Call<'_, C, F, K>
where
    C: Clock,
    F: Future<Output = Result<T, E>>,
    K: Classify<T, E>,
{
    type Output = Result<T, CallError<E>>;

    // Always inlined: with the closed admission, the fast rejection and the success of an
    // ordinary call inlined into it (everything else is out of line), a plain `#[inline]`
    // poll was left out of line, and a call cost twice a guard's (the future stored its
    // stage and pass to memory between admission and settling).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (future, breaker, classify, stage) = self.project();
        match *stage {
            Stage::Fresh => match breaker.admit() {
                Ok(pass) => *stage = Stage::Running(pass),
                Err(open) => {
                    *stage = Stage::Done;
                    return Poll::Ready(Err(CallError::Rejected(open)));
                }
            },
            Stage::Running(_) => {}
            // Polled after it completed: it has nothing more to give.
            Stage::Done => return Poll::Pending,
        }
        let result = core::task::ready!(future.poll(cx));
        if let Stage::Running(pass) = core::mem::replace(stage, Stage::Done) {
            // Held by a guard while the classifier runs: if it panics, no verdict.
            let guard = BreakerGuard::new(breaker, pass);
            let verdict = match classify.take() {
                Some(classify) => classify.classify(&result),
                None => Verdict::Ignore,
            };
            guard.record(verdict);
        }
        Poll::Ready(result.map_err(CallError::Inner))
    }
}

impl<C: Clock, F, K> Drop for Call<'_, C, F, K> {
    fn drop(&mut self) {
        if let Stage::Running(pass) = self.stage {
            self.breaker.settle(pass, Verdict::Ignore);
        }
    }
}

impl<C: Clock, F, K> fmt::Debug for Call<'_, C, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call").field("stage", &self.stage).finish_non_exhaustive()
    }
}
