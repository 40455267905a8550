//! [`LimitLayer`]: at most N requests in flight, waiting, waiting at most a while, or
//! shedding the rest at once.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use kompoz::limit::{AcquireError, AcquireOwned, LimitError, OwnedPermit, Semaphore};
use kompoz::{Sleep, Timeout};
use tower::{Layer, Service};

/// Limits the services it wraps to at most N requests in flight, counted by a
/// [`Semaphore`] (kompoz's: fair, cancellation-safe, allocation-free when uncontended).
///
/// What a request does when every permit is taken depends on the policy:
///
/// * [`LimitLayer::new`]: it waits, first come first served ([`WaitForPermit`]); the
///   service is not ready meanwhile, which is tower's back-pressure.
/// * [`max_wait`](LimitLayer::max_wait): it waits at most a while on a timer of yours
///   ([`MaxWait`]), then fails with [`AcquireError::WaitElapsed`].
/// * [`shed`](LimitLayer::shed): it fails at once with [`AcquireError::NoPermits`]
///   ([`Shed`]): load shedding, an HTTP 503.
///
/// # What `poll_ready` reserves
///
/// `poll_ready` takes one permit (waiting for it as the policy says) and keeps it in that
/// service value; the next `call` moves it into the response future, which gives it back
/// when the response is ready or when the future is dropped (a cancelled request). A
/// permit reserved and never used is given back when the service value is dropped, and
/// a clone starts without one (each clone reserves its own). A policy that gives up
/// (shed, maximum wait) makes `poll_ready` ready anyway, and the next `call` answers
/// with the rejection without calling the inner service; the inner service's
/// `poll_ready` is called only while a permit is held.
///
/// ```
/// use kompoz::limit::AcquireError;
/// use kompoz_tower::{ConcurrencyError, LimitLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = LimitLayer::new(1)?.shed();
/// let semaphore = layer.semaphore().clone();
/// let mut echo = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
///
/// let first = echo.ready().await?.call(1); // holds the only permit until it completes
/// let second = echo.ready().await?.call(2).await;
/// assert!(matches!(second, Err(ConcurrencyError::Rejected(AcquireError::NoPermits))));
/// assert_eq!(first.await?, 1);
/// assert_eq!(semaphore.available_permits(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LimitLayer<W = WaitForPermit> {
    semaphore: Arc<Semaphore>,
    wait: W,
}

impl LimitLayer {
    /// At most `max_concurrent` requests in flight, on a semaphore of its own; a zero or
    /// oversized limit is a [`LimitError`]. Waits for a permit as long as it takes.
    pub fn new(max_concurrent: usize) -> Result<Self, LimitError> {
        if max_concurrent == 0 {
            return Err(LimitError::ZeroPermits);
        }
        Ok(LimitLayer::on(Arc::new(Semaphore::new(max_concurrent)?)))
    }

    /// [`new`](LimitLayer::new), with a semaphore named `name`: its refusals and waits are
    /// reported under that name (to the core's `tracing` and `metrics` integrations, for
    /// example `kompoz_rejections_total{primitive="limit",name=..,cause="no_permits"}`).
    ///
    /// ```
    /// use kompoz_tower::LimitLayer;
    ///
    /// let layer = LimitLayer::named("front", 64)?.shed();
    /// assert_eq!(layer.semaphore().name(), Some("front"));
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
    pub fn named(
        name: impl Into<alloc::borrow::Cow<'static, str>>,
        max_concurrent: usize,
    ) -> Result<Self, LimitError> {
        if max_concurrent == 0 {
            return Err(LimitError::ZeroPermits);
        }
        Ok(LimitLayer::on(Arc::new(Semaphore::new(max_concurrent)?.with_name(name))))
    }

    /// A limit on a semaphore of the caller's, shared with whatever else holds it (for
    /// example a named limit from a [`Registry`](kompoz::limit::Registry)).
    pub fn on(semaphore: Arc<Semaphore>) -> Self {
        LimitLayer { semaphore, wait: WaitForPermit }
    }
}

