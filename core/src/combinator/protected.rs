//! [`circuit_breaker`]: a circuit breaker around any combinator.

use core::fmt;

use super::{AsyncCombinator, Outcome, Rejection};
use crate::breaker::{BreakerStats, CircuitBreaker, CircuitState, Verdict};
use crate::time::Clock;

/// Protects `rule` with `breaker`: kompoz's `circuit_breaker(rule, ...)`.
///
/// By kompoz's rule, a run that does not pass (`ok == false`: failed, timed out, or
/// rejected by an inner limit) counts as a failure, a passing run as a success; say
/// otherwise with [`Protected::classify`]. While the circuit is open, runs are rejected
/// without running the rule: `ok == false` with
/// [`Outcome::Rejected`]`(`[`Rejection::Circuit`]`(..))`, told apart from a failure of the
/// rule, with no allocation. A run that is cancelled or panics (or whose classifier panics)
/// counts as neither and gives back its probe slot.
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
    Protected { rule, breaker, classify: NotPassedIsFailure }
}

/// Decides how a protected run's [`Outcome`] counts for its breaker: a success, a failure,
/// or neither ([`Verdict::Ignore`]). Implemented for [`NotPassedIsFailure`] (kompoz's rule,
/// the default) and for any `Fn(Outcome) -> Verdict`.
///
/// A classifier sees outcomes it may not know yet ([`Rejection`] is `#[non_exhaustive]`:
/// more guards may come), so a `match` on it ends with a catch-all arm.
///
/// ```
/// use kompoz::breaker::Verdict;
/// use kompoz::combinator::{ClassifyOutcome, NotPassedIsFailure};
/// use kompoz::{Outcome, Rejection};
///
/// // Our own concurrency limit turning a run away says nothing about the dependency.
/// let ours_is_not_theirs = |outcome: Outcome| match outcome {
///     Outcome::Passed => Verdict::Success,
///     Outcome::Rejected(Rejection::Limit(_)) => Verdict::Ignore,
///     _ => Verdict::Failure,
/// };
/// assert_eq!(ours_is_not_theirs.classify(Outcome::TimedOut), Verdict::Failure);
/// assert_eq!(NotPassedIsFailure.classify(Outcome::Passed), Verdict::Success);
/// ```
pub trait ClassifyOutcome {
    /// The verdict on `outcome`.
    fn classify(&self, outcome: Outcome) -> Verdict;
}

impl<F: Fn(Outcome) -> Verdict> ClassifyOutcome for F {
    fn classify(&self, outcome: Outcome) -> Verdict {
        self(outcome)
    }
}

/// kompoz's rule, the default of [`circuit_breaker`]: a passing run is a success, any other
/// (failed, timed out, rejected by an inner guard) a failure.
///
/// ```
/// use kompoz::breaker::Verdict;
/// use kompoz::combinator::{ClassifyOutcome, NotPassedIsFailure};
/// use kompoz::Outcome;
///
/// assert_eq!(NotPassedIsFailure.classify(Outcome::TimedOut), Verdict::Failure);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotPassedIsFailure;

impl ClassifyOutcome for NotPassedIsFailure {
    #[inline]
    fn classify(&self, outcome: Outcome) -> Verdict {
        Verdict::from(outcome.passed())
    }
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
pub struct Protected<R, B, K = NotPassedIsFailure> {
    rule: R,
    breaker: B,
    classify: K,
}

impl<R, B: AsBreaker> Protected<R, B> {
    /// Counts the rule's outcomes with `classify` instead of kompoz's rule: for example, a
    /// time limit or an inner concurrency limit turning a run away need not count against
    /// the dependency.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::{CircuitBreaker, Verdict};
    /// use kompoz::{AsyncCombinator, ManualClock, Outcome, Rejection, async_rule, circuit_breaker, limited};
    ///
    /// let clock = ManualClock::new();
    /// let pool = limited(async_rule(async |_: &mut ()| true), 1)?.max_wait(clock, Duration::ZERO);
    /// let _busy = pool.semaphore().try_acquire()?; // every permit taken
    /// let protected = circuit_breaker(&pool, CircuitBreaker::builder().failure_threshold(1).build()?)
    ///     .classify(|outcome: Outcome| match outcome {
    ///         Outcome::Passed => Verdict::Success,
    ///         Outcome::Rejected(Rejection::Limit(_)) => Verdict::Ignore,
    ///         _ => Verdict::Failure,
    ///     });
    /// let outcome = futures::executor::block_on(protected.run_detailed(&mut ()));
    /// assert!(matches!(outcome, Outcome::Rejected(Rejection::Limit(_))));
    /// assert_eq!(protected.stats().total_failures, 0, "not the dependency's failure");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn classify<K: ClassifyOutcome>(self, classify: K) -> Protected<R, B, K> {
        Protected { rule: self.rule, breaker: self.breaker, classify }
    }
}

