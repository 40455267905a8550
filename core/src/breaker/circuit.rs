//! The atomic layer: [`CircuitBreaker`] applies the pure state machine with
//! compare-exchange on one 64-bit word.

use alloc::boxed::Box;
use core::fmt;
use core::future::IntoFuture;
use core::mem::ManuallyDrop;
use core::time::Duration;

use super::call::{Call, Classify, ErrIsFailure};
use super::counters::Counters;
use super::machine::{COUNT_BITS, Effect, Event, GENERATION_BITS, Machine, Thresholds, Ticket};
use super::{BreakerStats, CircuitOpen, CircuitState, Verdict};
use crate::sync::{AtomicU64, Ordering};
use crate::time::{Clock, Instant};

/// The callback of [`BreakerBuilder::on_state_change`](super::BreakerBuilder::on_state_change).
pub(crate) type Listener = Box<dyn Fn(CircuitState, CircuitState, &BreakerStats) + Send + Sync>;

// The packed state word: | failures or probe successes 18 | probes 18 | generation 24 |
// ready 1 | forced 1 | state 2 |.
const STATE_MASK: u64 = 0b11;
const FORCED: u64 = 1 << 2;
/// Open only: the recovery deadline of this open period has been published.
const READY: u64 = 1 << 3;
const GENERATION_SHIFT: u32 = 4;
const FIRST_SHIFT: u32 = GENERATION_SHIFT + GENERATION_BITS;
const SECOND_SHIFT: u32 = FIRST_SHIFT + COUNT_BITS;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const CLOSED_BITS: u64 = 0;
const OPEN_BITS: u64 = 1;
const HALF_OPEN_BITS: u64 = 2;

fn pack(m: Machine) -> u64 {
    let (state, first, second) = match m.state {
        CircuitState::Closed => (CLOSED_BITS, m.probes, m.failures),
        CircuitState::Open => (OPEN_BITS, m.probes, 0),
        CircuitState::HalfOpen => (HALF_OPEN_BITS, m.probes, m.probe_successes),
    };
    state
        | if m.forced { FORCED } else { 0 }
        | u64::from(m.generation) << GENERATION_SHIFT
        | (u64::from(first) & COUNT_MASK) << FIRST_SHIFT
        | (u64::from(second) & COUNT_MASK) << SECOND_SHIFT
}

fn unpack(word: u64) -> Machine {
    let first = ((word >> FIRST_SHIFT) & COUNT_MASK) as u32;
    let second = ((word >> SECOND_SHIFT) & COUNT_MASK) as u32;
    let generation = ((word >> GENERATION_SHIFT) & ((1 << GENERATION_BITS) - 1)) as u32;
    let forced = word & FORCED != 0;
    let machine = Machine { generation, forced, probes: first, ..Machine::INITIAL };
    match word & STATE_MASK {
        CLOSED_BITS => Machine { failures: second, ..machine },
        HALF_OPEN_BITS => {
            Machine { state: CircuitState::HalfOpen, probe_successes: second, ..machine }
        }
        _ => Machine { state: CircuitState::Open, ..machine },
    }
}

