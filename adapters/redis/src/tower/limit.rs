//! [`FleetLimitLayer`]: a fleet-wide concurrency limit in front of a tower service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::tower::{Layer, Service};
use kompoz::limit::AcquireError;
use kompoz_tower::ConcurrencyError;

use crate::limit::{self, FleetLimit, FleetPermit};

type Acquiring = Pin<Box<dyn Future<Output = Result<FleetPermit, limit::AcquireError>> + Send>>;

/// Limits the services it wraps to the fleet-wide [`FleetLimit`]'s permits: kompoz-tower's
/// `LimitLayer`, with the permits shared by every process of the fleet.
///
/// `poll_ready` reserves one permit for the next `call`, waiting as the limit says (its
/// [`max_wait`](crate::limit::LimitBuilder::max_wait), in line in Redis), or, with
/// [`shed`](FleetLimitLayer::shed), asking once (one round trip). The response future
/// holds the permit until the response is ready, and gives it back if dropped before. A
/// limit that gives up makes `poll_ready` ready anyway, and the next `call` answers with
/// [`ConcurrencyError::Rejected`] without calling the inner service. A permit reserved and
/// never used goes back when the service value is dropped; a clone reserves its own. A
/// `call` without `poll_ready` (a breach of tower's contract) cannot wait for Redis: it is
/// refused with [`AcquireError::NoPermits`].
///
/// The acquisition is a boxed future (it is a round trip, and its state lives in the
/// service between polls): one allocation per request, beside the round trip's own.
///
/// ```no_run
/// use kompoz::limit::AcquireError;
/// use kompoz_redis::Fleet;
/// use kompoz_redis::tower::{ConcurrencyError, FleetLimitLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let limit = fleet.limit("search", 1).build()?;
/// let mut search = ServiceBuilder::new()
///     .layer(FleetLimitLayer::new(limit).shed())
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
/// let first = search.ready().await?.call(1); // holds the fleet's only permit
/// let second = search.ready().await?.call(2).await;
/// assert!(matches!(second, Err(ConcurrencyError::Rejected(AcquireError::NoPermits))));
/// assert_eq!(first.await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FleetLimitLayer {
    limit: FleetLimit,
    shed: bool,
}

impl FleetLimitLayer {
    /// A layer in front of `limit`, waiting for a permit as the limit says.
    pub fn new(limit: FleetLimit) -> Self {
        FleetLimitLayer { limit, shed: false }
    }

    /// Asks for a permit once ([`FleetLimit::try_acquire`]) and rejects the request if
    /// none is free: load shedding.
    pub fn shed(self) -> Self {
        FleetLimitLayer { shed: true, ..self }
    }

    /// The limit.
    pub fn limit(&self) -> &FleetLimit {
        &self.limit
    }
}

impl<S> Layer<S> for FleetLimitLayer {
    type Service = FleetLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FleetLimitService {
            inner,
            limit: self.limit.clone(),
            shed: self.shed,
            reserved: None,
            acquiring: None,
        }
    }
}

/// A service under a fleet-wide concurrency limit, made by [`FleetLimitLayer`].
pub struct FleetLimitService<S> {
    inner: S,
    limit: FleetLimit,
    shed: bool,
    /// What `poll_ready` reserved for the next `call`: a permit, or the rejection.
    reserved: Option<Result<FleetPermit, AcquireError>>,
    /// The acquisition in progress.
    acquiring: Option<Acquiring>,
}

impl<S> FleetLimitService<S> {
    /// The limit.
    pub fn limit(&self) -> &FleetLimit {
        &self.limit
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<Result<FleetPermit, AcquireError>> {
        let acquiring = self.acquiring.get_or_insert_with(|| {
            let (limit, shed) = (self.limit.clone(), self.shed);
            Box::pin(
                async move { if shed { limit.try_acquire().await } else { limit.acquire().await } },
            )
        });
        let permit = ready!(acquiring.as_mut().poll(cx));
        self.acquiring = None;
        Poll::Ready(permit.map_err(AcquireError::from))
    }
}

impl<S: Clone> Clone for FleetLimitService<S> {
    /// A clone of the service without the reservation: each clone reserves its own.
    fn clone(&self) -> Self {
        FleetLimitService {
            inner: self.inner.clone(),
            limit: self.limit.clone(),
            shed: self.shed,
            reserved: None,
            acquiring: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for FleetLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLimitService")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("shed", &self.shed)
            .field("reserved", &self.reserved.as_ref().map(|r| r.as_ref().map(|_| "permit")))
            .field("acquiring", &self.acquiring.is_some())
            .finish()
    }
}

impl<S, Request> Service<Request> for FleetLimitService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = ConcurrencyError<S::Error>;
    type Future = FleetLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.reserved.is_none() {
            let reserved = ready!(self.poll_reserve(cx));
            self.reserved = Some(reserved);
        }
        match self.reserved {
            // Holding a permit: ready when the inner service is.
            Some(Ok(_)) => self.inner.poll_ready(cx).map_err(ConcurrencyError::Inner),
            // Rejected: `call` answers with the rejection.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.reserved.take().unwrap_or(Err(AcquireError::NoPermits)) {
            Ok(permit) => {
                FleetLimitFuture { inner: Some(self.inner.call(request)), permit: Some(Ok(permit)) }
            }
            Err(rejection) => FleetLimitFuture { inner: None, permit: Some(Err(rejection)) },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`FleetLimitService`]: holds the request's fleet permit
    /// until the response is ready, and gives it back if dropped before.
    #[must_use = "futures do nothing unless polled"]
    pub struct FleetLimitFuture<F> {
        #[pin]
        inner: Option<F>,
        // The request's permit, or (with no inner future) the rejection.
        permit: Option<Result<FleetPermit, AcquireError>>,
    }
}

impl<F, R, E> Future for FleetLimitFuture<F>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, ConcurrencyError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return match this.permit.take() {
                Some(Err(rejection)) => Poll::Ready(Err(ConcurrencyError::Rejected(rejection))),
                // Polled again after it completed.
                _ => Poll::Pending,
            };
        };
        let response = ready!(inner.poll(cx));
        // The permit goes back as soon as the response is ready.
        *this.permit = None;
        Poll::Ready(response.map_err(ConcurrencyError::Inner))
    }
}

impl<F> fmt::Debug for FleetLimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match &self.permit {
            Some(Ok(_)) => "running",
            Some(Err(_)) => "rejected",
            None => "done",
        };
        f.debug_struct("FleetLimitFuture").field("stage", &stage).finish_non_exhaustive()
    }
}
