//! [`PipelineLayer`]: a whole kompoz [`Pipeline`] (time limits, retries, limits, rate
//! limits, breakers, fallbacks, stacked in one typed value) around a tower service, as one
//! layer with one flat error.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Mutex;

#[cfg(doc)]
use kompoz::pipeline::Pipeline;
use tower::{Layer, Service};

/// The response future of a [`PipelineService`]: the pipeline's call, boxed.
pub type PipelineFuture<T, E> =
    Pin<Box<dyn Future<Output = Result<T, PipelineError<E>>> + Send + 'static>>;

/// One attempt of a request through the inner service, as the pipeline starts it (once,
/// or once per retry or hedge).
///
/// A struct rather than an alias of the boxed future: with the alias, rustc failed to
/// prove the pipeline's future `Send` ("one type is more general than the other", the
/// box's `'static` generalised inside the pipeline's higher-ranked bounds).
#[must_use = "futures do nothing unless polled"]
pub struct Attempt<T, E> {
    future: Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>,
}

impl<T, E> Future for Attempt<T, E> {
    type Output = Result<T, E>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for Attempt<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt").finish_non_exhaustive()
    }
}

/// What a [`PipelineLayer`] runs a request with: the pipeline, and what makes each of
/// the request's attempts. Written by [`pipeline_layer!`](crate::pipeline_layer) where
/// the pipeline's types are known (see [`PipelineLayer`] for why).
pub type Runner<P, T, E> = fn(Arc<P>, Attempts<T, E>) -> PipelineFuture<T, E>;

/// Makes the attempts of one request: each call sends the request (a clone of it) to the
/// inner service. The first attempt uses the service value `poll_ready` made ready; a
/// later one (a retry, a hedge) a clone of it, made ready first.
pub struct Attempts<T, E> {
    make: Box<dyn Fn() -> Attempt<T, E> + Send + Sync + 'static>,
}

impl<T, E> Attempts<T, E> {
    /// Starts one attempt.
    pub fn attempt(&self) -> Attempt<T, E> {
        (self.make)()
    }
}

impl<T, E> fmt::Debug for Attempts<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempts").finish_non_exhaustive()
    }
}

/// Puts a whole kompoz [`Pipeline`] around a tower service: each request runs through
/// every primitive of the pipeline, in its order, as one call; the answer is the
/// response or one [`PipelineError`] that says which primitive refused it.
///
/// Made with [`pipeline_layer!`](crate::pipeline_layer), which writes the [`Runner`]
/// where the pipeline's types are known: the pipeline's future is named by no type on
/// stable Rust, and whether it is `Send` can be seen only there (not in a generic
/// `Service` impl), so the macro boxes it as a `Send` future in your code.
///
/// # What `poll_ready` reserves
///
/// Nothing of the pipeline's: `poll_ready` forwards to the inner service. The pipeline's
/// guards (a permit, a rate limit's cell, a breaker's admission or probe slot) are taken
/// when the response future first runs, and given back when it completes or is dropped
/// (a cancelled request leaks no permit and no probe slot, and the breaker records no
/// verdict for it). Clones of the service share the one pipeline (an `Arc`): its
/// semaphores, breakers and rate limiters count every clone's requests together.
///
/// # Requests and attempts
///
/// The request must be `Clone`: each attempt (the first, and each retry or hedge the
/// pipeline makes) sends a clone, and the original is kept for the next one. The first
/// attempt goes to the service value that `poll_ready` made ready; a later attempt to a
/// clone of the inner service, made ready first (its readiness error is that attempt's
/// error).
///
/// # Cost
///
/// Unlike the other layers, this one allocates per request: the pipeline's future and
/// what makes its attempts are boxed (a rejection included), and each attempt's future
/// (which is why the inner service's future must be `Send`). Stack the per-primitive
/// layers ([`LimitLayer`](crate::LimitLayer), [`BreakerLayer`](crate::BreakerLayer), ...)
/// where that matters: they allocate nothing.
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::CircuitBreaker;
/// use kompoz::limit::Semaphore;
/// use kompoz_tower::{PipelineError, Rejection, pipeline_layer};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let permits = std::sync::Arc::new(Semaphore::new(0)?); // nothing admitted yet
/// let breaker = std::sync::Arc::new(CircuitBreaker::builder().failure_threshold(5).build()?);
/// let pipeline = kompoz_tokio::pipeline::<u32, std::io::Error>()
///     .timeout(Duration::from_secs(2))
///     .breaker(breaker.clone())
///     .limit(permits.clone())
///     .max_wait(Duration::ZERO);
/// let mut service = ServiceBuilder::new()
///     .layer(pipeline_layer!(pipeline))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
///
/// let refused = service.ready().await?.call(1).await.unwrap_err();
/// assert_eq!(refused.rejection().map(|r| r.http_status()), Some(503));
/// permits.add_permits(1)?;
/// assert_eq!(service.ready().await?.call(21).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct PipelineLayer<P, T, E> {
    pipeline: Arc<P>,
    run: Runner<P, T, E>,
}

