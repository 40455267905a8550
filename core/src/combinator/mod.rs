//! The combinator face of kompoz: rules that run on a context and report whether they
//! passed, composed with [`and`](AsyncCombinator::and), [`or`](AsyncCombinator::or),
//! [`not`](AsyncCombinator::not) and [`then`](AsyncCombinator::then), and wrapped with
//! resilience primitives such as [`with_timeout`](crate::with_timeout).
//!
//! # Why `run` borrows the context
//!
//! In kompoz (Python) `run(ctx)` returns `(ok, ctx)`. Here the context is lent to the run
//! as `&mut Ctx` instead of being moved in and handed back. Only the borrow lets every
//! wrapper give the caller its context back in every case: when a time limit passes, the
//! inner run is dropped mid-flight, and a context moved into it would be dropped with it;
//! a borrow simply ends, and the timeout handler and the caller see the context as the
//! inner run left it. The same holds when the caller itself cancels a run (drops its
//! future): the context stays with the caller. [`AsyncCombinator::run_owned`] gives the
//! kompoz shape, `(ok, ctx)`, on top.
//!
//! ```
//! use kompoz::{AsyncCombinator, async_pipe, async_rule};
//!
//! let positive = async_rule(async |n: &mut i32| *n > 0);
//! let double = async_pipe(async |n: &mut i32| *n *= 2);
//! let rule = positive.and(double);
//!
//! futures::executor::block_on(async {
//!     assert_eq!(rule.run_owned(21).await, (true, 42));
//!     assert_eq!(rule.run_owned(-1).await, (false, -1));
//! });
//! ```

use core::fmt;
use core::future::Future;

use crate::breaker::CircuitOpen;
use crate::limit::AcquireError;
use crate::rate::RateLimited;

mod compose;
mod limited;
mod parallel;
mod protected;
mod rate_limited;
mod retry;
mod rules;
mod with_timeout;

pub use compose::{And, Not, Or, Then};
#[cfg(all(target_has_atomic = "ptr", not(loom)))]
pub use limited::limited_named;
pub use limited::{Limited, MaxWait, WaitForPermit, WaitPolicy, limited, limited_on};
pub use parallel::{
    NoRules, ParallelAnd, ParallelOr, RuleSet, RuleSetLen, parallel_and, parallel_or,
};
pub use protected::{AsBreaker, ClassifyOutcome, NotPassedIsFailure, Protected, circuit_breaker};
#[cfg(feature = "std")]
pub use rate_limited::rate_limited;
#[cfg(all(feature = "std", not(loom)))]
pub use rate_limited::rate_limited_named;
pub use rate_limited::{Throttled, rate_limited_on};
#[cfg(feature = "std")]
pub use retry::retry;
pub use retry::{Retried, retry_on};
pub use rules::{AsyncPipe, AsyncRule, PipeOutput, async_pipe, async_rule};
#[cfg(feature = "std")]
pub use with_timeout::with_timeout;
pub use with_timeout::{NoTimeoutHandler, TimeoutHandler, WithTimeout, with_timeout_on};

/// How one run of a combinator ended.
///
/// [`Outcome::passed`] is kompoz's `ok`. The other variants tell *why* a run did not pass:
/// the rule itself failed, a time limit cancelled it, or a guard refused to run it at all.
/// A rejection is told apart from a failure of the rule, and costs no allocation. A
/// wrapper reports its own verdict (a timeout reports [`Outcome::TimedOut`]);
/// compositions pass on the outcome of the rule that decided the result.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{AsyncCombinator, Outcome, StdClock, async_rule, with_timeout_on};
///
/// let check = async_rule(async |n: &mut u32| {
///     if *n == 0 {
///         core::future::pending::<()>().await; // this input makes the check hang
///     }
///     *n % 2 == 0
/// });
/// let guarded = with_timeout_on(StdClock, check, Duration::from_millis(10));
///
/// futures::executor::block_on(async {
///     let cases = [(2, Outcome::Passed), (3, Outcome::Failed), (0, Outcome::TimedOut)];
///     for (input, expected) in cases {
///         let outcome = guarded.run_detailed(&mut { input }).await;
///         assert_eq!(outcome, expected);
///         match outcome {
///             Outcome::Passed => {}
///             Outcome::Failed => {}                  // the rule said no
///             Outcome::TimedOut => {}                // cut off: perhaps retry later
///             Outcome::Rejected(_) => unreachable!(), // no guard in this stack refuses
///         }
///     }
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The rule ran and passed (`ok == true`).
    Passed,
    /// The rule ran and did not pass.
    Failed,
    /// A time limit passed first and the run was cancelled.
    TimedOut,
    /// The rule was not run: a guard refused it.
    Rejected(Rejection),
}

