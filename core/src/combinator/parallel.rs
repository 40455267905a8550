//! [`parallel_and`] and [`parallel_or`]: kompoz's concurrent compositions.
//!
//! Every rule runs at once, each on its own copy of the context (kompoz gives them all
//! the same original context; here each gets a clone, so no rule sees another's
//! changes), all polled by the run's own future: no task is spawned, any executor
//! works. The caller's context is left as it was, as kompoz returns the original. Rules
//! no longer needed are dropped, which cancels them.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::Poll;

use super::{AsyncCombinator, Outcome};

/// Which composition, and when it may stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    /// All must pass; with `fail_fast`, stop at the first that does not.
    And { fail_fast: bool },
    /// One must pass; with `cancel_on_success`, stop at the first that does.
    Or { cancel_on_success: bool },
}

/// The verdict so far, from the outcomes seen: a pure fold.
#[derive(Clone, Copy, Debug)]
struct Tally {
    mode: Mode,
    left: usize,
    /// AND: the first outcome that did not pass. OR: the last one.
    failure: Option<Outcome>,
    passed: bool,
}

impl Tally {
    fn new(mode: Mode, rules: usize) -> Tally {
        Tally { mode, left: rules, failure: None, passed: false }
    }

    /// Records one rule's outcome; `Some` once the composition is decided.
    fn record(&mut self, outcome: Outcome) -> Option<Outcome> {
        self.left -= 1;
        if outcome.passed() {
            self.passed = true;
        } else if self.failure.is_none() || matches!(self.mode, Mode::Or { .. }) {
            self.failure = Some(outcome);
        }
        match self.mode {
            Mode::And { fail_fast: true } if !outcome.passed() => Some(outcome),
            Mode::Or { cancel_on_success: true } if outcome.passed() => Some(Outcome::Passed),
            _ if self.left == 0 => Some(self.result()),
            _ => None,
        }
    }

    fn result(&self) -> Outcome {
        match self.mode {
            Mode::And { .. } => self.failure.unwrap_or(Outcome::Passed),
            Mode::Or { .. } if self.passed => Outcome::Passed,
            Mode::Or { .. } => self.failure.unwrap_or(Outcome::Failed),
        }
    }
}

/// Rules that run side by side: tuples of up to eight combinators (of any types), or a
/// `Vec` of one type.
pub trait RuleSet<Ctx> {
    /// How many rules.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[doc(hidden)]
    /// Runs every rule on its own clone of `ctx` under `mode`'s stopping rule.
    #[allow(private_interfaces)]
    fn run_all<'a>(&'a self, ctx: &'a Ctx, mode: Mode) -> impl Future<Output = Outcome> + 'a;
}

macro_rules! tuple_rule_set {
    ($n:expr; $($R:ident $ctx:ident $run:ident $i:tt),+) => {
        impl<Ctx: Clone, $($R: AsyncCombinator<Ctx>),+> RuleSet<Ctx> for ($($R,)+) {
            fn len(&self) -> usize {
                $n
            }

            #[allow(private_interfaces)]
            async fn run_all<'a>(&'a self, ctx: &'a Ctx, mode: Mode) -> Outcome {
                $( let mut $ctx = ctx.clone(); )+
                $( let mut $run = pin!(Some(self.$i.run_detailed(&mut $ctx))); )+
                let mut tally = Tally::new(mode, $n);
                poll_fn(|cx| {
                    $(
                        if let Some(run) = $run.as_mut().as_pin_mut() {
                            if let Poll::Ready(outcome) = run.poll(cx) {
                                $run.set(None);
                                if let Some(decided) = tally.record(outcome) {
                                    return Poll::Ready(decided);
                                }
                            }
                        }
                    )+
                    Poll::Pending
                })
                .await
                // The runs still going are dropped here: cancelled.
            }
        }
    };
}

tuple_rule_set!(1; A c0 r0 0);
tuple_rule_set!(2; A c0 r0 0, B c1 r1 1);
tuple_rule_set!(3; A c0 r0 0, B c1 r1 1, C c2 r2 2);
tuple_rule_set!(4; A c0 r0 0, B c1 r1 1, C c2 r2 2, D c3 r3 3);
tuple_rule_set!(5; A c0 r0 0, B c1 r1 1, C c2 r2 2, D c3 r3 3, E c4 r4 4);
tuple_rule_set!(6; A c0 r0 0, B c1 r1 1, C c2 r2 2, D c3 r3 3, E c4 r4 4, F c5 r5 5);
tuple_rule_set!(7; A c0 r0 0, B c1 r1 1, C c2 r2 2, D c3 r3 3, E c4 r4 4, F c5 r5 5, G c6 r6 6);
tuple_rule_set!(8; A c0 r0 0, B c1 r1 1, C c2 r2 2, D c3 r3 3, E c4 r4 4, F c5 r5 5, G c6 r6 6, H c7 r7 7);

