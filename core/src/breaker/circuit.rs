//! [`CircuitBreaker`]: the atomic layer that applies the pure machine, and its memory
//! layout.

use alloc::boxed::Box;
use core::fmt;
use core::future::IntoFuture;
use core::time::Duration;

use super::breaks::Breaks;
use super::builder::Config;
use super::call::{Call, Classify, ErrIsFailure};
use super::cell::{self, CLOSED_BITS, EXTERNAL, FORCED, OPEN_BITS, READY, StateCell, TIMED};
use super::counters::{Counters, Index, Shards};
use super::extras::Extras;
use super::guard::BreakerGuard;
use super::machine::{Effect, Event, Limits, Machine, Rule, Ticket};
use super::window::{Outcome, RateWindow, Tally};
use super::{BreakerStats, CircuitOpen, CircuitState, Verdict};
use crate::sync::{AtomicU64, Ordering};
use crate::time::{Clock, Instant};

/// A call's admission as the guard and the call future keep it: the machine's ticket, and
/// when the call started (coarse clock, nanoseconds; read only when slow calls count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pass {
    pub(crate) ticket: Ticket,
    pub(crate) started: u64,
}

impl Pass {
    /// A refusal in a pass's place, for the out-of-line admission paths: a `Pass` comes
    /// back in two registers, a `Result<Pass, CircuitOpen>` through memory, and the
    /// inlined closed path, which joins it, went through memory too.
    fn refusal(result: Result<Pass, CircuitOpen>) -> Pass {
        match result {
            Ok(pass) => pass,
            Err(open) => Pass {
                ticket: Ticket::REFUSED,
                started: u64::from(open.state == CircuitState::HalfOpen),
            },
        }
    }

    /// The admission that [`refusal`](Pass::refusal) encoded.
    #[inline(always)]
    fn admission(self) -> Result<Pass, CircuitOpen> {
        if self.ticket != Ticket::REFUSED {
            return Ok(self);
        }
        let state = if self.started == 0 { CircuitState::Open } else { CircuitState::HalfOpen };
        Err(CircuitOpen { state })
    }
}