impl<R, B: AsBreaker, K> Protected<R, B, K> {
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

impl<Ctx, R, B, K> AsyncCombinator<Ctx> for Protected<R, B, K>
where
    Ctx: ?Sized,
    R: AsyncCombinator<Ctx>,
    B: AsBreaker,
    K: ClassifyOutcome,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        let guard = match self.breaker().try_acquire() {
            Ok(guard) => guard,
            Err(open) => return Outcome::Rejected(Rejection::Circuit(open)),
        };
        // If the run is cancelled or panics, or the classifier panics, the guard is
        // dropped unsettled: no verdict.
        let outcome = self.rule.run_detailed(ctx).await;
        guard.record(self.classify.classify(outcome));
        outcome
    }
}

impl<R: fmt::Debug, B: AsBreaker, K> fmt::Debug for Protected<R, B, K>
where
    B::Clock: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protected")
            .field("rule", &self.rule)
            .field("breaker", self.breaker())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use core::time::Duration;

    use super::*;
    use crate::breaker::BreakerBuilder;
    use crate::{ManualClock, async_rule, limited, with_timeout_on};
    use futures::executor::block_on;

    fn breaker(clock: &ManualClock) -> CircuitBreaker<ManualClock> {
        BreakerBuilder::new().failure_threshold(1).build_with(clock.clone()).unwrap()
    }

    #[test]
    fn kompoz_rule_counts_every_run_that_did_not_pass_as_a_failure() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        let timed_out = with_timeout_on(
            clock.clone(),
            async_rule(async |_: &mut ()| core::future::pending::<bool>().await),
            Duration::ZERO,
        );
        let protected = circuit_breaker(timed_out, &b);
        assert_eq!(block_on(protected.run_detailed(&mut ())), Outcome::TimedOut);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn a_classifier_decides_what_each_outcome_counts_as() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        let timeouts_are_ours = |outcome: Outcome| match outcome {
            Outcome::Passed => Verdict::Success,
            Outcome::TimedOut => Verdict::Ignore,
            Outcome::Rejected(Rejection::Limit(_)) => Verdict::Success,
            _ => Verdict::Failure,
        };
        let slow = with_timeout_on(
            clock.clone(),
            async_rule(async |_: &mut ()| core::future::pending::<bool>().await),
            Duration::ZERO,
        );
        let protected = circuit_breaker(slow, &b).classify(timeouts_are_ours);
        assert_eq!(block_on(protected.run_detailed(&mut ())), Outcome::TimedOut);
        assert_eq!((b.state(), b.stats().abandoned_calls), (CircuitState::Closed, 1));

        let pool = limited(async_rule(async |_: &mut ()| true), 1)
            .unwrap()
            .max_wait(clock.clone(), Duration::ZERO);
        let _busy = pool.semaphore().try_acquire().unwrap();
        let protected = circuit_breaker(&pool, &b).classify(timeouts_are_ours);
        assert!(block_on(protected.run_detailed(&mut ())).is_rejected());
        assert_eq!((b.state(), b.stats().success_count), (CircuitState::Closed, 1));

        let failing =
            circuit_breaker(async_rule(async |_: &mut ()| false), &b).classify(timeouts_are_ours);
        assert_eq!(block_on(failing.run_detailed(&mut ())), Outcome::Failed);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn an_inner_breakers_rejection_can_count_as_neither() {
        let clock = ManualClock::new();
        let (inner, outer) = (breaker(&clock), breaker(&clock));
        inner.force_open();
        let protected =
            circuit_breaker(circuit_breaker(async_rule(async |_: &mut ()| true), &inner), &outer)
                .classify(|outcome: Outcome| match outcome {
                    Outcome::Rejected(Rejection::Circuit(_)) => Verdict::Ignore,
                    other => Verdict::from(other.passed()),
                });
        assert!(matches!(
            block_on(protected.run_detailed(&mut ())),
            Outcome::Rejected(Rejection::Circuit(_))
        ));
        assert_eq!((outer.state(), outer.stats().abandoned_calls), (CircuitState::Closed, 1));
    }

    #[test]
    fn a_panicking_classifier_counts_as_neither_and_frees_the_probe_slot() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        b.try_acquire().unwrap().failure();
        clock.advance(crate::breaker::DEFAULT_RECOVERY_TIMEOUT);
        let protected = circuit_breaker(async_rule(async |_: &mut ()| true), &b)
            .classify(|_: Outcome| -> Verdict { panic!("classifier bug") });
        let run = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            block_on(protected.run(&mut ()))
        }));
        assert!(run.is_err());
        let stats = b.stats();
        assert_eq!(
            (stats.state, stats.probes_in_flight, stats.total_failures),
            (CircuitState::HalfOpen, 0, 1)
        );
        assert!(b.try_acquire().unwrap().is_probe(), "the slot came back");
    }
}
