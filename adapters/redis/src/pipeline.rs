//! The fleet-wide primitives as layers of kompoz's [`Pipeline`](kompoz::pipeline::Pipeline):
//! add them with [`Pipeline::layer`](kompoz::pipeline::Pipeline::layer), like the local
//! ones, and their rejections arrive in the pipeline's flat error.
//!
//! ```no_run
//! use std::time::Duration;
//! use kompoz::pipeline::Pipeline;
//! use kompoz::rate::Quota;
//! use kompoz_redis::Fleet;
//! use kompoz_redis::pipeline::{FleetLimitLayer, FleetRateLayer, SharedBreakerLayer};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
//! let quota = fleet.rate_limit("search", Quota::per_second(100)?).build()?;
//! let limit = fleet.limit("search", 10).build()?;
//! let breaker = fleet.breaker("search").build()?;
//! let pipeline = Pipeline::<u32, std::io::Error, _>::with_timer(kompoz_tokio::TokioClock)
//!     .timeout(Duration::from_secs(1))
//!     .layer(FleetRateLayer::new(quota).max_wait(Duration::from_millis(100)))
//!     .layer(SharedBreakerLayer::new(breaker))
//!     .layer(FleetLimitLayer::new(limit));
//! assert_eq!(pipeline.call(|| async { Ok(7) }).await?, 7);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use kompoz::breaker::Verdict;
use kompoz::pipeline::{Classifier, DefaultClassifier, GuardedCall, Layer, Layers};
use kompoz::{Clock, Error, Rejection};

use crate::breaker::SharedBreaker;
use crate::limit::FleetLimit;
use crate::rate::FleetRateLimiter;
use crate::rate::combinator::Mode;

/// A fleet-wide concurrency limit as a pipeline layer: holds a fleet permit around the
/// rest of the stack (waiting at most the limit's `max_wait`). A refusal is
/// [`Error::Rejected`]`(`[`Rejection::Limit`]`(..))`.
#[derive(Clone, Debug)]
pub struct FleetLimitLayer {
    limit: FleetLimit,
}

impl FleetLimitLayer {
    /// The layer of `limit`.
    pub fn new(limit: FleetLimit) -> Self {
        FleetLimitLayer { limit }
    }
}

impl<T, E, S> Layer<T, E, S> for FleetLimitLayer {
    async fn wrap<'a, R, F, Fut>(
        &'a self,
        rest: &'a R,
        call: &'a GuardedCall<'a, S, F>,
    ) -> Result<T, Error<E>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.limit.acquire().await {
            Ok(_permit) => rest.run(call).await,
            Err(error) => Err(Error::Rejected(Rejection::Limit(error.into()))),
        }
    }
}

/// A fleet-wide rate limit as a pipeline layer: each call through the rest of the stack
/// takes one cell of the fleet's quota first, waiting for it (sleeping the wait Redis
/// reports) unless told otherwise with [`reject`](FleetRateLayer::reject) or
/// [`max_wait`](FleetRateLayer::max_wait). A refusal is
/// [`Error::Rejected`]`(`[`Rejection::Rate`]`(..))`, carrying when to retry: a retry
/// layer outside it waits exactly that long.
pub struct FleetRateLayer<C: Clock> {
    limiter: FleetRateLimiter<C>,
    mode: Mode,
}

impl<C: Clock> FleetRateLayer<C> {
    /// The layer of `limiter`, waiting for a cell as long as it takes.
    pub fn new(limiter: FleetRateLimiter<C>) -> Self {
        FleetRateLayer { limiter, mode: Mode::Wait }
    }

    /// Refuses a call at once when its cell does not conform now.
    pub fn reject(self) -> Self {
        FleetRateLayer { mode: Mode::Reject, ..self }
    }

    /// Waits at most `max_wait` for the cell; then the call is refused.
    pub fn max_wait(self, max_wait: Duration) -> Self {
        FleetRateLayer { mode: Mode::MaxWait(max_wait), ..self }
    }

    /// The limiter.
    pub fn limiter(&self) -> &FleetRateLimiter<C> {
        &self.limiter
    }
}

impl<C: Clock> Clone for FleetRateLayer<C> {
    fn clone(&self) -> Self {
        FleetRateLayer { limiter: self.limiter.clone(), mode: self.mode }
    }
}

impl<C: Clock> fmt::Debug for FleetRateLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetRateLayer")
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .finish()
    }
}

impl<T, E, S, C: Clock> Layer<T, E, S> for FleetRateLayer<C> {
    async fn wrap<'a, R, F, Fut>(
        &'a self,
        rest: &'a R,
        call: &'a GuardedCall<'a, S, F>,
    ) -> Result<T, Error<E>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.mode.admit(&self.limiter).await {
            Ok(()) => rest.run(call).await,
            Err(error) => Err(Error::Rejected(self.limiter.rejection(error))),
        }
    }
}

/// A shared circuit breaker as a pipeline layer, with the same default classification as
/// the local breaker's layer (a value is a success, the call's error or a time limit a
/// failure, a rejection by an inner guard neither), or a classifier of your own. A
/// refusal is [`Error::Rejected`]`(`[`Rejection::Circuit`]`(..))`.
pub struct SharedBreakerLayer<C: Clock + Send + Sync, K = DefaultClassifier> {
    breaker: SharedBreaker<C>,
    classify: K,
}

impl<C: Clock + Send + Sync> SharedBreakerLayer<C> {
    /// The layer of `breaker`, with the default classification.
    pub fn new(breaker: SharedBreaker<C>) -> Self {
        SharedBreakerLayer { breaker, classify: DefaultClassifier }
    }

    /// The same layer with a classifier of your own.
    pub fn classify<K>(self, classify: K) -> SharedBreakerLayer<C, K> {
        SharedBreakerLayer { breaker: self.breaker, classify }
    }
}

impl<T, E, S, C, K> Layer<T, E, S> for SharedBreakerLayer<C, K>
where
    C: Clock + Send + Sync,
    K: Classifier<T, E>,
{
    async fn wrap<'a, R, F, Fut>(
        &'a self,
        rest: &'a R,
        call: &'a GuardedCall<'a, S, F>,
    ) -> Result<T, Error<E>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let guard = match self.breaker.try_acquire().await {
            Ok(guard) => guard,
            Err(open) => return Err(Error::Rejected(Rejection::Circuit(open))),
        };
        // Cancelled or panicking: the guard is dropped without a verdict.
        let outcome = rest.run(call).await;
        let verdict: Verdict = self.classify.classify(&outcome);
        guard.record(verdict);
        outcome
    }
}

impl<C: Clock + Send + Sync, K> fmt::Debug for SharedBreakerLayer<C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerLayer").field("breaker", &self.breaker).finish_non_exhaustive()
    }
}