/// A circuit breaker whose whole state lives in atomics: no lock anywhere on the call
/// path, so it works on any executor, from any thread, and in `no_std`.
///
/// * **Closed**: calls pass; `failure_threshold` consecutive failures open the circuit
///   (kompoz's rule, the default), or, with [`trip_on`](super::BreakerBuilder::trip_on),
///   a failure or slow-call rate over a window of calls ([`FailureRate`](super::FailureRate)).
/// * **Open**: calls are rejected at once (a [`CircuitOpen`] error, no allocation) until
///   the break has passed on the breaker's clock: `recovery_timeout`, or a
///   [`BreakDuration`](super::BreakDuration) that grows while the dependency stays down.
/// * **Half-open**: the first call after the recovery time is let in as a probe, with up
///   to `half_open_max_calls` probes in flight at once; further calls are rejected, not
///   queued. `success_threshold` successful probes close the circuit; a failed probe
///   opens it again. Probes still running from an earlier half-open period count against
///   the limit until they finish, so the recovering dependency never sees more than
///   `half_open_max_calls` probes at once. A probe may hold its slot for
///   `half_open_max_wait` at most: once every probe in flight has held its slot that
///   long, they are forgotten and the next call becomes the first probe of a fresh
///   half-open period, so a probe that hangs (or a leaked guard) cannot wedge recovery.
///
/// Build one with [`CircuitBreaker::builder`] (or
/// [`BreakerBuilder::new`](super::BreakerBuilder::new) without `std`). Use it through
/// [`call`](CircuitBreaker::call) for futures of `Result`, through
/// [`try_acquire`](CircuitBreaker::try_acquire) and a [`BreakerGuard`] for framework
/// integrations, or as a combinator with [`circuit_breaker`](crate::circuit_breaker).
///
/// # Exactly what counts
///
/// * A call's outcome moves the state only if the breaker is still in the *generation*
///   the call was admitted in; every transition (and every `reset`, `force_open` and
///   expiry of hung probes) starts a new one, and generations are 64-bit, so this holds
///   however many transitions pass while a call runs. Outcomes that arrive later are
///   counted in [`BreakerStats`] totals but do not move the state: a slow call admitted
///   while closed that fails after the circuit went half-open is not taken for a failed
///   probe.
/// * A probe holds its slot until it ends, across transitions, unless the probes are
///   *forgotten*: by `reset`, by the expiry of hung probes, or after 63 transitions in a
///   row with a probe in flight (as if hung). A forgotten probe that ends later gives
///   nothing back, so a late probe can never free a slot that a newer probe holds.
/// * A call that ends without a verdict (its future dropped, a panic, or
///   [`Verdict::Ignore`]) gives its probe slot back and counts as neither success nor
///   failure.
/// * [`state`](CircuitBreaker::state) reports the committed state: an open circuit whose
///   recovery time has passed is reported `Open` until a call arrives and becomes the
///   first probe, which is also when `on_state_change(Open, HalfOpen)` is reported.
/// * Each transition is reported exactly once, by the thread that made it, after it is
///   committed: as an event (to the `tracing` and `metrics` integrations and the
///   [`listener`](super::BreakerBuilder::listener)), then to `on_state_change`. The
///   callback (or listener) may call back into the breaker (`reset`, another call)
///   freely; if it panics, the panic reaches the caller whose call made the transition,
///   the breaker stays consistent, and nothing is counted as a failure.
///
/// # Cost
///
/// Admission while closed is two loads of one cache line; recording a success is one
/// more load, plus a plain load and store on the calling thread's counters (no
/// read-modify-write), and a coarse clock reading for `last_success_time` only now and
/// then (see [`BreakerStats::last_success_time`]). Rejection while open is four loads, a
/// coarse clock reading ([`Clock::now_coarse`]) and the thread's rejection count; the
/// precise clock is read only within [`Clock::coarse_lag`] of the recovery deadline (the
/// lag is read once, when the breaker is built). These paths are inlined into the caller,
/// `call`'s future included (a call costs what a guard does), and everything else is out
/// of line. (The plain store is the counters' owner's, the first thread that counts; other
/// threads count with a read-modify-write.) A [`FailureRate`](super::FailureRate)
/// policy adds, per call: for a count window full of fast successes, one load; for a time
/// window, a coarse clock reading and a plain store on the calling thread's own tally while
/// the bucket lasts; otherwise a short spin-locked update of the window (and a coarse clock
/// reading for timed calls).
///
/// A breaker with the default policy on [`StdClock`](crate::StdClock) takes 256 bytes and
/// no heap: four cache lines, one read by every call and written only by transitions, one
/// for the counters of the thread that uses it (or used it first), one for other threads'
/// counters, one for the configuration. If two threads ever write its shared counters at
/// the same instant, it allocates 1 KiB of per-thread counter cells, once.
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::{CallError, CircuitBreaker, CircuitState};
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(2)
///     .recovery_timeout(Duration::from_secs(30))
///     .build()?;
///
/// futures::executor::block_on(async {
///     for _ in 0..2 {
///         let failed = breaker.call(async { Err::<(), _>("connection refused") }).await;
///         assert!(matches!(failed, Err(CallError::Inner("connection refused"))));
///     }
///     assert_eq!(breaker.state(), CircuitState::Open);
///     // Rejected without running the call.
///     let rejected = breaker.call(async { Ok::<_, &str>(1) }).await;
///     assert!(matches!(rejected, Err(CallError::Rejected(_))));
/// });
/// assert_eq!(breaker.stats().rejected_calls, 1);
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
#[repr(C)]
pub struct CircuitBreaker<C> {
    /// Read by every call; written by transitions only.
    hot: Hot,
    /// The counters of the thread that owns them (`home`; its `extra`:
    /// `half_open_max_wait`, in nanoseconds) and every other thread's (`shared`; its
    /// `extra`: how many times the circuit opened), a cache line each.
    shards: Shards,
    pub(super) cold: Cold,
    clock: C,
}

