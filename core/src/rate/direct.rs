//! The atomic layer: [`RateLimiter`] applies the pure GCRA decision to one `AtomicU64`
//! with compare-exchange.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use core::fmt;
use core::num::NonZeroU64;

use super::machine::{Decision, Gcra};
use super::queue::Line;
use super::tally::Tally;
use super::{BatchError, ExceedsBurst, Name, Quota, RateLimited, RateStats};
use crate::sync::{AtomicU64, Ordering, SpinMutex};
use crate::time::{Clock, Instant};

/// A rate limiter shared by all its callers: one quota, one 64-bit state.
///
/// * **Exact.** The generic cell rate algorithm on integer nanoseconds (the arithmetic is
///   spelled out in the [module documentation](super)): a fresh limiter admits `burst`
///   cells at once, then one per interval, and never more than `burst + W / interval`
///   over any window `W` on the clock it decides on.
/// * **Lock-free and cheap.** Its whole state is one `AtomicU64`, updated with
///   compare-exchange: [`check`](RateLimiter::check) is a coarse clock reading, a load and
///   (when it admits) one compare-exchange. A refusal writes nothing shared.
/// * **Fair waiting.** [`until_ready`](RateLimiter::until_ready) admits waiting tasks in
///   the order they arrived, and nobody (a waiter or a `check`) is admitted in a way that
///   delays a task that was waiting first. Cancelling a wait at any point leaves the
///   limiter as if the task had never come: nothing is reserved, so nothing is lost.
/// * **Allocation-free.** Checks and refusals allocate nothing; a refusal
///   ([`RateLimited`]) is a small `Copy` value carrying when to retry.
///
/// ```
/// use std::time::Duration;
/// use kompoz::rate::{Quota, RateLimiter};
/// use kompoz::ManualClock;
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::new(Quota::per_second(100)?.with_burst(10)?, clock.clone());
/// for _ in 0..10 {
///     limiter.check()?; // the burst: ten at once
/// }
/// let refused = limiter.check().unwrap_err();
/// assert_eq!(refused.wait, Duration::from_millis(10)); // then one every 10 ms
/// clock.advance(refused.wait);
/// limiter.check()?;
/// assert_eq!((limiter.stats().admitted, limiter.stats().rejected), (11, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimiter<C> {
    /// The theoretical arrival time, in nanoseconds of `clock` (0: fresh).
    tat: AtomicU64,
    /// Mirror of the cells of the tasks waiting in line, readable without the lock.
    ///
    /// Its store (by a task joining or leaving the line) and its load (by a check) are
    /// `SeqCst`, like the TAT's updates: so a check and a task joining the line are
    /// ordered, and a check that sees no line really came before the task (on x86 a
    /// `SeqCst` load is a plain load, and the compare-exchange was a locked one anyway).
    queued: AtomicU64,
    gcra: Gcra,
    clock: C,
    /// The clock's `coarse_lag` in nanoseconds, read once when the limiter is built.
    lag: u64,
    tally: Tally,
    /// The tasks waiting in line (see `wait.rs`).
    pub(super) line: SpinMutex<Line>,
    /// The name its refusals and `Debug` carry.
    name: Name,
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter admitting `quota` on `clock`, with its full burst available.
    pub fn new(quota: Quota, clock: C) -> RateLimiter<C> {
        RateLimiter {
            tat: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            gcra: Gcra::new(quota),
            lag: crate::time::duration_to_nanos(clock.coarse_lag()),
            clock,
            tally: Tally::new(),
            line: SpinMutex::new(Line::new()),
            name: None,
        }
    }

    /// Names the limiter: its refusals, reported to the `tracing` and `metrics`
    /// integrations, carry the name (`kompoz_rejections_total{primitive="rate_limiter",
    /// name="github_api",cause="rate_limited"}`), and so does its `Debug`. A
    /// [`Registry`](crate::limit::Registry) names its rate limiters after their keys.
    /// Costs 8 bytes and one allocation, here; nothing per check.
    ///
    /// ```
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::ManualClock;
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(5)?, ManualClock::new()).with_name("github_api");
    /// assert_eq!(limiter.name(), Some("github_api"));
    /// assert!(format!("{limiter:?}").contains("github_api"));
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> RateLimiter<C> {
        self.name = Some(Box::new(name.into()));
        self
    }

    /// The limiter's name, if it was given one.
    ///
    /// ```
    /// use kompoz::rate::{Quota, RateLimiter};
    /// use kompoz::ManualClock;
    ///
    /// assert_eq!(RateLimiter::new(Quota::per_second(5)?, ManualClock::new()).name(), None);
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().map(|name| &**name)
    }

    /// Admits one cell now, or says when it would conform. Never waits.
    ///
    /// Decided on [`Clock::now_coarse`] (see the [module documentation](super) for what
    /// that means for precision); a cell is refused while tasks wait in line unless it
    /// conforms after all of theirs.
    ///
    /// Inlined whole into the caller (the rare paths, a line of waiting tasks or a
    /// refusal near its edge, are calls out of line): the decision and the rejection stay
    /// in registers instead of travelling through memory.
    #[inline(always)]
    pub fn check(&self) -> Result<(), RateLimited> {
        self.take(self.clock.now_coarse(), 1)
    }

    /// Admits `cells` cells now, all or none, or says why not. A batch larger than the
    /// burst is [`BatchError::ExceedsBurst`]: it never conforms, so waiting cannot help.
    /// Zero cells are admitted at once, counting nothing.
    ///
    /// ```
    /// use kompoz::rate::{BatchError, ExceedsBurst, Quota, RateLimiter};
    /// use kompoz::ManualClock;
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(10)?, ManualClock::new());
    /// limiter.check_n(7)?;
    /// assert!(matches!(limiter.check_n(4), Err(BatchError::RateLimited(_))));
    /// assert_eq!(
    ///     limiter.check_n(11),
    ///     Err(BatchError::ExceedsBurst(ExceedsBurst { cells: 11, burst: 10 }))
    /// );
    /// limiter.check_n(3)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_n(&self, cells: u32) -> Result<(), BatchError> {
        if let Err(exceeds) = self.fits(cells) {
            self.tally.rejected();
            return Err(exceeds.into());
        }
        if cells == 0 {
            return Ok(());
        }
        Ok(self.take(self.clock.now_coarse(), cells)?)
    }

    /// A snapshot of the counters, the line of waiting tasks, and the wait a one-cell
    /// request would have now (read on the precise clock).
    pub fn stats(&self) -> RateStats {
        let (admitted, rejected) = self.tally.totals();
        let (waiting, queued) = self.line.with(|line| (line.len(), line.cells()));
        let now = self.clock.now();
        let tat = self.tat.load(Ordering::Acquire);
        let wait = match self.gcra.step(tat, now.as_nanos(), queued, 1) {
            Decision::Conform { .. } => core::time::Duration::ZERO,
            Decision::Wait { earliest } => RateLimited::at(earliest, now).wait,
        };
        let available = self.gcra.available(tat, now.as_nanos(), queued);
        RateStats { admitted, rejected, waiting, wait, available }
    }

    /// Forgets every cell admitted so far: the full burst is available again, and the
    /// first waiting task is woken to take its cells. The counters keep counting.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::SeqCst);
        let head = self.line.with(|line| line.take_head_waker());
        // Woken after the lock is released: a waker may run arbitrary code.
        if let Some(waker) = head {
            waker.wake();
        }
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.gcra.quota()
    }

    /// The clock the limiter decides on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// `Err` if `cells` can never conform.
    pub(super) fn fits(&self, cells: u32) -> Result<(), ExceedsBurst> {
        if cells > self.gcra.burst {
            return Err(ExceedsBurst { cells, burst: self.gcra.burst });
        }
        Ok(())
    }

    /// Decides on the coarse reading `coarse` for `cells` (1 to `burst`) cells, behind
    /// the waiting tasks; admits by compare-exchange. Counts the admission or the refusal
    /// (and reports the refusal).
    ///
    /// The common cases, nobody waiting and a refusal beyond the coarse lag, are inlined:
    /// one load of the line's cells, one of the TAT, the 64-bit GCRA step, then either
    /// the compare-exchange or the rejection, and the count. The rest are calls out of
    /// line that return a [`Refusal`] in registers.
    #[inline(always)]
    fn take(&self, coarse: Instant, cells: u32) -> Result<(), RateLimited> {
        // The line first, then the TAT (see `queued`).
        let ahead = self.queued.load(Ordering::SeqCst);
        let slow = 'fast: {
            if ahead != 0 {
                break 'fast self.take_behind(coarse, ahead, cells);
            }
            let now = coarse.as_nanos();
            let mut tat = self.tat.load(Ordering::SeqCst);
            loop {
                match self.gcra.step_alone(tat, now, cells) {
                    Decision::Conform { tat: next } => {
                        match self.tat.compare_exchange_weak(
                            tat,
                            next,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        ) {
                            Ok(_) => {
                                self.tally.admitted(cells);
                                return Ok(());
                            }
                            Err(actual) => tat = actual,
                        }
                    }
                    Decision::Wait { earliest } => {
                        // A refusal's `earliest` lies after the reading it was decided on.
                        let wait = earliest - now;
                        // Final beyond the coarse lag: the precise time cannot have
                        // reached it.
                        if wait > self.lag {
                            return Err(self.refused(RateLimited::after(earliest, wait)));
                        }
                        break 'fast self.take_precisely(cells);
                    }
                }
            }
        };
        slow.map_err(Refusal::limited)
    }

    /// [`take`](RateLimiter::take) behind `ahead` (> 0) cells of waiting tasks.
    #[cold]
    #[inline(never)]
    fn take_behind(&self, coarse: Instant, ahead: u64, cells: u32) -> Result<(), Refusal> {
        let mut tat = self.tat.load(Ordering::SeqCst);
        loop {
            match self.gcra.step(tat, coarse.as_nanos(), ahead, cells) {
                Decision::Conform { tat: next } => {
                    match self.tat.compare_exchange_weak(
                        tat,
                        next,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    ) {
                        Ok(_) => {
                            self.tally.admitted(cells);
                            return Ok(());
                        }
                        Err(actual) => tat = actual,
                    }
                }
                // Final beyond the coarse lag, as in `take`.
                Decision::Wait { earliest }
                    if earliest > coarse.as_nanos().saturating_add(self.lag) =>
                {
                    return Err(Refusal::counted(self, earliest, coarse));
                }
                Decision::Wait { .. } => return self.take_precisely(cells),
            }
        }
    }

    /// A refusal near its edge on the coarse reading: decided again on the precise clock.
    #[cold]
    #[inline(never)]
    fn take_precisely(&self, cells: u32) -> Result<(), Refusal> {
        let now = self.clock.now();
        match self.decide_at(now, self.queued.load(Ordering::SeqCst), cells) {
            Ok(_) => {
                self.tally.admitted(cells);
                Ok(())
            }
            Err(limited) => Err(Refusal::counted(self, limited.earliest.as_nanos(), now)),
        }
    }

    /// Counts and reports a refusal.
    #[inline(always)]
    fn refused(&self, limited: RateLimited) -> RateLimited {
        self.tally.rejected();
        super::report_refusal(&self.name, limited);
        limited
    }

    /// Decides at `now` behind `ahead` queued cells; admits by compare-exchange. Returns
    /// the new TAT on admission.
    pub(super) fn decide_at(
        &self,
        now: Instant,
        ahead: u64,
        cells: u32,
    ) -> Result<u64, RateLimited> {
        let mut tat = self.tat.load(Ordering::SeqCst);
        loop {
            match self.gcra.step(tat, now.as_nanos(), ahead, cells) {
                Decision::Conform { tat: next } => {
                    match self.tat.compare_exchange_weak(
                        tat,
                        next,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    ) {
                        Ok(_) => return Ok(next),
                        Err(actual) => tat = actual,
                    }
                }
                Decision::Wait { earliest } => return Err(RateLimited::at(earliest, now)),
            }
        }
    }

    /// Publishes the cells in line (under the lock).
    pub(super) fn publish_queued(&self, line: &Line) {
        self.queued.store(line.cells(), Ordering::SeqCst);
    }

    /// The cells of the tasks waiting in line, as last published.
    pub(super) fn queued(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }

    pub(super) fn tally(&self) -> &Tally {
        &self.tally
    }

    pub(super) fn gcra(&self) -> &Gcra {
        &self.gcra
    }

    pub(super) fn tat(&self) -> u64 {
        self.tat.load(Ordering::Acquire)
    }
}