impl<W> LimitLayer<W> {
    /// Rejects a request at once when no permit is free: load shedding.
    pub fn shed(self) -> LimitLayer<Shed> {
        LimitLayer { semaphore: self.semaphore, wait: Shed }
    }

    /// Waits at most `max_wait` on `timer` for a permit, then rejects the request.
    pub fn max_wait<T: Sleep + Clone>(
        self,
        timer: T,
        max_wait: Duration,
    ) -> LimitLayer<MaxWait<T>> {
        LimitLayer { semaphore: self.semaphore, wait: MaxWait { timer, max_wait } }
    }

    /// Waits for a permit as long as it takes (the default).
    pub fn wait_for_permit(self) -> LimitLayer<WaitForPermit> {
        LimitLayer { semaphore: self.semaphore, wait: WaitForPermit }
    }

    /// The semaphore that counts the requests (for its
    /// [`stats`](Semaphore::stats)).
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }
}

impl<S, W: WaitPolicy> Layer<S> for LimitLayer<W> {
    type Service = LimitService<S, W>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitService {
            inner,
            semaphore: self.semaphore.clone(),
            wait: self.wait.clone(),
            reserved: None,
            refused: None,
            waiting: None,
        }
    }
}

/// How a [`LimitService`] waits for a permit: [`WaitForPermit`], [`MaxWait`] or
/// [`Shed`].
pub trait WaitPolicy: Clone {
    /// The wait for a permit, once none is free.
    type Wait: Future<Output = Result<OwnedPermit, AcquireError>>;

    /// Starts waiting for a permit of `semaphore`.
    fn wait(&self, semaphore: Arc<Semaphore>) -> Self::Wait;

    /// Whether a request is rejected at once when no permit is free, without waiting.
    fn sheds(&self) -> bool {
        false
    }
}

/// Wait for a permit as long as it takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitForPermit;

impl WaitPolicy for WaitForPermit {
    type Wait = AcquireOwned;

    fn wait(&self, semaphore: Arc<Semaphore>) -> AcquireOwned {
        semaphore.acquire_owned()
    }
}

/// Reject at once when no permit is free.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shed;

impl WaitPolicy for Shed {
    type Wait = AcquireOwned;

    /// Never used: a shedding limit does not wait.
    fn wait(&self, semaphore: Arc<Semaphore>) -> AcquireOwned {
        semaphore.acquire_owned()
    }

    fn sheds(&self) -> bool {
        true
    }
}

/// Wait for a permit at most `max_wait` on `timer`.
#[derive(Clone, Copy, Debug)]
pub struct MaxWait<T> {
    timer: T,
    max_wait: Duration,
}

impl<T: Sleep + Clone> WaitPolicy for MaxWait<T> {
    type Wait = WaitAtMost<T>;

    fn wait(&self, semaphore: Arc<Semaphore>) -> WaitAtMost<T> {
        let wait = kompoz::timeout(self.timer.clone(), self.max_wait, semaphore.acquire_owned());
        WaitAtMost { wait }
    }
}

pin_project_lite::pin_project! {
    /// The wait of [`MaxWait`]: a permit, or [`AcquireError::WaitElapsed`].
    #[must_use = "futures do nothing unless polled"]
    pub struct WaitAtMost<T: Sleep> {
        #[pin]
        wait: Timeout<T, AcquireOwned>,
    }
}

impl<T: Sleep> Future for WaitAtMost<T> {
    type Output = Result<OwnedPermit, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waited = ready!(self.project().wait.poll(cx));
        Poll::Ready(waited.unwrap_or(Err(AcquireError::WaitElapsed)))
    }
}

impl<T: Sleep> fmt::Debug for WaitAtMost<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitAtMost").finish_non_exhaustive()
    }
}

