//! [`Pipeline`]: every primitive stacked around a plain future, outermost first, with one
//! flat error.
//!
//! ```
//! use std::time::Duration;
//! use kompoz::breaker::{CircuitBreaker, Verdict};
//! use kompoz::limit::Semaphore;
//! use kompoz::pipeline::Pipeline;
//! use kompoz::retry::RetryPolicy;
//! use kompoz::{Error, ManualClock};
//!
//! #[derive(Debug, PartialEq)]
//! struct HttpError(u16);
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::builder().failure_threshold(3).build_with(clock.clone())?;
//! let permits = Semaphore::new(10)?;
//! // Name the call's types once: every closure below infers its argument from them.
//! let pipeline = Pipeline::<String, HttpError, _>::with_timer(clock.clone())
//!     .timeout(Duration::from_secs(10)) // all attempts together
//!     .retry(RetryPolicy::builder().max_attempts(3).build()?)
//!     .retry_if(|error| !matches!(error, Error::Inner(HttpError(404))))
//!     .timeout(Duration::from_secs(1)) // each attempt
//!     .limit(&permits)
//!     .breaker(&breaker)
//!     .classify(|outcome| match outcome {
//!         Err(Error::Inner(HttpError(status))) if *status < 500 => Verdict::Success,
//!         Ok(_) => Verdict::Success,
//!         Err(_) => Verdict::Failure,
//!     });
//!
//! let answer = futures::executor::block_on(pipeline.call(|| async { Ok("hello".to_string()) }));
//! assert_eq!(answer, Ok("hello".to_string()));
//! let missing = futures::executor::block_on(pipeline.call(|| async { Err(HttpError(404)) }));
//! assert_eq!(missing, Err(Error::Inner(HttpError(404))));
//! assert_eq!(breaker.stats().total_failures, 0, "a 404 is not the dependency's fault");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the flat error and the inferred closures work
//!
//! Every layer maps what it sees into [`Error<E>`](crate::Error): the innermost level
//! wraps the call's own error in [`Error::Inner`], a timeout
//! produces [`Error::TimedOut`], a guard
//! [`Error::Rejected`]; outer layers pass these through (or act
//! on them: a retry reads them, a breaker classifies them, a fallback replaces them). No
//! layer nests its error in another's.
//!
//! A [`Pipeline<T, E, S, L>`] carries the call's value and error types from the start.
//! The methods that take closures (`classify`, `retry_if`, `on_retry`, `fallback`) take
//! them with a plain `Fn` bound whose argument types are written with those `T` and
//! `E`, so the compiler knows the closure's argument type before it reads the closure's
//! body: `|outcome| match outcome { .. }` needs no annotation. (A bound through a trait
//! of kompoz's own, or a `T` still unknown at that point, is what makes `rustc` ask for
//! annotations, E0282/E0631.) Name the types with a turbofish at the start, or let an
//! earlier step fix them.
//!
//! # Cost
//!
//! The stack is a nest of tuples, each layer a plain struct; a call is one future, each
//! layer's part of it a small hand-written future that makes what is inside it only when
//! it runs it and goes straight through when everything is ready at once, and empties
//! itself as soon as what it runs completes (the guarded call's future is dropped where
//! it ran, and a finished call's future costs nothing to drop): no boxing, no
//! dynamic dispatch, and no allocation for a call that succeeds first time (hedges, when
//! they start, are boxed) or is refused. Shared pieces (a breaker, a semaphore, a rate
//! limiter, a budget) are borrowed or held by `Arc`, so one breaker can guard several
//! pipelines.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::time::Duration;

mod breaker;
mod gate;
mod layers;
mod limit;
mod rate;
mod retrying;
mod stack;

pub use breaker::{BreakerLayer, Classifier, DefaultClassifier};
pub use gate::MaxWait;
pub use layers::{FallbackLayer, TimeoutLayer};
pub use limit::LimitLayer;
pub use rate::{RateLayer, Reject};
pub use retrying::{HedgeLayer, RetryLayer};
pub use stack::{GuardedCall, Last, Layer, Layers, Push};

use crate::breaker::Verdict;
use crate::combinator::AsBreaker;
use crate::error::Error;
use crate::limit::Semaphore;
use crate::rate::AsRateLimiter;
use crate::retry::{Budget, Decision, Hedge, RetryPolicy};
use crate::time::Sleep;

