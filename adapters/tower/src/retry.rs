//! [`RetryLayer`]: failed requests sent again, as a [`RetryPolicy`] says.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use kompoz::Sleep;
use kompoz::retry::{Budget, Decision, NoBudget, NoHook, OnRetry, Progress, RetryIf, RetryPolicy};
use tower::{Layer, Service};

use crate::rejection::{Rejection, rejection};

/// Sends a failed request again, as a kompoz [`RetryPolicy`] says: how many attempts,
/// the backoff between them (waited on a timer of yours), a deadline; which errors are
/// worth a retry ([`when`](RetryLayer::when)); who hears of each retry
/// ([`on_retry`](RetryLayer::on_retry)); and a [`RetryBudget`](kompoz::retry::RetryBudget)
/// shared by every caller ([`budget`](RetryLayer::budget)), so that retries cannot
/// multiply the load on a dependency that is already failing.
///
/// The request must be `Clone`: each attempt sends a clone. By default every error is
/// retried except a circuit breaker's refusal ([`RetryUnlessCircuitOpen`]): put the
/// breaker inside the retry, and a retry never knocks on an open circuit.
///
/// # What `poll_ready` reserves
///
/// Nothing of its own: `poll_ready` forwards to the inner service, and the first attempt
/// uses that readiness. A later attempt runs on a clone of the inner service, which is
/// made ready again (in the response future) before it is called. Dropping the response
/// future cancels the attempt or the backoff in progress.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use kompoz::retry::RetryPolicy;
/// use kompoz_tokio::TokioClock;
/// use kompoz_tower::RetryLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = RetryPolicy::builder().max_attempts(3).backoff(Duration::from_millis(100)).build()?;
/// let attempts = Arc::new(AtomicU32::new(0));
/// let counted = attempts.clone();
/// let mut flaky = ServiceBuilder::new()
///     .layer(RetryLayer::new(policy, TokioClock))
///     .service(service_fn(move |id: u32| {
///         let attempt = counted.fetch_add(1, Ordering::SeqCst) + 1;
///         async move {
///             if attempt < 3 { Err(std::io::Error::other("busy")) } else { Ok(id * 10) }
///         }
///     }));
/// assert_eq!(flaky.ready().await?.call(4).await?, 40);
/// assert_eq!(attempts.load(Ordering::SeqCst), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RetryLayer<T, W = RetryUnlessCircuitOpen, O = NoHook, B = NoBudget> {
    policy: RetryPolicy,
    timer: T,
    when: W,
    hook: O,
    budget: B,
}

impl<T: Sleep + Clone> RetryLayer<T> {
    /// Retries as `policy` says, waiting out backoffs on `timer`.
    pub fn new(policy: RetryPolicy, timer: T) -> Self {
        RetryLayer { policy, timer, when: RetryUnlessCircuitOpen, hook: NoHook, budget: NoBudget }
    }
}

impl<T, W, O, B> RetryLayer<T, W, O, B> {
    /// Decides which errors are retried: any `Fn(&Error) -> bool`, or `-> Decision` to
    /// name the wait (a "retry after" hint), or any [`RetryIf`].
    pub fn when<W2>(self, when: W2) -> RetryLayer<T, W2, O, B> {
        let RetryLayer { policy, timer, hook, budget, .. } = self;
        RetryLayer { policy, timer, when, hook, budget }
    }

    /// Calls `hook(attempt, &error, delay)` before each retry.
    pub fn on_retry<O2>(self, hook: O2) -> RetryLayer<T, W, O2, B> {
        let RetryLayer { policy, timer, when, budget, .. } = self;
        RetryLayer { policy, timer, when, hook, budget }
    }