/// A refusal, counted and reported, as the rare paths of [`RateLimiter::take`] return
/// it: the instant the cells would conform and the reading it was decided on. Sixteen
/// bytes with a niche (a refusal's `earliest` lies after its reading, so it is never 0),
/// so that `Result<(), Refusal>` travels in two registers: a 24-byte [`RateLimited`]
/// returned through memory and merged with the inlined paths' would be copied in the
/// caller with wider loads than its stores, stalling on store forwarding.
#[derive(Clone, Copy)]
struct Refusal {
    earliest: NonZeroU64,
    at: Instant,
}

impl Refusal {
    /// Counts and reports the refusal of `limiter`'s cells until `earliest`, decided at `at`.
    fn counted<C: Clock>(limiter: &RateLimiter<C>, earliest: u64, at: Instant) -> Refusal {
        limiter.refused(RateLimited::at(earliest, at));
        debug_assert!(earliest > at.as_nanos() || earliest == u64::MAX);
        // `earliest > at >= 0`, or the end of time: never 0.
        Refusal { earliest: NonZeroU64::new(earliest).unwrap_or(NonZeroU64::MAX), at }
    }

    #[inline(always)]
    fn limited(self) -> RateLimited {
        RateLimited::at(self.earliest.get(), self.at)
    }
}

