//! Waiting for cells, fairly: [`RateLimiter::until_ready`] and its relatives.
//!
//! # The algorithm
//!
//! Waiting tasks stand in one line (a FIFO, `queue.rs`, behind the limiter's spin lock)
//! and **nothing is reserved for a waiter before it takes its cells**. That is what makes
//! cancellation trivial: a task that leaves the line, at any point, was only ever a
//! position in it, so the limiter is left exactly as if it had never come.
//!
//! The rules, with `ahead` = the cells asked for by the tasks in line before a request:
//!
//! 1. **Arriving** (a `check`, or a wait's first attempt): the request is admitted at once
//!    if its cells conform *behind every cell already in line* (the GCRA decision with
//!    `ahead` = all queued cells). Taking them then cannot delay anyone in line: their
//!    cells still conform when they come to take them. Otherwise a `check` is refused with
//!    the instant its cells would conform behind the line, and a wait joins the end of
//!    the line.
//! 2. **First in line** (the *head*): only the head takes cells from the line. On each
//!    poll it decides with `ahead` = 0; if its cells conform it takes them (one
//!    compare-exchange on the TAT), leaves the line, and wakes the next task, which is
//!    now the head. If they do not, it sleeps on a timer until their `earliest` instant.
//! 3. **Further back**: a task waits to become the head, without a timer (unless it has a
//!    maximum wait: then it sleeps until its deadline).
//! 4. **Leaving** (admitted, out of time, or cancelled: the future dropped): the task's
//!    slot is unlinked; if it was the head, the next task is woken to take over.
//! 5. **`reset`** stores a fresh TAT and wakes the head, whose cells now conform.
//!
//! Why it is fair: only the head takes cells out of the line, in line order, and rule 1
//! admits a newcomer only when everyone in line could still take their cells at once
//! afterwards. Why no wake-up is lost: every event that can make a task's cells conform
//! sooner than it planned (its predecessor leaving, `reset`) wakes it; every other event
//! (time passing) is covered by its own timer; and each poll decides afresh from the
//! current state, so a spurious wake-up costs one decision.
//!
//! A maximum wait is a deadline taken at the first poll. An arriving task whose cells
//! would conform only after it (behind the current line) is refused at once: waiting
//! could only end in the same refusal. The head gives up as soon as its cells cannot
//! conform by the deadline, and a task further back when its deadline passes; each
//! refusal reports the instant the cells would have conformed behind the line.
//!
//! # Locking
//!
//! The lock guards the line only; the TAT stays an atomic (a `check` never takes the
//! lock). No user code runs under the lock: the clock is read, the waker cloned and the
//! timer made and polled before or after it; wakers taken out of the line are woken, and
//! replaced ones dropped, after it is released. A panicking waker, clock or timer
//! unwinds through the waiting future, whose drop leaves the line (rule 4).

use core::future::{Future, IntoFuture, poll_fn};
use core::pin::pin;
use core::task::{Poll, Waker};
use core::time::Duration;

use super::direct::RateLimiter;
use super::machine::Decision;
use super::queue::{Line, Released};
use super::{BatchError, ExceedsBurst, RateLimited};
use crate::time::{Clock, Instant, Sleep};