/// The timer of a [`Pipeline`] made with `new`: [`StdClock`](crate::StdClock) with the
/// `std` feature.
#[cfg(feature = "std")]
type DefaultTimer = crate::StdClock;
/// Without `std` there is no default timer: name one with [`Pipeline::with_timer`].
#[cfg(not(feature = "std"))]
type DefaultTimer = ();

/// Primitives stacked around a plain future, outermost first, as a typed stack; calls
/// return `Result<T, Error<E>>`. See the [module docs](self).
///
/// `T` and `E` are the guarded call's value and error, `S` the timer that timeouts,
/// backoffs and hedges wait on, `L` the stack of layers.
pub struct Pipeline<T, E, S = DefaultTimer, L = ()> {
    timer: S,
    layers: L,
    call: PhantomData<fn() -> Result<T, E>>,
}

#[cfg(feature = "std")]
impl<T, E> Pipeline<T, E, crate::StdClock, ()> {
    /// An empty pipeline on [`StdClock`](crate::StdClock). Adapters offer one on their
    /// runtime's timers (`kompoz_tokio::pipeline`).
    pub fn new() -> Self {
        Pipeline::with_timer(crate::StdClock)
    }
}

#[cfg(feature = "std")]
impl<T, E> Default for Pipeline<T, E, crate::StdClock, ()> {
    fn default() -> Self {
        Pipeline::new()
    }
}

impl<T, E, S: Sleep> Pipeline<T, E, S, ()> {
    /// An empty pipeline whose timeouts, backoffs and hedges wait on `timer`.
    pub fn with_timer(timer: S) -> Self {
        Pipeline { timer, layers: (), call: PhantomData }
    }
}

impl<T, E, S, L> Pipeline<T, E, S, L> {
    fn push<N>(self, layer: N) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<N>,
    {
        Pipeline { timer: self.timer, layers: self.layers.push(layer), call: PhantomData }
    }

    fn map_last<N>(self, f: impl FnOnce(L::Layer) -> N) -> Pipeline<T, E, S, L::Replace<N>>
    where
        L: Last,
    {
        Pipeline { timer: self.timer, layers: self.layers.map_last(f), call: PhantomData }
    }

    /// The timer the pipeline waits on.
    pub fn timer(&self) -> &S {
        &self.timer
    }

    /// Adds any [`Layer`]: your own primitive, or one kompoz ships as a layer type.
    pub fn layer<N: Layer<T, E, S>>(self, layer: N) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<N>,
    {
        self.push(layer)
    }

    /// Adds a time limit on everything added after it: before a retry, it bounds all the
    /// attempts together; after it, each attempt. A call that passes it is cancelled and
    /// ends with [`Error::TimedOut`].
    pub fn timeout(self, duration: Duration) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<TimeoutLayer>,
    {
        self.push(TimeoutLayer { duration })
    }

    /// Adds a concurrency limit: a permit of `semaphore` (owned, borrowed or in an
    /// `Arc`) is held while everything added after it runs. Waits for it as long as it
    /// takes, unless [`max_wait`](Pipeline::max_wait) follows; a closed semaphore is
    /// [`Error::Rejected`]`(`[`Rejection::Limit`](crate::Rejection::Limit)`(..))`.
    pub fn limit<M: Borrow<Semaphore>>(self, semaphore: M) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<LimitLayer<M>>,
    {
        self.push(LimitLayer { semaphore, max_wait: () })
    }

    /// Waits at most `max_wait` for the permit of the limit, or the cell of the rate
    /// limit, just added; then the call is rejected
    /// (`Rejection::Limit(AcquireError::WaitElapsed)`, or `Rejection::Rate(..)` with the
    /// time its cell will conform). Zero admits only at once. A rate limit refuses at once
    /// a call whose cell cannot conform within `max_wait`.
    pub fn max_wait(
        self,
        max_wait: Duration,
    ) -> Pipeline<T, E, S, L::Replace<<L::Layer as MaxWait>::Bounded>>
    where
        L: Last,
        L::Layer: MaxWait,
    {
        self.map_last(|layer| layer.max_wait(max_wait))
    }