impl<C: fmt::Debug> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RateLimiter");
        if let Some(name) = &self.name {
            out.field("name", name);
        }
        out.field("quota", &self.gcra.quota())
            .field("clock", &self.clock)
            .field("tat", &Instant::from_nanos(self.tat.load(Ordering::Relaxed)))
            .field("queued_cells", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

/// Anything that holds a [`RateLimiter`]: the limiter itself, a reference, a `Box` or an
/// `Arc` (for [`rate_limited_on`](crate::rate_limited_on)).
pub trait AsRateLimiter {
    /// The limiter's clock.
    type Clock: Clock;
    /// The limiter.
    fn as_rate_limiter(&self) -> &RateLimiter<Self::Clock>;
}

impl<C: Clock> AsRateLimiter for RateLimiter<C> {
    type Clock = C;
    fn as_rate_limiter(&self) -> &RateLimiter<C> {
        self
    }
}

impl<L: AsRateLimiter + ?Sized> AsRateLimiter for &L {
    type Clock = L::Clock;
    fn as_rate_limiter(&self) -> &RateLimiter<L::Clock> {
        (**self).as_rate_limiter()
    }
}

impl<L: AsRateLimiter + ?Sized> AsRateLimiter for alloc::boxed::Box<L> {
    type Clock = L::Clock;
    fn as_rate_limiter(&self) -> &RateLimiter<L::Clock> {
        (**self).as_rate_limiter()
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<L: AsRateLimiter + ?Sized> AsRateLimiter for alloc::sync::Arc<L> {
    type Clock = L::Clock;
    fn as_rate_limiter(&self) -> &RateLimiter<L::Clock> {
        (**self).as_rate_limiter()
    }
}
