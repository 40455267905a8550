//! Which failures are retried ([`Decision`], [`RetryIf`]) and who hears of each retry
//! ([`OnRetry`]).

use core::time::Duration;

use crate::RetryAfter;
use crate::combinator::{Outcome, Rejection};
use crate::error::Error;

/// What to do after an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Do not retry: the call ends with this failure.
    GiveUp,
    /// Retry after the policy's backoff (if attempts and deadline allow).
    Retry,
    /// Retry after exactly this wait instead of the backoff: a "retry after" hint, such
    /// as a rate limiter's wait or an HTTP `Retry-After`.
    RetryAfter(Duration),
}

impl Decision {
    /// [`RetryAfter`](Decision::RetryAfter) with the hint, or
    /// [`Retry`](Decision::Retry) without one.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::retry::Decision;
    ///
    /// assert_eq!(Decision::from_hint(None), Decision::Retry);
    /// let wait = Duration::from_secs(2);
    /// assert_eq!(Decision::from_hint(Some(wait)), Decision::RetryAfter(wait));
    /// ```
    pub fn from_hint(hint: Option<Duration>) -> Decision {
        hint.map_or(Decision::Retry, Decision::RetryAfter)
    }
}

/// `true` retries after the backoff, `false` gives up.
impl From<bool> for Decision {
    fn from(retry: bool) -> Decision {
        if retry { Decision::Retry } else { Decision::GiveUp }
    }
}

/// Decides whether a failure is retried. Any `Fn(&E) -> D` where `D: Into<Decision>`
/// (a `bool` or a [`Decision`]) is one; so are [`RetryAll`] and [`DefaultRetryIf`].
pub trait RetryIf<E: ?Sized> {
    /// The decision for `error`.
    fn decide(&self, error: &E) -> Decision;
}

impl<E: ?Sized, F, D> RetryIf<E> for F
where
    F: Fn(&E) -> D,
    D: Into<Decision>,
{
    fn decide(&self, error: &E) -> Decision {
        self(error).into()
    }
}

/// Retries every failure after the backoff: the default of a plain retry, which knows
/// nothing of its error type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetryAll;

impl<E: ?Sized> RetryIf<E> for RetryAll {
    #[inline]
    fn decide(&self, _error: &E) -> Decision {
        Decision::Retry
    }
}

/// The default of the pipeline and of the combinator face:
///
/// * a circuit breaker's rejection is **never** retried: the circuit is open because the
///   dependency is failing, and retrying is the storm it exists to stop;
/// * a rejection that says when it will admit (a rate limit's wait) is retried after
///   exactly that wait ([`RetryAfter`]);
/// * everything else (the call's own errors, timeouts, a concurrency limit's rejection)
///   is retried after the backoff.
///
/// ```
/// use kompoz::breaker::{CircuitOpen, CircuitState};
/// use kompoz::retry::{Decision, DefaultRetryIf, RetryIf};
/// use kompoz::{Error, Rejection};
///
/// let open = Error::<()>::Rejected(Rejection::Circuit(CircuitOpen { state: CircuitState::Open }));
/// assert_eq!(DefaultRetryIf.decide(&open), Decision::GiveUp);
/// assert_eq!(DefaultRetryIf.decide(&Error::Inner(())), Decision::Retry);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DefaultRetryIf;

impl DefaultRetryIf {
    fn rejection(rejection: &Rejection) -> Decision {
        match rejection {
            Rejection::Circuit(_) => Decision::GiveUp,
            other => Decision::from_hint(other.retry_after()),
        }
    }
}

impl<E> RetryIf<Error<E>> for DefaultRetryIf {
    #[inline]
    fn decide(&self, error: &Error<E>) -> Decision {
        match error {
            Error::Rejected(rejection) => DefaultRetryIf::rejection(rejection),
            _ => Decision::Retry,
        }
    }
}

impl RetryIf<Outcome> for DefaultRetryIf {
    #[inline]
    fn decide(&self, outcome: &Outcome) -> Decision {
        match outcome {
            Outcome::Passed => Decision::GiveUp,
            Outcome::Rejected(rejection) => DefaultRetryIf::rejection(rejection),
            Outcome::Failed | Outcome::TimedOut => Decision::Retry,
        }
    }
}

/// Hears of each retry before its wait: kompoz's `on_retry(attempt, error, delay)`,
/// with `attempt` the number (from 1) of the attempt that just failed. Any
/// `Fn(u32, &E, Duration)` is one; [`NoHook`] is the default.
///
/// The hook runs outside any lock. If it panics, the panic reaches the caller, and the
/// retry is abandoned (nothing is left running).
pub trait OnRetry<E: ?Sized> {
    /// Attempt `attempt` failed with `error`; the next starts after `delay`.
    fn on_retry(&self, attempt: u32, error: &E, delay: Duration);
}

impl<E: ?Sized, F: Fn(u32, &E, Duration)> OnRetry<E> for F {
    fn on_retry(&self, attempt: u32, error: &E, delay: Duration) {
        self(attempt, error, delay)
    }
}

/// No `on_retry` hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoHook;

impl<E: ?Sized> OnRetry<E> for NoHook {
    #[inline]
    fn on_retry(&self, _attempt: u32, _error: &E, _delay: Duration) {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::breaker::{CircuitOpen, CircuitState};
    use crate::limit::AcquireError;

    #[test]
    fn defaults_never_retry_an_open_circuit() {
        let open = Rejection::Circuit(CircuitOpen { state: CircuitState::HalfOpen });
        let limit = Rejection::Limit(AcquireError::WaitElapsed);
        assert_eq!(DefaultRetryIf.decide(&Outcome::Rejected(open)), Decision::GiveUp);
        assert_eq!(DefaultRetryIf.decide(&Outcome::Rejected(limit)), Decision::Retry);
        assert_eq!(DefaultRetryIf.decide(&Outcome::TimedOut), Decision::Retry);
        assert_eq!(DefaultRetryIf.decide(&Outcome::Passed), Decision::GiveUp);
        assert_eq!(DefaultRetryIf.decide(&Error::<u8>::Rejected(limit)), Decision::Retry);
        assert_eq!(RetryIf::<str>::decide(&RetryAll, "x"), Decision::Retry);
    }

    #[test]
    fn closures_return_bools_or_decisions() {
        let odd = |n: &u32| n % 2 == 1;
        assert_eq!((odd.decide(&1), odd.decide(&2)), (Decision::Retry, Decision::GiveUp));
        let hinted = |n: &u64| Decision::from_hint(Some(Duration::from_millis(*n)));
        assert_eq!(hinted.decide(&5), Decision::RetryAfter(Duration::from_millis(5)));
    }
}
