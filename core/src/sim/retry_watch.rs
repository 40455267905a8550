//! [`RetryWatch`]: checks that a service's retries keep to their policy and their budget,
//! and never hammer a circuit breaker or a rate limiter that said no.
//!
//! How the budget's bound follows from the budget's rule is argued at
//! [`RetryWatch::with_budget`].

use core::time::Duration;

use super::invariants::FirstViolation;
use super::{RetryBudgetConfig, Violation};
use crate::retry::RetryPolicy;
use crate::sync::SpinMutex;
use crate::time::{Instant, duration_to_nanos};

/// The budget's bound, from its configuration.
#[derive(Clone, Copy, Debug)]
struct BudgetBound {
    /// Hundredths of a retry each call earns.
    retry_percent: u128,
    /// Hundredths of a retry each window grants whatever the traffic (as the budget
    /// computes it: `min_per_second × window`, rounded down).
    reserve: u128,
    /// A tenth of the window, in nanoseconds (at least 1).
    slot_nanos: u64,
}

impl BudgetBound {
    fn new(config: &RetryBudgetConfig) -> BudgetBound {
        let window = duration_to_nanos(config.window);
        BudgetBound {
            retry_percent: u128::from(config.retry_percent),
            reserve: u128::from(config.min_per_second) * u128::from(window) * 100 / 1_000_000_000,
            slot_nanos: (window / 10).max(1),
        }
    }

    /// The most retries a correct budget lets go over `elapsed`, for `calls` calls.
    fn allowed(&self, elapsed: Duration, calls: u64) -> u64 {
        let slots = duration_to_nanos(elapsed) / self.slot_nanos;
        let windows = u128::from(slots.saturating_add(1) / 10) + 1;
        let hundredths = windows * self.reserve + self.retry_percent * u128::from(calls);
        u64::try_from(hundredths / 100).unwrap_or(u64::MAX)
    }
}

/// What the watch counted over every call.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    calls: u64,
    retries: u64,
    /// When the first attempt of any call started.
    since: Option<Instant>,
}

/// Watches a retried call path: call [`call`](RetryWatch::call) where a call begins
/// (before its retry starts), [`attempt`](RetriedCall::attempt) first thing in each
/// attempt, and [`circuit_open`](RetriedCall::circuit_open) or
/// [`rate_limited`](RetriedCall::rate_limited) where an attempt learns it was refused.
/// It checks that:
///
/// * no call makes more than the policy's `max_attempts` attempts;
/// * no attempt starts later than the policy's `deadline` after the call's first one;
/// * an attempt refused by an open circuit is **not retried**: the breaker is open because
///   the dependency is failing, and retrying is the storm it exists to stop;
/// * an attempt refused by a rate limiter is retried no sooner than the limiter said it
///   would admit (its [`RateLimited::earliest`](crate::rate::RateLimited::earliest)):
///   sooner is refused again for sure, or worse, sent around the limiter;
/// * with [`with_budget`](RetryWatch::with_budget), the retries stay within what the
///   budget can let through.
///
/// ```
/// use core::time::Duration;
/// use kompoz::Instant;
/// use kompoz::retry::RetryPolicy;
/// use kompoz::sim::{RetryWatch, Violation};
///
/// let policy = RetryPolicy::builder().max_attempts(3).build()?;
/// let watch = RetryWatch::new(&policy);
/// let at = |ms| Instant::ZERO + Duration::from_millis(ms);
///
/// let call = watch.call();
/// call.attempt(at(0)); // fails: the dependency answered badly
/// call.attempt(at(10)); // the breaker refuses it
/// call.circuit_open();
/// assert_eq!(watch.check(), Ok(()));
/// call.attempt(at(20)); // retried anyway
/// assert_eq!(watch.check(), Err(Violation::RetriedOpenCircuit { attempt: 3, at: at(20) }));
/// assert_eq!((watch.calls(), watch.retries()), (1, 2));
/// # Ok::<(), kompoz::retry::RetryError>(())
/// ```
#[derive(Debug)]
pub struct RetryWatch {
    max_attempts: u32,
    deadline: Option<Duration>,
    budget: Option<BudgetBound>,
    totals: SpinMutex<Totals>,
    violation: FirstViolation,
}

impl RetryWatch {
    /// A watch of calls retried under `policy`.
    pub fn new(policy: &RetryPolicy) -> RetryWatch {
        RetryWatch {
            max_attempts: policy.max_attempts(),
            deadline: policy.deadline(),
            budget: None,
            totals: SpinMutex::new(Totals::default()),
            violation: FirstViolation::default(),
        }
    }

