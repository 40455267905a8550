//! [`TimeoutLayer`]: a time limit on every response.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use kompoz::events::{self, Event, EventKind, Primitive, Source};
use kompoz::{Elapsed, Sleep};
use tower::{Layer, Service};

/// Puts a time limit on every response of the services it wraps: a response that is not
/// ready within `duration` is a [`TimeoutError::Elapsed`], and the inner service's
/// response future is dropped at that moment (which cancels the request).
///
/// The limit counts from the first poll of the response future, not from `poll_ready`:
/// waiting for readiness is back-pressure, not slowness. A response that is ready at once
/// never touches the timer (see [`kompoz::timeout()`]). `poll_ready` reserves nothing of
/// its own.
///
/// ```
/// use std::time::Duration;
/// use kompoz_tokio::TokioClock;
/// use kompoz_tower::{TimeoutError, TimeoutLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut slow = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(TokioClock, Duration::from_millis(100)))
///     .service(service_fn(|wait: u64| async move {
///         tokio::time::sleep(Duration::from_millis(wait)).await;
///         Ok::<_, std::io::Error>(wait)
///     }));
/// assert_eq!(slow.ready().await.unwrap().call(10).await.unwrap(), 10);
/// let late = slow.ready().await.unwrap().call(500).await;
/// assert!(matches!(late, Err(TimeoutError::Elapsed(_))));
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer<T> {
    timer: T,
    duration: Duration,
    name: &'static str,
}

impl<T: Sleep + Clone> TimeoutLayer<T> {
    /// A time limit of `duration` on `timer` (for example `kompoz_tokio::TokioClock`).
    /// [`Duration::MAX`] never expires.
    pub fn new(timer: T, duration: Duration) -> Self {
        TimeoutLayer { timer, duration, name: "" }
    }

    /// Names the time limit: each request it cuts off is reported as an
    /// [`EventKind::TimedOut`](kompoz::events::EventKind::TimedOut) event under this name,
    /// to the core's `tracing` and `metrics` integrations (`kompoz_timeouts_total{primitive="timeout",name=..}`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz_tokio::TokioClock;
    /// use kompoz_tower::TimeoutLayer;
    ///
    /// let layer = TimeoutLayer::new(TokioClock, Duration::from_secs(2)).name("payments");
    /// assert_eq!(layer.get_name(), "payments");
    /// ```
    pub fn name(self, name: &'static str) -> Self {
        TimeoutLayer { name, ..self }
    }

    /// The time limit's name (`""` if it has none).
    pub fn get_name(&self) -> &'static str {
        self.name
    }
}

impl<S, T: Clone> Layer<S> for TimeoutLayer<T> {
    type Service = TimeoutService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timer: self.timer.clone(),
            duration: self.duration,
            name: self.name,
        }
    }
}

/// A service with a time limit on its responses, made by [`TimeoutLayer`].
#[derive(Clone, Copy, Debug)]
pub struct TimeoutService<S, T> {
    inner: S,
    timer: T,
    duration: Duration,
    name: &'static str,
}

impl<S, T> TimeoutService<S, T> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The time limit.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl<S, T, Request> Service<Request> for TimeoutService<S, T>
where
    S: Service<Request>,
    T: Sleep + Clone,
{
    type Response = S::Response;
    type Error = TimeoutError<S::Error>;
    type Future = TimeoutFuture<T, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(TimeoutError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let response = self.inner.call(request);
        TimeoutFuture {
            inner: kompoz::timeout(self.timer.clone(), self.duration, response),
            duration: self.duration,
            name: self.name,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TimeoutService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct TimeoutFuture<T: Sleep, F> {
        #[pin]
        inner: kompoz::Timeout<T, F>,
        duration: Duration,
        name: &'static str,
    }
}

impl<T, F, R, E> Future for TimeoutFuture<T, F>
where
    T: Sleep,
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, TimeoutError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(TimeoutError::Inner(error)),
            Err(elapsed) => {
                timed_out(this.name, *this.duration);
                Err(TimeoutError::Elapsed(elapsed))
            }
        })
    }
}

/// Reports a request cut off by the time limit named `name`.
#[cold]
fn timed_out(name: &str, after: Duration) {
    let source = Source { primitive: Primitive::Timeout, name };
    events::report(&Event { source, kind: EventKind::TimedOut { after } });
}

impl<T: Sleep, F> fmt::Debug for TimeoutFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture").finish_non_exhaustive()
    }
}

/// The error of a [`TimeoutService`]: the time limit passed, or the inner service failed.
///
/// It implements [`std::error::Error`] when the inner error does, so it converts into
/// [`tower::BoxError`](https://docs.rs/tower/0.5/tower/type.BoxError.html) with `?` or `.into()`; [`rejection`](crate::rejection) finds the
/// timeout again in a boxed error. Like all kompoz errors it [says each message once in a
/// chain](kompoz::Error#messages-and-sources): transparent for the inner service's error; a
/// timeout says `the request timed out`, with the [`Elapsed`] as source.
///
/// ```
/// use std::error::Error as _;
/// use kompoz::Elapsed;
/// use kompoz_tower::TimeoutError;
///
/// let timed_out: TimeoutError<std::io::Error> = TimeoutError::Elapsed(Elapsed::new());
/// assert!(timed_out.is_elapsed());
/// assert_eq!(timed_out.to_string(), "the request timed out");
/// assert!(timed_out.source().is_some_and(|cause| cause.is::<Elapsed>()));
/// let boxed: tower::BoxError = timed_out.into();
/// assert!(kompoz_tower::rejection(&*boxed).is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutError<E> {
    /// The response was not ready in time; the request was cancelled.
    Elapsed(Elapsed),
    /// The inner service failed.
    Inner(E),
}

impl<E> TimeoutError<E> {
    /// Whether the time limit passed.
    pub fn is_elapsed(&self) -> bool {
        matches!(self, TimeoutError::Elapsed(_))
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            TimeoutError::Inner(error) => Some(error),
            TimeoutError::Elapsed(_) => None,
        }
    }
}

/// The inner service's error's message; or that the request timed out, the details
/// being the source's.
impl<E: fmt::Display> fmt::Display for TimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Elapsed(_) => f.write_str("the request timed out"),
            TimeoutError::Inner(error) => error.fmt(f),
        }
    }
}

/// The [`Elapsed`], or the inner service's error's own source (that error itself is this
/// entry of the chain).
impl<E: std::error::Error + 'static> std::error::Error for TimeoutError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TimeoutError::Elapsed(elapsed) => Some(elapsed),
            TimeoutError::Inner(error) => error.source(),
        }
    }
}
