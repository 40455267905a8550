//! [`Error`]: the one flat error a caller of a [`Pipeline`](crate::pipeline::Pipeline)
//! sees, and [`RetryAfter`], the "try again after" hint any error can carry.
//!
//! Every error of kompoz follows the chain convention written down on [`Error`] (under
//! "Messages and sources"): a message either in `Display` or in `source()`, never both.

use core::fmt;
use core::time::Duration;

use crate::combinator::Rejection;
use crate::timeout::Elapsed;

/// Why a guarded call did not give a value: its own error, a time limit, or a guard
/// that refused to run it.
///
/// However many primitives are stacked in a [`Pipeline`](crate::pipeline::Pipeline), the
/// caller matches on one flat enum, never on `Result<Result<T, E>, CallError<Elapsed>>`.
/// A rejection names the primitive that refused (a [`Rejection`], which new primitives
/// extend) with its details, and costs no allocation.
///
/// ```
/// use kompoz::{Error, Rejection};
/// use kompoz::breaker::{CircuitOpen, CircuitState};
///
/// fn describe(result: Result<u32, Error<&str>>) -> String {
///     match result {
///         Ok(n) => format!("got {n}"),
///         Err(Error::Inner(e)) => format!("the call failed: {e}"),
///         Err(Error::TimedOut(_)) => "too slow".to_string(),
///         Err(Error::Rejected(Rejection::Circuit(_))) => "the circuit is open".to_string(),
///         Err(other) => format!("not run: {other}"),
///     }
/// }
/// let open = Rejection::Circuit(CircuitOpen { state: CircuitState::Open });
/// assert_eq!(describe(Err(Error::Rejected(open))), "the circuit is open");
/// assert_eq!(describe(Err(Error::Inner("refused"))), "the call failed: refused");
/// ```
///
/// # Messages and sources
///
/// kompoz's errors follow Rust's error-chain convention: an error either says its
/// source's message in its own `Display`, or returns it from `source()`, never both, so
/// that reporters walking the chain (anyhow's `{:#}`, eyre, tracing's error fields,
/// `std::error::Report`) print each message once. The wrappers over a call's own error
/// ([`Error`] and the breaker's [`CallError`](crate::breaker::CallError) here, the tower
/// layers' errors in kompoz-tower) are *transparent* for it: their `Display` is the call's
/// error's, and their `source()` is that error's own source, so however many wrappers are
/// stacked the call's error is one entry of the chain. A refusal or a time limit says in
/// a few words what refused (`rejected by a circuit breaker`, `the call timed out`), and
/// its `source()` is the refusal's own error ([`CircuitOpen`](crate::breaker::CircuitOpen),
/// [`AcquireError`](crate::limit::AcquireError), [`RateLimited`](crate::rate::RateLimited),
/// [`Elapsed`]), which says why: the whole chain then reads
/// `rejected by a circuit breaker: call rejected: the circuit is open`, and a caller that
/// only has a `&dyn Error` finds the refusal by downcasting the chain's entries.
///
/// ```
/// use std::error::Error as _;
/// use kompoz::Error;
/// use kompoz::limit::AcquireError;
///
/// let failed: Error<std::io::Error> = Error::Inner(std::io::Error::other("connection reset"));
/// assert_eq!(failed.to_string(), "connection reset");
/// assert!(failed.source().is_none(), "the I/O error is this entry, not the next");
///
/// let shed: Error<std::io::Error> = kompoz::Rejection::Limit(AcquireError::NoPermits).into();
/// assert_eq!(shed.to_string(), "rejected by a concurrency limit");
/// let why = shed.source().unwrap();
/// assert_eq!(why.to_string(), "no permit is free");
/// assert_eq!(why.downcast_ref::<AcquireError>(), Some(&AcquireError::NoPermits));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error<E> {
    /// The call ran and returned this error.
    Inner(E),
    /// A time limit passed first; the call was cancelled.
    TimedOut(Elapsed),
    /// A guard refused to run the call: which one, and why.
    Rejected(Rejection),
}

impl<E> Error<E> {
    /// The call's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(error) => Some(error),
            _ => None,
        }
    }

    /// A reference to the call's own error, if it ran and failed.
    pub fn inner(&self) -> Option<&E> {
        match self {
            Error::Inner(error) => Some(error),
            _ => None,
        }
    }

    /// Whether a time limit passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut(_))
    }

    /// Whether a guard refused to run the call (as opposed to the call failing).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }

    /// The rejection, if a guard refused to run the call.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Error::Rejected(rejection) => Some(*rejection),
            _ => None,
        }
    }

    /// Maps the call's own error, keeping timeouts and rejections.
    pub fn map_inner<F, E2>(self, f: F) -> Error<E2>
    where
        F: FnOnce(E) -> E2,
    {
        match self {
            Error::Inner(error) => Error::Inner(f(error)),
            Error::TimedOut(elapsed) => Error::TimedOut(elapsed),
            Error::Rejected(rejection) => Error::Rejected(rejection),
        }
    }
}

