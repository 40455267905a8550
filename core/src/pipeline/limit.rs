//! The concurrency limit's layer: a permit held while everything inside it runs.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use super::gate::{Admission, Gated};
use super::stack::{GuardedCall, Layer, Layers};
use crate::combinator::Rejection;
use crate::error::Error;
use crate::limit::{AcquireError, Permit, Semaphore};
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
        Gated::new(self.semaphore.borrow().acquire(), move || rest.run(call))
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
        Gated::new(acquire, move || rest.run(call))
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

/// A permit, or why there is none.
impl<'a> Admission for Result<Permit<'a>, AcquireError> {
    type Held = Permit<'a>;

    #[inline(always)]
    fn admitted(self) -> Result<Permit<'a>, Rejection> {
        self.map_err(Rejection::Limit)
    }
}