impl<P, T, E> PipelineLayer<P, T, E> {
    /// A layer that runs each request through `pipeline` with `run` (which
    /// [`pipeline_layer!`](crate::pipeline_layer) writes for you).
    ///
    /// ```
    /// use kompoz_tower::PipelineLayer;
    ///
    /// let pipeline = kompoz_tokio::pipeline::<u32, std::io::Error>();
    /// let layer = PipelineLayer::with_runner(pipeline, |pipeline, attempts| {
    ///     Box::pin(async move {
    ///         pipeline.call(|| attempts.attempt()).await.map_err(Into::into)
    ///     })
    /// });
    /// # let _ = layer;
    /// ```
    pub fn with_runner(pipeline: P, run: Runner<P, T, E>) -> Self {
        PipelineLayer { pipeline: Arc::new(pipeline), run }
    }

    /// The pipeline (shared by every service this layer makes, and their clones).
    pub fn pipeline(&self) -> &Arc<P> {
        &self.pipeline
    }
}

/// Makes a [`PipelineLayer`] from a kompoz [`Pipeline`](kompoz::pipeline::Pipeline), writing its
/// [`Runner`] here, where the pipeline's types are known. See [`PipelineLayer`].
///
/// ```
/// use kompoz::limit::Semaphore;
/// use kompoz_tower::pipeline_layer;
///
/// let permits = Semaphore::new(8)?;
/// let layer = pipeline_layer!(kompoz_tokio::pipeline::<String, std::io::Error>().limit(permits));
/// # let _ = layer;
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
#[macro_export]
macro_rules! pipeline_layer {
    ($pipeline:expr) => {
        $crate::PipelineLayer::with_runner($pipeline, |pipeline, attempts| {
            ::std::boxed::Box::pin(async move {
                match pipeline.call(|| attempts.attempt()).await {
                    ::core::result::Result::Ok(response) => ::core::result::Result::Ok(response),
                    ::core::result::Result::Err(error) => {
                        ::core::result::Result::Err($crate::PipelineError::from(error))
                    }
                }
            })
        })
    };
}

impl<P, T, E> Clone for PipelineLayer<P, T, E> {
    fn clone(&self) -> Self {
        PipelineLayer { pipeline: self.pipeline.clone(), run: self.run }
    }
}

impl<P: fmt::Debug, T, E> fmt::Debug for PipelineLayer<P, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineLayer").field("pipeline", &self.pipeline).finish_non_exhaustive()
    }
}

impl<S, P, T, E> Layer<S> for PipelineLayer<P, T, E> {
    type Service = PipelineService<S, P, T, E>;

    fn layer(&self, inner: S) -> Self::Service {
        PipelineService { inner, layer: self.clone() }
    }
}

/// A service whose requests run through a kompoz [`Pipeline`], made by
/// [`PipelineLayer`]. See the layer for what `poll_ready` reserves.
pub struct PipelineService<S, P, T, E> {
    inner: S,
    layer: PipelineLayer<P, T, E>,
}

impl<S, P, T, E> PipelineService<S, P, T, E> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<P> {
        &self.layer.pipeline
    }
}

impl<S: Clone, P, T, E> Clone for PipelineService<S, P, T, E> {
    fn clone(&self) -> Self {
        PipelineService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, T, E> fmt::Debug for PipelineService<S, P, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineService")
            .field("inner", &self.inner)
            .field("pipeline", &self.layer.pipeline)
            .finish()
    }
}

impl<S, Request, P, T, E> Service<Request> for PipelineService<S, P, T, E>
where
    S: Service<Request, Response = T, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Request: Clone + Send + Sync + 'static,
    T: 'static,
    E: 'static,
{
    type Response = T;
    type Error = PipelineError<E>;
    type Future = PipelineFuture<T, E>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|error| PipelineError(kompoz::Error::Inner(error)))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The ready service goes to the first attempt; this value keeps a fresh clone
        // (tower's rule: the clone is not ready, the original is).
        let fresh = self.inner.clone();
        let ready = core::mem::replace(&mut self.inner, fresh);
        let services = Services { ready: Mutex::new(Some(ready)), template: Mutex::new(None) };
        let attempts = Attempts {
            make: Box::new(move || -> Attempt<T, E> {
                let request = request.clone();
                match services.take_ready() {
                    Some(mut ready) => {
                        let future = Box::pin(ready.call(request));
                        // Called: later attempts clone it (the clone is made ready first).
                        services.keep_as_template(ready);
                        Attempt { future }
                    }
                    None => {
                        let mut service = services.clone_template();
                        let future = Box::pin(async move {
                            core::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                            service.call(request).await
                        });
                        Attempt { future }
                    }
                }
            }),
        };
        (self.layer.run)(self.layer.pipeline.clone(), attempts)
    }
}

/// The inner service values of one request. Behind locks only so that what makes the
/// attempts is `Sync` (the pipeline's future holds it by reference across awaits, and must
/// be `Send`) without asking the service to be `Sync`; no lock is held while the service's
/// own code (`clone`, `call`) runs.
struct Services<S> {
    /// The value `poll_ready` made ready, until the first attempt takes it.
    ready: Mutex<Option<S>>,
    /// What later attempts clone: the first attempt's service, once called.
    template: Mutex<Option<S>>,
}