/// A service with a concurrency limit, made by [`LimitLayer`]. See the layer for what
/// `poll_ready` reserves.
pub struct LimitService<S, W: WaitPolicy = WaitForPermit> {
    inner: S,
    semaphore: Arc<Semaphore>,
    wait: W,
    /// The permit `poll_ready` reserved for the next `call`. (Apart from `refused`, not as
    /// one `Result`: a pointer-sized `Option` moves in one register, where a tagged
    /// `Result` moved between the two calls cost store-forwarding stalls.)
    reserved: Option<OwnedPermit>,
    /// Why `poll_ready` could not reserve one (shed, waited too long, closed): the next
    /// `call` answers with it.
    refused: Option<AcquireError>,
    /// The wait for a permit in progress (boxed: it is pinned while queued, and only a
    /// contended request waits).
    waiting: Option<Pin<Box<W::Wait>>>,
}

impl<S, W: WaitPolicy> LimitService<S, W> {
    /// The semaphore that counts the requests.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Reserves a permit for the next `call` (or, if the policy gives up, the refusal),
    /// waiting as the policy says. Ready once `reserved` or `refused` is set.
    ///
    /// The outcome is stored where it belongs at once rather than returned: moving the
    /// permit's `Result` up through the calls cost the hot path a store-forwarding stall
    /// per request (a 16-byte copy of a value written as two parts).
    #[inline]
    fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.waiting.is_none() {
            // A free permit is taken without a wait (nobody is queued: the count is zero
            // while anyone is). Otherwise wait as the policy says, in line behind the others.
            let sheds = self.wait.sheds();
            if sheds || self.semaphore.available_permits() > 0 {
                match self.semaphore.clone().try_acquire_owned() {
                    Ok(permit) => {
                        self.reserved = Some(permit);
                        return Poll::Ready(());
                    }
                    Err(AcquireError::NoPermits) if !sheds => {} // taken meanwhile: wait
                    Err(refused) => {
                        self.refused = Some(refused);
                        return Poll::Ready(());
                    }
                }
            }
        }
        self.poll_wait(cx)
    }

    /// No permit was free: waits in line as the policy says (the rare, boxed path).
    #[cold]
    #[inline(never)]
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (wait, semaphore) = (&self.wait, &self.semaphore);
        let waiting = self.waiting.get_or_insert_with(|| Box::pin(wait.wait(semaphore.clone())));
        let outcome = ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        match outcome {
            Ok(permit) => self.reserved = Some(permit),
            Err(refused) => self.refused = Some(refused),
        }
        Poll::Ready(())
    }
}

impl<S: Clone, W: WaitPolicy> Clone for LimitService<S, W> {
    /// A clone of the service without the reservation: each clone reserves its own.
    fn clone(&self) -> Self {
        LimitService {
            inner: self.inner.clone(),
            semaphore: self.semaphore.clone(),
            wait: self.wait.clone(),
            reserved: None,
            refused: None,
            waiting: None,
        }
    }
}

impl<S: fmt::Debug, W: WaitPolicy + fmt::Debug> fmt::Debug for LimitService<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitService")
            .field("inner", &self.inner)
            .field("semaphore", &self.semaphore)
            .field("wait", &self.wait)
            .field("reserved", &self.reserved.is_some())
            .field("refused", &self.refused)
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl<S, W, Request> Service<Request> for LimitService<S, W>
where
    S: Service<Request>,
    W: WaitPolicy,
{
    type Response = S::Response;
    type Error = ConcurrencyError<S::Error>;
    type Future = LimitFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.reserved.is_none() && self.refused.is_none() {
            ready!(self.poll_reserve(cx));
        }
        if self.reserved.is_some() {
            // Holding a permit: ready when the inner service is.
            self.inner.poll_ready(cx).map_err(ConcurrencyError::Inner)
        } else {
            // Refused: `call` answers with the rejection.
            Poll::Ready(Ok(()))
        }
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(permit) = self.reserved.take() {
            return LimitFuture::running(self.inner.call(request), permit);
        }
        // Refused in `poll_ready`, or called without `poll_ready` (a breach of tower's
        // contract): then take a free permit if there is one, else reject; never wait,
        // never panic.
        let reserved = match self.refused.take() {
            Some(refused) => Err(refused),
            None => self.semaphore.clone().try_acquire_owned(),
        };
        match reserved {
            Ok(permit) => LimitFuture::running(self.inner.call(request), permit),
            Err(rejection) => LimitFuture::rejected(rejection),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`LimitService`]: holds the request's permit until the
    /// response is ready, and gives it back if dropped before.
    #[must_use = "futures do nothing unless polled"]
    pub struct LimitFuture<F> {
        #[pin]
        inner: Option<F>,
        // The request's permit, while the inner future runs.
        permit: Option<OwnedPermit>,
        // With no inner future: the rejection, until it is returned.
        rejection: Option<AcquireError>,
    }
}

