//! Running a retried call: the step shared by every face ([`Progress::after_failure`]),
//! the attempts' state machine shared by the futures ([`Attempts`]), and the plain-future
//! face, [`Retry`], made by [`RetryPolicy::retry`].

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::pinned::Slot;
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
    pub fn begin<C: Clock, B: Budget + ?Sized>(
        policy: &RetryPolicy,
        clock: &C,
        budget: &B,
    ) -> Self {
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
    /// of retry. A future cannot be run twice, hence the factory; each attempt's future is
    /// made when it is due (the first on the first poll).
    ///
    /// The result is the first success, or the last attempt's error. Every failure is
    /// retried unless told otherwise with [`when`](Retry::when); add
    /// [`on_retry`](Retry::on_retry) and a shared [`budget`](Retry::budget). Their
    /// closures' argument types are inferred from the factory: no annotations.
    ///
    /// The retry borrows the policy (one policy serves every call it guards, and a call
    /// copies none of it).
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
    pub fn retry<S, F, Fut>(&self, timer: S, make: F) -> Retry<'_, S, F, Fut>
    where
        S: Sleep,
        F: FnMut() -> Fut,
        Fut: Future,
    {
        Retry {
            policy: self,
            timer,
            make,
            when: RetryAll,
            hook: NoHook,
            budget: NoBudget,
            attempts: Attempts::new(),
        }
    }
}

/// Where a retried call stands: what the schedule needs, written only when needed (a
/// call that succeeds at once writes one tag and, with a deadline, the time).
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Not polled yet.
    Fresh,
    /// Begun, nothing failed yet; when the first attempt started, if the policy has a
    /// deadline.
    Begun(Option<Instant>),
    /// At least one attempt failed: the schedule so far.
    Failing(Progress),
    /// Finished with a value.
    Finished,
    /// Gave up after this many failed attempts: the call ended with the last error.
    GaveUp(u32),
}

/// The attempts of one retried call: the schedule so far and whatever runs now.
///
/// Both faces keep one beside the parts of the retry (policy, timer, factory, predicate,
/// hook, budget), which they hold differently: the plain [`Retry`] owns them but the
/// policy, the pipeline's layer borrows them all from the pipeline. Neither copies the
/// policy into the call, and both run this one `poll`.
///
/// The running attempt and the backoff's timer have a slot each rather than sharing one
/// enum: only the timer's is handed to code outside (the timer's `poll`), so for a call
/// whose attempt is ready at once the compiler can keep the rest in registers.
pub(crate) struct Attempts<Fut, T> {
    /// Where the call stands.
    stage: Stage,
    /// Structurally pinned: the running attempt.
    attempt: Slot<Fut>,
    /// Structurally pinned: the backoff's timer, while one is waited out.
    backoff: Slot<T>,
}

impl<Fut, T> Attempts<Fut, T> {
    /// A call not begun: the first attempt is made on the first poll.
    #[inline]
    pub(crate) const fn new() -> Self {
        Attempts { stage: Stage::Fresh, attempt: Slot::empty(), backoff: Slot::empty() }
    }

    /// Attempts that failed so far.
    pub(crate) fn failed(&self) -> u32 {
        match self.stage {
            Stage::Failing(progress) => progress.schedule.failed,
            Stage::GaveUp(failed) => failed,
            Stage::Fresh | Stage::Begun(_) | Stage::Finished => 0,
        }
    }