    /// Adds a rate limit (a [`RateLimiter`](crate::rate::RateLimiter), owned, borrowed
    /// or in an `Arc`) around everything added after it: each call takes one cell before
    /// anything inside starts, waiting for it in line, on the limiter's clock, as long as
    /// it takes, unless [`max_wait`](Pipeline::max_wait) or
    /// [`reject`](Pipeline::reject) follows. A refused call ends with
    /// [`Error::Rejected`]`(`[`Rejection::Rate`](crate::Rejection::Rate)`(..))`, which
    /// says when its cell will conform; a retry added before the rate limit waits exactly
    /// that long before trying again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::pipeline::Pipeline;
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::retry::RetryPolicy;
    /// use kompoz::{Clock, Error, Instant, ManualClock, Rejection};
    ///
    /// let clock = ManualClock::new();
    /// // One call every 100 ms.
    /// let limiter = RateLimiter::new(Quota::per_second(10)?.with_burst(1)?, clock.clone());
    /// let shedding = Pipeline::<u32, (), _>::with_timer(clock.clone())
    ///     .rate_limit(&limiter)
    ///     .reject();
    /// let polite = Pipeline::<u32, (), _>::with_timer(clock.clone())
    ///     .retry(RetryPolicy::builder().max_attempts(2).build()?)
    ///     .rate_limit(&limiter)
    ///     .reject();
    ///
    /// let call = || async { Ok(7) };
    /// assert_eq!(futures::executor::block_on(shedding.call(call)), Ok(7));
    /// match futures::executor::block_on(shedding.call(call)) {
    ///     Err(Error::Rejected(Rejection::Rate(refused))) => {
    ///         assert_eq!(refused.wait, Duration::from_millis(100))
    ///     }
    ///     other => panic!("expected a refusal, got {other:?}"),
    /// }
    /// // The retry waits out the refusal's 100 ms, then the call gets its cell.
    /// let mut call = std::pin::pin!(polite.call(call));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// use std::future::Future;
    /// assert!(call.as_mut().poll(&mut cx).is_pending());
    /// clock.advance(Duration::from_millis(100));
    /// assert_eq!(call.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(7)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate_limit<R: AsRateLimiter>(self, limiter: R) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<RateLayer<R>>,
    {
        self.push(RateLayer { limiter, mode: () })
    }

    /// Makes the rate limit just added refuse a call at once when its cell does not
    /// conform now, instead of waiting for it (a server shedding load).
    pub fn reject<R, M>(self) -> Pipeline<T, E, S, L::Replace<RateLayer<R, Reject>>>
    where
        L: Last<Layer = RateLayer<R, M>>,
    {
        self.map_last(|layer| RateLayer { limiter: layer.limiter, mode: Reject })
    }

    /// Adds a circuit breaker (owned, borrowed or in an `Arc`) around everything added
    /// after it. While open, calls end at once with
    /// [`Error::Rejected`]`(`[`Rejection::Circuit`](crate::Rejection::Circuit)`(..))`.
    /// Outcomes count by the [`DefaultClassifier`] unless
    /// [`classify`](Pipeline::classify) follows.
    pub fn breaker<B: AsBreaker>(self, breaker: B) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<BreakerLayer<B>>,
    {
        self.push(BreakerLayer { breaker, classify: DefaultClassifier })
    }

    /// Decides how the breaker just added counts each outcome. The closure's argument is
    /// `&Result<T, Error<E>>`, inferred.
    pub fn classify<B, K0, K>(
        self,
        classify: K,
    ) -> Pipeline<T, E, S, L::Replace<BreakerLayer<B, K>>>
    where
        L: Last<Layer = BreakerLayer<B, K0>>,
        K: Fn(&Result<T, Error<E>>) -> Verdict,
    {
        self.map_last(|layer| BreakerLayer { breaker: layer.breaker, classify })
    }

    /// Adds a retry under `policy` around everything added after it. By default every
    /// failure is retried except a circuit breaker's rejection, and a rejection that
    /// names its wait is retried after exactly that wait
    /// ([`DefaultRetryIf`](crate::retry::DefaultRetryIf)).
    pub fn retry(self, policy: RetryPolicy) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<RetryLayer>,
    {
        self.push(RetryLayer {
            policy,
            when: crate::retry::DefaultRetryIf,
            hook: crate::retry::NoHook,
            budget: crate::retry::NoBudget,
        })
    }

