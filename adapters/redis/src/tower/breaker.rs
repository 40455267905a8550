//! [`SharedBreakerLayer`]: a shared circuit breaker in front of a tower service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::tower::{Layer, Service};
use kompoz::Clock;
use kompoz::breaker::{CallError, CircuitOpen, Classify, ErrIsFailure};

use crate::breaker::{Admitted, LocalBreaker, OwnedSharedGuard, SharedBreaker};

type Probing<C> = Pin<Box<dyn Future<Output = Result<OwnedSharedGuard<C>, CircuitOpen>> + Send>>;

/// Puts a [`SharedBreaker`] in front of the services it wraps: kompoz-tower's
/// `BreakerLayer`, with the circuit shared by every process of the fleet. While the
/// fleet's circuit is open (as this process sees it), requests are refused at once with
/// [`CallError::Rejected`], without calling the inner service. What counts as a failure
/// is the classifier's call over the whole `Result<Response, Error>` (by default an
/// `Err`), as for the local layer.
///
/// Nothing is reserved in `poll_ready`, which only forwards to the inner service;
/// admission happens in `call`. While the fleet's circuit is closed that is the local
/// breaker's admission and one load of the fleet view: no round trip, no allocation, and
/// a success touches Redis zero times. Once the open period has passed, a request needs a
/// fleet-wide probe lease (one round trip): `call` then moves the service it made ready
/// into the response future (leaving a clone in its place, so the inner service must be
/// `Clone`), which calls it once the lease is granted. The response future keeps the
/// admission until the response is classified; dropped before, it records no verdict
/// and gives its probe lease back.
///
/// ```no_run
/// use kompoz::breaker::{CallError, Verdict};
/// use kompoz_redis::Fleet;
/// use kompoz_redis::tower::SharedBreakerLayer;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let breaker = fleet.breaker("payments").fleet_failure_threshold(20).build()?;
/// let server_errors = |result: &Result<u16, std::io::Error>| match result {
///     Ok(status) if *status >= 500 => Verdict::Failure,
///     Ok(_) => Verdict::Success,
///     Err(_) => Verdict::Failure,
/// };
/// let mut payments = ServiceBuilder::new()
///     .layer(SharedBreakerLayer::new(breaker).classify(server_errors))
///     .service(service_fn(|status: u16| async move { Ok::<_, std::io::Error>(status) }));
/// match payments.ready().await?.call(200).await {
///     Ok(status) => assert_eq!(status, 200),
///     Err(CallError::Rejected(open)) => println!("the fleet's circuit is {:?}", open.state),
///     Err(CallError::Inner(error)) => return Err(error.into()),
/// }
/// # Ok(()) }
/// ```
pub struct SharedBreakerLayer<C: Clock + Send + Sync, K = ErrIsFailure> {
    breaker: SharedBreaker<C>,
    classify: K,
}

impl<C: Clock + Send + Sync> SharedBreakerLayer<C> {
    /// A layer in front of `breaker`, counting `Err` as a failure and `Ok` as a success.
    pub fn new(breaker: SharedBreaker<C>) -> Self {
        SharedBreakerLayer { breaker, classify: ErrIsFailure }
    }
}

impl<C: Clock + Send + Sync, K> SharedBreakerLayer<C, K> {
    /// Decides what counts as a failure with `classify`, a function (or any
    /// [`Classify`]) of `&Result<Response, Error>`. It is cloned for each request.
    pub fn classify<K2>(self, classify: K2) -> SharedBreakerLayer<C, K2> {
        SharedBreakerLayer { breaker: self.breaker, classify }
    }

    /// The breaker.
    pub fn breaker(&self) -> &SharedBreaker<C> {
        &self.breaker
    }
}

impl<C: Clock + Send + Sync, K: Clone> Clone for SharedBreakerLayer<C, K> {
    fn clone(&self) -> Self {
        SharedBreakerLayer { breaker: self.breaker.clone(), classify: self.classify.clone() }
    }
}

impl<C: Clock + Send + Sync, K> fmt::Debug for SharedBreakerLayer<C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerLayer").field("breaker", &self.breaker).finish_non_exhaustive()
    }
}

