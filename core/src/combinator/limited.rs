//! [`limited`]: a concurrency limit around any combinator.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use super::{AsyncCombinator, Outcome, Rejection};
use crate::limit::{AcquireError, LimitError, Permit, Semaphore, check_size};
use crate::time::Sleep;

/// Runs at most `max_concurrent` runs of `rule` at once: kompoz's
/// `limited(rule, max_concurrent=...)`. Other runs wait in line, first come first served.
///
/// The permit is held for the whole run and released however the run ends. A
/// `max_concurrent` of zero is refused ([`LimitError::ZeroPermits`]) rather than blocking
/// forever. Add a maximum wait with [`Limited::max_wait`].
///
/// ```
/// use kompoz::{AsyncCombinator, async_rule, limited};
///
/// let check = async_rule(async |n: &mut i32| *n > 0);
/// let limited_check = limited(check, 5)?;
/// assert_eq!(futures::executor::block_on(limited_check.run_owned(42)), (true, 42));
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
pub fn limited<R>(rule: R, max_concurrent: usize) -> Result<Limited<R, Semaphore>, LimitError> {
    check_size(max_concurrent)?;
    Ok(limited_on(rule, Semaphore::new(max_concurrent)?))
}

/// Limits `rule` with a semaphore of the caller's: owned, borrowed, in an `Arc`, or from
/// a [`Registry`](crate::limit::Registry) or
/// [`FixedRegistry`](crate::limit::FixedRegistry).
pub fn limited_on<R, L: Borrow<Semaphore>>(rule: R, semaphore: L) -> Limited<R, L> {
    Limited { rule, semaphore, wait: WaitForPermit }
}

/// Limits `rule` with the semaphore named `name` in the
/// [`default_registry`](crate::limit::default_registry): kompoz's
/// `limited(rule, max_concurrent, name="api_pool")`. Every combinator limited under one
/// name shares its permits.
///
/// The same name with a different `max_concurrent` is a [`LimitError::SizeMismatch`].
///
/// ```
/// use kompoz::{AsyncCombinator, async_rule, limited_named};
///
/// let check_a = limited_named(async_rule(async |_: &mut ()| true), "docs_pool", 10)?;
/// let check_b = limited_named(async_rule(async |_: &mut ()| true), "docs_pool", 10)?;
/// assert!(std::ptr::eq(check_a.semaphore(), check_b.semaphore()));
/// assert!(limited_named(async_rule(async |_: &mut ()| true), "docs_pool", 3).is_err());
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
#[cfg(all(target_has_atomic = "ptr", not(loom)))]
pub fn limited_named<R>(
    rule: R,
    name: impl Into<alloc::borrow::Cow<'static, str>>,
    max_concurrent: usize,
) -> Result<Limited<R, alloc::sync::Arc<Semaphore>>, LimitError> {
    let semaphore = crate::limit::default_registry().get_or_create(name, max_concurrent)?;
    Ok(limited_on(rule, semaphore))
}

/// A combinator with a concurrency limit, made by [`limited`], [`limited_on`] or
/// [`limited_named`](crate::limited_named).
#[derive(Clone, Copy)]
pub struct Limited<R, L, W = WaitForPermit> {
    rule: R,
    semaphore: L,
    wait: W,
}

impl<R, L: Borrow<Semaphore>, W> Limited<R, L, W> {
    /// Waits at most `max_wait` on `timer` for a permit; a run that waited longer is not
    /// run and ends with `ok == false` and
    /// [`Outcome::Rejected`]`(`[`Rejection::Limit`]`(`[`AcquireError::WaitElapsed`]`))`,
    /// which tells it apart from a failure of the rule. A `max_wait` of zero rejects at
    /// once when no permit is free.
    pub fn max_wait<S: Sleep>(self, timer: S, max_wait: Duration) -> Limited<R, L, MaxWait<S>> {
        Limited { rule: self.rule, semaphore: self.semaphore, wait: MaxWait { timer, max_wait } }
    }

    /// The semaphore that limits this combinator (for its [`stats`](Semaphore::stats)).
    pub fn semaphore(&self) -> &Semaphore {
        self.semaphore.borrow()
    }

    /// The wrapped rule.
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx, R, L, W> AsyncCombinator<Ctx> for Limited<R, L, W>
where
    Ctx: ?Sized,
    R: AsyncCombinator<Ctx>,
    L: Borrow<Semaphore>,
    W: WaitPolicy,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        match self.wait.acquire(self.semaphore.borrow()).await {
            Ok(_permit) => self.rule.run_detailed(ctx).await,
            Err(error) => Outcome::Rejected(Rejection::Limit(error)),
        }
    }
}

impl<R: fmt::Debug, L: Borrow<Semaphore>, W: fmt::Debug> fmt::Debug for Limited<R, L, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limited")
            .field("rule", &self.rule)
            .field("semaphore", self.semaphore.borrow())
            .field("wait", &self.wait)
            .finish()
    }
}

/// How a [`Limited`] combinator waits for its permit: [`WaitForPermit`] (as long as it
/// takes) or [`MaxWait`].
pub trait WaitPolicy {
    /// Acquires a permit of `semaphore` under this policy.
    fn acquire<'a>(
        &'a self,
        semaphore: &'a Semaphore,
    ) -> impl Future<Output = Result<Permit<'a>, AcquireError>> + 'a;
}

/// Wait for a permit as long as it takes (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitForPermit;

impl WaitPolicy for WaitForPermit {
    fn acquire<'a>(
        &'a self,
        semaphore: &'a Semaphore,
    ) -> impl Future<Output = Result<Permit<'a>, AcquireError>> + 'a {
        semaphore.acquire()
    }
}

/// Wait for a permit at most `max_wait` on `timer`; made by [`Limited::max_wait`].
#[derive(Clone, Copy, Debug)]
pub struct MaxWait<S> {
    timer: S,
    max_wait: Duration,
}

impl<S: Sleep> WaitPolicy for MaxWait<S> {
    fn acquire<'a>(
        &'a self,
        semaphore: &'a Semaphore,
    ) -> impl Future<Output = Result<Permit<'a>, AcquireError>> + 'a {
        semaphore.acquire_with_max_wait(&self.timer, self.max_wait)
    }
}
