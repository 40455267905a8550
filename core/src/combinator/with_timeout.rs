//! [`with_timeout`]: a time limit around any combinator.

use core::fmt;
use core::time::Duration;

use super::{AsyncCombinator, Outcome};
use crate::time::Sleep;
use crate::timeout::timeout;

/// Wraps `rule` with a time limit of `duration` on the runtime-agnostic [`StdClock`]:
/// kompoz's `with_timeout(rule, timeout=...)`.
///
/// Adapter crates offer the same function on their runtime's timers
/// (`kompoz_tokio::with_timeout`, ...); [`with_timeout_on`] takes any timer.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{AsyncCombinator, async_rule, with_timeout};
///
/// let hangs = async_rule(async |id: &mut u32| {
///     core::future::pending::<()>().await;
///     *id > 0
/// });
/// let guarded = with_timeout(hangs, Duration::from_millis(10)).on_timeout(|id: &mut u32| *id = 0);
/// assert_eq!(futures::executor::block_on(guarded.run_owned(7)), (false, 0));
/// ```
///
/// [`StdClock`]: crate::StdClock
#[cfg(feature = "std")]
pub fn with_timeout<R>(rule: R, duration: Duration) -> WithTimeout<R, crate::StdClock> {
    with_timeout_on(crate::StdClock, rule, duration)
}

/// Wraps `rule` with a time limit of `duration` measured on `timer`.
///
/// A run that passes the limit is cancelled (its future is dropped) and ends with
/// `ok == false` and [`Outcome::TimedOut`]; the caller keeps the context, as the rule left
/// it when it was cancelled. Add a handler with [`WithTimeout::on_timeout`] to change the
/// context in that case.
///
/// Each run has its own timer and its own verdict: nothing is shared between concurrent
/// runs (kompoz keeps one `timed_out` flag per combinator; here a run's
/// [`Outcome`] says whether *that* run timed out).
///
/// ```
/// use core::time::Duration;
/// use kompoz::{AsyncCombinator, Outcome, ManualClock, async_rule, with_timeout_on};
///
/// let clock = ManualClock::new();
/// let quick = async_rule(async |n: &mut i32| *n > 0);
/// let limited = with_timeout_on(clock, quick, Duration::from_secs(5))
///     .on_timeout(|n: &mut i32| *n = -1);
/// assert_eq!(futures::executor::block_on(limited.run_owned(42)), (true, 42));
/// ```
pub fn with_timeout_on<R, S: Sleep>(timer: S, rule: R, duration: Duration) -> WithTimeout<R, S> {
    WithTimeout { rule, timer, duration, on_timeout: NoTimeoutHandler }
}

/// A combinator with a time limit, made by [`with_timeout_on`] or
/// [`with_timeout`](crate::with_timeout).
///
/// Its third parameter is the [`TimeoutHandler`] set by
/// [`on_timeout`](WithTimeout::on_timeout) (none by default):
///
/// ```
/// use core::time::Duration;
/// use kompoz::combinator::NoTimeoutHandler;
/// use kompoz::{AsyncCombinator, ManualClock, WithTimeout, async_rule, with_timeout_on};
///
/// let positive = async_rule(async |n: &mut i32| *n > 0);
/// let guarded: WithTimeout<_, ManualClock, NoTimeoutHandler> =
///     with_timeout_on(ManualClock::new(), positive, Duration::from_secs(1));
/// assert_eq!(futures::executor::block_on(guarded.run_owned(5)), (true, 5));
/// ```
#[derive(Clone, Copy)]
pub struct WithTimeout<R, S, H = NoTimeoutHandler> {
    rule: R,
    timer: S,
    duration: Duration,
    on_timeout: H,
}

impl<R, S, H> WithTimeout<R, S, H> {
    /// Calls `handler` with the caller's context when a run times out, before the run
    /// returns `false`: kompoz's `on_timeout=handler`.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{AsyncCombinator, ManualClock, Sleep, async_rule, with_timeout_on};
    ///
    /// let clock = ManualClock::new();
    /// let timer = clock.clone();
    /// let slow = async_rule(async move |_: &mut i32| {
    ///     timer.sleep(Duration::from_secs(1)).await;
    ///     true
    /// });
    /// let rule = with_timeout_on(clock.clone(), slow, Duration::from_millis(50))
    ///     .on_timeout(|n: &mut i32| *n *= 2);
    ///
    /// let mut run = core::pin::pin!(rule.run_owned(21));
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// use core::future::Future;
    /// assert!(run.as_mut().poll(&mut cx).is_pending());
    /// clock.advance(Duration::from_millis(50));
    /// assert_eq!(run.as_mut().poll(&mut cx), core::task::Poll::Ready((false, 42)));
    /// ```
    pub fn on_timeout<H2>(self, handler: H2) -> WithTimeout<R, S, H2> {
        WithTimeout {
            rule: self.rule,
            timer: self.timer,
            duration: self.duration,
            on_timeout: handler,
        }
    }