/// A circuit breaker whose whole state lives in atomics: no lock anywhere on the call
/// path, so it works on any executor, from any thread, and in `no_std`.
///
/// * **Closed**: calls pass; `failure_threshold` consecutive failures open the circuit.
/// * **Open**: calls are rejected at once (a [`CircuitOpen`] error, no allocation) until
///   `recovery_timeout` has passed on the breaker's clock.
/// * **Half-open**: the first call after the recovery time is let in as a probe, with up
///   to `half_open_max_calls` probes in flight at once; further calls are rejected, not
///   queued. `success_threshold` successful probes close the circuit; a failed probe
///   opens it again. Probes still running from an earlier half-open period count against
///   the limit until they finish, so the recovering dependency never sees more than
///   `half_open_max_calls` probes at once.
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
///   the call was admitted in; every state change (and every `reset` or `force_open`)
///   starts a new one. Outcomes that arrive later are counted in [`BreakerStats`] totals
///   but do not move the state: a slow call admitted while closed that fails after the
///   circuit went half-open is not taken for a failed probe.
/// * A call that ends without a verdict (its future dropped, a panic, or
///   [`Verdict::Ignore`]) gives its probe slot back and counts as neither success nor
///   failure, so the breaker never wedges half-open.
/// * [`state`](CircuitBreaker::state) reports the committed state: an open circuit whose
///   recovery time has passed is reported `Open` until a call arrives and becomes the
///   first probe, which is also when `on_state_change(Open, HalfOpen)` is reported.
/// * Each transition is reported exactly once, by the thread that made it, after it is
///   committed. The callback may call back into the breaker (`reset`, another call)
///   freely; if it panics, the panic reaches the caller whose call made the transition,
///   the breaker stays consistent, and nothing is counted as a failure.
///
/// # Cost
///
/// Admission while closed is one atomic load; recording a success is one more load
/// (plus, with `std`, a per-thread counter bump and a coarse clock reading). Rejection
/// while open is two loads and a coarse clock reading ([`Clock::now_coarse`]); the precise
/// clock is read only within [`Clock::coarse_lag`] of the recovery deadline.
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
pub struct CircuitBreaker<C> {
    /// The packed [`Machine`], plus the `READY` flag while open.
    word: AtomicU64,
    /// The recovery deadline of the current (or last) open period, in nanoseconds.
    open_until: AtomicU64,
    thresholds: Thresholds,
    recovery_timeout: Duration,
    clock: C,
    counters: Counters,
    times_opened: AtomicU64,
    listener: Option<Listener>,
}

impl<C: Clock> CircuitBreaker<C> {
    pub(crate) fn from_parts(
        thresholds: Thresholds,
        recovery_timeout: Duration,
        clock: C,
        listener: Option<Listener>,
    ) -> Self {
        CircuitBreaker {
            word: AtomicU64::new(pack(Machine::INITIAL)),
            open_until: AtomicU64::new(0),
            thresholds,
            recovery_timeout,
            clock,
            counters: Counters::new(),
            times_opened: AtomicU64::new(0),
            listener,
        }
    }

