//! Running a retried call: the step shared by every face ([`after_failure`]), and the
//! plain-future face, [`Retry`], made by [`RetryPolicy::retry`].

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::schedule::{Next, Schedule};
use super::{Budget, NoBudget, NoHook, OnRetry, RetryAll, RetryIf, RetryPolicy};
use crate::events::{Event, EventKind, Primitive, Source};
use crate::time::{Clock, Instant, Sleep};

/// Where one retried call stands, as the faces keep it: public for retry loops of
/// your own (the tower crate's retry layer is one), which then follow the same schedule,
/// budget and hooks as [`Retry`].
///
/// ```
/// use std::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::retry::{NoBudget, NoHook, Progress, RetryAll, RetryPolicy};
///
/// let policy = RetryPolicy::builder().max_attempts(2).backoff(Duration::from_millis(10)).build()?;
/// let clock = ManualClock::new();
/// let mut progress = Progress::begin(&policy, &clock, &NoBudget);
/// // The first attempt failed: wait 10 ms, then try again.
/// let wait = progress.after_failure(&policy, &clock, &RetryAll, &NoHook, &NoBudget, &"refused");
/// assert_eq!(wait, Some(Duration::from_millis(10)));
/// // The second failed too: that was the last attempt.
/// assert_eq!(progress.after_failure(&policy, &clock, &RetryAll, &NoHook, &NoBudget, &"refused"), None);
/// # Ok::<(), kompoz::retry::RetryError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub(crate) schedule: Schedule,
    /// When the first attempt started, if the policy has a deadline.
    pub(crate) started: Option<Instant>,
}

impl Progress {
    /// A call begins: it is counted by the budget, and the clock is read only if the
    /// policy has a deadline.
    #[inline]
    pub fn begin<C: Clock>(policy: &RetryPolicy, clock: &C, budget: &impl Budget) -> Self {
        budget.deposit();
        let started = policy.deadline().map(|_| clock.now());
        Progress { schedule: Schedule::START, started }
    }

    /// An attempt failed with `error`: the wait before the next attempt, or `None` to
    /// give up. Asks `when`, then the schedule, then the budget, then tells `hook`.
    pub fn after_failure<C, E, W, O, B>(
        &mut self,
        policy: &RetryPolicy,
        clock: &C,
        when: &W,
        hook: &O,
        budget: &B,
        error: &E,
    ) -> Option<Duration>
    where
        C: Clock,
        E: ?Sized,
        W: RetryIf<E> + ?Sized,
        O: OnRetry<E> + ?Sized,
        B: Budget + ?Sized,
    {
        let decision = when.decide(error);
        let elapsed = self.started.map(|started| clock.now().saturating_duration_since(started));
        let (schedule, next) =
            self.schedule.after_failure(policy, decision, elapsed, || fresh_seed(clock));
        self.schedule = schedule;
        match next {
            Next::Stop(_) => None,
            Next::Wait(delay) => {
                if !budget.try_withdraw() {
                    return None;
                }
                hook.on_retry(schedule.failed, error, delay);
                retrying(schedule.failed, delay);
                Some(delay)
            }
        }
    }
}

/// Reports a retry to the `tracing` and `metrics` integrations (a no-op without them).
#[inline]
fn retrying(attempt: u32, delay: Duration) {
    if crate::events::enabled(None) {
        let source = Source { primitive: Primitive::Retry, name: "" };
        crate::events::report(&Event { source, kind: EventKind::Retry { attempt, delay } });
    }
}