/// Why a guard refused to run a rule.
///
/// ```
/// use kompoz::limit::AcquireError;
/// use kompoz::{AsyncCombinator, Outcome, Rejection, async_rule, limited};
///
/// let check = limited(async_rule(async |_: &mut ()| true), 1)?;
/// check.semaphore().close();
/// let outcome = futures::executor::block_on(check.run_detailed(&mut ()));
/// assert_eq!(outcome, Outcome::Rejected(Rejection::Limit(AcquireError::Closed)));
/// if let Outcome::Rejected(why) = outcome {
///     assert_eq!(why.to_string(), "rejected by a concurrency limit: the semaphore is closed");
/// }
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// A concurrency limit gave no permit: its maximum wait passed, or it is closed.
    Limit(AcquireError),
    /// A circuit breaker refused the run: the circuit is open.
    Circuit(CircuitOpen),
    /// A rate limit refused the run: its cell does not conform yet (the rejection says
    /// when it will).
    Rate(RateLimited),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Limit(error) => write!(f, "rejected by a concurrency limit: {error}"),
            Rejection::Circuit(open) => write!(f, "rejected by a circuit breaker: {open}"),
            Rejection::Rate(limited) => write!(f, "rejected by a rate limit: {limited}"),
        }
    }
}

impl Outcome {
    /// kompoz's `ok`: whether the run passed.
    ///
    /// ```
    /// use kompoz::Outcome;
    ///
    /// assert!(Outcome::Passed.passed());
    /// assert!(!Outcome::TimedOut.passed());
    /// ```
    pub const fn passed(self) -> bool {
        matches!(self, Outcome::Passed)
    }

    /// Whether a guard refused to run the rule (as opposed to the rule failing).
    ///
    /// ```
    /// use kompoz::breaker::{CircuitOpen, CircuitState};
    /// use kompoz::{Outcome, Rejection};
    ///
    /// let open = CircuitOpen { state: CircuitState::Open };
    /// let refused = Outcome::Rejected(Rejection::Circuit(open));
    /// assert!(refused.is_rejected());
    /// assert!(!Outcome::Failed.is_rejected());
    /// ```
    pub const fn is_rejected(self) -> bool {
        matches!(self, Outcome::Rejected(_))
    }
}

impl From<bool> for Outcome {
    fn from(ok: bool) -> Outcome {
        if ok { Outcome::Passed } else { Outcome::Failed }
    }
}

/// An async rule over a context of type `Ctx`: the Rust face of kompoz's
/// `AsyncCombinator`.
///
/// Make one from an async closure with [`async_rule`] or [`async_pipe`], or implement
/// [`run_detailed`](AsyncCombinator::run_detailed) for your own type. Runs share nothing
/// but `&self`: concurrent runs of one combinator each get their own verdict.
///
/// ```
/// use core::future::Future;
/// use kompoz::{AsyncCombinator, Outcome, async_rule};
///
/// /// A rule of your own: passes when the context is within a range.
/// struct Within(core::ops::RangeInclusive<u32>);
///
/// impl AsyncCombinator<u32> for Within {
///     fn run_detailed<'a>(&'a self, n: &'a mut u32) -> impl Future<Output = Outcome> + 'a {
///         async move { Outcome::from(self.0.contains(n)) }
///     }
/// }
///
/// // It composes with every other rule, and gets `run` and `run_owned` for free.
/// let rule = Within(1..=10).and(async_rule(async |n: &mut u32| *n % 2 == 0));
/// futures::executor::block_on(async {
///     assert_eq!(rule.run_owned(4).await, (true, 4));
///     assert_eq!(rule.run_owned(12).await, (false, 12));
/// });
/// ```
pub trait AsyncCombinator<Ctx: ?Sized> {
    /// Runs on `ctx` and tells how the run ended.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, Outcome, async_rule};
    ///
    /// let positive = async_rule(async |n: &mut i32| *n > 0);
    /// let mut n = -3;
    /// assert_eq!(futures::executor::block_on(positive.run_detailed(&mut n)), Outcome::Failed);
    /// ```
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a;

