//! [`RateLimitLayer`] and [`KeyedRateLimitLayer`]: requests admitted at a rate, one
//! quota for all, or one per key (a client's address, an API key).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::hash::Hash;
use std::sync::Arc;

use kompoz::Clock;
use kompoz::rate::{AsRateLimiter, KeyedError, KeyedRateLimiter};
use tower::{Layer, Service};

/// Admits requests at the rate of a kompoz [`RateLimiter`](kompoz::RateLimiter) (GCRA:
/// a burst, then one per interval) and refuses the others at once with
/// [`RateLimitError::Rejected`], which says when the request would be admitted
/// ([`KeyedError::retry_after`]): an HTTP 429 with a `Retry-After`.
///
/// # What `poll_ready` reserves
///
/// Nothing: `poll_ready` forwards to the inner service, and the request takes its cell in
/// `call`, when it is really sent, so a service made ready and never called spends
/// nothing of the quota. A refused request does not reach the inner service.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::rate::{Quota, RateLimiter};
/// use kompoz::ManualClock;
/// use kompoz_tower::{RateLimitError, RateLimitLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = ManualClock::new();
/// let limiter = Arc::new(RateLimiter::new(Quota::per_second(2)?, clock.clone()));
/// let mut api = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
/// for n in 0..2 {
///     assert_eq!(api.ready().await?.call(n).await?, n);
/// }
/// let refused = api.ready().await?.call(3).await;
/// assert!(matches!(refused, Err(RateLimitError::Rejected(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RateLimitLayer<L> {
    limiter: L,
}

impl<L: AsRateLimiter + Clone> RateLimitLayer<L> {
    /// A layer in front of `limiter` (an `Arc<RateLimiter<_>>`, or a `&'static` one),
    /// shared by every service the layer makes.
    pub fn new(limiter: L) -> Self {
        RateLimitLayer { limiter }
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.limiter
    }
}

impl<S, L: Clone> Layer<S> for RateLimitLayer<L> {
    type Service = RateLimitService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, limiter: self.limiter.clone() }
    }
}

/// A service behind a rate limit, made by [`RateLimitLayer`].
#[derive(Clone, Copy, Debug)]
pub struct RateLimitService<S, L> {
    inner: S,
    limiter: L,
}

impl<S, L, Request> Service<Request> for RateLimitService<S, L>
where
    S: Service<Request>,
    L: AsRateLimiter,
{
    type Response = S::Response;
    type Error = RateLimitError<S::Error>;
    type Future = RateLimitFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RateLimitError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        match self.limiter.as_rate_limiter().check() {
            Ok(()) => RateLimitFuture::admitted(self.inner.call(request)),
            Err(limited) => RateLimitFuture::rejected(KeyedError::RateLimited(limited)),
        }
    }
}

/// Admits requests at a rate per key: `key(&request)` picks the quota (for example the
/// client's IP address from axum's `ConnectInfo`), each key getting the quota of a
/// [`KeyedRateLimiter`]. Otherwise like [`RateLimitLayer`]: nothing reserved in
/// `poll_ready`, a refusal at once from the response future. A limiter with a maximum
/// number of keys that are all recent refuses a new key with
/// [`KeyedError::TooManyKeys`].
///
/// ```
/// use std::sync::Arc;
/// use kompoz::rate::{KeyedRateLimiter, Quota};
/// use kompoz::ManualClock;
/// use kompoz_tower::{KeyedRateLimitLayer, RateLimitError};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // One request a second per client; the request is (client, payload).
/// let limiter = Arc::new(KeyedRateLimiter::new(Quota::per_second(1)?, ManualClock::new()));
/// let client = |request: &(&'static str, u32)| request.0;
/// let mut api = ServiceBuilder::new()
///     .layer(KeyedRateLimitLayer::new(limiter, client))
///     .service(service_fn(|(_, n): (&str, u32)| async move { Ok::<_, std::io::Error>(n) }));
/// assert_eq!(api.ready().await?.call(("alice", 1)).await?, 1);
/// assert_eq!(api.ready().await?.call(("bob", 2)).await?, 2); // a quota of his own
/// let refused = api.ready().await?.call(("alice", 3)).await;
/// assert!(matches!(refused, Err(RateLimitError::Rejected(_))));
/// # Ok(())
/// # }
/// ```
pub struct KeyedRateLimitLayer<K, C, F> {
    limiter: Arc<KeyedRateLimiter<K, C>>,
    key: F,
}

impl<K, C, F> KeyedRateLimitLayer<K, C, F> {
    /// A layer in front of `limiter`, keyed by `key(&request)`.
    pub fn new(limiter: Arc<KeyedRateLimiter<K, C>>, key: F) -> Self {
        KeyedRateLimitLayer { limiter, key }
    }

    /// The limiter.
    pub fn limiter(&self) -> &Arc<KeyedRateLimiter<K, C>> {
        &self.limiter
    }
}