/// A seed for a call's jitter: from the thread-local generator with `std`, otherwise
/// from a global counter mixed with the clock (distinct for every call).
pub(crate) fn fresh_seed<C: Clock + ?Sized>(clock: &C) -> u64 {
    #[cfg(feature = "std")]
    {
        let _ = clock;
        fastrand::u64(..)
    }
    #[cfg(not(feature = "std"))]
    {
        use crate::sync::{AtomicU64, Ordering};
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let n = CALLS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        // splitmix64's finaliser over the counter and the time.
        let mut z = n ^ clock.now().as_nanos().rotate_left(32);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl RetryPolicy {
    /// Runs the future `make()` returns, and on failure makes a new one and runs it
    /// again, as the policy allows, waiting on `timer` in between: the plain-future face
    /// of retry. A future cannot be run twice, hence the factory. The first future is
    /// made here (like any future, it does nothing until polled); the others when due.
    ///
    /// The result is the first success, or the last attempt's error. Every failure is
    /// retried unless told otherwise with [`when`](Retry::when); add
    /// [`on_retry`](Retry::on_retry) and a shared [`budget`](Retry::budget). Their
    /// closures' argument types are inferred from the factory: no annotations.
    ///
    /// Dropping the future cancels the retry wherever it is: the running attempt or the
    /// backoff's timer is dropped, and nothing is left running.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use kompoz::retry::RetryPolicy;
    /// use kompoz::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(4)
    ///     .backoff(Duration::from_millis(100))
    ///     .exponential(true)
    ///     .build()?;
    /// let calls = Cell::new(0);
    /// let flaky = || {
    ///     calls.set(calls.get() + 1);
    ///     let n = calls.get();
    ///     async move { if n < 3 { Err(format!("attempt {n} failed")) } else { Ok(n) } }
    /// };
    /// let retried = policy
    ///     .retry(&clock, flaky)
    ///     .when(|error| error.contains("failed"))
    ///     .on_retry(|attempt, error, delay| println!("{attempt}: {error}; again in {delay:?}"));
    ///
    /// let mut retried = std::pin::pin!(retried);
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// use std::future::Future;
    /// assert!(retried.as_mut().poll(&mut cx).is_pending()); // attempt 1 failed: 100 ms
    /// clock.advance(Duration::from_millis(100));
    /// assert!(retried.as_mut().poll(&mut cx).is_pending()); // attempt 2 failed: 200 ms
    /// clock.advance(Duration::from_millis(200));
    /// assert_eq!(retried.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(3)));
    /// assert_eq!(clock.now().as_nanos(), 300_000_000);
    /// # Ok::<(), kompoz::retry::RetryError>(())
    /// ```
    #[inline]
    pub fn retry<S, F, Fut>(&self, timer: S, make: F) -> Retry<S, F, Fut>
    where
        S: Sleep,
        F: FnMut() -> Fut,
        Fut: Future,
    {
        // The first attempt's future is made at once (it does nothing until polled), so
        // that the call is one value the compiler can keep in registers when it is ready
        // at once; the later ones are made when due.
        let mut make = make;
        let first = make();
        Retry {
            policy: *self,
            timer,
            make,
            when: RetryAll,
            hook: NoHook,
            budget: NoBudget,
            progress: None,
            state: State::Attempt(first),
        }
    }
}

/// The state of a [`Retry`] between polls.
enum State<Fut, T> {
    /// Between attempts with nothing running: after a backoff (or a zero one).
    Idle,
    /// An attempt is running.
    Attempt(Fut),
    /// Waiting out a backoff.
    Backoff(T),
    /// Finished.
    Done,
}

/// The future of [`RetryPolicy::retry`]: a call retried under a policy.
#[must_use = "futures do nothing unless polled"]
pub struct Retry<S: Sleep, F, Fut, W = RetryAll, O = NoHook, B = NoBudget> {
    policy: RetryPolicy,
    timer: S,
    make: F,
    when: W,
    hook: O,
    budget: B,
    /// Set on the first poll.
    progress: Option<Progress>,
    /// Structurally pinned: the running attempt or the backoff's timer.
    state: State<Fut, S::Timer>,
}

impl<S, F, Fut, T, E, W, O, B> Retry<S, F, Fut, W, O, B>
where
    S: Sleep,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    /// Decides which failures are retried: any `Fn(&E) -> bool` (retry after the backoff,
    /// or give up) or `Fn(&E) -> Decision` (which can also name the wait, for a "retry
    /// after" hint).
    pub fn when<W2, D>(self, when: W2) -> Retry<S, F, Fut, W2, O, B>
    where
        W2: Fn(&E) -> D,
        D: Into<super::Decision>,
    {
        Retry {
            policy: self.policy,
            timer: self.timer,
            make: self.make,
            when,
            hook: self.hook,
            budget: self.budget,
            progress: self.progress,
            state: self.state,
        }
    }

    /// Calls `hook(attempt, &error, delay)` before each retry's wait: kompoz's
    /// `on_retry`, with `attempt` the number (from 1) of the attempt that failed.
    pub fn on_retry<O2>(self, hook: O2) -> Retry<S, F, Fut, W, O2, B>
    where
        O2: Fn(u32, &E, Duration),
    {
        Retry {
            policy: self.policy,
            timer: self.timer,
            make: self.make,
            when: self.when,
            hook,
            budget: self.budget,
            progress: self.progress,
            state: self.state,
        }
    }

    /// Counts this call in `budget`, and retries only while it allows.
    pub fn budget<B2: Budget>(self, budget: B2) -> Retry<S, F, Fut, W, O, B2> {
        Retry {
            policy: self.policy,
            timer: self.timer,
            make: self.make,
            when: self.when,
            hook: self.hook,
            budget,
            progress: self.progress,
            state: self.state,
        }
    }
}

impl<S: Sleep, F, Fut, W, O, B> Retry<S, F, Fut, W, O, B> {
    #[allow(clippy::type_complexity)]
    #[inline]
    fn project(
        self: Pin<&mut Self>,
    ) -> (Pin<&mut State<Fut, S::Timer>>, &mut F, &mut Option<Progress>, &RetryPolicy, &S, &W, &O, &B)
    {
        // SAFETY: `state` is structurally pinned and nothing else is: it is never moved
        // out of `self` (it is only replaced in place through `Pin::set`, which drops the
        // old value where it lies), `Retry` has no `Drop` impl, and it is `Unpin` only
        // when the attempt future and the timer are (the auto trait). The other fields
        // are handed out as ordinary, disjoint references.
        unsafe {
            let this = self.get_unchecked_mut();
            (
                Pin::new_unchecked(&mut this.state),
                &mut this.make,
                &mut this.progress,
                &this.policy,
                &this.timer,
                &this.when,
                &this.hook,
                &this.budget,
            )
        }
    }
}

impl<S, F, Fut, T, E, W, O, B> Future for Retry<S, F, Fut, W, O, B>
where
    S: Sleep,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    W: RetryIf<E>,
    O: OnRetry<E>,
    B: Budget,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut state, make, progress, policy, timer, when, hook, budget) = self.project();
        if progress.is_none() {
            *progress = Some(Progress::begin(policy, timer, budget));
        }
        loop {
            // SAFETY: projecting the pinned enum onto the field of its current variant;
            // the field is never moved out (the state is only ever replaced whole with
            // `Pin::set`).
            let current = unsafe { state.as_mut().get_unchecked_mut() };
            match current {
                State::Idle => {
                    let attempt = make();
                    state.set(State::Attempt(attempt));
                }
                State::Attempt(attempt) => {
                    // SAFETY: the attempt lives in the pinned state and is not moved.
                    let attempt = unsafe { Pin::new_unchecked(attempt) };
                    let error = match attempt.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(value)) => {
                            state.set(State::Done);
                            return Poll::Ready(Ok(value));
                        }
                        Poll::Ready(Err(error)) => error,
                    };
                    // The attempt is finished: drop it before deciding.
                    state.set(State::Done);
                    let wait = match progress.as_mut() {
                        Some(p) => p.after_failure(policy, timer, when, hook, budget, &error),
                        None => None,
                    };
                    match wait {
                        None => return Poll::Ready(Err(error)),
                        Some(Duration::ZERO) => state.set(State::Idle),
                        Some(delay) => state.set(State::Backoff(timer.sleep(delay))),
                    }
                }
                State::Backoff(sleep) => {
                    // SAFETY: the timer lives in the pinned state and is not moved.
                    let sleep = unsafe { Pin::new_unchecked(sleep) };
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    state.set(State::Idle);
                }
                // Polled after it completed: it has nothing more to give.
                State::Done => return Poll::Pending,
            }
        }
    }
}

impl<S: Sleep + fmt::Debug, F, Fut, W, O, B> fmt::Debug for Retry<S, F, Fut, W, O, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Attempt(_) => "attempt",
            State::Backoff(_) => "backoff",
            State::Done => "done",
        };
        f.debug_struct("Retry")
            .field("policy", &self.policy)
            .field("timer", &self.timer)
            .field("state", &state)
            .field("attempts_failed", &self.progress.map_or(0, |p| p.schedule.failed))
            .finish_non_exhaustive()
    }
}