impl<S, C: Clock + Send + Sync, K: Clone> Layer<S> for SharedBreakerLayer<C, K> {
    type Service = SharedBreakerService<S, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        SharedBreakerService {
            inner,
            breaker: self.breaker.clone(),
            local: LocalBreaker::of(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

/// A service behind a shared circuit breaker, made by [`SharedBreakerLayer`].
pub struct SharedBreakerService<S, C: Clock + Send + Sync, K = ErrIsFailure> {
    inner: S,
    breaker: SharedBreaker<C>,
    /// The handle that owned guards keep.
    local: LocalBreaker<C>,
    classify: K,
}

impl<S, C: Clock + Send + Sync, K> SharedBreakerService<S, C, K> {
    /// The breaker.
    pub fn breaker(&self) -> &SharedBreaker<C> {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C: Clock + Send + Sync, K: Clone> Clone for SharedBreakerService<S, C, K> {
    fn clone(&self) -> Self {
        SharedBreakerService {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            local: self.local.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, C: Clock + Send + Sync, K> fmt::Debug for SharedBreakerService<S, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C, K, Request> Service<Request> for SharedBreakerService<S, C, K>
where
    S: Service<Request> + Clone,
    C: Clock + Send + Sync + 'static,
    K: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = SharedBreakerFuture<S, Request, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let classify = self.classify.clone();
        match OwnedSharedGuard::admit(&self.local) {
            Admitted::Now(Ok(guard)) => SharedBreakerFuture {
                probing: None,
                waiting: None,
                inner: Some(self.inner.call(request)),
                admitted: Some(Ok((guard, classify))),
            },
            Admitted::Now(Err(open)) => SharedBreakerFuture {
                probing: None,
                waiting: None,
                inner: None,
                admitted: Some(Err(open)),
            },
            Admitted::Open => {
                // A round trip for a probe lease: the service made ready goes with the
                // request into the response future, a clone stays here.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                SharedBreakerFuture {
                    probing: Some(Box::pin(OwnedSharedGuard::admit_open(self.local.clone()))),
                    waiting: Some((ready, request, classify)),
                    inner: None,
                    admitted: None,
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SharedBreakerService`]: (once open, the round trip for a
    /// probe lease, then) the request, then the classifier's verdict. Dropped before the
    /// response, it records nothing and gives back its probe lease.
    #[must_use = "futures do nothing unless polled"]
    pub struct SharedBreakerFuture<S, Request, C, K>
    where
        S: Service<Request>,
        C: Clock,
        C: Send,
        C: Sync,
    {
        probing: Option<Probing<C>>,
        // The service made ready, the request and the classifier, until admitted.
        waiting: Option<(S, Request, K)>,
        #[pin]
        inner: Option<S::Future>,
        // The admission and the classifier, or (with no inner future) the rejection;
        // `None` once completed.
        admitted: Option<Result<(OwnedSharedGuard<C>, K), CircuitOpen>>,
    }
}

impl<S, Request, C, K> Future for SharedBreakerFuture<S, Request, C, K>
where
    S: Service<Request>,
    C: Clock + Send + Sync,
    K: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, CallError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(probing) = this.probing.as_mut() {
            let admission = ready!(probing.as_mut().poll(cx));
            *this.probing = None;
            match (admission, this.waiting.take()) {
                (Ok(guard), Some((mut service, request, classify))) => {
                    this.inner.set(Some(service.call(request)));
                    *this.admitted = Some(Ok((guard, classify)));
                }
                (Err(open), _) => return Poll::Ready(Err(CallError::Rejected(open))),
                (Ok(_), None) => return Poll::Pending,
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return match this.admitted.take() {
                Some(Err(open)) => Poll::Ready(Err(CallError::Rejected(open))),
                // Polled again after it completed.
                _ => Poll::Pending,
            };
        };
        let response = ready!(inner.poll(cx));
        this.inner.set(None);
        if let Some(Ok((guard, classify))) = this.admitted.take() {
            // The guard is held while the classifier runs: if it panics, the guard is
            // dropped unsettled and the request counts as neither.
            let verdict = classify.classify(&response);
            guard.record(verdict);
        }
        Poll::Ready(response.map_err(CallError::Inner))
    }
}

impl<S: Service<Request>, Request, C: Clock + Send + Sync, K> fmt::Debug
    for SharedBreakerFuture<S, Request, C, K>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match (&self.probing, &self.admitted) {
            (Some(_), _) => "probing",
            (None, Some(Ok(_))) => "running",
            (None, Some(Err(_))) => "rejected",
            (None, None) => "done",
        };
        f.debug_struct("SharedBreakerFuture").field("stage", &stage).finish_non_exhaustive()
    }
}
