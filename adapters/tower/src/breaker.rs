//! [`BreakerLayer`]: a circuit breaker in front of the services it wraps.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use kompoz::breaker::{CallError, CircuitOpen, Classify, ErrIsFailure, OwnedBreakerGuard};
use kompoz::combinator::AsBreaker;
use tower::{Layer, Service};

/// Puts a [`CircuitBreaker`](kompoz::CircuitBreaker) in front of the services it wraps:
/// while the circuit is open, requests are refused at once with
/// [`CallError::Rejected`], without calling the inner service.
///
/// The breaker is shared: pass an `Arc<CircuitBreaker<_>>` (or a `&'static` one), and
/// every service made by the layer, and every clone of them, counts into it. Name it
/// when you build it ([`BreakerBuilder::name`](kompoz::breaker::BreakerBuilder::name)) and
/// its transitions and rejections carry the name to the core's `tracing` and `metrics`
/// integrations (`kompoz_breaker_transitions_total{name="inventory",..}`).
///
/// What counts as a failure is the classifier's call, over the inner service's whole
/// `Result<Response, Error>`: by default an `Err` is a failure and an `Ok` a success;
/// with [`classify`](BreakerLayer::classify), an HTTP 5xx response can count as a
/// failure and a 4xx as a success, or a request can count as neither
/// ([`Verdict::Ignore`](kompoz::breaker::Verdict::Ignore)).
///
/// # What `poll_ready` reserves
///
/// Nothing of the breaker's: `poll_ready` only forwards to the inner service. Admission
/// (and, half-open, a probe slot) is taken in `call`, when the request is really sent,
/// so a service made ready and never called cannot hold a probe slot, and an open
/// circuit refuses with the state of the moment. The response future keeps the
/// admission until the response is classified; dropped before (a cancelled request), it
/// records no verdict and gives its probe slot back.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::breaker::{CallError, CircuitBreaker, CircuitState, Verdict};
/// use kompoz_tower::BreakerLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = Arc::new(CircuitBreaker::builder().name("inventory").failure_threshold(2).build()?);
/// // A status of 500 and above counts as a failure of the dependency, anything else not.
/// let server_errors = |result: &Result<u16, std::io::Error>| match result {
///     Ok(status) if *status >= 500 => Verdict::Failure,
///     Ok(_) => Verdict::Success,
///     Err(_) => Verdict::Failure,
/// };
/// let mut client = ServiceBuilder::new()
///     .layer(BreakerLayer::new(breaker.clone()).classify(server_errors))
///     .service(service_fn(|status: u16| async move { Ok::<_, std::io::Error>(status) }));
///
/// assert_eq!(client.ready().await?.call(404).await?, 404); // a 4xx is the caller's problem
/// for _ in 0..2 {
///     assert_eq!(client.ready().await?.call(503).await?, 503);
/// }
/// assert_eq!(breaker.state(), CircuitState::Open);
/// let refused = client.ready().await?.call(200).await;
/// assert!(matches!(refused, Err(CallError::Rejected(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BreakerLayer<B, K = ErrIsFailure> {
    breaker: B,
    classify: K,
}

impl<B: AsBreaker + Clone> BreakerLayer<B> {
    /// A layer in front of `breaker`, counting `Err` as a failure and `Ok` as a success.
    pub fn new(breaker: B) -> Self {
        BreakerLayer { breaker, classify: ErrIsFailure }
    }
}

impl<B, K> BreakerLayer<B, K> {
    /// Decides what counts as a failure with `classify`, a function (or any
    /// [`Classify`]) of `&Result<Response, Error>` that returns a
    /// [`Verdict`](kompoz::breaker::Verdict). It is cloned for each request.
    pub fn classify<K2>(self, classify: K2) -> BreakerLayer<B, K2> {
        BreakerLayer { breaker: self.breaker, classify }
    }

    /// The breaker.
    pub fn breaker(&self) -> &B {
        &self.breaker
    }
}

impl<S, B: Clone, K: Clone> Layer<S> for BreakerLayer<B, K> {
    type Service = BreakerService<S, B, K>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService { inner, breaker: self.breaker.clone(), classify: self.classify.clone() }
    }
}

/// A service behind a circuit breaker, made by [`BreakerLayer`].
#[derive(Clone, Copy, Debug)]
pub struct BreakerService<S, B, K = ErrIsFailure> {
    inner: S,
    breaker: B,
    classify: K,
}

impl<S, B, K> BreakerService<S, B, K> {
    /// The breaker.
    pub fn breaker(&self) -> &B {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, K, Request> Service<Request> for BreakerService<S, B, K>
where
    S: Service<Request>,
    B: AsBreaker + Clone,
    K: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = BreakerFuture<S::Future, B, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        match OwnedBreakerGuard::try_acquire(&self.breaker) {
            Ok(guard) => BreakerFuture {
                inner: Some(self.inner.call(request)),
                admitted: Some(Ok((guard, self.classify.clone()))),
            },
            Err(open) => BreakerFuture { inner: None, admitted: Some(Err(open)) },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`BreakerService`]: runs the request, then records the
    /// classifier's verdict. Dropped before the response, it records nothing and gives
    /// back its probe slot.
    #[must_use = "futures do nothing unless polled"]
    pub struct BreakerFuture<F, B: AsBreaker, K> {
        #[pin]
        inner: Option<F>,
        // The admission and the classifier, or (with no inner future) the rejection;
        // `None` once completed.
        admitted: Option<Result<(OwnedBreakerGuard<B>, K), CircuitOpen>>,
    }
}

impl<F, B, K, R, E> Future for BreakerFuture<F, B, K>
where
    F: Future<Output = Result<R, E>>,
    B: AsBreaker,
    K: Classify<R, E>,
{
    type Output = Result<R, CallError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return match this.admitted.take() {
                Some(Err(open)) => Poll::Ready(Err(CallError::Rejected(open))),
                // Polled again after it completed.
                _ => Poll::Pending,
            };
        };
        let response = ready!(inner.poll(cx));
        if let Some(Ok((guard, classify))) = this.admitted.take() {
            // The guard is held while the classifier runs: if it panics, the guard is
            // dropped unsettled and the request counts as neither.
            let verdict = classify.classify(&response);
            guard.record(verdict);
        }
        Poll::Ready(response.map_err(CallError::Inner))
    }
}

impl<F, B: AsBreaker, K> fmt::Debug for BreakerFuture<F, B, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match &self.admitted {
            Some(Ok(_)) => "running",
            Some(Err(_)) => "rejected",
            None => "done",
        };
        f.debug_struct("BreakerFuture").field("stage", &stage).finish_non_exhaustive()
    }
}
