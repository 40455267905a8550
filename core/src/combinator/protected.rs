//! [`circuit_breaker`]: a circuit breaker around any combinator.

use core::fmt;

use super::{AsyncCombinator, Outcome, Rejection};
use crate::breaker::{BreakerStats, CircuitBreaker, CircuitState, Verdict};
use crate::time::Clock;

/// Protects `rule` with `breaker`: kompoz's `circuit_breaker(rule, ...)`.
///
/// A run that does not pass (`ok == false`: failed, timed out, or rejected by an inner
/// limit) counts as a failure, a passing run as a success. While the circuit is open, runs
/// are rejected without running the rule: `ok == false` with
/// [`Outcome::Rejected`]`(`[`Rejection::Circuit`]`(..))`, told apart from a failure of the
/// rule, with no allocation. A run that is cancelled or panics counts as neither and gives
/// back its probe slot.
///
/// `breaker` may be owned, borrowed or shared (`Arc`), so several combinators can share
/// one breaker per dependency.
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::{CircuitBreaker, CircuitState};
/// use kompoz::{AsyncCombinator, async_rule, circuit_breaker};
///
/// let flaky_api = async_rule(async |_: &mut u32| false);
/// let protected = circuit_breaker(
///     flaky_api,
///     CircuitBreaker::builder()
///         .failure_threshold(3)
///         .recovery_timeout(Duration::from_secs(10))
///         .build()?,
/// );
/// futures::executor::block_on(async {
///     for _ in 0..5 {
///         assert_eq!(protected.run_owned(1).await, (false, 1));
///     }
/// });
/// assert_eq!(protected.state(), CircuitState::Open);
/// assert_eq!(protected.stats().rejected_calls, 2);
/// protected.reset();
/// assert_eq!(protected.state(), CircuitState::Closed);
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
pub fn circuit_breaker<R, B: AsBreaker>(rule: R, breaker: B) -> Protected<R, B> {
    Protected { rule, breaker }
}

/// Anything that holds a [`CircuitBreaker`]: the breaker itself, a reference, a `Box` or
/// an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::breaker::CircuitBreaker;
/// use kompoz::combinator::AsBreaker;
/// use kompoz::{async_rule, circuit_breaker};
///
/// // One breaker per dependency, shared by every rule that calls it.
/// let api = Arc::new(CircuitBreaker::builder().build()?);
/// let users = circuit_breaker(async_rule(async |_: &mut ()| true), api.clone());
/// let orders = circuit_breaker(async_rule(async |_: &mut ()| true), api.clone());
/// assert!(std::ptr::eq(users.breaker(), orders.breaker()));
/// assert!(std::ptr::eq(api.as_breaker(), users.breaker()));
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
pub trait AsBreaker {
    /// The breaker's clock.
    type Clock: Clock;
    /// The breaker.
    fn as_breaker(&self) -> &CircuitBreaker<Self::Clock>;
}

impl<C: Clock> AsBreaker for CircuitBreaker<C> {
    type Clock = C;
    fn as_breaker(&self) -> &CircuitBreaker<C> {
        self
    }
}

impl<B: AsBreaker + ?Sized> AsBreaker for &B {
    type Clock = B::Clock;
    fn as_breaker(&self) -> &CircuitBreaker<B::Clock> {
        (**self).as_breaker()
    }
}

impl<B: AsBreaker + ?Sized> AsBreaker for alloc::boxed::Box<B> {
    type Clock = B::Clock;
    fn as_breaker(&self) -> &CircuitBreaker<B::Clock> {
        (**self).as_breaker()
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<B: AsBreaker + ?Sized> AsBreaker for alloc::sync::Arc<B> {
    type Clock = B::Clock;
    fn as_breaker(&self) -> &CircuitBreaker<B::Clock> {
        (**self).as_breaker()
    }
}

/// A combinator protected by a circuit breaker, made by [`circuit_breaker`].
///
/// ```
/// use kompoz::breaker::CircuitBreaker;
/// use kompoz::{AsyncCombinator, Protected, async_rule, circuit_breaker};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let protected: Protected<_, _> = circuit_breaker(async_rule(async |n: &mut u8| *n > 1), &breaker);
/// assert_eq!(futures::executor::block_on(protected.run_owned(2)), (true, 2));
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Protected<R, B> {
    rule: R,
    breaker: B,
}

impl<R, B: AsBreaker> Protected<R, B> {
    /// The breaker.
    ///
    /// ```
    /// # use kompoz::{async_rule, circuit_breaker, breaker::CircuitBreaker};
    /// let protected = circuit_breaker(async_rule(async |_: &mut ()| true), CircuitBreaker::builder().build()?);
    /// protected.breaker().force_open();
    /// assert!(protected.breaker().try_acquire().is_err());
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn breaker(&self) -> &CircuitBreaker<B::Clock> {
        self.breaker.as_breaker()
    }

    /// The breaker's committed state (kompoz's `protected.state`).
    ///
    /// ```
    /// # use kompoz::{async_rule, circuit_breaker, breaker::CircuitBreaker};
    /// use kompoz::CircuitState;
    /// let protected = circuit_breaker(async_rule(async |_: &mut ()| true), CircuitBreaker::builder().build()?);
    /// assert_eq!(protected.state(), CircuitState::Closed);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn state(&self) -> CircuitState {
        self.breaker().state()
    }

    /// The breaker's counters (kompoz's `protected.get_stats()`).
    ///
    /// ```
    /// # use kompoz::{AsyncCombinator, async_rule, circuit_breaker, breaker::CircuitBreaker};
    /// let protected = circuit_breaker(async_rule(async |_: &mut ()| false), CircuitBreaker::builder().build()?);
    /// futures::executor::block_on(protected.run(&mut ()));
    /// assert_eq!(protected.stats().failure_count, 1);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn stats(&self) -> BreakerStats {
        self.breaker().stats()
    }

    /// Closes the circuit (kompoz's `await protected.reset()`).
    ///
    /// ```
    /// # use kompoz::{async_rule, circuit_breaker, breaker::CircuitBreaker};
    /// use kompoz::CircuitState;
    /// let protected = circuit_breaker(async_rule(async |_: &mut ()| true), CircuitBreaker::builder().build()?);
    /// protected.breaker().force_open();
    /// protected.reset();
    /// assert_eq!(protected.state(), CircuitState::Closed);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn reset(&self) {
        self.breaker().reset()
    }

    /// The wrapped rule.
    ///
    /// ```
    /// # use kompoz::{AsyncCombinator, async_rule, circuit_breaker, breaker::CircuitBreaker};
    /// let rule = async_rule(async |n: &mut u8| *n > 0);
    /// let protected = circuit_breaker(rule, CircuitBreaker::builder().build()?);
    /// // The rule itself, without the breaker.
    /// assert!(futures::executor::block_on(protected.inner().run(&mut 1)));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx, R, B> AsyncCombinator<Ctx> for Protected<R, B>
where
    Ctx: ?Sized,
    R: AsyncCombinator<Ctx>,
    B: AsBreaker,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        let guard = match self.breaker().try_acquire() {
            Ok(guard) => guard,
            Err(open) => return Outcome::Rejected(Rejection::Circuit(open)),
        };
        // If the run is cancelled or panics, the guard is dropped unsettled: no verdict.
        let outcome = self.rule.run_detailed(ctx).await;
        guard.record(Verdict::from(outcome.passed()));
        outcome
    }
}

impl<R: fmt::Debug, B: AsBreaker> fmt::Debug for Protected<R, B>
where
    B::Clock: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protected")
            .field("rule", &self.rule)
            .field("breaker", self.breaker())
            .finish()
    }
}