    /// Spends retries from `budget` (for example an `Arc<RetryBudget>` shared by every
    /// client of a dependency); a retry the budget refuses is not made.
    pub fn budget<B2: Budget>(self, budget: B2) -> RetryLayer<T, W, O, B2> {
        let RetryLayer { policy, timer, when, hook, .. } = self;
        RetryLayer { policy, timer, when, hook, budget }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, T: Clone, W: Clone, O: Clone, B: Clone> Layer<S> for RetryLayer<T, W, O, B> {
    type Service = RetryService<S, T, W, O, B>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService { inner, layer: self.clone() }
    }
}

/// A service whose failed requests are retried, made by [`RetryLayer`].
#[derive(Clone, Copy, Debug)]
pub struct RetryService<S, T, W = RetryUnlessCircuitOpen, O = NoHook, B = NoBudget> {
    inner: S,
    layer: RetryLayer<T, W, O, B>,
}

impl<S, T, W, O, B> RetryService<S, T, W, O, B> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Request, T, W, O, B> Service<Request> for RetryService<S, T, W, O, B>
where
    S: Service<Request> + Clone,
    Request: Clone,
    T: Sleep + Clone,
    W: RetryIf<S::Error> + Clone,
    O: OnRetry<S::Error> + Clone,
    B: Budget + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RetryFuture<S, Request, T, W, O, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let layer = self.layer.clone();
        let progress = Progress::begin(&layer.policy, &layer.timer, &layer.budget);
        // The first attempt uses the readiness the caller obtained; the clone is for the
        // attempts after it.
        let first = self.inner.call(request.clone());
        RetryFuture {
            service: self.inner.clone(),
            request,
            layer,
            progress,
            stage: Stage::Calling { attempt: first },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StageProjection]
    enum Stage<F, Z> {
        // An attempt is running.
        Calling { #[pin] attempt: F },
        // Waiting out a backoff.
        Backoff { #[pin] timer: Z },
        // Making the service ready for the next attempt.
        Readying,
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RetryService`]: the attempts and the backoffs between
    /// them. Dropped, it cancels the attempt or the backoff in progress.
    #[must_use = "futures do nothing unless polled"]
    pub struct RetryFuture<S, Request, T, W, O, B>
    where
        S: Service<Request>,
        T: Sleep,
    {
        service: S,
        request: Request,
        layer: RetryLayer<T, W, O, B>,
        progress: Progress,
        #[pin]
        stage: Stage<S::Future, T::Timer>,
    }
}

impl<S, Request, T, W, O, B> Future for RetryFuture<S, Request, T, W, O, B>
where
    S: Service<Request>,
    Request: Clone,
    T: Sleep,
    W: RetryIf<S::Error>,
    O: OnRetry<S::Error>,
    B: Budget,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.stage.as_mut().project() {
                StageProjection::Calling { attempt } => {
                    let error = match ready!(attempt.poll(cx)) {
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(error) => error,
                    };
                    let layer = &*this.layer;
                    let wait = this.progress.after_failure(
                        &layer.policy,
                        &layer.timer,
                        &layer.when,
                        &layer.hook,
                        &layer.budget,
                        &error,
                    );
                    match wait {
                        None => return Poll::Ready(Err(error)),
                        Some(Duration::ZERO) => this.stage.set(Stage::Readying),
                        Some(delay) => {
                            this.stage.set(Stage::Backoff { timer: layer.timer.sleep(delay) })
                        }
                    }
                }
                StageProjection::Backoff { timer } => {
                    ready!(timer.poll(cx));
                    this.stage.set(Stage::Readying);
                }
                StageProjection::Readying => {
                    ready!(this.service.poll_ready(cx))?;
                    let attempt = this.service.call(this.request.clone());
                    this.stage.set(Stage::Calling { attempt });
                }
            }
        }
    }
}

impl<S: Service<Request>, Request, T: Sleep, W, O, B> fmt::Debug
    for RetryFuture<S, Request, T, W, O, B>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFuture").field("progress", &self.progress).finish_non_exhaustive()
    }
}

/// The retry layer's default: retry every error except a circuit breaker's refusal
/// (found anywhere in the error's `source()` chain, see [`rejection`]), since a retry
/// cannot get through an open circuit.
///
/// ```
/// use kompoz::breaker::{CallError, CircuitOpen, CircuitState};
/// use kompoz::retry::{Decision, RetryIf};
/// use kompoz_tower::RetryUnlessCircuitOpen;
///
/// let open: CallError<std::io::Error> = CallError::Rejected(CircuitOpen { state: CircuitState::Open });
/// assert_eq!(RetryUnlessCircuitOpen.decide(&open), Decision::GiveUp);
/// let failed: CallError<std::io::Error> = CallError::Inner(std::io::Error::other("reset"));
/// assert_eq!(RetryUnlessCircuitOpen.decide(&failed), Decision::Retry);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetryUnlessCircuitOpen;

impl<E: std::error::Error + 'static> RetryIf<E> for RetryUnlessCircuitOpen {
    fn decide(&self, error: &E) -> Decision {
        match rejection(error) {
            Some(Rejection::Circuit(_)) => Decision::GiveUp,
            _ => Decision::Retry,
        }
    }
}