    /// Asks to make a call. On success the returned guard records the call's outcome
    /// ([`BreakerGuard::success`], [`failure`](BreakerGuard::failure)); a guard dropped
    /// without a verdict gives its probe slot back and records nothing. Fails with
    /// [`CircuitOpen`] while the circuit is open or all probe slots are taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerGuard<'_, C>, CircuitOpen> {
        self.admit().map(|ticket| self.guard(ticket))
    }

    /// Admission: one load while closed.
    #[inline]
    pub(super) fn admit(&self) -> Result<Ticket, CircuitOpen> {
        let word = self.word.load(Ordering::Acquire);
        if word & STATE_MASK == CLOSED_BITS {
            let generation = unpack(word).generation;
            return Ok(Ticket { generation, probe: false });
        }
        self.admit_slow(word)
    }

    /// Runs `future` through the breaker: rejected at once while open, otherwise run, with
    /// `Err` counted as a failure and `Ok` as a success.
    ///
    /// Admission happens when the returned future is first polled. If it is dropped
    /// before it completes, the call counts as neither (and gives back its probe slot).
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
    pub fn state(&self) -> CircuitState {
        unpack(self.word.load(Ordering::Acquire)).state
    }

    /// A snapshot of the breaker's state and counters. The state fields are read in one
    /// atomic load; the totals are summed from counters that only grow, so under
    /// concurrent use they may be a moment apart from the state.
    pub fn stats(&self) -> BreakerStats {
        let machine = unpack(self.word.load(Ordering::Acquire));
        let totals = self.counters.totals();
        BreakerStats {
            state: machine.state,
            failure_count: machine.failures,
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
            times_opened: self.times_opened.load(Ordering::Relaxed),
        }
    }

    /// Closes the circuit, forgetting its failures and probes (kompoz's `reset()`), and
    /// undoes [`force_open`](CircuitBreaker::force_open). Calls admitted before the reset
    /// no longer move the state when they finish.
    pub fn reset(&self) {
        self.apply(Event::Reset);
    }

    /// Opens the circuit and keeps it open, ignoring the recovery timeout, until
    /// [`reset`](CircuitBreaker::reset): isolates a dependency by hand.
    pub fn force_open(&self) {
        self.apply(Event::ForceOpen);
    }

    /// The clock the breaker measures time on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// How long the circuit stays open before it lets a probe in.
    pub fn recovery_timeout(&self) -> Duration {
        self.recovery_timeout
    }

    #[inline]
    pub(super) fn guard(&self, ticket: Ticket) -> BreakerGuard<'_, C> {
        BreakerGuard { breaker: self, ticket }
    }

    #[cold]
    fn admit_slow(&self, mut word: u64) -> Result<Ticket, CircuitOpen> {
        loop {
            // The common case while open: rejected before the recovery time, after two
            // loads and a coarse clock reading, without running the machine.
            if word & STATE_MASK == OPEN_BITS
                && (word & (FORCED | READY) != READY || !self.recovery_due())
            {
                self.counters.rejected();
                return Err(CircuitOpen { state: CircuitState::Open });
            }
            let machine = unpack(word);
            let recovered = machine.state == CircuitState::Open;
            let step = machine.step(Event::Admit { recovered }, &self.thresholds);
            let ticket = match step.effect {
                Effect::Admitted(ticket) => ticket,
                _ => {
                    self.counters.rejected();
                    return Err(CircuitOpen { state: machine.state });
                }
            };
            if step.next == machine {
                return Ok(ticket);
            }
            match self.word.compare_exchange_weak(
                word,
                pack(step.next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Hold the ticket in a guard while reporting: if the callback panics,
                    // dropping the guard gives the probe slot back.
                    let guard = self.guard(ticket);
                    self.report(machine.state, step.next.state);
                    return Ok(guard.into_ticket());
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Whether the published recovery deadline has passed: the coarse clock decides when
    /// it is clear either way, the precise clock only near the deadline.
    #[inline]
    fn recovery_due(&self) -> bool {
        let deadline = Instant::from_nanos(self.open_until.load(Ordering::Acquire));
        let coarse = self.clock.now_coarse();
        if coarse >= deadline {
            return true;
        }
        if coarse.saturating_add(self.clock.coarse_lag()) < deadline {
            return false;
        }
        self.clock.now() >= deadline
    }

    /// Records the outcome of the call admitted with `ticket`. The common case, a success
    /// of an ordinary call, is small enough to inline into the caller; the rest is not.
    #[inline]
    pub(super) fn settle(&self, ticket: Ticket, verdict: Verdict) {
        if verdict == Verdict::Success && !ticket.probe {
            let word = self.word.load(Ordering::Acquire);
            self.counters.success(self.clock.now_coarse());
            // Still closed, in the call's generation, with no failures and no stray
            // probes: nothing to do.
            if word != u64::from(ticket.generation) << GENERATION_SHIFT {
                self.apply(Event::Success(ticket));
            }
        } else {
            self.settle_other(ticket, verdict);
        }
    }

    #[inline(never)]
    fn settle_other(&self, ticket: Ticket, verdict: Verdict) {
        match verdict {
            Verdict::Success => {
                self.counters.success(self.clock.now_coarse());
                self.apply(Event::Success(ticket));
            }
            Verdict::Failure => {
                self.counters.failure(self.clock.now());
                self.apply(Event::Failure(ticket));
            }
            Verdict::Ignore => {
                self.counters.abandoned();
                if ticket.probe {
                    self.apply(Event::Abandon(ticket));
                }
            }
        }
    }

    /// Applies `event` with compare-exchange, then publishes a new open period's
    /// deadline and reports a transition, outside any critical section.
    #[inline(never)]
    fn apply(&self, event: Event) {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let machine = unpack(word);
            let step = machine.step(event, &self.thresholds);
            if step.next == machine && !step.opened {
                return;
            }
            let mut next = pack(step.next);
            if !step.opened && step.next.state == CircuitState::Open {
                // Same open period (a stray probe finished): keep its published deadline.
                next |= word & READY;
            }
            match self.word.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if step.opened {
                        self.publish_deadline(step.next.generation);
                    }
                    if step.next.state == CircuitState::Open && machine.state != CircuitState::Open
                    {
                        self.times_opened.fetch_add(1, Ordering::Relaxed);
                    }
                    self.report(machine.state, step.next.state);
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Sets the recovery deadline of the open period `generation`, then marks it `READY`.
    /// Until then, calls are rejected without a clock read.
    ///
    /// A thread descheduled between its transition and this publication may run it after
    /// later transitions: it must then write nothing. So the deadline is written with a
    /// compare-exchange, only after checking that its open period is still current and
    /// unpublished, and retried if the deadline changed in between (another publisher
    /// raced it); a later period's publisher, which also checks, then wins. All of it is
    /// `SeqCst`, so the check and the write cannot be reordered around another thread's.
    /// (The word itself may change within the period, as stray probes finish; only its
    /// state, generation and `READY` flag matter here.)
    fn publish_deadline(&self, generation: u32) {
        let unpublished = |word: u64| {
            word & (STATE_MASK | READY) == OPEN_BITS && unpack(word).generation == generation
        };
        let deadline = self.clock.now().saturating_add(self.recovery_timeout).as_nanos();
        loop {
            let seen = self.open_until.load(Ordering::SeqCst);
            if !unpublished(self.word.load(Ordering::SeqCst)) {
                return;
            }
            if self
                .open_until
                .compare_exchange(seen, deadline, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
        let mut word = self.word.load(Ordering::SeqCst);
        while unpublished(word) {
            match self.word.compare_exchange(word, word | READY, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    fn report(&self, old: CircuitState, new: CircuitState) {
        if old == new {
            return;
        }
        if let Some(listener) = &self.listener {
            listener(old, new, &self.stats());
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machine = unpack(self.word.load(Ordering::Acquire));
        f.debug_struct("CircuitBreaker")
            .field("state", &machine.state)
            .field("forced", &machine.forced)
            .field("failure_threshold", &self.thresholds.failure_threshold)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("half_open_max_calls", &self.thresholds.half_open_max_calls)
            .field("success_threshold", &self.thresholds.success_threshold)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`]. Record the outcome
/// with [`success`](BreakerGuard::success), [`failure`](BreakerGuard::failure) or
/// [`record`](BreakerGuard::record). Dropped without a verdict (the call was cancelled or
/// panicked), it gives its probe slot back and records nothing.
#[must_use = "a guard dropped at once records nothing; call success() or failure()"]
pub struct BreakerGuard<'a, C: Clock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
}

impl<C: Clock> BreakerGuard<'_, C> {
    /// The call succeeded.
    #[inline]
    pub fn success(self) {
        self.record(Verdict::Success);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Verdict::Failure);
    }

    /// Records `verdict` for the call.
    #[inline]
    pub fn record(self, verdict: Verdict) {
        // Not dropped: the verdict replaces the drop's "no verdict". If the breaker's
        // callback panics during `settle`, nothing records the call a second time.
        let guard = ManuallyDrop::new(self);
        guard.breaker.settle(guard.ticket, verdict);
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }

    /// Gives up the guard without settling, returning its ticket.
    #[inline]
    fn into_ticket(self) -> Ticket {
        ManuallyDrop::new(self).ticket
    }
}

impl<C: Clock> Drop for BreakerGuard<'_, C> {
    fn drop(&mut self) {
        self.breaker.settle(self.ticket, Verdict::Ignore);
    }
}

impl<C: Clock> fmt::Debug for BreakerGuard<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerGuard").field("probe", &self.ticket.probe).finish_non_exhaustive()
    }
}
