//! The guard layers: time limit, concurrency limit, circuit breaker, fallback.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use super::stack::{Layer, Layers, Map};
use crate::breaker::Verdict;
use crate::combinator::{AsBreaker, Rejection};
use crate::error::Error;
use crate::limit::Semaphore;
use crate::time::Sleep;
use crate::timeout::timeout;

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
        timer: &'a S,
        rest: &'a R,
        make: &'a F,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let limited = timeout(timer, self.duration, rest.run(timer, make));
        Map::new(limited, |result| match result {
            Ok(result) => result,
            Err(elapsed) => Err(Error::TimedOut(elapsed)),
        })
    }
}

/// A concurrency limit: made by [`Pipeline::limit`](super::Pipeline::limit). Holds a
/// semaphore (owned, borrowed or in an `Arc`); waits for a permit as long as it takes,
/// or at most [`max_wait`](super::Pipeline::max_wait).
#[derive(Clone, Copy)]
pub struct LimitLayer<L> {
    pub(crate) semaphore: L,
    pub(crate) max_wait: Option<Duration>,
}

impl<T, E, S: Sleep, L: Borrow<Semaphore>> Layer<T, E, S> for LimitLayer<L> {
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
        let semaphore = self.semaphore.borrow();
        let permit = match self.max_wait {
            None => semaphore.acquire().await,
            Some(max_wait) => semaphore.acquire_with_max_wait(timer, max_wait).await,
        };
        match permit {
            Ok(_permit) => rest.run(timer, make).await,
            Err(error) => Err(Error::Rejected(Rejection::Limit(error))),
        }
    }
}

impl<L: Borrow<Semaphore>> fmt::Debug for LimitLayer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitLayer")
            .field("semaphore", self.semaphore.borrow())
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

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
        let guard = match self.breaker.as_breaker().try_acquire() {
            Ok(guard) => guard,
            Err(open) => return Err(Error::Rejected(Rejection::Circuit(open))),
        };
        // Cancelled or panicking: the guard is dropped unsettled and counts nothing.
        let outcome = rest.run(timer, make).await;
        // If the classifier panics, the guard is dropped unsettled as well.
        let verdict = self.classify.classify(&outcome);
        guard.record(verdict);
        outcome
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
        timer: &'a S,
        rest: &'a R,
        make: &'a F,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Map::new(rest.run(timer, make), |result: Result<T, Error<E>>| {
            Ok(result.unwrap_or_else(&self.fallback))
        })
    }
}

impl<G> fmt::Debug for FallbackLayer<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer").finish_non_exhaustive()
    }
}