    /// Decides which failures the retry just added retries: `Fn(&Error<E>) -> bool` or
    /// `-> Decision` (which can name the wait), the argument inferred.
    #[allow(clippy::type_complexity)]
    pub fn retry_if<W0, O, B, W, D>(
        self,
        when: W,
    ) -> Pipeline<T, E, S, L::Replace<RetryLayer<W, O, B>>>
    where
        L: Last<Layer = RetryLayer<W0, O, B>>,
        W: Fn(&Error<E>) -> D,
        D: Into<Decision>,
    {
        self.map_last(|r| {
            let (hook, budget) = (r.hook, r.budget);
            RetryLayer { policy: r.policy, when, hook, budget }
        })
    }

    /// Calls `hook(attempt, &error, delay)` before each wait of the retry just added:
    /// kompoz's `on_retry`, the arguments inferred.
    #[allow(clippy::type_complexity)]
    pub fn on_retry<W, O0, B, O>(
        self,
        hook: O,
    ) -> Pipeline<T, E, S, L::Replace<RetryLayer<W, O, B>>>
    where
        L: Last<Layer = RetryLayer<W, O0, B>>,
        O: Fn(u32, &Error<E>, Duration),
    {
        self.map_last(|r| {
            let (when, budget) = (r.when, r.budget);
            RetryLayer { policy: r.policy, when, hook, budget }
        })
    }

    /// Counts calls in `budget` (owned, borrowed or in an `Arc`, shared by every caller)
    /// and lets the retry just added retry only while the budget allows.
    #[allow(clippy::type_complexity)]
    pub fn budget<W, O, B0, B: Budget>(
        self,
        budget: B,
    ) -> Pipeline<T, E, S, L::Replace<RetryLayer<W, O, B>>>
    where
        L: Last<Layer = RetryLayer<W, O, B0>>,
    {
        self.map_last(|r| {
            let (when, hook) = (r.when, r.hook);
            RetryLayer { policy: r.policy, when, hook, budget }
        })
    }

    /// Adds hedging (a [`Hedge`], owned, borrowed or in an `Arc`) around everything
    /// added after it.
    pub fn hedge<H: Borrow<Hedge>>(self, hedge: H) -> Pipeline<T, E, S, L::Output>
    where
        L: Push<HedgeLayer<H>>,
    {
        self.push(HedgeLayer { hedge, budget: crate::retry::NoBudget })
    }

    /// Lets the hedging just added start a hedge only while `budget` allows (each hedge
    /// spends one retry).
    ///
    /// Every layer that takes a budget counts each call it runs as one deposit. A budget
    /// given to both a retry and a hedge of the same pipeline therefore counts each call
    /// twice and lets twice its percentage through: give each layer a budget of its own
    /// (or halve `retry_percent`).
    pub fn hedge_budget<H, B0, B: Budget>(
        self,
        budget: B,
    ) -> Pipeline<T, E, S, L::Replace<HedgeLayer<H, B>>>
    where
        L: Last<Layer = HedgeLayer<H, B0>>,
    {
        self.map_last(|h| HedgeLayer { hedge: h.hedge, budget })
    }

    /// Adds a fallback: any error from everything added after it (the call's own, a
    /// timeout, a rejection) becomes the value `fallback(error)`. The argument is
    /// `Error<E>`, inferred.
    pub fn fallback<G>(self, fallback: G) -> Pipeline<T, E, S, L::Output>
    where
        G: Fn(Error<E>) -> T,
        L: Push<FallbackLayer<G>>,
    {
        self.push(FallbackLayer { fallback })
    }

    /// Runs one call through the pipeline: `make` makes the guarded future, once per
    /// attempt (a retry calls it again; a hedge calls it while another attempt runs, so
    /// it is `Fn`). Dropping the returned future cancels the call wherever it is, and
    /// gives back every permit and probe slot it held.
    pub async fn call<F, Fut>(&self, make: F) -> Result<T, Error<E>>
    where
        L: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let call = GuardedCall::new(&self.timer, make);
        self.layers.run(&call).await
    }
}

impl<T, E, S: Clone, L: Clone> Clone for Pipeline<T, E, S, L> {
    fn clone(&self) -> Self {
        Pipeline { timer: self.timer.clone(), layers: self.layers.clone(), call: PhantomData }
    }
}

impl<T, E, S: fmt::Debug, L: fmt::Debug> fmt::Debug for Pipeline<T, E, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("timer", &self.timer)
            .field("layers", &self.layers)
            .finish()
    }
}
