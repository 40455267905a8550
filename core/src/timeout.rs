//! Time limits for futures: [`timeout`] and [`timeout_at`].

use core::fmt;
use core::future::{Future, IntoFuture};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::time::{Instant, Sleep};

/// Runs `future` with a time limit of `duration` on `timer`.
///
/// The returned future resolves to `Ok(output)` if `future` completes first, or to
/// `Err(Elapsed)` once the limit passes; at that moment the inner future is dropped,
/// which cancels it.
///
/// The inner future is always polled before the timer, and the timer is created only when
/// the inner future is first pending: a future that is ready at once costs no clock read
/// and no timer. The limit therefore counts from the first poll, not from this call. A
/// huge `duration` (even [`Duration::MAX`]) saturates instead of overflowing.
///
/// ```
/// use core::time::Duration;
/// use kompoz::{Elapsed, StdClock, timeout};
///
/// futures::executor::block_on(async {
///     assert_eq!(timeout(StdClock, Duration::from_secs(1), async { 7 }).await, Ok(7));
///     let hung = core::future::pending::<u32>();
///     assert_eq!(timeout(StdClock, Duration::from_millis(10), hung).await, Err(Elapsed::new()));
/// });
/// ```
///
/// On a [`ManualClock`](crate::ManualClock), deterministically and without sleeping:
///
/// ```
/// use core::time::Duration;
/// use kompoz::{Elapsed, ManualClock, Sleep, timeout};
///
/// let clock = ManualClock::new();
/// futures::executor::block_on(async {
///     // Ready at once: no timer is ever made.
///     assert_eq!(timeout(&clock, Duration::from_secs(1), async { 7 }).await, Ok(7));
/// });
///
/// let slow = timeout(&clock, Duration::from_millis(10), clock.sleep(Duration::from_secs(1)));
/// let mut slow = core::pin::pin!(slow);
/// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
/// use core::future::Future;
/// assert!(slow.as_mut().poll(&mut cx).is_pending());
/// clock.advance(Duration::from_millis(10));
/// assert_eq!(slow.as_mut().poll(&mut cx), core::task::Poll::Ready(Err(Elapsed::new())));
/// ```
pub fn timeout<S, F>(timer: S, duration: Duration, future: F) -> Timeout<S, F::IntoFuture>
where
    S: Sleep,
    F: IntoFuture,
{
    Timeout::new(timer, Limit::After(duration), future.into_future())
}

/// Runs `future` until the instant `deadline` of `timer`'s clock; see [`timeout`].
///
/// One deadline can bound several steps, each getting whatever time is left:
///
/// ```
/// use core::time::Duration;
/// use kompoz::{Clock, Elapsed, StdClock, timeout_at};
///
/// futures::executor::block_on(async {
///     let deadline = StdClock.now() + Duration::from_secs(1);
///     let first = timeout_at(StdClock, deadline, async { 1 }).await;
///     let second = timeout_at(StdClock, deadline, async { 2 }).await;
///     assert_eq!((first, second), (Ok(1), Ok(2)));
///     // A deadline that has passed already: a pending future is cut off at once.
///     let passed = StdClock.now() - Duration::from_secs(1);
///     let late = timeout_at(StdClock, passed, core::future::pending::<()>()).await;
///     assert_eq!(late, Err(Elapsed::new()));
/// });
/// ```
pub fn timeout_at<S, F>(timer: S, deadline: Instant, future: F) -> Timeout<S, F::IntoFuture>
where
    S: Sleep,
    F: IntoFuture,
{
    Timeout::new(timer, Limit::At(deadline), future.into_future())
}

/// The limit of a [`Timeout`]: relative to its first pending poll, or absolute.
#[derive(Clone, Copy, Debug)]
enum Limit {
    After(Duration),
    At(Instant),
}

/// A future with a time limit, made by [`timeout`] or [`timeout_at`].
///
/// It resolves to `Ok` with the inner future's output, or to `Err(`[`Elapsed`]`)` once
/// the limit passed; the inner future is dropped at that moment. Name the type to store
/// one in a struct:
///
/// ```
/// use core::future::Ready;
/// use core::time::Duration;
/// use kompoz::{StdClock, Timeout, timeout};
///
/// struct Pending {
///     answer: Timeout<StdClock, Ready<u32>>,
/// }
///
/// let answer = timeout(StdClock, Duration::from_secs(1), core::future::ready(7));
/// let pending = Pending { answer };
/// assert_eq!(futures::executor::block_on(pending.answer), Ok(7));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<S: Sleep, F> {
    /// The inner future; `None` once the limit passed and it was dropped.
    future: Option<F>,
    /// The timer, made on the first pending poll of `future`.
    sleep: Option<S::Timer>,
    timer: S,
    limit: Limit,
}

