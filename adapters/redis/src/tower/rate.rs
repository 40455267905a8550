//! [`FleetRateLimitLayer`] and [`FleetKeyedRateLimitLayer`]: requests admitted at the
//! rate of a fleet-wide quota, one for all or one per key.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::tower::{Layer, Service};
use kompoz::Clock;
use kompoz::rate::KeyedError;
use kompoz_tower::RateLimitError;

use crate::rate::combinator::Mode;
use crate::rate::{FleetKeyedRateLimiter, FleetRateLimiter};

type Checking = Pin<Box<dyn Future<Output = Result<(), KeyedError>> + Send>>;

/// Admits requests at the rate of a [`FleetRateLimiter`], one quota for the whole fleet:
/// kompoz-tower's `RateLimitLayer`, with the cells shared by every process. By default a
/// request waits for its cell (sleeping the wait Redis reports); with
/// [`reject`](FleetRateLimitLayer::reject) it is refused at once, with
/// [`max_wait`](FleetRateLimitLayer::max_wait) after at most a while. A refusal is
/// [`RateLimitError::Rejected`] with kompoz's `RateLimited` (its wait, for a
/// `Retry-After`); a limit failing closed while Redis is unreachable refuses the same
/// way, with the fleet's first reconnection delay as the wait.
///
/// Nothing is reserved in `poll_ready`, which only forwards to the inner service. The
/// check is a round trip, made by the response future: `call` moves the service it made
/// ready into it (leaving a clone in its place, so the inner service must be `Clone`),
/// and it is called once the cell is granted; a refused request never reaches it. The
/// check is a boxed future: one allocation per request, beside the round trip's own.
///
/// ```no_run
/// use kompoz::rate::Quota;
/// use kompoz_redis::Fleet;
/// use kompoz_redis::tower::{FleetRateLimitLayer, RateLimitError};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let limiter = fleet.rate_limit("api", Quota::per_minute(1)?).build()?;
/// let mut api = ServiceBuilder::new()
///     .layer(FleetRateLimitLayer::new(limiter).reject())
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
/// assert_eq!(api.ready().await?.call(1).await?, 1);
/// let refused = api.ready().await?.call(2).await.unwrap_err();
/// assert!(refused.retry_after().is_some_and(|wait| wait.as_secs() > 50));
/// # Ok(()) }
/// ```
pub struct FleetRateLimitLayer<C: Clock> {
    limiter: FleetRateLimiter<C>,
    mode: Mode,
}

impl<C: Clock> FleetRateLimitLayer<C> {
    /// A layer in front of `limiter`, a request waiting for its cell as long as it takes.
    pub fn new(limiter: FleetRateLimiter<C>) -> Self {
        FleetRateLimitLayer { limiter, mode: Mode::Wait }
    }

    /// Refuses a request at once when its cell does not conform now.
    pub fn reject(self) -> Self {
        FleetRateLimitLayer { mode: Mode::Reject, ..self }
    }

    /// Waits at most `max_wait` for the cell; then the request is refused.
    pub fn max_wait(self, max_wait: Duration) -> Self {
        FleetRateLimitLayer { mode: Mode::MaxWait(max_wait), ..self }
    }

    /// The limiter.
    pub fn limiter(&self) -> &FleetRateLimiter<C> {
        &self.limiter
    }
}

impl<C: Clock> Clone for FleetRateLimitLayer<C> {
    fn clone(&self) -> Self {
        FleetRateLimitLayer { limiter: self.limiter.clone(), mode: self.mode }
    }
}

impl<C: Clock> fmt::Debug for FleetRateLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetRateLimitLayer")
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .finish()
    }
}

impl<S, C: Clock> Layer<S> for FleetRateLimitLayer<C> {
    type Service = FleetRateLimitService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        FleetRateLimitService { inner, layer: self.clone() }
    }
}

/// A service behind a fleet-wide rate limit, made by [`FleetRateLimitLayer`].
pub struct FleetRateLimitService<S, C: Clock> {
    inner: S,
    layer: FleetRateLimitLayer<C>,
}

impl<S, C: Clock> FleetRateLimitService<S, C> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C: Clock> Clone for FleetRateLimitService<S, C> {
    fn clone(&self) -> Self {
        FleetRateLimitService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for FleetRateLimitService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetRateLimitService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, C, Request> Service<Request> for FleetRateLimitService<S, C>
where
    S: Service<Request> + Clone,
    C: Clock + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = RateLimitError<S::Error>;
    type Future = FleetRateLimitFuture<S, Request>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RateLimitError::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (limiter, mode) = (self.layer.limiter.clone(), self.layer.mode);
        let check: Checking = Box::pin(async move {
            match mode.admit(&limiter).await {
                Ok(()) => Ok(()),
                Err(error) => Err(limiter.keyed_error(error)),
            }
        });
        FleetRateLimitFuture::checking(check, take_ready(&mut self.inner), request)
    }
}