impl<S: Clone> Services<S> {
    /// The ready service, for the first attempt.
    fn take_ready(&self) -> Option<S> {
        lock(&self.ready).take()
    }

    /// Keeps the first attempt's service, once called, for later attempts to clone.
    fn keep_as_template(&self, service: S) {
        *lock(&self.template) = Some(service);
    }

    /// A clone of the service for a later attempt (not ready yet).
    fn clone_template(&self) -> S {
        // Taken out to be cloned outside the lock, and put back whatever the clone does.
        struct PutBack<'a, S> {
            slot: &'a Mutex<Option<S>>,
            service: Option<S>,
        }
        impl<S> Drop for PutBack<'_, S> {
            fn drop(&mut self) {
                if let Some(service) = self.service.take() {
                    *lock(self.slot) = Some(service);
                }
            }
        }
        let taken = lock(&self.template).take();
        let put_back = PutBack { slot: &self.template, service: taken };
        match &put_back.service {
            Some(template) => template.clone(),
            None => no_template(),
        }
    }
}

/// Attempts are made one at a time, by the request's own future, and the template is put
/// back even when a clone of it panics: a later attempt finds it, unless the first
/// attempt's `call` panicked and the request's future is polled again after that panic.
#[cold]
fn no_template() -> ! {
    panic!(
        "kompoz-tower: a retry found no service to send the request to (the service \
         panicked earlier in this request)"
    )
}

fn lock<S>(slot: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    // A panic in the service's `clone` cannot leave the slot half-written: poisoning
    // carries no meaning here.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error of a [`PipelineService`]: kompoz's one flat [`Error`](kompoz::Error) (the
/// inner service's error, a time limit that passed, or which guard refused the request).
///
/// It implements [`std::error::Error`] when the inner error does, so it converts into
/// [`tower::BoxError`](https://docs.rs/tower/0.5/tower/type.BoxError.html). It is
/// transparent over kompoz's error, which [says each message once in a
/// chain](kompoz::Error#messages-and-sources): the inner service's error is this entry of
/// the chain (its message, then its own source); a time limit or a refusal says what
/// refused (`rejected by a concurrency limit`), and its `source()` is the refusal's own
/// error (the [`Elapsed`](kompoz::Elapsed), an [`AcquireError`](kompoz::limit::AcquireError),
/// a [`CircuitOpen`](kompoz::breaker::CircuitOpen), a
/// [`RateLimited`](kompoz::rate::RateLimited)), which says why, and which
/// [`rejection`](crate::rejection) finds in a boxed one.
///
/// ```
/// use kompoz::limit::AcquireError;
/// use kompoz_tower::{PipelineError, Rejection, rejection};
///
/// let refused: PipelineError<std::io::Error> =
///     kompoz::Error::Rejected(kompoz::Rejection::Limit(AcquireError::WaitElapsed)).into();
/// assert_eq!(refused.rejection(), Some(Rejection::Limit(AcquireError::WaitElapsed)));
/// let boxed: tower::BoxError = refused.into();
/// assert_eq!(rejection(&*boxed), Some(Rejection::Limit(AcquireError::WaitElapsed)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineError<E>(pub kompoz::Error<E>);

impl<E> PipelineError<E> {
    /// Which guard refused the request, or the time limit that cut it off, if that is
    /// what this is (as [`rejection`](crate::rejection) would say).
    pub fn rejection(&self) -> Option<crate::Rejection> {
        match &self.0 {
            kompoz::Error::TimedOut(elapsed) => Some(crate::Rejection::TimedOut(*elapsed)),
            kompoz::Error::Rejected(kompoz::Rejection::Limit(error)) => {
                Some(crate::Rejection::Limit(*error))
            }
            kompoz::Error::Rejected(kompoz::Rejection::Circuit(open)) => {
                Some(crate::Rejection::Circuit(*open))
            }
            kompoz::Error::Rejected(kompoz::Rejection::Rate(limited)) => {
                Some(crate::Rejection::Rate(kompoz::rate::KeyedError::RateLimited(*limited)))
            }
            // The call's own error (and kinds a later kompoz may add).
            _ => None,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        self.0.into_inner()
    }

    /// kompoz's flat error.
    pub fn into_error(self) -> kompoz::Error<E> {
        self.0
    }
}

impl<E> From<kompoz::Error<E>> for PipelineError<E> {
    fn from(error: kompoz::Error<E>) -> Self {
        PipelineError(error)
    }
}

/// kompoz's [`Error`](kompoz::Error)'s message: the inner service's error's, or what refused.
impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// kompoz's [`Error`](kompoz::Error)'s source: the refusal's own error, or the inner
/// service's error's own source. `PipelineError` is transparent over kompoz's error, so
/// the two are one entry of the chain.
impl<E: std::error::Error + 'static> std::error::Error for PipelineError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}