impl<S: Sleep, F: Future> Timeout<S, F> {
    fn new(timer: S, limit: Limit, future: F) -> Self {
        Timeout { future: Some(future), sleep: None, timer, limit }
    }

    /// Whether the limit has passed (and the inner future has been dropped).
    ///
    /// ```
    /// use core::future::Future;
    /// use core::pin::pin;
    /// use core::task::{Context, Waker};
    /// use core::time::Duration;
    /// use kompoz::{ManualClock, timeout};
    ///
    /// let clock = ManualClock::new();
    /// let hung = core::future::pending::<()>();
    /// let mut limited = pin!(timeout(&clock, Duration::from_secs(1), hung));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(limited.as_mut().poll(&mut cx).is_pending());
    /// assert!(!limited.is_elapsed());
    /// clock.advance(Duration::from_secs(1));
    /// assert!(limited.as_mut().poll(&mut cx).is_ready());
    /// assert!(limited.is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        self.future.is_none()
    }

    #[allow(clippy::type_complexity)]
    fn project(
        self: Pin<&mut Self>,
    ) -> (Pin<&mut Option<F>>, Pin<&mut Option<S::Timer>>, &S, Limit) {
        // SAFETY: `future` and `sleep` are structurally pinned and nothing else is. Neither
        // is ever moved out while pinned: they are only replaced through `Pin::set`, which
        // drops the old value in place. `Timeout` has no `Drop` impl, and it is `Unpin` only
        // when both pinned fields are (the auto trait), so the pinning guarantee holds.
        unsafe {
            let this = self.get_unchecked_mut();
            (
                Pin::new_unchecked(&mut this.future),
                Pin::new_unchecked(&mut this.sleep),
                &this.timer,
                this.limit,
            )
        }
    }
}

impl<S: Sleep, F: Future> Future for Timeout<S, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut future, mut sleep, timer, limit) = self.project();
        match future.as_mut().as_pin_mut() {
            // Polled again after it expired: keep reporting the expiry.
            None => return Poll::Ready(Err(Elapsed::new())),
            Some(inner) => {
                if let Poll::Ready(output) = inner.poll(cx) {
                    return Poll::Ready(Ok(output));
                }
            }
        }
        if sleep.is_none() {
            sleep.set(Some(match limit {
                Limit::After(duration) => timer.sleep(duration),
                Limit::At(deadline) => timer.sleep_until(deadline),
            }));
        }
        let expired = match sleep.as_mut().as_pin_mut() {
            Some(timer) => timer.poll(cx).is_ready(),
            None => false,
        };
        if !expired {
            return Poll::Pending;
        }
        // Cancel the inner future now rather than when the `Timeout` is dropped.
        future.set(None);
        sleep.set(None);
        Poll::Ready(Err(Elapsed::new()))
    }
}

impl<S: Sleep + fmt::Debug, F> fmt::Debug for Timeout<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("timer", &self.timer)
            .field("limit", &self.limit)
            .field("timer_started", &self.sleep.is_some())
            .field("elapsed", &self.future.is_none())
            .finish()
    }
}

/// The error of a [`timeout`] whose limit passed before its future completed.
///
/// It implements [`core::error::Error`], so `?` turns it into your own error type:
///
/// ```
/// use core::time::Duration;
/// use kompoz::{Elapsed, StdClock, timeout};
///
/// async fn lookup() -> Result<u32, Box<dyn std::error::Error>> {
///     let answer = timeout(StdClock, Duration::from_millis(10), core::future::pending()).await?;
///     Ok(answer)
/// }
///
/// let error = futures::executor::block_on(lookup()).unwrap_err();
/// assert!(error.is::<Elapsed>());
/// assert_eq!(error.to_string(), "the time limit passed before the operation completed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Elapsed(());