/// Admits requests at the rate of a [`FleetKeyedRateLimiter`]: `key(&request)` picks the
/// quota (a client's address, an account), each shared by the whole fleet. Otherwise
/// like [`FleetRateLimitLayer`] with [`reject`](FleetRateLimitLayer::reject): nothing
/// reserved in `poll_ready`, the check made by the response future, a refusal at once.
///
/// ```no_run
/// use kompoz::rate::Quota;
/// use kompoz_redis::Fleet;
/// use kompoz_redis::tower::{FleetKeyedRateLimitLayer, RateLimitError};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let limiter = fleet.rate_limit("per-client", Quota::per_second(1)?).build_keyed()?;
/// // The request is (client, payload).
/// let client = |request: &(&'static str, u32)| request.0;
/// let mut api = ServiceBuilder::new()
///     .layer(FleetKeyedRateLimitLayer::new(limiter, client))
///     .service(service_fn(|(_, n): (&str, u32)| async move { Ok::<_, std::io::Error>(n) }));
/// assert_eq!(api.ready().await?.call(("alice", 1)).await?, 1);
/// assert_eq!(api.ready().await?.call(("bob", 2)).await?, 2);
/// assert!(matches!(api.ready().await?.call(("alice", 3)).await, Err(RateLimitError::Rejected(_))));
/// # Ok(()) }
/// ```
pub struct FleetKeyedRateLimitLayer<C: Clock, F> {
    limiter: FleetKeyedRateLimiter<C>,
    key: F,
}

impl<C: Clock, F> FleetKeyedRateLimitLayer<C, F> {
    /// A layer in front of `limiter`, keyed by `key(&request)` (anything that is a
    /// `str`: a `String`, a `&'static str`, an `Arc<str>`).
    pub fn new(limiter: FleetKeyedRateLimiter<C>, key: F) -> Self {
        FleetKeyedRateLimitLayer { limiter, key }
    }

    /// The limiter.
    pub fn limiter(&self) -> &FleetKeyedRateLimiter<C> {
        &self.limiter
    }
}

impl<C: Clock, F: Clone> Clone for FleetKeyedRateLimitLayer<C, F> {
    fn clone(&self) -> Self {
        FleetKeyedRateLimitLayer { limiter: self.limiter.clone(), key: self.key.clone() }
    }
}

impl<C: Clock, F> fmt::Debug for FleetKeyedRateLimitLayer<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clock, F: Clone> Layer<S> for FleetKeyedRateLimitLayer<C, F> {
    type Service = FleetKeyedRateLimitService<S, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        FleetKeyedRateLimitService { inner, layer: self.clone() }
    }
}

/// A service behind a fleet-wide rate limit per key, made by [`FleetKeyedRateLimitLayer`].
pub struct FleetKeyedRateLimitService<S, C: Clock, F> {
    inner: S,
    layer: FleetKeyedRateLimitLayer<C, F>,
}

impl<S, C: Clock, F> FleetKeyedRateLimitService<S, C, F> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C: Clock, F: Clone> Clone for FleetKeyedRateLimitService<S, C, F> {
    fn clone(&self) -> Self {
        FleetKeyedRateLimitService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S: fmt::Debug, C: Clock, F> fmt::Debug for FleetKeyedRateLimitService<S, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKeyedRateLimitService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, C, F, K, Request> Service<Request> for FleetKeyedRateLimitService<S, C, F>
where
    S: Service<Request> + Clone,
    C: Clock + Send + Sync + 'static,
    F: Fn(&Request) -> K,
    K: AsRef<str> + Send + 'static,
{
    type Response = S::Response;
    type Error = RateLimitError<S::Error>;
    type Future = FleetRateLimitFuture<S, Request>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RateLimitError::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let key = (self.layer.key)(&request);
        let limiter = self.layer.limiter.clone();
        let check: Checking = Box::pin(async move {
            match limiter.check(key.as_ref()).await {
                Ok(()) => Ok(()),
                Err(error) => Err(limiter.keyed_error(error)),
            }
        });
        FleetRateLimitFuture::checking(check, take_ready(&mut self.inner), request)
    }
}

/// Takes the service that `poll_ready` made ready, leaving a clone (not ready) in its
/// place: tower's way to call a service after an asynchronous step.
fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

pin_project_lite::pin_project! {
    /// The response future of the fleet rate limit services: the check (a round trip),
    /// then the inner service's response; or the refusal.
    #[must_use = "futures do nothing unless polled"]
    pub struct FleetRateLimitFuture<S, Request>
    where
        S: Service<Request>,
    {
        check: Option<Checking>,
        // The service made ready for this request, and the request, until the check passes.
        service: Option<(S, Request)>,
        #[pin]
        inner: Option<S::Future>,
    }
}

impl<S: Service<Request>, Request> FleetRateLimitFuture<S, Request> {
    fn checking(check: Checking, service: S, request: Request) -> Self {
        FleetRateLimitFuture { check: Some(check), service: Some((service, request)), inner: None }
    }
}

impl<S, Request> Future for FleetRateLimitFuture<S, Request>
where
    S: Service<Request>,
{
    type Output = Result<S::Response, RateLimitError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(check) = this.check.as_mut() {
            let checked = ready!(check.as_mut().poll(cx));
            *this.check = None;
            let service = this.service.take();
            match (checked, service) {
                (Ok(()), Some((mut service, request))) => {
                    this.inner.set(Some(service.call(request)));
                }
                (Err(refused), _) => return Poll::Ready(Err(RateLimitError::Rejected(refused))),
                (Ok(()), None) => return Poll::Pending,
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            // Polled again after it completed.
            return Poll::Pending;
        };
        let response = ready!(inner.poll(cx));
        this.inner.set(None);
        Poll::Ready(response.map_err(RateLimitError::Inner))
    }
}

impl<S: Service<Request>, Request> fmt::Debug for FleetRateLimitFuture<S, Request> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match (&self.check, &self.inner) {
            (Some(_), _) => "checking",
            (None, Some(_)) => "running",
            (None, None) => "done",
        };
        f.debug_struct("FleetRateLimitFuture").field("stage", &stage).finish_non_exhaustive()
    }
}