impl<K, C, F: Clone> Clone for KeyedRateLimitLayer<K, C, F> {
    fn clone(&self) -> Self {
        KeyedRateLimitLayer { limiter: self.limiter.clone(), key: self.key.clone() }
    }
}

impl<K, C, F> fmt::Debug for KeyedRateLimitLayer<K, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer").finish_non_exhaustive()
    }
}

impl<S, K, C, F: Clone> Layer<S> for KeyedRateLimitLayer<K, C, F> {
    type Service = KeyedRateLimitService<S, K, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimitService { inner, layer: self.clone() }
    }
}

/// A service behind a rate limit per key, made by [`KeyedRateLimitLayer`].
pub struct KeyedRateLimitService<S, K, C, F> {
    inner: S,
    layer: KeyedRateLimitLayer<K, C, F>,
}

impl<S: Clone, K, C, F: Clone> Clone for KeyedRateLimitService<S, K, C, F> {
    fn clone(&self) -> Self {
        KeyedRateLimitService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S: fmt::Debug, K, C, F> fmt::Debug for KeyedRateLimitService<S, K, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S, K, C, F, Request> Service<Request> for KeyedRateLimitService<S, K, C, F>
where
    S: Service<Request>,
    K: Hash + Eq + Clone,
    C: Clock,
    F: Fn(&Request) -> K,
{
    type Response = S::Response;
    type Error = RateLimitError<S::Error>;
    type Future = RateLimitFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RateLimitError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let key = (self.layer.key)(&request);
        match self.layer.limiter.check(&key) {
            Ok(()) => RateLimitFuture::admitted(self.inner.call(request)),
            Err(refused) => RateLimitFuture::rejected(refused),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of the rate limit services: the inner response, or the
    /// refusal at once.
    #[must_use = "futures do nothing unless polled"]
    pub struct RateLimitFuture<F> {
        #[pin]
        inner: Option<F>,
        rejected: Option<KeyedError>,
    }
}

impl<F> RateLimitFuture<F> {
    fn admitted(inner: F) -> Self {
        RateLimitFuture { inner: Some(inner), rejected: None }
    }

    fn rejected(refused: KeyedError) -> Self {
        RateLimitFuture { inner: None, rejected: Some(refused) }
    }
}

impl<F, R, E> Future for RateLimitFuture<F>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, RateLimitError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => Poll::Ready(ready!(inner.poll(cx)).map_err(RateLimitError::Inner)),
            None => match this.rejected.take() {
                Some(refused) => Poll::Ready(Err(RateLimitError::Rejected(refused))),
                // Polled again after it completed.
                None => Poll::Pending,
            },
        }
    }
}

impl<F> fmt::Debug for RateLimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitFuture").field("rejected", &self.rejected).finish_non_exhaustive()
    }
}

/// The error of the rate limit services: refused by the rate limit (with the wait after
/// which it would be admitted), or the inner service failed.
///
/// Like all kompoz errors it [says each message once in a
/// chain](kompoz::Error#messages-and-sources): transparent for the inner service's error
/// (its message, and its source); a refusal says `rejected by a rate limit`, and its
/// source, the [`KeyedError`], says why (the wait, or the full key table).
///
/// ```
/// use std::error::Error as _;
/// use kompoz_tower::{RateLimitError, rejection};
///
/// let failed: RateLimitError<std::io::Error> = RateLimitError::Inner(std::io::Error::other("reset"));
/// assert!(!failed.is_rejected());
/// assert_eq!(rejection(&failed), None);
/// assert_eq!(failed.to_string(), "reset");
/// assert!(failed.source().is_none(), "the I/O error is this entry of the chain");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitError<E> {
    /// Not run: the quota has no cell for it yet (or, keyed, no room for a new key).
    Rejected(KeyedError),
    /// The inner service failed.
    Inner(E),
}

impl<E> RateLimitError<E> {
    /// Whether the rate limit refused the request.
    pub fn is_rejected(&self) -> bool {
        matches!(self, RateLimitError::Rejected(_))
    }

    /// How long until the request would be admitted, if it was refused for the rate.
    pub fn retry_after(&self) -> Option<core::time::Duration> {
        match self {
            RateLimitError::Rejected(refused) => refused.retry_after(),
            RateLimitError::Inner(_) => None,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            RateLimitError::Inner(error) => Some(error),
            RateLimitError::Rejected(_) => None,
        }
    }
}

/// The inner service's error's message; or what refused, whose details (the wait) are the
/// source's.
impl<E: fmt::Display> fmt::Display for RateLimitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitError::Rejected(_) => f.write_str("rejected by a rate limit"),
            RateLimitError::Inner(error) => error.fmt(f),
        }
    }
}

/// The refusal's [`KeyedError`], or the inner service's error's own source (that error
/// itself is this entry of the chain).
impl<E: std::error::Error + 'static> std::error::Error for RateLimitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RateLimitError::Rejected(refused) => Some(refused),
            RateLimitError::Inner(error) => error.source(),
        }
    }
}