impl<E> From<Elapsed> for Error<E> {
    fn from(elapsed: Elapsed) -> Self {
        Error::TimedOut(elapsed)
    }
}

impl<E> From<Rejection> for Error<E> {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

/// The call's own error's message; or what refused, whose details are the source's.
impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Inner(error) => error.fmt(f),
            Error::TimedOut(_) => f.write_str("the call timed out"),
            Error::Rejected(rejection) => f.write_str(rejection.refused_by()),
        }
    }
}

/// The call's own error's source (the call's error itself is this entry of the chain), or
/// the refusal's own error.
impl<E: core::error::Error + 'static> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Inner(error) => error.source(),
            Error::TimedOut(elapsed) => Some(elapsed),
            Error::Rejected(rejection) => Some(rejection.cause()),
        }
    }
}

impl Rejection {
    /// What refused, in a few words: the message of an [`Error::Rejected`] (and the start of
    /// the rejection's own message, which goes on with the refusal's).
    pub(crate) const fn refused_by(&self) -> &'static str {
        match self {
            Rejection::Limit(_) => "rejected by a concurrency limit",
            Rejection::Circuit(_) => "rejected by a circuit breaker",
            Rejection::Rate(_) => "rejected by a rate limit",
        }
    }

    /// The refusal's own error, which says why: the source of an [`Error::Rejected`].
    pub(crate) fn cause(&self) -> &(dyn core::error::Error + 'static) {
        match self {
            Rejection::Limit(error) => error,
            Rejection::Circuit(open) => open,
            Rejection::Rate(limited) => limited,
        }
    }
}

/// An error that may say when the call is worth trying again: a rate limiter's wait, an
/// HTTP `Retry-After` header, a server's back-pressure hint.
///
/// Retries honour it: by default a retry whose error carries a hint waits exactly that
/// long instead of its backoff (see [`retry`](mod@crate::retry)). Implement it for your own
/// error type to have your hints honoured:
///
/// ```
/// use core::time::Duration;
/// use kompoz::RetryAfter;
///
/// enum HttpError {
///     TooManyRequests { retry_after_secs: u64 },
///     ServerError(u16),
/// }
///
/// impl RetryAfter for HttpError {
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             HttpError::TooManyRequests { retry_after_secs } => {
///                 Some(Duration::from_secs(*retry_after_secs))
///             }
///             HttpError::ServerError(_) => None,
///         }
///     }
/// }
///
/// let busy = HttpError::TooManyRequests { retry_after_secs: 2 };
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(kompoz::Error::Inner(busy).retry_after(), Some(Duration::from_secs(2)));
/// ```
pub trait RetryAfter {
    /// How long to wait before trying again, if this error says.
    fn retry_after(&self) -> Option<Duration>;
}

/// A rejection carries a hint only when the guard knows when it will admit: a rate
/// limit does (the wait until its cell conforms); a concurrency limit or an open circuit
/// do not.
impl RetryAfter for Rejection {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::Rate(limited) => Some(limited.wait),
            Rejection::Limit(_) | Rejection::Circuit(_) => None,
        }
    }
}

/// The call's own error's hint, or the rejection's.
impl<E: RetryAfter> RetryAfter for Error<E> {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Inner(error) => error.retry_after(),
            Error::TimedOut(_) => None,
            Error::Rejected(rejection) => rejection.retry_after(),
        }
    }
}

impl<E: RetryAfter + ?Sized> RetryAfter for &E {
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::breaker::{CircuitOpen, CircuitState};
    use crate::limit::AcquireError;
    use alloc::string::ToString;

    #[test]
    fn messages_and_sources() {
        use core::error::Error as _;
        let open = Rejection::Circuit(CircuitOpen { state: CircuitState::Open });
        let e: Error<Elapsed> = Error::Rejected(open);
        assert_eq!(e.to_string(), "rejected by a circuit breaker");
        let cause = e.source().expect("the refusal is the source");
        assert_eq!(cause.to_string(), "call rejected: the circuit is open");
        assert!(cause.is::<CircuitOpen>() && cause.source().is_none());
        let t: Error<Elapsed> = Error::from(Elapsed::new());
        assert_eq!(t.to_string(), "the call timed out");
        assert!(t.is_timeout() && t.source().is_some_and(|cause| cause.is::<Elapsed>()));
        let inner = Error::Inner(Elapsed::new());
        assert_eq!(inner.to_string(), Elapsed::new().to_string());
        assert!(inner.source().is_none(), "transparent: the inner error's own source");
    }

    #[test]
    fn accessors() {
        let limit = Rejection::Limit(AcquireError::WaitElapsed);
        let e: Error<u8> = limit.into();
        assert_eq!((e.is_rejected(), e.rejection(), e.inner()), (true, Some(limit), None));
        assert_eq!(Error::Inner(3u8).map_inner(u16::from), Error::Inner(3u16));
        assert_eq!(Error::Inner(3u8).into_inner(), Some(3));
        assert_eq!(e.map_inner(u16::from).into_inner(), None);
    }
}