    /// Also checks that the retries of every call watched stay within a retry budget of
    /// this configuration, shared by them all (and by nothing else), on a clock that never
    /// steps back.
    ///
    /// A [`RetryBudget`](crate::retry::RetryBudget) cuts its window `W` into ten slots of
    /// `s = W / 10` (whole nanoseconds) and lets a retry go only while, over the ten slots
    /// ending with the current one, `100 × retries ≤ reserve + retry_percent × calls` (the
    /// reserve being `min_per_second × W` in hundredths of a retry, and the calls those
    /// settled into those slots). The watch does not see the slots, the settlement or the
    /// moment a retry was granted, so it checks what follows from that rule for every
    /// correct budget, whatever its slots' phase:
    ///
    /// ```text
    /// 100 × retries  ≤  windows × reserve + retry_percent × calls
    /// windows        =  ⌊(⌊elapsed / s⌋ + 1) / 10⌋ + 1
    /// ```
    ///
    /// with `elapsed` the time since the first attempt the watch saw. Why: take the last
    /// retry granted, in slot `m₁`; every retry of slots `m₁ − 9 ..= m₁` was granted by then
    /// and is in its window, so they number at most `(reserve + percent × their window's
    /// calls) / 100`. Then take the last retry granted before slot `m₁ − 9`, in slot `m₂`,
    /// and so on: the windows are disjoint and cover every retry, so their calls add up to
    /// at most every call made, and there are at most `windows` of them (their last slots
    /// are ten apart, all within the slots `elapsed` spans). A service that retries around
    /// its budget, or shares it wrongly, soon goes past the bound; a correct one never does.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::Instant;
    /// use kompoz::retry::RetryPolicy;
    /// use kompoz::sim::{RetryBudgetConfig, RetryWatch, Violation};
    ///
    /// // No reserve, and one retry per ten calls.
    /// let budget = RetryBudgetConfig { retry_percent: 10, min_per_second: 0, ..Default::default() };
    /// let watch = RetryWatch::new(&RetryPolicy::default()).with_budget(&budget);
    /// let calls: Vec<_> = (0..10).map(|_| watch.call()).collect();
    /// for call in &calls {
    ///     call.attempt(Instant::ZERO);
    /// }
    /// calls[0].attempt(Instant::ZERO); // the one retry ten calls earn
    /// assert_eq!(watch.check(), Ok(()));
    /// calls[1].attempt(Instant::ZERO);
    /// assert_eq!(
    ///     watch.check(),
    ///     Err(Violation::RetryBudgetExceeded { retries: 2, calls: 10, allowed: 1 }),
    /// );
    /// ```
    pub fn with_budget(mut self, budget: &RetryBudgetConfig) -> RetryWatch {
        self.budget = Some(BudgetBound::new(budget));
        self
    }

    /// A call begins: returns its handle, to report its attempts to.
    pub fn call(&self) -> RetriedCall<'_> {
        self.totals.with(|totals| totals.calls += 1);
        RetriedCall { watch: self, state: SpinMutex::new(CallState::default()) }
    }

    /// Calls begun so far.
    pub fn calls(&self) -> u64 {
        self.totals.with(|totals| totals.calls)
    }

    /// Retries (attempts after a call's first) started so far.
    pub fn retries(&self) -> u64 {
        self.totals.with(|totals| totals.retries)
    }

    /// The first violation seen, if any.
    pub fn check(&self) -> Result<(), Violation> {
        self.violation.check()
    }

    /// A call's attempt that is not its first started at `now`.
    fn retried(&self, now: Instant) {
        let found = self.totals.with(|totals| {
            totals.retries += 1;
            let budget = self.budget?;
            let since = totals.since.unwrap_or(now);
            let allowed = budget.allowed(now.saturating_duration_since(since), totals.calls);
            (totals.retries > allowed).then_some(Violation::RetryBudgetExceeded {
                retries: totals.retries,
                calls: totals.calls,
                allowed,
            })
        });
        if let Some(violation) = found {
            self.violation.record(violation);
        }
    }
}

/// How the latest attempt of a call was refused, if it was.
#[derive(Clone, Copy, Debug, Default)]
enum Refusal {
    #[default]
    None,
    CircuitOpen,
    RateLimited {
        earliest: Instant,
    },
}

#[derive(Clone, Copy, Debug, Default)]
struct CallState {
    attempts: u32,
    first: Option<Instant>,
    refusal: Refusal,
}

/// One call watched by a [`RetryWatch`], from [`RetryWatch::call`]: report each attempt
/// to it.
#[derive(Debug)]
pub struct RetriedCall<'a> {
    watch: &'a RetryWatch,
    state: SpinMutex<CallState>,
}

impl RetriedCall<'_> {
    /// An attempt starts at `now` (the retry's clock): call it first thing in the
    /// attempt, before any `.await`.
    pub fn attempt(&self, now: Instant) {
        let watch = self.watch;
        let (attempt, first, refusal) = self.state.with(|state| {
            state.attempts = state.attempts.saturating_add(1);
            let first = *state.first.get_or_insert(now);
            let refusal = core::mem::take(&mut state.refusal);
            (state.attempts, first, refusal)
        });
        if attempt == 1 {
            watch.totals.with(|totals| {
                totals.since.get_or_insert(now);
            });
        } else {
            watch.retried(now);
        }
        if attempt > watch.max_attempts {
            watch.violation.record(Violation::TooManyAttempts {
                attempts: attempt,
                max_attempts: watch.max_attempts,
            });
        }
        let elapsed = now.saturating_duration_since(first);
        if let Some(deadline) = watch.deadline.filter(|deadline| elapsed > *deadline) {
            watch.violation.record(Violation::AttemptPastDeadline { attempt, elapsed, deadline });
        }
        match refusal {
            Refusal::CircuitOpen => {
                watch.violation.record(Violation::RetriedOpenCircuit { attempt, at: now });
            }
            Refusal::RateLimited { earliest } if now < earliest => {
                watch.violation.record(Violation::RetriedTooSoon { attempt, at: now, earliest });
            }
            Refusal::RateLimited { .. } | Refusal::None => {}
        }
    }

    /// The latest attempt was refused by a circuit breaker: the call must not retry.
    pub fn circuit_open(&self) {
        self.state.with(|state| state.refusal = Refusal::CircuitOpen);
    }

    /// The latest attempt was refused by a rate limiter that admits from `earliest` (its
    /// [`RateLimited::earliest`](crate::rate::RateLimited::earliest)): the call must not
    /// retry before then.
    pub fn rate_limited(&self, earliest: Instant) {
        self.state.with(|state| state.refusal = Refusal::RateLimited { earliest });
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.state.with(|state| state.attempts)
    }
}