impl Elapsed {
    /// The error value (useful in tests and in code that builds its own time limits).
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Elapsed, StdClock, timeout};
    ///
    /// let hung = core::future::pending::<()>();
    /// let answer = futures::executor::block_on(timeout(StdClock, Duration::from_millis(1), hung));
    /// assert_eq!(answer, Err(Elapsed::new()));
    /// ```
    pub const fn new() -> Elapsed {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the time limit passed before the operation completed")
    }
}

impl core::error::Error for Elapsed {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::time::ManualClock;
    use alloc::sync::Arc;
    use core::pin::pin;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use core::task::Waker;

    /// A timer that counts the timers it makes.
    struct CountingTimer {
        clock: ManualClock,
        made: AtomicUsize,
    }

    impl crate::time::Clock for CountingTimer {
        fn now(&self) -> Instant {
            self.clock.now()
        }
    }

    impl Sleep for CountingTimer {
        type Timer = <ManualClock as Sleep>::Timer;
        fn sleep_until(&self, deadline: Instant) -> Self::Timer {
            self.made.fetch_add(1, Ordering::SeqCst);
            self.clock.sleep_until(deadline)
        }
    }

    fn poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_ready_inner_future_makes_no_timer() {
        let timer = CountingTimer { clock: ManualClock::new(), made: AtomicUsize::new(0) };
        let mut t = pin!(timeout(&timer, Duration::from_secs(1), async { 5 }));
        assert_eq!(poll(t.as_mut()), Poll::Ready(Ok(5)));
        assert_eq!(timer.made.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_inner_future_is_dropped_at_expiry() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let clock = ManualClock::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let inner = async move {
            let _flag = flag;
            core::future::pending::<()>().await;
        };
        let mut t = pin!(timeout(&clock, Duration::from_millis(3), inner));
        assert!(poll(t.as_mut()).is_pending());
        assert!(!dropped.load(Ordering::SeqCst));
        clock.advance(Duration::from_millis(3));
        assert_eq!(poll(t.as_mut()), Poll::Ready(Err(Elapsed::new())));
        assert!(dropped.load(Ordering::SeqCst), "dropped at expiry, before the Timeout");
        assert!(t.is_elapsed());
        assert_eq!(clock.pending_timers(), 0, "the timer is released too");
        assert_eq!(poll(t.as_mut()), Poll::Ready(Err(Elapsed::new())));
    }

    #[test]
    fn duration_max_never_overflows() {
        let clock = ManualClock::starting_at(Instant::from_nanos(u64::MAX - 5));
        let mut t = pin!(timeout(&clock, Duration::MAX, core::future::pending::<()>()));
        assert!(poll(t.as_mut()).is_pending());
        clock.advance(Duration::from_secs(1_000_000));
        // Saturated at Instant::MAX: the clock reached the end of time, so did the limit.
        assert!(poll(t.as_mut()).is_ready());

        let clock = ManualClock::new();
        let mut t = pin!(timeout(&clock, Duration::MAX, core::future::pending::<()>()));
        assert!(poll(t.as_mut()).is_pending());
        clock.advance(Duration::from_secs(u64::MAX / 2_000_000_000));
        assert!(poll(t.as_mut()).is_pending());
    }

    #[test]
    fn the_limit_counts_from_the_first_pending_poll() {
        let clock = ManualClock::new();
        let t = timeout(&clock, Duration::from_millis(10), core::future::pending::<()>());
        clock.advance(Duration::from_millis(100));
        let mut t = pin!(t);
        assert!(poll(t.as_mut()).is_pending(), "not started before its first poll");
        clock.advance(Duration::from_millis(10));
        assert!(poll(t.as_mut()).is_ready());
    }

    #[test]
    fn timeout_at_uses_an_absolute_deadline() {
        let clock = ManualClock::new();
        let deadline = Instant::ZERO + Duration::from_millis(10);
        let mut t = pin!(timeout_at(&clock, deadline, core::future::pending::<()>()));
        clock.advance(Duration::from_millis(9));
        assert!(poll(t.as_mut()).is_pending());
        clock.advance(Duration::from_millis(1));
        assert!(poll(t.as_mut()).is_ready());
    }

    #[test]
    fn elapsed_is_an_error_with_a_message() {
        let e: &dyn core::error::Error = &Elapsed::new();
        assert_eq!(alloc::format!("{e}"), "the time limit passed before the operation completed");
    }
}
