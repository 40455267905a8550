//! [`OwnedBreakerGuard`]: a [`BreakerGuard`](super::BreakerGuard) that owns its handle on
//! the breaker, for futures that must not borrow it (tower services, spawned tasks).

use core::fmt;

use super::circuit::Pass;
use super::{CircuitOpen, Verdict};
use crate::combinator::AsBreaker;

/// Permission to make one call, holding a handle on its breaker (an `Arc`, a `&'static`,
/// anything that is [`AsBreaker`]) so that it can live in a `'static` future. It behaves
/// like a [`BreakerGuard`](super::BreakerGuard): record the outcome with
/// [`success`](OwnedBreakerGuard::success), [`failure`](OwnedBreakerGuard::failure) or
/// [`record`](OwnedBreakerGuard::record); dropped without a verdict (the call was
/// cancelled or panicked), it gives its probe slot back and records nothing.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::breaker::{CircuitBreaker, OwnedBreakerGuard};
///
/// let breaker = Arc::new(CircuitBreaker::builder().failure_threshold(1).build()?);
/// let guard = OwnedBreakerGuard::try_acquire(&breaker)?;
/// // The guard owns its own `Arc`: it can move into a spawned task.
/// std::thread::spawn(move || guard.success()).join().unwrap();
/// assert_eq!(breaker.stats().success_count, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a guard dropped at once records nothing; call success() or failure()"]
pub struct OwnedBreakerGuard<B: AsBreaker> {
    breaker: B,
    /// Taken when a verdict is recorded, so that `Drop` records nothing more.
    pass: Option<Pass>,
}

impl<B: AsBreaker> OwnedBreakerGuard<B> {
    /// Asks `breaker` to let a call in, like
    /// [`CircuitBreaker::try_acquire`](super::CircuitBreaker::try_acquire); on success the
    /// guard holds a clone of the handle. A rejection clones nothing.
    #[inline]
    pub fn try_acquire(breaker: &B) -> Result<Self, CircuitOpen>
    where
        B: Clone,
    {
        let pass = breaker.as_breaker().admit()?;
        Ok(OwnedBreakerGuard { breaker: breaker.clone(), pass: Some(pass) })
    }

    /// The call succeeded.
    #[inline]
    pub fn success(self) {
        self.record(Verdict::Success);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Verdict::Failure);
    }

    /// Records `verdict` for the call.
    #[inline]
    pub fn record(mut self, verdict: Verdict) {
        // The pass is taken first: if the breaker's callback panics during `settle`,
        // the guard is dropped with no pass and records nothing a second time.
        if let Some(pass) = self.pass.take() {
            self.breaker.as_breaker().settle(pass, verdict);
        }
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.pass.is_some_and(|pass| pass.ticket.probe())
    }

    /// The breaker's handle.
    pub fn breaker(&self) -> &B {
        &self.breaker
    }
}

impl<B: AsBreaker> Drop for OwnedBreakerGuard<B> {
    fn drop(&mut self) {
        if let Some(pass) = self.pass.take() {
            self.breaker.as_breaker().settle(pass, Verdict::Ignore);
        }
    }
}

impl<B: AsBreaker> fmt::Debug for OwnedBreakerGuard<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedBreakerGuard").field("probe", &self.is_probe()).finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use alloc::sync::Arc;
    use core::time::Duration;

    use super::*;
    use crate::breaker::{CircuitBreaker, CircuitState};
    use crate::time::ManualClock;

    fn breaker(clock: &ManualClock) -> Arc<CircuitBreaker<ManualClock>> {
        Arc::new(
            CircuitBreaker::builder()
                .failure_threshold(1)
                .recovery_timeout(Duration::from_secs(1))
                .build_with(clock.clone())
                .expect("valid"),
        )
    }

    #[test]
    fn a_dropped_owned_probe_gives_its_slot_back() {
        let clock = ManualClock::new();
        let breaker = breaker(&clock);
        OwnedBreakerGuard::try_acquire(&breaker).expect("closed").failure();
        clock.advance(Duration::from_secs(1));
        let probe = OwnedBreakerGuard::try_acquire(&breaker).expect("the probe");
        assert!(probe.is_probe());
        assert!(OwnedBreakerGuard::try_acquire(&breaker).is_err(), "one probe at a time");
        drop(probe);
        assert_eq!(breaker.stats().probes_in_flight, 0);
        OwnedBreakerGuard::try_acquire(&breaker).expect("the slot is free again").success();
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn a_rejection_clones_no_handle() {
        let clock = ManualClock::new();
        let breaker = breaker(&clock);
        breaker.force_open();
        assert!(OwnedBreakerGuard::try_acquire(&breaker).is_err());
        assert_eq!(Arc::strong_count(&breaker), 1);
        let guard = OwnedBreakerGuard::try_acquire(&&*breaker);
        assert!(guard.is_err());
    }

    #[test]
    fn a_recorded_guard_releases_its_handle() {
        let clock = ManualClock::new();
        let breaker = breaker(&clock);
        let guard = OwnedBreakerGuard::try_acquire(&breaker).expect("closed");
        assert_eq!(Arc::strong_count(&breaker), 2);
        guard.record(Verdict::Failure);
        assert_eq!(Arc::strong_count(&breaker), 1);
        assert_eq!(breaker.state(), CircuitState::Open);
    }
}