    /// The time limit of each run.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{ManualClock, async_rule, with_timeout_on};
    ///
    /// let rule = async_rule(async |_: &mut ()| true);
    /// let guarded = with_timeout_on(ManualClock::new(), rule, Duration::from_millis(250));
    /// assert_eq!(guarded.duration(), Duration::from_millis(250));
    /// ```
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The wrapped rule.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{AsyncCombinator, ManualClock, async_rule, limited, with_timeout_on};
    ///
    /// let pooled = limited(async_rule(async |_: &mut ()| true), 3)?;
    /// let guarded = with_timeout_on(ManualClock::new(), pooled, Duration::from_secs(1));
    /// // Reach through the stack, for example for the limit's stats.
    /// assert_eq!(guarded.inner().semaphore().available_permits(), 3);
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
    pub fn inner(&self) -> &R {
        &self.rule
    }
}

impl<Ctx, R, S, H> AsyncCombinator<Ctx> for WithTimeout<R, S, H>
where
    Ctx: ?Sized,
    R: AsyncCombinator<Ctx>,
    S: Sleep,
    H: TimeoutHandler<Ctx>,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        let result = timeout(&self.timer, self.duration, self.rule.run_detailed(ctx)).await;
        match result {
            Ok(outcome) => outcome,
            Err(_elapsed) => {
                // The inner run has been dropped, so its borrow of `ctx` has ended.
                self.on_timeout.on_timeout(ctx);
                Outcome::TimedOut
            }
        }
    }
}

impl<R: fmt::Debug, S: fmt::Debug, H> fmt::Debug for WithTimeout<R, S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithTimeout")
            .field("rule", &self.rule)
            .field("timer", &self.timer)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// What [`WithTimeout`] does to the context when a run times out: any
/// `Fn(&mut Ctx)`, or nothing ([`NoTimeoutHandler`]).
///
/// A closure is the usual handler; a type of your own can carry state:
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use core::time::Duration;
/// use kompoz::combinator::TimeoutHandler;
/// use kompoz::{AsyncCombinator, StdClock, async_rule, with_timeout_on};
///
/// /// Counts timeouts and marks the request.
/// #[derive(Default)]
/// struct CountTimeouts(AtomicU32);
///
/// impl TimeoutHandler<String> for CountTimeouts {
///     fn on_timeout(&self, request: &mut String) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         request.push_str(" (timed out)");
///     }
/// }
///
/// let hangs = async_rule(async |_: &mut String| core::future::pending::<bool>().await);
/// let guarded = with_timeout_on(StdClock, hangs, Duration::from_millis(10))
///     .on_timeout(CountTimeouts::default());
/// let (ok, request) = futures::executor::block_on(guarded.run_owned("GET /".to_string()));
/// assert!(!ok);
/// assert_eq!(request, "GET / (timed out)");
/// ```
pub trait TimeoutHandler<Ctx: ?Sized> {
    /// Called with the caller's context after the run was cancelled.
    fn on_timeout(&self, ctx: &mut Ctx);
}

impl<Ctx: ?Sized, F: Fn(&mut Ctx)> TimeoutHandler<Ctx> for F {
    fn on_timeout(&self, ctx: &mut Ctx) {
        self(ctx)
    }
}

/// The default [`TimeoutHandler`]: leaves the context as the cancelled run left it.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{AsyncCombinator, StdClock, Sleep, async_rule, with_timeout_on};
///
/// // The rule changes the context, then hangs: the change stays after the timeout.
/// let slow = async_rule(async |steps: &mut Vec<&str>| {
///     steps.push("started");
///     StdClock.sleep(Duration::from_secs(3600)).await;
///     true
/// });
/// let guarded = with_timeout_on(StdClock, slow, Duration::from_millis(10));
/// let (ok, steps) = futures::executor::block_on(guarded.run_owned(vec![]));
/// assert_eq!((ok, steps), (false, vec!["started"]));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTimeoutHandler;

impl<Ctx: ?Sized> TimeoutHandler<Ctx> for NoTimeoutHandler {
    fn on_timeout(&self, _ctx: &mut Ctx) {}
}
