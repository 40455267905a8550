//! [`BreakerGuard`]: permission to make one call, from
//! [`CircuitBreaker::try_acquire`].

use core::fmt;
use core::mem::ManuallyDrop;

use super::Verdict;
use super::circuit::{CircuitBreaker, Pass};
use crate::time::Clock;

/// Permission to make one call, from [`CircuitBreaker::try_acquire`]. Record the outcome
/// with [`success`](BreakerGuard::success), [`failure`](BreakerGuard::failure) or
/// [`record`](BreakerGuard::record). Dropped without a verdict (the call was cancelled or
/// panicked), it gives its probe slot back and records nothing.
///
/// ```
/// use kompoz::breaker::{CircuitBreaker, Verdict};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let guard = breaker.try_acquire()?;
/// let answer: Result<u32, &str> = Ok(7); // the call
/// guard.record(Verdict::from(answer.is_ok()));
/// assert_eq!(breaker.stats().success_count, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a guard dropped at once records nothing; call success() or failure()"]
pub struct BreakerGuard<'a, C: Clock> {
    breaker: &'a CircuitBreaker<C>,
    pass: Pass,
}

impl<'a, C: Clock> BreakerGuard<'a, C> {
    #[inline]
    pub(super) fn new(breaker: &'a CircuitBreaker<C>, pass: Pass) -> Self {
        BreakerGuard { breaker, pass }
    }

    /// The call succeeded.
    ///
    /// ```
    /// # let breaker = kompoz::breaker::CircuitBreaker::builder().build()?;
    /// breaker.try_acquire()?.success();
    /// assert_eq!(breaker.stats().success_count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn success(self) {
        self.record(Verdict::Success);
    }

    /// The call failed.
    ///
    /// ```
    /// # let breaker = kompoz::breaker::CircuitBreaker::builder().build()?;
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(breaker.stats().failure_count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure(self) {
        self.record(Verdict::Failure);
    }

    /// Records `verdict` for the call.
    ///
    /// ```
    /// use kompoz::breaker::Verdict;
    /// # let breaker = kompoz::breaker::CircuitBreaker::builder().build()?;
    /// // The call answered "not found": says nothing about the dependency's health.
    /// breaker.try_acquire()?.record(Verdict::Ignore);
    /// assert_eq!(breaker.stats().abandoned_calls, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record(self, verdict: Verdict) {
        // Not dropped: the verdict replaces the drop's "no verdict". If the breaker's
        // callback panics during `settle`, nothing records the call a second time.
        let guard = ManuallyDrop::new(self);
        guard.breaker.settle(guard.pass, verdict);
    }

    /// Whether this call is a half-open probe.
    ///
    /// ```
    /// # let breaker = kompoz::breaker::CircuitBreaker::builder().build()?;
    /// assert!(!breaker.try_acquire()?.is_probe(), "a closed circuit makes no probes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_probe(&self) -> bool {
        self.pass.ticket.probe()
    }

    /// Gives up the guard without settling, returning its pass.
    #[inline]
    pub(super) fn into_pass(self) -> Pass {
        ManuallyDrop::new(self).pass
    }
}

impl<C: Clock> Drop for BreakerGuard<'_, C> {
    fn drop(&mut self) {
        self.breaker.settle(self.pass, Verdict::Ignore);
    }
}

impl<C: Clock> fmt::Debug for BreakerGuard<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerGuard")
            .field("probe", &self.pass.ticket.probe())
            .finish_non_exhaustive()
    }
}