/// The cache line every call reads.
#[repr(C, align(64))]
struct Hot {
    cell: StateCell,
    /// The deadline of the current (or last) open period's break, in nanoseconds.
    open_until: AtomicU64,
    /// The latest clock reading at which a probe was admitted (raised before each probe's
    /// admission is committed), in nanoseconds.
    last_probe_at: AtomicU64,
    index: Index,
    limits: Limits,
}

/// Configuration read on slow paths only (and `coarse_lag` by rejections).
pub(super) struct Cold {
    /// The name, the events listener and the `on_state_change` callback, if any was given:
    /// a thin pointer, read at transitions and (whether it is null) at rejections.
    pub(super) extras: Option<Box<Extras>>,
    /// The clock's `coarse_lag` in nanoseconds, read once when the breaker was built.
    coarse_lag: u64,
    breaks: Breaks,
    /// The failure-rate policy's window (`None`: consecutive failures).
    window: Option<Box<RateWindow>>,
}

impl<C: Clock> CircuitBreaker<C> {
    pub(crate) fn from_config(config: Config, clock: C, extras: Extras) -> Self {
        let Config { limits, rate, breaks, half_open_max_wait } = config;
        let window = rate.map(|rate| Box::new(RateWindow::new(rate)));
        let timed = window.as_ref().is_some_and(|w| w.timed());
        CircuitBreaker {
            hot: Hot {
                cell: StateCell::new(limits.rule == Rule::External, timed),
                open_until: AtomicU64::new(0),
                last_probe_at: AtomicU64::new(0),
                index: Index::new(),
                limits,
            },
            shards: Shards::new(nanos(half_open_max_wait), 0),
            cold: Cold {
                extras: extras.boxed(),
                coarse_lag: nanos(clock.coarse_lag()),
                breaks: Breaks::new(breaks),
                window,
            },
            clock,
        }
    }