impl<F> LimitFuture<F> {
    #[inline]
    fn running(inner: F, permit: OwnedPermit) -> Self {
        LimitFuture { inner: Some(inner), permit: Some(permit), rejection: None }
    }

    #[cold]
    fn rejected(rejection: AcquireError) -> Self {
        LimitFuture { inner: None, permit: None, rejection: Some(rejection) }
    }
}

impl<F, R, E> Future for LimitFuture<F>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, ConcurrencyError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return match this.rejection.take() {
                Some(rejection) => Poll::Ready(Err(ConcurrencyError::Rejected(rejection))),
                // Polled again after it completed.
                None => Poll::Pending,
            };
        };
        let response = ready!(inner.poll(cx));
        // The permit goes back as soon as the response is ready, not when the future is
        // dropped later.
        *this.permit = None;
        Poll::Ready(response.map_err(ConcurrencyError::Inner))
    }
}

impl<F> fmt::Debug for LimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitFuture")
            .field("permit", &self.permit)
            .field("rejection", &self.rejection)
            .finish_non_exhaustive()
    }
}

/// The error of a [`LimitService`]: rejected by the limit (shed, waited too long, or the
/// semaphore was closed), or the inner service failed.
///
/// It implements [`std::error::Error`] when the inner error does, so it converts into
/// [`tower::BoxError`](https://docs.rs/tower/0.5/tower/type.BoxError.html); [`rejection`](crate::rejection) finds the rejection again in a
/// boxed error. Like all kompoz errors it [says each message once in a
/// chain](kompoz::Error#messages-and-sources): transparent for the inner service's error;
/// a refusal says `rejected by a concurrency limit`, and its source, the [`AcquireError`],
/// says why.
///
/// ```
/// use std::error::Error as _;
/// use kompoz::limit::AcquireError;
/// use kompoz_tower::ConcurrencyError;
///
/// let shed: ConcurrencyError<std::io::Error> = ConcurrencyError::Rejected(AcquireError::NoPermits);
/// assert!(shed.is_rejected());
/// assert_eq!(shed.to_string(), "rejected by a concurrency limit");
/// assert_eq!(shed.source().unwrap().to_string(), "no permit is free");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConcurrencyError<E> {
    /// Not run: no permit (shed, a maximum wait that passed, or a closed semaphore).
    Rejected(AcquireError),
    /// The inner service failed.
    Inner(E),
}

impl<E> ConcurrencyError<E> {
    /// Whether the limit refused the request (as opposed to the inner service failing).
    pub fn is_rejected(&self) -> bool {
        matches!(self, ConcurrencyError::Rejected(_))
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            ConcurrencyError::Inner(error) => Some(error),
            ConcurrencyError::Rejected(_) => None,
        }
    }
}

/// The inner service's error's message; or what refused, whose details are the source's.
impl<E: fmt::Display> fmt::Display for ConcurrencyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConcurrencyError::Rejected(_) => f.write_str("rejected by a concurrency limit"),
            ConcurrencyError::Inner(error) => error.fmt(f),
        }
    }
}

/// The refusal's [`AcquireError`], or the inner service's error's own source (that error
/// itself is this entry of the chain).
impl<E: std::error::Error + 'static> std::error::Error for ConcurrencyError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConcurrencyError::Rejected(rejection) => Some(rejection),
            ConcurrencyError::Inner(error) => error.source(),
        }
    }
}
