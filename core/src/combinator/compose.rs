//! The compositions `and`, `or`, `not` and `then`, with kompoz's meaning.

use super::{AsyncCombinator, Outcome};

/// `first & next`: made by [`AsyncCombinator::and`].
///
/// Runs `next` only if `first` passed; the outcome is that of the rule that decided.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{AsyncCombinator, Outcome, StdClock, async_rule, with_timeout_on};
///
/// let hangs = async_rule(async |_: &mut ()| core::future::pending::<bool>().await);
/// let first = with_timeout_on(StdClock, hangs, Duration::from_millis(10));
/// let both = first.and(async_rule(async |_: &mut ()| true));
/// // `first` decided, so the outcome is its own: timed out, not just "failed".
/// assert_eq!(futures::executor::block_on(both.run_detailed(&mut ())), Outcome::TimedOut);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct And<A, B> {
    first: A,
    next: B,
}

impl<A, B> And<A, B> {
    pub(crate) fn new(first: A, next: B) -> Self {
        And { first, next }
    }
}

impl<Ctx: ?Sized, A: AsyncCombinator<Ctx>, B: AsyncCombinator<Ctx>> AsyncCombinator<Ctx>
    for And<A, B>
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        match self.first.run_detailed(ctx).await {
            Outcome::Passed => self.next.run_detailed(ctx).await,
            other => other,
        }
    }
}

/// `first | other`: made by [`AsyncCombinator::or`].
///
/// Runs `other` only if `first` did not pass; the outcome is that of the rule that
/// decided.
///
/// ```
/// use kompoz::{AsyncCombinator, async_pipe, async_rule};
///
/// let cached = async_rule(async |hits: &mut Vec<&str>| !hits.is_empty());
/// let fetch = async_pipe(async |hits: &mut Vec<&str>| hits.push("fetched"));
/// let rule = cached.or(fetch);
/// futures::executor::block_on(async {
///     assert_eq!(rule.run_owned(vec!["cached"]).await, (true, vec!["cached"])); // no fetch
///     assert_eq!(rule.run_owned(vec![]).await, (true, vec!["fetched"]));
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Or<A, B> {
    first: A,
    other: B,
}

impl<A, B> Or<A, B> {
    pub(crate) fn new(first: A, other: B) -> Self {
        Or { first, other }
    }
}

impl<Ctx: ?Sized, A: AsyncCombinator<Ctx>, B: AsyncCombinator<Ctx>> AsyncCombinator<Ctx>
    for Or<A, B>
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        match self.first.run_detailed(ctx).await {
            Outcome::Passed => Outcome::Passed,
            _ => self.other.run_detailed(ctx).await,
        }
    }
}

/// `~inner`: made by [`AsyncCombinator::not`].
///
/// Passes exactly when `inner` does not, as kompoz flips `ok`: an inner run that timed
/// out makes `not` pass.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{AsyncCombinator, Outcome, StdClock, async_rule, with_timeout_on};
///
/// let hangs = async_rule(async |_: &mut ()| core::future::pending::<bool>().await);
/// let flipped = with_timeout_on(StdClock, hangs, Duration::from_millis(10)).not();
/// assert_eq!(futures::executor::block_on(flipped.run_detailed(&mut ())), Outcome::Passed);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Not<A> {
    inner: A,
}

impl<A> Not<A> {
    pub(crate) fn new(inner: A) -> Self {
        Not { inner }
    }
}

impl<Ctx: ?Sized, A: AsyncCombinator<Ctx>> AsyncCombinator<Ctx> for Not<A> {
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        Outcome::from(!self.inner.run_detailed(ctx).await.passed())
    }
}

/// `first >> next`: made by [`AsyncCombinator::then`].
///
/// Runs `first`, ignores its verdict, then runs `next`, whose outcome is the result.
///
/// ```
/// use kompoz::{AsyncCombinator, async_pipe, async_rule};
///
/// let fails = async_rule(async |n: &mut u32| {
///     *n += 1;
///     false
/// });
/// let rule = fails.then(async_pipe(async |n: &mut u32| *n *= 10));
/// assert_eq!(futures::executor::block_on(rule.run_owned(1)), (true, 20));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Then<A, B> {
    first: A,
    next: B,
}

impl<A, B> Then<A, B> {
    pub(crate) fn new(first: A, next: B) -> Self {
        Then { first, next }
    }
}

impl<Ctx: ?Sized, A: AsyncCombinator<Ctx>, B: AsyncCombinator<Ctx>> AsyncCombinator<Ctx>
    for Then<A, B>
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        self.first.run_detailed(ctx).await;
        self.next.run_detailed(ctx).await
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{AsyncCombinator, Outcome, async_pipe, async_rule};
    use futures::executor::block_on;

    #[test]
    fn and_runs_the_second_only_if_the_first_passed() {
        let positive = async_rule(async |n: &mut i32| *n > 0);
        let add_one = async_pipe(async |n: &mut i32| *n += 1);
        let rule = positive.and(add_one);
        assert_eq!(block_on(rule.run_owned(1)), (true, 2));
        assert_eq!(block_on(rule.run_owned(0)), (false, 0));
    }

    #[test]
    fn or_runs_the_second_only_if_the_first_failed() {
        let positive = async_rule(async |n: &mut i32| *n > 0);
        let set_ten = async_pipe(async |n: &mut i32| *n = 10);
        let rule = positive.or(set_ten);
        assert_eq!(block_on(rule.run_owned(1)), (true, 1));
        assert_eq!(block_on(rule.run_owned(-1)), (true, 10));
        let never = async_rule(async |_: &mut i32| false);
        assert_eq!(block_on(never.or(never).run_owned(3)), (false, 3));
    }

    #[test]
    fn not_flips_and_then_always_runs_the_second() {
        let positive = async_rule(async |n: &mut i32| *n > 0);
        assert_eq!(block_on(positive.not().run_owned(1)), (false, 1));
        assert_eq!(block_on(positive.not().run_owned(-1)), (true, -1));

        let fail_and_mark = async_pipe(async |n: &mut i32| {
            *n += 100;
            Err::<(), ()>(())
        });
        let rule = fail_and_mark.then(positive);
        assert_eq!(block_on(rule.run_owned(-200)), (false, -100));
        assert_eq!(block_on(rule.run_owned(-50)), (true, 50));
    }

    #[test]
    fn outcomes_name_the_deciding_rule() {
        let fail = async_rule(async |_: &mut ()| false);
        let pass = async_rule(async |_: &mut ()| true);
        assert_eq!(block_on(fail.and(pass).run_detailed(&mut ())), Outcome::Failed);
        assert_eq!(block_on(pass.and(fail).run_detailed(&mut ())), Outcome::Failed);
        assert_eq!(block_on(fail.or(pass).run_detailed(&mut ())), Outcome::Passed);
        assert_eq!(block_on(pass.then(fail).run_detailed(&mut ())), Outcome::Failed);
    }

    #[test]
    fn references_and_boxes_are_combinators_too() {
        let positive = async_rule(async |n: &mut i32| *n > 0);
        let boxed = alloc::boxed::Box::new(positive);
        assert_eq!(block_on((&positive).and(&*boxed).run_owned(4)), (true, 4));
        assert_eq!(block_on(boxed.run_owned(-4)), (false, -4));
    }
}