    #[inline]
    fn counters(&self) -> Counters<'_> {
        Counters { index: &self.hot.index, shards: &self.shards }
    }

    /// Asks to make a call. On success the returned guard records the call's outcome
    /// ([`BreakerGuard::success`], [`failure`](BreakerGuard::failure)); a guard dropped
    /// without a verdict gives its probe slot back and records nothing. Fails with
    /// [`CircuitOpen`] while the circuit is open or all probe slots are taken.
    ///
    /// ```
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// let guard = breaker.try_acquire()?;
    /// // ... make the call; it failed:
    /// guard.failure();
    /// assert!(breaker.try_acquire().is_err(), "open now");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerGuard<'_, C>, CircuitOpen> {
        self.admit().map(|pass| BreakerGuard::new(self, pass))
    }

    /// Admission: two loads while closed (calls not timed: the default policy). The two
    /// common cases are inlined, each after a mask and a compare of the word: a closed
    /// circuit, and an open one whose recovery time is not near (three loads and a coarse
    /// clock reading, then the thread's rejection count). Everything else is out of line.
    #[inline(always)]
    pub(super) fn admit(&self) -> Result<Pass, CircuitOpen> {
        match self.hot.cell.admit_closed() {
            Ok(ticket) => Ok(Pass { ticket, started: 0 }),
            Err((word, _)) if cell::open_and_timed(word) => {
                let deadline = self.hot.open_until.load(Ordering::Acquire);
                let coarse = self.clock.now_coarse().as_nanos();
                // More than `coarse_lag` ahead of the coarse time: the precise time cannot
                // have reached it.
                if deadline.checked_sub(coarse).is_some_and(|ahead| ahead > self.cold.coarse_lag) {
                    return Err(self.reject_open());
                }
                self.admit_near_recovery(word, deadline, coarse).admission()
            }
            Err((word, epoch)) => self.admit_other(word, epoch).admission(),
        }
    }

    /// Counts and reports a rejection by an open circuit.
    #[inline(always)]
    fn reject_open(&self) -> CircuitOpen {
        self.counters().rejected();
        self.rejected(CircuitState::Open);
        CircuitOpen { state: CircuitState::Open }
    }

    /// Admission by an open circuit (not forced, its break timed) whose recovery
    /// `deadline` is within the clock's `coarse_lag` of the `coarse` time read for it, or
    /// past: the coarse time decides if it is past, else the precise time.
    #[inline(never)]
    fn admit_near_recovery(&self, word: u64, deadline: u64, coarse: u64) -> Pass {
        Pass::refusal(if coarse < deadline && self.clock.now().as_nanos() < deadline {
            Err(self.reject_open())
        } else {
            self.admit_slow(word)
        })
    }

    /// Admission off the fast paths: a timed call in a closed circuit (a slow-call policy),
    /// an open circuit that is forced or whose break is not timed yet, a half-open one.
    #[inline(never)]
    fn admit_other(&self, word: u64, epoch: u64) -> Pass {
        Pass::refusal(if cell::state_bits(word) == CLOSED_BITS {
            // Slow calls count: the call starts now.
            let ticket = cell::closed_ticket(word, epoch);
            Ok(Pass { ticket, started: self.clock.now_coarse().as_nanos() })
        } else if self.rejects_while_open(word) {
            Err(self.reject_open())
        } else {
            self.admit_slow(word)
        })
    }

    /// Whether `word` is an open circuit that still rejects: forced, its break not timed
    /// yet, or its break not over.
    #[inline]
    fn rejects_while_open(&self, word: u64) -> bool {
        cell::state_bits(word) == OPEN_BITS
            && (word & (FORCED | READY) != READY || !self.recovery_due())
    }

    /// When a call admitted under `word` starts, if calls are timed.
    #[inline(always)]
    fn started(&self, word: u64) -> u64 {
        if word & TIMED != 0 { self.start_timing() } else { 0 }
    }

    #[inline(never)]
    fn start_timing(&self) -> u64 {
        self.clock.now_coarse().as_nanos()
    }

    /// Runs `future` through the breaker: rejected at once while open, otherwise run, with
    /// `Err` counted as a failure and `Ok` as a success.
    ///
    /// Admission happens when the returned future is first polled. If it is dropped
    /// before it completes, the call counts as neither (and gives back its probe slot).
    ///
    /// ```
    /// use kompoz::breaker::{CallError, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let answer = futures::executor::block_on(breaker.call(async { Ok::<_, &str>(42) }));
    /// assert_eq!(answer, Ok(42));
    /// let failed = futures::executor::block_on(breaker.call(async { Err::<u8, _>("refused") }));
    /// assert_eq!(failed, Err(CallError::Inner("refused")));
    /// assert_eq!(breaker.stats().failure_count, 1);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    #[inline]
    pub fn call<F, T, E>(&self, future: F) -> Call<'_, C, F::IntoFuture, ErrIsFailure>
    where
        F: IntoFuture<Output = Result<T, E>>,
    {
        Call::new(self, future.into_future(), ErrIsFailure)
    }

    /// [`call`](CircuitBreaker::call) with a classifier that decides what counts as a
    /// failure: an `Ok` may count as one (a degraded answer), and some errors may count as
    /// success or be ignored (a "not found" says nothing about the dependency's health).
    /// A classifier that panics counts as neither.
    ///
    /// ```
    /// use kompoz::breaker::{CircuitBreaker, Verdict};
    ///
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// let not_found_is_healthy = |result: &Result<u32, u16>| match result {
    ///     Ok(_) | Err(404) => Verdict::Success,
    ///     Err(_) => Verdict::Failure,
    /// };
    /// let answer = futures::executor::block_on(breaker.call_with(not_found_is_healthy, async {
    ///     Err::<u32, u16>(404)
    /// }));
    /// assert!(answer.is_err());
    /// assert_eq!(breaker.stats().success_count, 1);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    #[inline]
    pub fn call_with<F, T, E, K>(&self, classify: K, future: F) -> Call<'_, C, F::IntoFuture, K>
    where
        F: IntoFuture<Output = Result<T, E>>,
        K: Classify<T, E>,
    {
        Call::new(self, future.into_future(), classify)
    }

    /// The committed state. An open circuit whose recovery time has passed is still
    /// `Open` until a call arrives and becomes the first probe.
    ///
    /// ```
    /// use kompoz::breaker::{CircuitBreaker, CircuitState};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// breaker.force_open();
    /// assert_eq!(breaker.state(), CircuitState::Open);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn state(&self) -> CircuitState {
        cell::unpack(self.hot.cell.word(), 0).state
    }

    /// A snapshot of the breaker's state and counters. The state fields are read in one
    /// atomic load; the totals are summed from counters that only grow, so under
    /// concurrent use they may be a moment apart from the state.
    ///
    /// ```
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// breaker.try_acquire()?.success();
    /// breaker.try_acquire()?.failure();
    /// let stats = breaker.stats();
    /// assert_eq!((stats.success_count, stats.total_failures, stats.total_calls), (1, 1, 2));
    /// assert_eq!(stats.failure_count, 1, "the current streak");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> BreakerStats {
        let machine = self.hot.cell.machine(self.hot.cell.word());
        let totals = self.counters().totals();
        let window = match &self.cold.window {
            Some(window) if machine.state == CircuitState::Closed => {
                window.tally(machine.generation, self.clock.now_coarse().as_nanos())
            }
            _ => Tally { failures: machine.failures, ..Tally::default() },
        };
        BreakerStats {
            state: machine.state,
            failure_count: window.failures,
            window_calls: window.calls,
            slow_call_count: window.slow,
            break_duration: Duration::from_nanos(self.cold.breaks.current()),
            success_count: totals.successes,
            last_failure_time: totals.last_failure,
            last_success_time: totals.last_success,
            half_open_successes: machine.probe_successes,
            probes_in_flight: machine.probes,
            forced_open: machine.forced,
            total_failures: totals.failures,
            abandoned_calls: totals.abandoned,
            rejected_calls: totals.rejected,
            total_calls: totals.successes + totals.failures + totals.abandoned + totals.rejected,
            times_opened: self.shards.shared.extra.load(Ordering::Relaxed),
        }
    }

    /// Closes the circuit, forgetting its failure streak and its probes (kompoz's
    /// `reset()`), and undoes [`force_open`](CircuitBreaker::force_open). Calls admitted
    /// before the reset, probes included, no longer move the state or free a slot when
    /// they finish.
    ///
    /// ```
    /// use kompoz::breaker::{CircuitBreaker, CircuitState};
    ///
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(breaker.state(), CircuitState::Open);
    /// breaker.reset();
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&self) {
        self.apply(Event::Reset);
    }

    /// Opens the circuit and keeps it open, ignoring the recovery timeout, until
    /// [`reset`](CircuitBreaker::reset): isolates a dependency by hand.
    ///
    /// ```
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// breaker.force_open();
    /// assert!(breaker.try_acquire().is_err());
    /// assert!(breaker.stats().forced_open);
    /// breaker.reset();
    /// assert!(breaker.try_acquire().is_ok());
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn force_open(&self) {
        self.apply(Event::ForceOpen);
    }

    /// The clock the breaker measures time on.
    ///
    /// ```
    /// use kompoz::{Clock, ManualClock, breaker::BreakerBuilder};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = BreakerBuilder::new().build_with(clock.clone())?;
    /// assert_eq!(breaker.clock().now(), clock.now());
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// How long the circuit stays open before it lets a probe in: the fixed break, or the
    /// first break of a growing [`BreakDuration`](super::BreakDuration).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().recovery_timeout(Duration::from_secs(5)).build()?;
    /// assert_eq!(breaker.recovery_timeout(), Duration::from_secs(5));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn recovery_timeout(&self) -> Duration {
        Duration::from_nanos(self.cold.breaks.initial())
    }

    /// How long a half-open probe may hold its slot before it is presumed hung.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().half_open_max_wait(Duration::from_secs(5)).build()?;
    /// assert_eq!(breaker.half_open_max_wait(), Duration::from_secs(5));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn half_open_max_wait(&self) -> Duration {
        Duration::from_nanos(self.shards.home.extra.load(Ordering::Relaxed))
    }

    /// Admission when the circuit is not closed and not simply rejecting: `word` is
    /// half-open, or open and past its recovery deadline (as `rejects_while_open` or
    /// `admit_near_recovery` found).
    #[cold]
    fn admit_slow(&self, mut word: u64) -> Result<Pass, CircuitOpen> {
        loop {
            let machine = self.hot.cell.machine(word);
            let limits = &self.hot.limits;
            let probes_expired = machine.probes_full(limits) && self.probes_expired();
            let recovered = machine.state == CircuitState::Open;
            let step = machine.step(Event::Admit { recovered, probes_expired }, limits);
            let ticket = match step.effect {
                Effect::Admitted(ticket) => ticket,
                _ => {
                    self.counters().rejected();
                    self.rejected(machine.state);
                    return Err(CircuitOpen { state: machine.state });
                }
            };
            if step.next == machine {
                return Ok(Pass { ticket, started: self.started(word) });
            }
            if ticket.probe() {
                // Raised before the probe is committed: whoever sees the probe sees a
                // time at or after its admission (a raise whose commit fails only delays
                // the expiry).
                self.hot.last_probe_at.fetch_max(self.clock.now().as_nanos(), Ordering::AcqRel);
            }
            match self.hot.cell.commit(word, step.next, false) {
                Ok(()) => {
                    // Hold the ticket in a guard while reporting: if the callback panics,
                    // dropping the guard gives the probe slot back.
                    let guard =
                        BreakerGuard::new(self, Pass { ticket, started: self.started(word) });
                    self.report(machine.state, step.next.state);
                    return Ok(guard.into_pass());
                }
                Err(actual) => word = actual,
            }
            // The word moved on: it may be an open circuit again.
            if self.rejects_while_open(word) {
                return Err(self.reject_open());
            }
        }
    }

    /// Whether `deadline` has passed: the coarse clock decides when it is clear either
    /// way, the precise clock only near the deadline.
    #[inline]
    fn passed(&self, deadline: Instant) -> bool {
        let coarse = self.clock.now_coarse().as_nanos();
        if coarse >= deadline.as_nanos() {
            return true;
        }
        if coarse.saturating_add(self.cold.coarse_lag) < deadline.as_nanos() {
            return false;
        }
        self.clock.now() >= deadline
    }

    /// Whether the published recovery deadline has passed.
    #[inline]
    fn recovery_due(&self) -> bool {
        self.passed(Instant::from_nanos(self.hot.open_until.load(Ordering::Acquire)))
    }

    /// Whether every probe in flight was admitted at least `half_open_max_wait` ago.
    fn probes_expired(&self) -> bool {
        let latest = Instant::from_nanos(self.hot.last_probe_at.load(Ordering::Acquire));
        self.passed(latest.saturating_add(self.half_open_max_wait()))
    }

    /// Records the outcome of the call admitted with `pass`. The common case, a success of
    /// an ordinary call, is small enough to inline into the caller; the rest is not.
    #[inline(always)]
    pub(super) fn settle(&self, pass: Pass, verdict: Verdict) {
        if verdict == Verdict::Success && !pass.ticket.probe() {
            let word = self.hot.cell.word();
            self.counters().success(&self.clock);
            // Still closed with no failure streak, under the default policy: nothing to do,
            // whether the ticket is current or late (see cell.rs).
            if word != cell::clean_closed(pass.ticket.generation()) {
                self.success_slow(pass, word);
            }
        } else {
            self.settle_other(pass, verdict);
        }
    }

    /// A success of an ordinary call that is not a no-op, or under a failure-rate policy.
    /// A count window full of fast successes, with untimed calls, is settled here in a
    /// load; everything else a window does is out of line (so that this path stays a load
    /// and a return, without the spills of the paths below).
    #[inline(never)]
    fn success_slow(&self, pass: Pass, word: u64) {
        match &self.cold.window {
            Some(window) if word & EXTERNAL != 0 => {
                if word & TIMED == 0 && window.skip_success(pass.ticket.generation()) {
                    return;
                }
                self.window_success(window, pass, word);
            }
            _ => self.apply(Event::Success(pass.ticket)),
        }
    }

    /// A success under a failure-rate policy that is not skipped. With untimed calls, the
    /// windows settle a fast success here: a count window under its lock with nothing
    /// summed, a time window on the thread's tally after a coarse clock reading. Timed
    /// calls, and a time window's success that misses its tally, are recorded out of line.
    #[inline(never)]
    fn window_success(&self, window: &RateWindow, pass: Pass, word: u64) {
        if word & TIMED == 0 {
            let generation = pass.ticket.generation();
            if window.count_success(generation) {
                return;
            }
            // A time window's tally, looked up before the clock is read: the lookup's
            // loads overlap the reading.
            if let Some(ready) = window.ready_tally(generation) {
                let now = self.clock.now_coarse().as_nanos();
                if !ready.count(now) {
                    self.record(window, pass.ticket, Outcome::SUCCESS, now);
                }
                return;
            }
        }
        self.window_success_recorded(window, pass, word);
    }

    /// A timed success (slow or not), or a time window's fast success on a thread without a
    /// tally for it: counted on the thread's tally if it can be, else recorded.
    #[inline(never)]
    fn window_success_recorded(&self, window: &RateWindow, pass: Pass, word: u64) {
        let now = self.window_now(window, word);
        let slow = word & TIMED != 0 && window.is_slow(pass.started, now);
        if !slow && window.success_unlocked(pass.ticket.generation(), now) {
            return;
        }
        self.record(window, pass.ticket, Outcome { failure: false, slow }, now);
    }

    /// The coarse time at which a window records an outcome (and times the call): read only
    /// if calls are timed or the window is a time window.
    fn window_now(&self, window: &RateWindow, word: u64) -> u64 {
        if word & TIMED != 0 || window.is_time() { self.clock.now_coarse().as_nanos() } else { 0 }
    }

    /// Records an outcome in the window and trips the circuit if the window says so.
    fn record(&self, window: &RateWindow, ticket: Ticket, outcome: Outcome, now: u64) {
        if window.record(ticket.generation(), outcome, now) {
            self.apply(Event::Trip(ticket));
        }
    }

    #[inline(never)]
    fn settle_other(&self, pass: Pass, verdict: Verdict) {
        let ticket = pass.ticket;
        match verdict {
            Verdict::Success => {
                self.counters().success(&self.clock);
                // A probe: a slow one counts as a failed probe.
                let word = self.hot.cell.word();
                let slow = match &self.cold.window {
                    Some(window) if word & TIMED != 0 => {
                        window.is_slow(pass.started, self.clock.now_coarse().as_nanos())
                    }
                    _ => false,
                };
                self.apply(if slow { Event::Trip(ticket) } else { Event::Success(ticket) });
            }
            Verdict::Failure => {
                self.counters().failure(self.clock.now());
                match &self.cold.window {
                    Some(window) if !ticket.probe() => {
                        let word = self.hot.cell.word();
                        let now = self.window_now(window, word);
                        let slow = window.is_slow(pass.started, now);
                        self.record(window, ticket, Outcome { failure: true, slow }, now);
                    }
                    _ => self.apply(Event::Failure(ticket)),
                }
            }
            Verdict::Ignore => {
                self.counters().abandoned();
                if ticket.probe() {
                    self.apply(Event::Abandon(ticket));
                }
            }
        }
    }

    /// Applies `event` with compare-exchange, then times a new open period's break and
    /// reports a transition, outside any critical section.
    #[inline(never)]
    fn apply(&self, event: Event) {
        let mut word = self.hot.cell.word();
        loop {
            let machine = self.hot.cell.machine(word);
            let step = machine.step(event, &self.hot.limits);
            if step.next == machine && !step.opened {
                return;
            }
            // Same open period (`force_open` over an open circuit): keep its deadline.
            let keep_ready = !step.opened && step.next.state == CircuitState::Open;
            match self.hot.cell.commit(word, step.next, keep_ready) {
                Ok(()) => {
                    if step.opened {
                        self.publish_deadline(step.next);
                    }
                    if step.next.state == CircuitState::Open && machine.state != CircuitState::Open
                    {
                        self.shards.shared.extra.fetch_add(1, Ordering::Relaxed);
                    }
                    self.report(machine.state, step.next.state);
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Sets the recovery deadline of the open period `opened`, then marks it `READY`.
    /// Until then, calls are rejected without a clock read.
    ///
    /// A thread descheduled between its transition and this publication may run it after
    /// later transitions: it must then write nothing. So the deadline is written with a
    /// compare-exchange, only after checking that its open period is still current and
    /// unpublished, and retried if the deadline changed in between (another publisher
    /// raced it); a later period's publisher, which also checks, then wins. All of it is
    /// `SeqCst`, so the check and the write cannot be reordered around another thread's.
    fn publish_deadline(&self, opened: Machine) {
        let pause = Duration::from_nanos(self.cold.breaks.next(opened.openings));
        let deadline = self.clock.now().saturating_add(pause).as_nanos();
        let open_until = &self.hot.open_until;
        loop {
            let seen = open_until.load(Ordering::SeqCst);
            if !self.hot.cell.unpublished(self.hot.cell.word_seq_cst(), opened.generation) {
                return;
            }
            if open_until
                .compare_exchange(seen, deadline, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
        self.hot.cell.set_ready(opened.generation);
    }

    /// For [`BreakerMap`](super::BreakerMap)'s sweeps, which run under a shard's spin lock:
    /// the state and the latest success and failure stamps, reading no clock (`stats()`
    /// reads it for a time window, and a clock is user code).
    #[cfg(target_has_atomic = "ptr")]
    pub(crate) fn state_and_last_activity(
        &self,
    ) -> (CircuitState, Option<Instant>, Option<Instant>) {
        let machine = self.hot.cell.machine(self.hot.cell.word());
        let totals = self.counters().totals();
        (machine.state, totals.last_success, totals.last_failure)
    }

    /// For the simulation kit's [`BreakerWatch`](crate::sim::BreakerWatch): the current
    /// generation, which a call admitted now was admitted in.
    #[cfg(feature = "sim")]
    pub(crate) fn generation(&self) -> u64 {
        self.hot.cell.machine(self.hot.cell.word()).generation
    }

    /// For the simulation kit's [`BreakerWatch`](crate::sim::BreakerWatch): whether a probe
    /// admitted in `generation` and still running holds its slot, or has been forgotten
    /// (by `reset`, by the expiry of hung probes, or by age).
    #[cfg(feature = "sim")]
    pub(crate) fn holds_probe_slot(&self, generation: u64) -> bool {
        self.hot.cell.machine(self.hot.cell.word()).counts(Ticket::new(generation, true))
    }

    /// Tests: the breaker's state cell.
    #[cfg(test)]
    pub(crate) fn cell(&self) -> &StateCell {
        &self.hot.cell
    }

    /// Tests: whether the calling thread counts on the home shard.
    #[cfg(all(test, feature = "std", not(loom)))]
    pub(crate) fn counts_on_home(&self) -> bool {
        self.counters().owned_by_caller()
    }
}

/// Nanoseconds of `duration`, saturating.
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machine = cell::unpack(self.hot.cell.word(), 0);
        let mut out = f.debug_struct("CircuitBreaker");
        if let Some(name) = self.name() {
            out.field("name", &name);
        }
        out.field("state", &machine.state).field("forced", &machine.forced);
        if let Rule::Consecutive { failure_threshold } = self.hot.limits.rule {
            out.field("failure_threshold", &failure_threshold);
        } else {
            out.field("trip_on", &"failure rate");
        }
        out.field("recovery_timeout", &Duration::from_nanos(self.cold.breaks.initial()))
            .field("half_open_max_calls", &self.hot.limits.half_open_max_calls)
            .field("success_threshold", &self.hot.limits.success_threshold)
            .field(
                "half_open_max_wait",
                &Duration::from_nanos(self.shards.home.extra.load(Ordering::Relaxed)),
            )
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

const _: () = assert!(CLOSED_BITS == 0, "the closed fast path compares against zero bits");