/// A `Vec` of rules: their contexts and runs are allocated per run (a tuple allocates
/// nothing).
impl<Ctx: Clone, R: AsyncCombinator<Ctx>> RuleSet<Ctx> for Vec<R> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    #[allow(private_interfaces)]
    async fn run_all<'a>(&'a self, ctx: &'a Ctx, mode: Mode) -> Outcome {
        let mut contexts: Vec<Ctx> = self.iter().map(|_| ctx.clone()).collect();
        let mut runs: Vec<Option<Pin<Box<_>>>> = self
            .iter()
            .zip(contexts.iter_mut())
            .map(|(rule, ctx)| Some(Box::pin(rule.run_detailed(ctx))))
            .collect();
        let mut tally = Tally::new(mode, runs.len());
        if runs.is_empty() {
            return tally.result();
        }
        poll_fn(|cx| {
            for slot in runs.iter_mut() {
                if let Some(run) = slot.as_mut() {
                    if let Poll::Ready(outcome) = run.as_mut().poll(cx) {
                        *slot = None;
                        if let Some(decided) = tally.record(outcome) {
                            return Poll::Ready(decided);
                        }
                    }
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// A `parallel_and` or `parallel_or` with no rules: kompoz refuses them too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NoRules;

impl fmt::Display for NoRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a parallel composition needs at least one rule")
    }
}

impl core::error::Error for NoRules {}

/// Runs every rule at once, each on its own clone of the context, and passes if all
/// pass: kompoz's `parallel_and(*rules, fail_fast=False)`.
///
/// With [`fail_fast`](ParallelAnd::fail_fast) the first rule that does not pass ends
/// the run, and the others are dropped (cancelled); its outcome is the run's. Without
/// it every rule runs to the end, and the run's outcome is the first failure's. The
/// caller's context is left as it was. No rules at all is an error ([`NoRules`]).
///
/// ```
/// use kompoz::{AsyncCombinator, Outcome, async_rule, parallel_and};
///
/// let positive = async_rule(async |n: &mut i32| *n > 0);
/// let small = async_rule(async |n: &mut i32| *n < 100);
/// let both = parallel_and((positive, small))?.fail_fast(true);
/// futures::executor::block_on(async {
///     assert_eq!(both.run_owned(50).await, (true, 50));
///     assert_eq!(both.run_detailed(&mut 500).await, Outcome::Failed);
/// });
/// # Ok::<(), kompoz::NoRules>(())
/// ```
pub fn parallel_and<Rs>(rules: Rs) -> Result<ParallelAnd<Rs>, NoRules>
where
    Rs: RuleSetLen,
{
    if rules.count() == 0 {
        return Err(NoRules);
    }
    Ok(ParallelAnd { rules, fail_fast: false })
}

/// Runs every rule at once, each on its own clone of the context, and passes if one
/// passes: kompoz's `parallel_or(*rules, cancel_on_success=True)`.
///
/// With `cancel_on_success` (the default) the first rule that passes ends the run and
/// the others are dropped (cancelled); without it every rule runs to the end. If none
/// passes, the outcome is the last failure's. The caller's context is left as it was.
///
/// ```
/// use kompoz::{AsyncCombinator, async_rule, parallel_or};
///
/// let cache = async_rule(async |key: &mut String| key.starts_with("hot"));
/// let database = async_rule(async |key: &mut String| !key.is_empty());
/// let lookup = parallel_or((cache, database))?;
/// assert_eq!(futures::executor::block_on(lookup.run_owned("k".to_string())), (true, "k".to_string()));
/// # Ok::<(), kompoz::NoRules>(())
/// ```
pub fn parallel_or<Rs>(rules: Rs) -> Result<ParallelOr<Rs>, NoRules>
where
    Rs: RuleSetLen,
{
    if rules.count() == 0 {
        return Err(NoRules);
    }
    Ok(ParallelOr { rules, cancel_on_success: true })
}

/// The number of rules in a set, whatever its context type (for the constructors).
pub trait RuleSetLen {
    /// How many rules.
    fn count(&self) -> usize;
}

macro_rules! tuple_len {
    ($n:expr; $($R:ident),+) => {
        impl<$($R),+> RuleSetLen for ($($R,)+) {
            fn count(&self) -> usize {
                $n
            }
        }
    };
}

tuple_len!(1; A);
tuple_len!(2; A, B);
tuple_len!(3; A, B, C);
tuple_len!(4; A, B, C, D);
tuple_len!(5; A, B, C, D, E);
tuple_len!(6; A, B, C, D, E, F);
tuple_len!(7; A, B, C, D, E, F, G);
tuple_len!(8; A, B, C, D, E, F, G, H);

impl<R> RuleSetLen for Vec<R> {
    fn count(&self) -> usize {
        self.len()
    }
}

/// Rules run at once, passing if all pass: made by [`parallel_and`].
#[derive(Clone, Copy, Debug)]
pub struct ParallelAnd<Rs> {
    rules: Rs,
    fail_fast: bool,
}

impl<Rs> ParallelAnd<Rs> {
    /// Stops at the first rule that does not pass, dropping the rest (default false).
    pub fn fail_fast(self, fail_fast: bool) -> Self {
        ParallelAnd { fail_fast, ..self }
    }

    /// The rules.
    pub fn rules(&self) -> &Rs {
        &self.rules
    }
}

impl<Ctx: Clone, Rs: RuleSet<Ctx>> AsyncCombinator<Ctx> for ParallelAnd<Rs> {
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a {
        self.rules.run_all(ctx, Mode::And { fail_fast: self.fail_fast })
    }
}

/// Rules run at once, passing if one passes: made by [`parallel_or`].
#[derive(Clone, Copy, Debug)]
pub struct ParallelOr<Rs> {
    rules: Rs,
    cancel_on_success: bool,
}

impl<Rs> ParallelOr<Rs> {
    /// Stops at the first rule that passes, dropping the rest (default true).
    pub fn cancel_on_success(self, cancel_on_success: bool) -> Self {
        ParallelOr { cancel_on_success, ..self }
    }

    /// The rules.
    pub fn rules(&self) -> &Rs {
        &self.rules
    }
}

impl<Ctx: Clone, Rs: RuleSet<Ctx>> AsyncCombinator<Ctx> for ParallelOr<Rs> {
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a {
        self.rules.run_all(ctx, Mode::Or { cancel_on_success: self.cancel_on_success })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{async_pipe, async_rule};
    use futures::executor::block_on;

    #[test]
    fn tallies() {
        let mut and = Tally::new(Mode::And { fail_fast: false }, 3);
        assert_eq!(and.record(Outcome::Passed), None);
        assert_eq!(and.record(Outcome::TimedOut), None);
        assert_eq!(and.record(Outcome::Failed), Some(Outcome::TimedOut), "the first failure");
        let mut or = Tally::new(Mode::Or { cancel_on_success: false }, 2);
        assert_eq!(or.record(Outcome::Passed), None);
        assert_eq!(or.record(Outcome::Failed), Some(Outcome::Passed));
        let mut or = Tally::new(Mode::Or { cancel_on_success: true }, 2);
        assert_eq!(or.record(Outcome::Failed), None);
        assert_eq!(or.record(Outcome::TimedOut), Some(Outcome::TimedOut));
    }

    #[test]
    fn each_rule_gets_its_own_copy_and_the_caller_keeps_the_original() {
        let double = async_pipe(async |n: &mut i32| *n *= 2);
        let positive = async_rule(async |n: &mut i32| *n > 0);
        let rule = parallel_and((double, positive)).unwrap();
        assert_eq!(block_on(rule.run_owned(5)), (true, 5), "kompoz: original, not doubled");
        let all = parallel_or(alloc::vec![positive, positive]).unwrap();
        assert_eq!(block_on(all.run_owned(-1)), (false, -1));
        assert_eq!(
            parallel_or(Vec::<crate::combinator::AsyncRule<fn()>>::new()).unwrap_err(),
            NoRules
        );
        assert_eq!(
            alloc::string::ToString::to_string(&NoRules),
            "a parallel composition needs at least one rule"
        );
    }
}
