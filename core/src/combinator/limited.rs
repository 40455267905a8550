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
///
/// ```
/// use std::sync::Arc;
/// use kompoz::limit::Semaphore;
/// use kompoz::{AsyncCombinator, async_rule, limited_on};
///
/// // Two different checks that share one pool of 2 connections.
/// let pool = Arc::new(Semaphore::new(2)?);
/// let read = limited_on(async_rule(async |_: &mut u32| true), pool.clone());
/// let write = limited_on(async_rule(async |_: &mut u32| true), pool.clone());
/// futures::executor::block_on(async {
///     assert!(read.run(&mut 1).await && write.run(&mut 2).await);
/// });
/// assert_eq!(pool.stats().total_acquired, 2);
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
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
///
/// Its parameters are the rule, the semaphore (owned, borrowed, or an `Arc`), and the
/// [`WaitPolicy`]:
///
/// ```
/// use kompoz::combinator::WaitForPermit;
/// use kompoz::limit::Semaphore;
/// use kompoz::{AsyncCombinator, Limited, async_rule, limited};
///
/// let rule = async_rule(async |_: &mut ()| true);
/// let pooled: Limited<_, Semaphore, WaitForPermit> = limited(rule, 8)?;
/// assert!(futures::executor::block_on(pooled.run(&mut ())));
/// assert_eq!(pooled.semaphore().stats().capacity, 8);
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
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
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::limit::AcquireError;
    /// use kompoz::{AsyncCombinator, Outcome, Rejection, StdClock, async_rule, limited};
    ///
    /// let rule = async_rule(async |_: &mut ()| true);
    /// let check = limited(rule, 1)?.max_wait(StdClock, Duration::from_millis(10));
    /// let held = check.semaphore().try_acquire()?; // someone else holds the only permit
    /// let outcome = futures::executor::block_on(check.run_detailed(&mut ()));
    /// assert_eq!(outcome, Outcome::Rejected(Rejection::Limit(AcquireError::WaitElapsed)));
    /// drop(held);
    /// assert_eq!(futures::executor::block_on(check.run_detailed(&mut ())), Outcome::Passed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_wait<S: Sleep>(self, timer: S, max_wait: Duration) -> Limited<R, L, MaxWait<S>> {
        Limited { rule: self.rule, semaphore: self.semaphore, wait: MaxWait { timer, max_wait } }
    }

    /// The semaphore that limits this combinator (for its [`stats`](Semaphore::stats)).
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_rule, limited};
    ///
    /// let check = limited(async_rule(async |_: &mut ()| true), 4)?;
    /// futures::executor::block_on(check.run(&mut ()));
    /// let stats = check.semaphore().stats();
    /// assert_eq!((stats.total_acquired, stats.in_flight), (1, 0));
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
    pub fn semaphore(&self) -> &Semaphore {
        self.semaphore.borrow()
    }

    /// The wrapped rule.
    ///
    /// ```
    /// use kompoz::{AsyncCombinator, async_rule, limited};
    ///
    /// let check = limited(async_rule(async |n: &mut i32| *n > 0), 4)?;
    /// // The rule itself, without taking a permit.
    /// assert!(futures::executor::block_on(check.inner().run(&mut 1)));
    /// assert_eq!(check.semaphore().stats().total_acquired, 0);
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
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
/// takes) or [`MaxWait`]. Code generic over the policy takes a permit the way a
/// `Limited` combinator does:
///
/// ```
/// use core::future::Future;
/// use kompoz::combinator::{WaitForPermit, WaitPolicy};
/// use kompoz::limit::{AcquireError, Semaphore};
///
/// /// Runs `work` holding a permit taken under `policy`.
/// async fn with_permit<P: WaitPolicy, T>(
///     policy: &P,
///     semaphore: &Semaphore,
///     work: impl Future<Output = T>,
/// ) -> Result<T, AcquireError> {
///     let _permit = policy.acquire(semaphore).await?;
///     Ok(work.await)
/// }
///
/// let semaphore = Semaphore::new(1)?;
/// let answer = futures::executor::block_on(with_permit(&WaitForPermit, &semaphore, async { 7 }));
/// assert_eq!(answer, Ok(7));
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
pub trait WaitPolicy {
    /// Acquires a permit of `semaphore` under this policy.
    fn acquire<'a>(
        &'a self,
        semaphore: &'a Semaphore,
    ) -> impl Future<Output = Result<Permit<'a>, AcquireError>> + 'a;
}

/// Wait for a permit as long as it takes (the default).
///
/// ```
/// use kompoz::combinator::{WaitForPermit, WaitPolicy};
/// use kompoz::limit::Semaphore;
///
/// let semaphore = Semaphore::new(1)?;
/// let permit = futures::executor::block_on(WaitForPermit.acquire(&semaphore))?;
/// assert_eq!(semaphore.available_permits(), 0);
/// drop(permit);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// ```
/// use core::time::Duration;
/// use kompoz::combinator::MaxWait;
/// use kompoz::{AsyncCombinator, Limited, StdClock, async_rule, limited};
/// use kompoz::limit::Semaphore;
///
/// let impatient: Limited<_, Semaphore, MaxWait<StdClock>> =
///     limited(async_rule(async |_: &mut ()| true), 2)?.max_wait(StdClock, Duration::ZERO);
/// // A free permit is taken even with a zero maximum wait.
/// assert!(futures::executor::block_on(impatient.run(&mut ())));
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
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