    /// What it is doing, in a word (for `Debug`).
    pub(crate) fn doing(&self) -> &'static str {
        match self.stage {
            Stage::Fresh => "not started",
            Stage::Finished => "finished",
            Stage::GaveUp(_) => "gave up",
            Stage::Begun(_) | Stage::Failing(_) if self.backoff.is_some() => "backoff",
            Stage::Begun(_) | Stage::Failing(_) => "attempt",
        }
    }

    /// Drives the call: the running attempt, the backoff, the next attempt, as the policy
    /// allows. `make` makes an attempt.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn poll<V, E, S, M, W, O, B>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        make: &mut M,
        policy: &RetryPolicy,
        timer: &S,
        when: &W,
        hook: &O,
        budget: &B,
    ) -> Poll<Result<V, E>>
    where
        Fut: Future<Output = Result<V, E>>,
        S: Sleep<Timer = T>,
        T: Future<Output = ()>,
        M: FnMut() -> Fut,
        W: RetryIf<E> + ?Sized,
        O: OnRetry<E> + ?Sized,
        B: Budget + ?Sized,
    {
        // SAFETY: `attempt` and `backoff` are structurally pinned and `stage` is not:
        // neither slot's value is ever moved out of `self` (they are only filled, and
        // emptied with `Slot::clear`, which drops in place), `Attempts` has no `Drop` impl,
        // and it is `Unpin` only when the attempt future and the timer are (the auto
        // trait).
        let (stage, mut attempt, mut backoff) = unsafe {
            let this = self.get_unchecked_mut();
            (
                &mut this.stage,
                Pin::new_unchecked(&mut this.attempt),
                Pin::new_unchecked(&mut this.backoff),
            )
        };
        match *stage {
            Stage::Fresh => {
                budget.deposit();
                *stage = Stage::Begun(policy.deadline().map(|_| timer.now()));
            }
            // Polled after it completed: it has nothing more to give.
            Stage::Finished | Stage::GaveUp(_) => return Poll::Pending,
            // Woken during a backoff: wait it out first. (A fresh call has none, and goes
            // straight to its first attempt.)
            Stage::Begun(_) | Stage::Failing(_) => {
                if let Some(waiting) = backoff.as_mut().as_pin_mut() {
                    if waiting.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    backoff.as_mut().clear();
                }
            }
        }
        // One pass per attempt, straight through when the attempt is ready at once.
        loop {
            let running = match attempt.as_mut().as_pin_mut() {
                Some(running) => running,
                None => attempt.as_mut().fill(make()),
            };
            let error = match running.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(value)) => {
                    *stage = Stage::Finished;
                    // Dropped where it ran, now: it may hold something until dropped (a
                    // pooled connection) that its caller expects back with the value.
                    attempt.as_mut().clear();
                    return Poll::Ready(Ok(value));
                }
                Poll::Ready(Err(error)) => error,
            };
            let mut progress = match *stage {
                Stage::Failing(progress) => progress,
                Stage::Begun(started) => Progress { schedule: Schedule::START, started },
                Stage::Fresh | Stage::Finished | Stage::GaveUp(_) => {
                    Progress { schedule: Schedule::START, started: None }
                }
            };
            // Given up until decided otherwise: if dropping the attempt, the predicate, the
            // hook or the timer panics, the retry is abandoned (a later poll gives
            // nothing) rather than left to forget this failure.
            *stage = Stage::GaveUp(progress.schedule.failed.saturating_add(1));
            // The attempt is finished: drop it before deciding.
            attempt.as_mut().clear();
            let wait = progress.after_failure(policy, timer, when, hook, budget, &error);
            match wait {
                None => {
                    *stage = Stage::GaveUp(progress.schedule.failed);
                    return Poll::Ready(Err(error));
                }
                Some(Duration::ZERO) => *stage = Stage::Failing(progress),
                Some(delay) => {
                    let waiting = backoff.as_mut().fill(timer.sleep(delay));
                    *stage = Stage::Failing(progress);
                    if waiting.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    backoff.as_mut().clear();
                }
            }
        }
    }
}

/// The future of [`RetryPolicy::retry`]: a call retried under a policy it borrows.
#[must_use = "futures do nothing unless polled"]
pub struct Retry<'p, S: Sleep, F, Fut, W = RetryAll, O = NoHook, B = NoBudget> {
    policy: &'p RetryPolicy,
    timer: S,
    make: F,
    when: W,
    hook: O,
    budget: B,
    /// Structurally pinned.
    attempts: Attempts<Fut, S::Timer>,
}

impl<'p, S, F, Fut, T, E, W, O, B> Retry<'p, S, F, Fut, W, O, B>
where
    S: Sleep,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    /// Decides which failures are retried: any `Fn(&E) -> bool` (retry after the backoff,
    /// or give up) or `Fn(&E) -> Decision` (which can also name the wait, for a "retry
    /// after" hint).
    pub fn when<W2, D>(self, when: W2) -> Retry<'p, S, F, Fut, W2, O, B>
    where
        W2: Fn(&E) -> D,
        D: Into<super::Decision>,
    {
        let Retry { policy, timer, make, hook, budget, attempts, .. } = self;
        Retry { policy, timer, make, when, hook, budget, attempts }
    }

    /// Calls `hook(attempt, &error, delay)` before each retry's wait: kompoz's
    /// `on_retry`, with `attempt` the number (from 1) of the attempt that failed.
    pub fn on_retry<O2>(self, hook: O2) -> Retry<'p, S, F, Fut, W, O2, B>
    where
        O2: Fn(u32, &E, Duration),
    {
        let Retry { policy, timer, make, when, budget, attempts, .. } = self;
        Retry { policy, timer, make, when, hook, budget, attempts }
    }

    /// Counts this call in `budget`, and retries only while it allows.
    pub fn budget<B2: Budget>(self, budget: B2) -> Retry<'p, S, F, Fut, W, O, B2> {
        let Retry { policy, timer, make, when, hook, attempts, .. } = self;
        Retry { policy, timer, make, when, hook, budget, attempts }
    }
}

impl<S, F, Fut, T, E, W, O, B> Future for Retry<'_, S, F, Fut, W, O, B>
where
    S: Sleep,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    W: RetryIf<E>,
    O: OnRetry<E>,
    B: Budget,
{
    type Output = Result<T, E>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `attempts` is structurally pinned and nothing else is: it is never moved
        // out of `self`, `Retry` has no `Drop` impl, and it is `Unpin` only when the
        // attempt future and the timer are (the auto trait). The other fields are handed
        // out as ordinary, disjoint references.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let attempts = unsafe { Pin::new_unchecked(&mut this.attempts) };
        let (when, hook, budget) = (&this.when, &this.hook, &this.budget);
        attempts.poll(cx, &mut this.make, this.policy, &this.timer, when, hook, budget)
    }
}

impl<S: Sleep + fmt::Debug, F, Fut, W, O, B> fmt::Debug for Retry<'_, S, F, Fut, W, O, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", self.policy)
            .field("timer", &self.timer)
            .field("state", &self.attempts.doing())
            .field("attempts_failed", &self.attempts.failed())
            .finish_non_exhaustive()
    }
}
