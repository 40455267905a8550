//! [`rejection`]: which kompoz layer refused a request, found in any error.

use core::fmt;
use std::error::Error;

use kompoz::Elapsed;
use kompoz::breaker::CircuitOpen;
use kompoz::limit::AcquireError;
use kompoz::rate::{KeyedError, RateLimited};

/// Why a kompoz layer refused a request (or cut it off), from [`rejection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// A [`TimeoutLayer`](crate::TimeoutLayer)'s time limit passed.
    TimedOut(Elapsed),
    /// A [`LimitLayer`](crate::LimitLayer) had no permit: shed, waited too long, or closed.
    Limit(AcquireError),
    /// A [`BreakerLayer`](crate::BreakerLayer)'s circuit is open (or half-open and busy).
    Circuit(CircuitOpen),
    /// A [`RateLimitLayer`](crate::RateLimitLayer) or
    /// [`KeyedRateLimitLayer`](crate::KeyedRateLimitLayer) had no cell for it yet (its
    /// `retry_after` says when it will), or no room for a new key.
    Rate(KeyedError),
}

impl Rejection {
    /// The HTTP status a server answers with: 504 (Gateway Timeout) for a time limit, 429
    /// (Too Many Requests) for a rate limit, 503 (Service Unavailable) for a full limit,
    /// an open circuit, or a keyed rate limit with no room for another key.
    ///
    /// ```
    /// use kompoz::limit::AcquireError;
    /// use kompoz_tower::Rejection;
    ///
    /// assert_eq!(Rejection::Limit(AcquireError::NoPermits).http_status(), 503);
    /// assert_eq!(Rejection::TimedOut(kompoz::Elapsed::new()).http_status(), 504);
    /// ```
    pub fn http_status(&self) -> u16 {
        match self {
            Rejection::TimedOut(_) => 504,
            Rejection::Rate(KeyedError::RateLimited(_)) => 429,
            Rejection::Limit(_) | Rejection::Circuit(_) | Rejection::Rate(_) => 503,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TimedOut(elapsed) => elapsed.fmt(f),
            Rejection::Limit(error) => write!(f, "rejected by a concurrency limit: {error}"),
            Rejection::Circuit(open) => open.fmt(f),
            Rejection::Rate(refused) => refused.fmt(f),
        }
    }
}

impl Error for Rejection {}

/// The kompoz rejection in `error` or its `source()` chain, if any: the first one found,
/// from the outside in. Works on a layer's own error and on a [`tower::BoxError`](https://docs.rs/tower/0.5/tower/type.BoxError.html) made
/// from one, however many layers are nested; the inner service's own errors give `None`
/// (unless they carry a kompoz rejection themselves, for example a kompoz timeout inside
/// the inner service).
///
/// ```
/// use kompoz::limit::AcquireError;
/// use kompoz_tower::{ConcurrencyError, Rejection, TimeoutError, rejection};
///
/// let shed: TimeoutError<ConcurrencyError<std::io::Error>> =
///     TimeoutError::Inner(ConcurrencyError::Rejected(AcquireError::NoPermits));
/// assert_eq!(rejection(&shed), Some(Rejection::Limit(AcquireError::NoPermits)));
///
/// let failed: tower::BoxError =
///     TimeoutError::Inner(ConcurrencyError::Inner(std::io::Error::other("refused"))).into();
/// assert_eq!(rejection(&*failed), None);
/// ```
pub fn rejection(error: &(dyn Error + 'static)) -> Option<Rejection> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(elapsed) = error.downcast_ref::<Elapsed>() {
            return Some(Rejection::TimedOut(*elapsed));
        }
        if let Some(acquire) = error.downcast_ref::<AcquireError>() {
            return Some(Rejection::Limit(*acquire));
        }
        if let Some(open) = error.downcast_ref::<CircuitOpen>() {
            return Some(Rejection::Circuit(*open));
        }
        if let Some(refused) = error.downcast_ref::<KeyedError>() {
            return Some(Rejection::Rate(*refused));
        }
        if let Some(limited) = error.downcast_ref::<RateLimited>() {
            return Some(Rejection::Rate(KeyedError::RateLimited(*limited)));
        }
        if let Some(rejection) = error.downcast_ref::<Rejection>() {
            return Some(*rejection);
        }
        next = error.source();
    }
    None
}