    /// Runs on `ctx` and tells whether it passed (kompoz's `ok`).
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_pipe};
    ///
    /// let trim = async_pipe(async |s: &mut String| *s = s.trim().to_string());
    /// let mut input = String::from("  hello ");
    /// assert!(futures::executor::block_on(trim.run(&mut input)));
    /// assert_eq!(input, "hello");
    /// ```
    fn run<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = bool> + 'a {
        async move { self.run_detailed(ctx).await.passed() }
    }

    /// Runs on an owned context and gives it back with the verdict: kompoz's
    /// `ok, ctx = await rule.run(ctx)`.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_pipe};
    ///
    /// let shout = async_pipe(async |s: &mut String| s.make_ascii_uppercase());
    /// let (ok, loud) = futures::executor::block_on(shout.run_owned(String::from("hi")));
    /// assert!(ok);
    /// assert_eq!(loud, "HI");
    /// ```
    fn run_owned(&self, ctx: Ctx) -> impl Future<Output = (bool, Ctx)>
    where
        Ctx: Sized,
    {
        async move {
            let mut ctx = ctx;
            let ok = self.run(&mut ctx).await;
            (ok, ctx)
        }
    }

    /// `self & next` in kompoz: runs `next` on the context only if `self` passed.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_pipe, async_rule};
    ///
    /// let positive = async_rule(async |n: &mut i32| *n > 0);
    /// let double = async_pipe(async |n: &mut i32| *n *= 2);
    /// let rule = positive.and(double);
    /// futures::executor::block_on(async {
    ///     assert_eq!(rule.run_owned(21).await, (true, 42));
    ///     assert_eq!(rule.run_owned(-1).await, (false, -1)); // `double` did not run
    /// });
    /// ```
    fn and<B: AsyncCombinator<Ctx>>(self, next: B) -> And<Self, B>
    where
        Self: Sized,
    {
        And::new(self, next)
    }

    /// `self | other` in kompoz: runs `other` only if `self` did not pass.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_rule};
    ///
    /// let admin = async_rule(async |role: &mut &str| *role == "admin");
    /// let owner = async_rule(async |role: &mut &str| *role == "owner");
    /// let may_delete = admin.or(owner);
    /// futures::executor::block_on(async {
    ///     assert!(may_delete.run(&mut "owner").await);
    ///     assert!(!may_delete.run(&mut "guest").await);
    /// });
    /// ```
    fn or<B: AsyncCombinator<Ctx>>(self, other: B) -> Or<Self, B>
    where
        Self: Sized,
    {
        Or::new(self, other)
    }

    /// `~self` in kompoz: passes exactly when `self` does not.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_rule};
    ///
    /// let banned = async_rule(async |user: &mut u32| *user == 13);
    /// let allowed = banned.not();
    /// futures::executor::block_on(async {
    ///     assert!(allowed.run(&mut 7).await);
    ///     assert!(!allowed.run(&mut 13).await);
    /// });
    /// ```
    fn not(self) -> Not<Self>
    where
        Self: Sized,
    {
        Not::new(self)
    }

    /// `self >> next` in kompoz: runs `next` whatever `self` gave; `next` decides.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_pipe, async_rule};
    ///
    /// let log = async_pipe(async |steps: &mut Vec<&str>| steps.push("logged"));
    /// let nonempty = async_rule(async |steps: &mut Vec<&str>| !steps.is_empty());
    /// let rule = nonempty.not().then(log);
    /// // `not()` fails on a non-empty list, and `log` runs anyway and decides.
    /// let (ok, steps) = futures::executor::block_on(rule.run_owned(vec!["start"]));
    /// assert!(ok);
    /// assert_eq!(steps, ["start", "logged"]);
    /// ```
    fn then<B: AsyncCombinator<Ctx>>(self, next: B) -> Then<Self, B>
    where
        Self: Sized,
    {
        Then::new(self, next)
    }
}

impl<Ctx: ?Sized, C: AsyncCombinator<Ctx> + ?Sized> AsyncCombinator<Ctx> for &C {
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a {
        (**self).run_detailed(ctx)
    }
}

impl<Ctx: ?Sized, C: AsyncCombinator<Ctx> + ?Sized> AsyncCombinator<Ctx> for alloc::boxed::Box<C> {
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a {
        (**self).run_detailed(ctx)
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<Ctx: ?Sized, C: AsyncCombinator<Ctx> + ?Sized> AsyncCombinator<Ctx> for alloc::sync::Arc<C> {
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a {
        (**self).run_detailed(ctx)
    }
}
