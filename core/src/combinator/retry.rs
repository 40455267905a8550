//! [`retry`]: kompoz's `AsyncRetry` around any combinator.

use core::fmt;
use core::time::Duration;

use super::{AsyncCombinator, Outcome};
use crate::retry::{
    Budget, Decision, DefaultRetryIf, NoBudget, NoHook, OnRetry, Progress, RetryIf, RetryPolicy,
};
use crate::time::Sleep;

/// Re-runs `rule` on the same context until it passes, as `policy` allows, waiting on the
/// runtime-agnostic [`StdClock`](crate::StdClock): kompoz's
/// `AsyncRetry(inner, max_attempts=3, backoff=0.0, exponential=False, jitter=0.0,
/// on_retry=None)` (the parameters are [`RetryPolicy`]'s, with the same defaults).
///
/// Adapter crates offer it on their runtime's timers (`kompoz_tokio::retry`);
/// [`retry_on`] takes any timer.
#[cfg(feature = "std")]
pub fn retry<R>(rule: R, policy: RetryPolicy) -> Retried<R, crate::StdClock> {
    retry_on(crate::StdClock, rule, policy)
}

/// Re-runs `rule` on the same context until it passes, as `policy` allows, waiting on
/// `timer` between attempts.
///
/// Each attempt gets the context as the previous one left it (kompoz's `last_ctx`). A
/// run ends with the first [`Outcome::Passed`], or with the last attempt's outcome.
/// Which outcomes are retried is [`DefaultRetryIf`] unless told otherwise: a circuit
/// breaker's rejection ends the run at once, a rejection that names its wait is retried
/// after exactly that wait. Cancelling the run (dropping its future) during a backoff
/// leaves nothing running.
///
/// ```
/// use core::time::Duration;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use kompoz::retry::RetryPolicy;
/// use kompoz::{AsyncCombinator, ManualClock, async_pipe, retry_on};
///
/// // Fails until its third run: counts runs in the context.
/// let flaky = async_pipe(async |runs: &mut u32| {
///     *runs += 1;
///     if *runs < 3 { Err(()) } else { Ok(()) }
/// });
/// let seen = AtomicU32::new(0);
/// let policy = RetryPolicy::builder().max_attempts(3).build()?;
/// let rule = retry_on(ManualClock::new(), flaky, policy)
///     .on_retry(|attempt, outcome, delay| {
///         seen.store(attempt, Ordering::Relaxed);
///         println!("attempt {attempt} gave {outcome:?}; again in {delay:?}");
///     });
/// assert_eq!(futures::executor::block_on(rule.run_owned(0)), (true, 3));
/// assert_eq!(seen.load(Ordering::Relaxed), 2);
/// # Ok::<(), kompoz::retry::RetryError>(())
/// ```
pub fn retry_on<R, S: Sleep>(timer: S, rule: R, policy: RetryPolicy) -> Retried<R, S> {
    Retried { rule, timer, policy, when: DefaultRetryIf, hook: NoHook, budget: NoBudget }
}

/// A combinator retried under a policy, made by [`retry`] or [`retry_on`].
#[derive(Clone, Copy)]
pub struct Retried<R, S, W = DefaultRetryIf, O = NoHook, B = NoBudget> {
    rule: R,
    timer: S,
    policy: RetryPolicy,
    when: W,
    hook: O,
    budget: B,
}

impl<R, S, W, O, B> Retried<R, S, W, O, B> {
    /// Calls `hook(attempt, &outcome, delay)` before each retry's wait: kompoz's
    /// `on_retry`, with `attempt` the number (from 1) of the attempt that did not pass.
    pub fn on_retry<O2>(self, hook: O2) -> Retried<R, S, W, O2, B>
    where
        O2: Fn(u32, &Outcome, Duration),
    {
        let Retried { rule, timer, policy, when, budget, .. } = self;
        Retried { rule, timer, policy, when, hook, budget }
    }

    /// Decides which outcomes are retried: `Fn(&Outcome) -> bool` or `-> Decision`.
    pub fn retry_if<W2, D>(self, when: W2) -> Retried<R, S, W2, O, B>
    where
        W2: Fn(&Outcome) -> D,
        D: Into<Decision>,
    {
        let Retried { rule, timer, policy, hook, budget, .. } = self;
        Retried { rule, timer, policy, when, hook, budget }
    }

    /// Counts runs in `budget` and retries only while it allows.
    pub fn budget<B2: Budget>(self, budget: B2) -> Retried<R, S, W, O, B2> {
        let Retried { rule, timer, policy, when, hook, .. } = self;
        Retried { rule, timer, policy, when, hook, budget }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The wrapped rule.
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx, R, S, W, O, B> AsyncCombinator<Ctx> for Retried<R, S, W, O, B>
where
    Ctx: ?Sized,
    R: AsyncCombinator<Ctx>,
    S: Sleep,
    W: RetryIf<Outcome>,
    O: OnRetry<Outcome>,
    B: Budget,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        let mut progress = Progress::begin(&self.policy, &self.timer, &self.budget);
        loop {
            let outcome = self.rule.run_detailed(ctx).await;
            if outcome.passed() {
                return outcome;
            }
            let wait = progress.after_failure(
                &self.policy,
                &self.timer,
                &self.when,
                &self.hook,
                &self.budget,
                &outcome,
            );
            match wait {
                None => return outcome,
                Some(Duration::ZERO) => {}
                Some(delay) => self.timer.sleep(delay).await,
            }
        }
    }
}

impl<R: fmt::Debug, S: fmt::Debug, W, O, B> fmt::Debug for Retried<R, S, W, O, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retried")
            .field("rule", &self.rule)
            .field("timer", &self.timer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