impl<C: Sleep> RateLimiter<C> {
    /// Waits until one cell is admitted: at once if it conforms and nobody waits ahead,
    /// otherwise in line, first come first served, sleeping on the limiter's clock.
    ///
    /// Cancellation-safe: dropping the future at any point leaves the limiter as if this
    /// task had never come.
    ///
    /// ```
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::{Clock, StdClock};
    /// use std::time::Duration;
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(100)?.with_burst(1)?, StdClock);
    /// let start = StdClock.now();
    /// futures::executor::block_on(async {
    ///     limiter.until_ready().await; // at once
    ///     limiter.until_ready().await; // 10 ms later
    /// });
    /// assert!(StdClock.now() - start >= Duration::from_millis(10));
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub async fn until_ready(&self) {
        // One cell always fits the burst, and without a maximum wait nothing is refused.
        let _ = self.wait_for(1, None).await;
    }

    /// Waits until `cells` cells are admitted together, fairly, like
    /// [`until_ready`](RateLimiter::until_ready). More cells than the burst never conform:
    /// that is an error at once.
    pub async fn until_n_ready(&self, cells: u32) -> Result<(), ExceedsBurst> {
        if let Err(exceeds) = self.fits(cells) {
            self.tally().rejected();
            return Err(exceeds);
        }
        // Without a maximum wait nothing is refused.
        let _ = self.wait_for(cells, None).await;
        Ok(())
    }

    /// [`until_ready`](RateLimiter::until_ready), waiting at most `max_wait`: if the cell
    /// cannot be admitted by then, the wait ends in a [`RateLimited`] rejection, at once
    /// when that is already certain on arrival. A `max_wait` of zero admits only a cell
    /// that conforms now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::ManualClock;
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(1)?, ManualClock::new());
    /// futures::executor::block_on(async {
    ///     limiter.until_ready_within(Duration::from_millis(10)).await?;
    ///     // The next cell conforms in a second: no use waiting 10 ms for it.
    ///     let refused = limiter.until_ready_within(Duration::from_millis(10)).await.unwrap_err();
    ///     assert_eq!(refused.wait, Duration::from_secs(1));
    ///     Ok::<(), kompoz::rate::RateLimited>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn until_ready_within(&self, max_wait: Duration) -> Result<(), RateLimited> {
        self.wait_for(1, Some(max_wait)).await
    }

    /// [`until_n_ready`](RateLimiter::until_n_ready), waiting at most `max_wait`.
    pub async fn until_n_ready_within(
        &self,
        cells: u32,
        max_wait: Duration,
    ) -> Result<(), BatchError> {
        if let Err(exceeds) = self.fits(cells) {
            self.tally().rejected();
            return Err(exceeds.into());
        }
        Ok(self.wait_for(cells, Some(max_wait)).await?)
    }

    /// Runs `future` once a cell is admitted: waits like
    /// [`until_ready`](RateLimiter::until_ready), then runs it to completion.
    ///
    /// ```
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::StdClock;
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(50)?, StdClock);
    /// let answer = futures::executor::block_on(limiter.run(async { 6 * 7 }));
    /// assert_eq!(answer, 42);
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub async fn run<F: IntoFuture>(&self, future: F) -> F::Output {
        self.until_ready().await;
        future.await
    }

    /// [`run`](RateLimiter::run), waiting at most `max_wait` for the cell; the run itself
    /// is not limited in time.
    pub async fn run_within<F: IntoFuture>(
        &self,
        max_wait: Duration,
        future: F,
    ) -> Result<F::Output, RateLimited> {
        self.until_ready_within(max_wait).await?;
        Ok(future.await)
    }

    /// Waits for `cells` (1 to `burst`; zero is admitted at once) cells, giving up at
    /// `max_wait` after the first poll. Counts the admission or the refusal.
    pub(super) async fn wait_for(
        &self,
        cells: u32,
        max_wait: Option<Duration>,
    ) -> Result<(), RateLimited> {
        if cells == 0 {
            return Ok(());
        }
        // Rule 1: admitted at once, no line, no timer. Waiting reads the precise clock, so
        // that the cells it admits count from the true instant.
        if self.decide_at(self.clock().now(), self.queued(), cells).is_ok() {
            self.tally().admitted(cells);
            return Ok(());
        }
        let deadline = max_wait.map(|max_wait| self.clock().now().saturating_add(max_wait));
        let mut place = Place { limiter: self, key: None };
        let mut timer = pin!(None::<C::Timer>);
        let mut timer_at: Option<Instant> = None;
        poll_fn(|cx| {
            // A timer that fired has done its job.
            if let Some(fired) = timer.as_mut().as_pin_mut() {
                if fired.poll(cx).is_ready() {
                    timer.set(None);
                    timer_at = None;
                }
            }
            let until = match place.step(cells, deadline, cx.waker()) {
                Step::Admitted => return Poll::Ready(Ok(())),
                Step::Refused(limited) => return Poll::Ready(Err(limited)),
                Step::Wait { until } => until,
            };
            if until != timer_at {
                timer.set(until.map(|at| self.clock().sleep_until(at)));
                timer_at = until;
                if let Some(fresh) = timer.as_mut().as_pin_mut() {
                    if fresh.poll(cx).is_ready() {
                        // Already due (the clock moved since the decision): decide again
                        // on the next poll, which this asks for.
                        timer.set(None);
                        timer_at = None;
                        cx.waker().wake_by_ref();
                    }
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// What a waiting task does next.
enum Step {
    Admitted,
    Refused(RateLimited),
    /// Wait: for a timer at `until` if any, and for a wake-up from the line.
    Wait {
        until: Option<Instant>,
    },
}

/// A task's place in line (`key`: its slot, while it stands in line). Dropping it leaves
/// the line: that is how cancellation gives everything back.
struct Place<'a, C: Clock> {
    limiter: &'a RateLimiter<C>,
    key: Option<usize>,
}

/// What to do after the lock is released: drop the wakers the line gave back or did not
/// need, free the storage it gave up, and wake the new head.
#[derive(Default)]
struct After {
    unused: Option<Waker>,
    replaced: Option<Waker>,
    wake: Option<Waker>,
    released: Released,
}

impl After {
    fn run(self) {
        drop(self.unused);
        drop(self.replaced);
        drop(self.released);
        if let Some(waker) = self.wake {
            waker.wake();
        }
    }
}

impl<C: Clock> Place<'_, C> {
    /// One decision under the lock (rules 1 to 4), for `cells` cells with an optional
    /// `deadline`; registers `waker` when the task goes on waiting.
    fn step(&mut self, cells: u32, deadline: Option<Instant>, waker: &Waker) -> Step {
        let limiter = self.limiter;
        // User code, before the lock: the clock, and the waker's clone.
        let now = limiter.clock().now();
        let fresh = waker.clone();
        let mut after = After::default();
        let too_late = |limited: &RateLimited| deadline.is_some_and(|d| limited.earliest > d);
        let step = limiter.line.with(|line| match self.key {
            None => match limiter.decide_at(now, line.cells(), cells) {
                Ok(_) => {
                    after.unused = Some(fresh);
                    Step::Admitted
                }
                Err(limited) if too_late(&limited) => {
                    after.unused = Some(fresh);
                    Step::Refused(limited)
                }
                Err(limited) => {
                    let key = line.push_back(cells, fresh);
                    limiter.publish_queued(line);
                    self.key = Some(key);
                    let until = if line.is_head(key) { Some(limited.earliest) } else { deadline };
                    Step::Wait { until }
                }
            },
            Some(key) if line.is_head(key) => match limiter.decide_at(now, 0, cells) {
                Ok(_) => {
                    after.unused = Some(fresh);
                    self.leave(line, key, &mut after);
                    Step::Admitted
                }
                Err(limited) if too_late(&limited) => {
                    after.unused = Some(fresh);
                    self.leave(line, key, &mut after);
                    Step::Refused(limited)
                }
                Err(limited) => {
                    after.replaced = line.set_waker(key, fresh);
                    Step::Wait { until: Some(limited.earliest) }
                }
            },
            Some(key) => match deadline {
                Some(deadline) if now >= deadline => {
                    after.unused = Some(fresh);
                    let ahead = line.cells_ahead(key);
                    let tat = limiter.tat();
                    let earliest = match limiter.gcra().step(tat, now.as_nanos(), ahead, cells) {
                        Decision::Conform { .. } => now.as_nanos(),
                        Decision::Wait { earliest } => earliest,
                    };
                    self.leave(line, key, &mut after);
                    Step::Refused(RateLimited::at(earliest, now))
                }
                _ => {
                    after.replaced = line.set_waker(key, fresh);
                    Step::Wait { until: deadline }
                }
            },
        });
        // Counted before any user code runs: a panicking waker cannot undo the count.
        match step {
            Step::Admitted => limiter.tally().admitted(cells),
            Step::Refused(_) => limiter.tally().rejected(),
            Step::Wait { .. } => {}
        }
        after.run();
        step
    }

    /// Leaves the line (under the lock); what the line gives back goes into `after`.
    fn leave(&mut self, line: &mut Line, key: usize, after: &mut After) {
        let (own, next, released) = line.remove(key);
        self.limiter.publish_queued(line);
        self.key = None;
        after.replaced = own;
        after.wake = next;
        after.released = released;
    }
}

impl<C: Clock> Drop for Place<'_, C> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut after = After::default();
        let limiter = self.limiter;
        limiter.line.with(|line| self.leave(line, key, &mut after));
        after.run();
    }
}
