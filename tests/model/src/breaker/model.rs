//! A reference model of `kompoz::breaker::CircuitBreaker`: what the breaker promises,
//! written as plainly as possible, on a clock of its own (nanoseconds, like a
//! `ManualClock`).
//!
//! The promises modelled (from the breaker's documentation):
//! * **Closed**: calls are let in; `failure_threshold` consecutive failures open the
//!   circuit; a success resets the streak.
//! * **Open**: calls are rejected until the clock reads at least the moment it opened plus
//!   `recovery_timeout` (saturating); then the next call is let in as a probe and the
//!   circuit is half-open from that moment (not before: `state()` says `Open` until a
//!   call arrives).
//! * **Half-open**: up to `half_open_max_calls` *counted* probes in flight; more are
//!   rejected, not queued. `success_threshold` successful probes close it; a failed probe
//!   opens it again, with a new deadline.
//! * A probe is counted from its admission until it ends, whatever happens to the circuit
//!   meanwhile (probes of an earlier half-open period hold their slots), until the probes
//!   are *forgotten*: by `reset`, by expiry, or after 63 period changes in a row with a
//!   counted probe in flight. Expiry: half-open, every slot taken, and the clock reads at
//!   least the latest probe admission plus `half_open_max_wait` (saturating): the probes
//!   are forgotten and the call is the first probe of a new half-open period (the probe
//!   successes so far are kept).
//! * Every state change, `reset`, `force_open` and probe expiry starts a new *period*. A
//!   call belongs to the period it was let in; an outcome of an earlier period is *late*:
//!   it is counted in the totals but moves nothing (a late probe still gives back its slot
//!   if it is still counted).
//! * A call that ends without a verdict (dropped, or `Verdict::Ignore`) is *abandoned*:
//!   counted as such, it moves nothing (a probe gives back its slot). A leaked guard
//!   never ends.
//! * `force_open` opens the circuit until `reset`, whatever the clock says; `reset`
//!   closes it, forgets the streak, the probes and the forcing, and starts a new period.
//! * Under a failure-rate policy, the closed state follows the window of `policy.rs`:
//!   the current closed period's calls that ended with a verdict enter it, a failed or
//!   slow one may trip it. A probe that is slow counts as a failed probe. Calls are timed
//!   from their admission to their end (slow calls only).
//! * Each opening (not `force_open`) breaks for the next break of `policy.rs`;
//!   `stats().break_duration` is the latest one; closing (by probes or `reset`) makes the
//!   next opening the first again.
//! * `last_success_time` is the largest clock reading taken at a *stamped* success: the
//!   first success, and then the success due after each stamped one, `stride` later,
//!   where the stride doubles (up to 16) when a reading is less than a millisecond past
//!   the previous stamp and is 1 otherwise (one thread: all successes count on one shard).
//! * A transition is reported (with the stats as they are after it) only when the state
//!   changes; `times_opened` counts the changes to `Open`.
//! * `total_calls` counts every call that asked to be let in and is over: rejected, or
//!   admitted and ended.

use std::collections::BTreeMap;
use std::time::Duration;

use kompoz::breaker::{BreakerStats, CircuitState, Verdict};
use kompoz::{Instant, breaker::CircuitOpen};

use super::ops::{Breaks, Config, Rate, Trip};
use super::policy::{self, ModelWindow};

/// Names a call admitted by the model.
pub type CallId = u64;

/// What `CircuitBreaker::stats` reports, comparable with the model's (`BreakerStats` is
/// `#[non_exhaustive]`, so the model cannot build one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The state.
    pub state: CircuitState,
    /// The failure streak of the current closed period (failures in the window, under a
    /// failure rate).
    pub failure_count: u32,
    /// Calls in the failure-rate window.
    pub window_calls: u32,
    /// Slow calls in the failure-rate window.
    pub slow_call_count: u32,
    /// The latest break.
    pub break_duration: Duration,
    /// Successes since creation.
    pub success_count: u64,
    /// When the latest failure was recorded (the latest reading: see the model).
    pub last_failure_time: Option<Instant>,
    /// When the latest success was recorded (the latest reading: see the model).
    pub last_success_time: Option<Instant>,
    /// Successful probes of the current half-open period.
    pub half_open_successes: u32,
    /// Probes in flight, of any period.
    pub probes_in_flight: u32,
    /// Opened by `force_open`.
    pub forced_open: bool,
    /// Failures since creation.
    pub total_failures: u64,
    /// Calls ended without a verdict.
    pub abandoned_calls: u64,
    /// Calls refused.
    pub rejected_calls: u64,
    /// Calls over: rejected, or admitted and ended.
    pub total_calls: u64,
    /// Changes to `Open`.
    pub times_opened: u64,
}

impl From<BreakerStats> for Stats {
    fn from(s: BreakerStats) -> Stats {
        Stats {
            state: s.state,
            failure_count: s.failure_count,
            window_calls: s.window_calls,
            slow_call_count: s.slow_call_count,
            break_duration: s.break_duration,
            success_count: s.success_count,
            last_failure_time: s.last_failure_time,
            last_success_time: s.last_success_time,
            half_open_successes: s.half_open_successes,
            probes_in_flight: s.probes_in_flight,
            forced_open: s.forced_open,
            total_failures: s.total_failures,
            abandoned_calls: s.abandoned_calls,
            rejected_calls: s.rejected_calls,
            total_calls: s.total_calls,
            times_opened: s.times_opened,
        }
    }
}

/// A reported state change: `on_state_change(from, to, stats)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: CircuitState,
    /// The state after.
    pub to: CircuitState,
    /// The stats handed to the callback.
    pub stats: Stats,
}

/// How the breaker answered a call asking to be let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Let in, as an ordinary call.
    Call,
    /// Let in, as a half-open probe.
    Probe,
    /// Refused.
    Rejected(CircuitOpen),
}

/// How often a run reached the interesting transitions (to check that random sequences
/// explore them, not to compare).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Closed to open, by a failure streak.
    pub closed_to_open: u64,
    /// Open to half-open, by the first probe after the recovery timeout.
    pub open_to_half_open: u64,
    /// The first probe let in exactly at the recovery deadline.
    pub exact_recoveries: u64,
    /// Probes of the current period that failed and opened the circuit again.
    pub failed_probes: u64,
    /// Probes of the current period whose success closed the circuit.
    pub closing_probes: u64,
    /// Outcomes (of any kind) of calls let in in an earlier period.
    pub late_outcomes: u64,
    /// Probes of the current period ended without a verdict.
    pub abandoned_probes: u64,
    /// Probes of an earlier half-open period that ended (late).
    pub stray_probes: u64,
    /// Calls let in as the first probe of a new period because every probe slot was held
    /// past `half_open_max_wait`.
    pub expired_probes: u64,
    /// Successes whose clock reading was skipped (not stamped).
    pub unstamped_successes: u64,
    /// Guards leaked with `mem::forget`.
    pub leaked_guards: u64,
    /// Calls refused for want of a probe slot while a probe of an earlier period held one.
    pub strays_in_the_way: u64,
    /// Times the probes were forgotten after 63 period changes in flight.
    pub probes_forgotten_by_age: u64,
    /// Openings decided by a failure-rate window.
    pub window_trips: u64,
    /// Calls recorded as slow.
    pub slow_calls: u64,
    /// Openings whose break had grown past the first.
    pub grown_breaks: u64,
    /// `force_open` calls that did something.
    pub forced_opens: u64,
    /// The clock set to an earlier time.
    pub clock_set_back: u64,
}

impl core::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.closed_to_open += other.closed_to_open;
        self.open_to_half_open += other.open_to_half_open;
        self.exact_recoveries += other.exact_recoveries;
        self.failed_probes += other.failed_probes;
        self.closing_probes += other.closing_probes;
        self.late_outcomes += other.late_outcomes;
        self.abandoned_probes += other.abandoned_probes;
        self.stray_probes += other.stray_probes;
        self.expired_probes += other.expired_probes;
        self.unstamped_successes += other.unstamped_successes;
        self.leaked_guards += other.leaked_guards;
        self.strays_in_the_way += other.strays_in_the_way;
        self.probes_forgotten_by_age += other.probes_forgotten_by_age;
        self.window_trips += other.window_trips;
        self.slow_calls += other.slow_calls;
        self.grown_breaks += other.grown_breaks;
        self.forced_opens += other.forced_opens;
        self.clock_set_back += other.clock_set_back;
    }
}

/// Where the circuit is, with what each state needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Closed, with the current failure streak.
    Closed { streak: u32 },
    /// Open until the clock reads `until` (nanoseconds); `None`: forced open.
    Open { until: Option<u64> },
    /// Half-open, with the probe successes of this period.
    HalfOpen { successes: u32 },
}

impl Phase {
    fn state(self) -> CircuitState {
        match self {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

/// A call let in and not yet ended.
#[derive(Clone, Copy, Debug)]
struct Running {
    /// The period it was let in.
    period: u64,
    probe: bool,
    /// A probe whose slot is counted (not forgotten).
    counted: bool,
    /// When it was let in.
    started: u64,
}

/// The model.
#[derive(Clone, Debug)]
pub struct BreakerModel {
    /// `failure_threshold`, under kompoz's rule.
    failure_threshold: u32,
    /// The failure rate and the current closed period's window, under a rate policy.
    rate: Option<(Rate, ModelWindow)>,
    half_open_max_calls: u32,
    success_threshold: u32,
    breaks: Breaks,
    /// Openings since the circuit was last closed.
    openings: u32,
    rng: fastrand::Rng,
    /// The latest break, in nanoseconds.
    last_break: u64,
    /// `half_open_max_wait` in nanoseconds (saturated).
    max_probe_wait: u64,
    /// The latest clock reading at which a probe was let in.
    last_probe_at: u64,
    /// Period changes since the probes were last forgotten, while any was counted.
    since_forget: u32,
    now: u64,
    phase: Phase,
    period: u64,
    running: BTreeMap<CallId, Running>,
    next_id: CallId,
    successes: u64,
    failures: u64,
    abandoned: u64,
    rejected: u64,
    /// Calls over: counted one by one, not summed.
    over: u64,
    last_success: Option<u64>,
    last_failure: Option<u64>,
    /// The success count at which the next stamp is due, and the current stride.
    stamp_due: u64,
    stride: u64,
    times_opened: u64,
    transitions: Vec<Transition>,
    tally: Tally,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The stamp of the latest success or failure after one more at `now`: the latest
/// *reading*, so a clock set back does not move it back (the breaker sums its counters
/// from per-thread shards, where the largest stamp is the only one that can be told; the
/// documentation's "when the latest success was recorded" means this on a clock that
/// never steps back).
fn latest(stamp: Option<u64>, now: u64) -> Option<u64> {
    Some(stamp.map_or(now, |stamp| stamp.max(now)))
}

impl BreakerModel {
    /// A closed breaker with no history, its clock at zero.
    pub fn new(config: Config) -> BreakerModel {
        let (failure_threshold, rate) = match config.trip {
            Trip::Consecutive(threshold) => (threshold, None),
            Trip::Rate(rate) => (0, Some((rate, ModelWindow::new(&rate)))),
        };
        BreakerModel {
            failure_threshold,
            rate,
            half_open_max_calls: config.half_open_max_calls,
            // kompoz's default: as many successes as probes.
            success_threshold: config.success_threshold.unwrap_or(config.half_open_max_calls),
            breaks: config.breaks,
            openings: 0,
            rng: fastrand::Rng::with_seed(config.breaks.jitter.map_or(0, |(_, seed)| seed)),
            last_break: 0,
            max_probe_wait: nanos(config.half_open_max_wait),
            last_probe_at: 0,
            since_forget: 0,
            now: 0,
            phase: Phase::Closed { streak: 0 },
            period: 0,
            running: BTreeMap::new(),
            next_id: 0,
            successes: 0,
            failures: 0,
            abandoned: 0,
            rejected: 0,
            over: 0,
            last_success: None,
            last_failure: None,
            stamp_due: 1,
            stride: 1,
            times_opened: 0,
            transitions: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// A call asks to be let in (`try_acquire`, or the first poll of `call`). If let in,
    /// it runs as the returned call until [`finish`](BreakerModel::finish).
    pub fn admit(&mut self) -> (Option<CallId>, Admission) {
        let before = self.state();
        let room = self.probes() < self.half_open_max_calls as usize;
        let expired = self.now >= self.last_probe_at.saturating_add(self.max_probe_wait);
        let probe = match self.phase {
            Phase::Closed { .. } => false,
            Phase::Open { until: Some(until) } if self.now >= until && room => {
                self.tally.open_to_half_open += 1;
                if self.now == until {
                    self.tally.exact_recoveries += 1;
                }
                self.enter(Phase::HalfOpen { successes: 0 });
                true
            }
            Phase::HalfOpen { .. } if room => true,
            Phase::HalfOpen { successes } if expired => {
                self.tally.expired_probes += 1;
                self.forget_probes();
                self.enter(Phase::HalfOpen { successes });
                true
            }
            phase => {
                let recovered = match phase {
                    Phase::Open { until: Some(until) } => self.now >= until,
                    Phase::HalfOpen { .. } => true,
                    _ => false,
                };
                let stray = |c: &Running| c.probe && c.counted && c.period != self.period;
                if recovered && self.running.values().any(stray) {
                    self.tally.strays_in_the_way += 1;
                }
                self.rejected += 1;
                self.over += 1;
                return (None, Admission::Rejected(CircuitOpen { state: phase.state() }));
            }
        };
        if probe {
            self.last_probe_at = self.last_probe_at.max(self.now);
        }
        let id = self.next_id;
        self.next_id += 1;
        let call = Running { period: self.period, probe, counted: probe, started: self.now };
        self.running.insert(id, call);
        self.report(before);
        (Some(id), if probe { Admission::Probe } else { Admission::Call })
    }

    /// The counted probes are forgotten: they hold no slot any more.
    fn forget_probes(&mut self) {
        self.running.values_mut().for_each(|call| call.counted = false);
        self.since_forget = 0;
    }

    /// Call `id`'s guard is leaked (`mem::forget`): it never ends, and stays running.
    pub fn forget(&mut self, id: CallId) {
        assert!(self.running.contains_key(&id), "a running call");
        self.tally.leaked_guards += 1;
    }

    /// Call `id` ends with `verdict` (a dropped guard or call: [`Verdict::Ignore`]).
    pub fn finish(&mut self, id: CallId, verdict: Verdict) {
        let call = self.running.remove(&id).expect("a running call");
        self.over += 1;
        if call.counted && self.probes() == 0 {
            self.since_forget = 0;
        }
        match verdict {
            Verdict::Success => {
                self.successes += 1;
                if self.successes >= self.stamp_due {
                    // Less than the stamps' resolution since the last stamp (a
                    // millisecond: a manual clock has no coarse lag).
                    let since = self.now.saturating_sub(self.last_success.unwrap_or(0));
                    let still = self.successes > 1 && since < 1_000_000;
                    self.stride = if still { (self.stride * 2).min(16) } else { 1 };
                    self.last_success = latest(self.last_success, self.now);
                    self.stamp_due = self.successes + self.stride;
                } else {
                    self.tally.unstamped_successes += 1;
                }
            }
            Verdict::Failure => {
                self.failures += 1;
                self.last_failure = latest(self.last_failure, self.now);
            }
            Verdict::Ignore => self.abandoned += 1,
        }
        if call.period != self.period {
            self.tally.late_outcomes += 1;
            if call.probe {
                self.tally.stray_probes += 1;
            }
            return;
        }
        let slow = self.rate.as_ref().is_some_and(|(rate, _)| {
            rate.slow.is_some_and(|(slower_than, _)| {
                self.now.saturating_sub(call.started) >= nanos(slower_than)
            })
        });
        if slow && verdict != Verdict::Ignore {
            self.tally.slow_calls += 1;
        }
        let before = self.state();
        match (self.phase, verdict) {
            (_, Verdict::Ignore) => {
                if call.probe {
                    self.tally.abandoned_probes += 1;
                }
            }
            (Phase::Closed { .. }, _) if self.rate.is_some() => {
                let now = self.now;
                let (rate, window) = self.rate.as_mut().expect("a rate policy");
                let failed = verdict == Verdict::Failure;
                let tally = window.record(failed, slow, now);
                if (failed || slow) && policy::trips(rate, tally) {
                    self.tally.window_trips += 1;
                    self.open();
                }
            }
            (Phase::HalfOpen { .. }, Verdict::Success) if slow => {
                self.tally.failed_probes += 1;
                self.open();
            }
            (Phase::Closed { .. }, Verdict::Success) => {
                self.phase = Phase::Closed { streak: 0 };
            }
            (Phase::Closed { streak }, Verdict::Failure) => {
                if streak + 1 >= self.failure_threshold {
                    self.tally.closed_to_open += 1;
                    self.open();
                } else {
                    self.phase = Phase::Closed { streak: streak + 1 };
                }
            }
            (Phase::HalfOpen { successes }, Verdict::Success) => {
                if successes + 1 >= self.success_threshold {
                    self.tally.closing_probes += 1;
                    self.enter(Phase::Closed { streak: 0 });
                } else {
                    self.phase = Phase::HalfOpen { successes: successes + 1 };
                }
            }
            (Phase::HalfOpen { .. }, Verdict::Failure) => {
                self.tally.failed_probes += 1;
                self.open();
            }
            (Phase::Open { .. }, _) => unreachable!("no call is let in during an open period"),
        }
        self.report(before);
    }

    /// `reset()`.
    pub fn reset(&mut self) {
        let before = self.state();
        self.forget_probes();
        self.enter(Phase::Closed { streak: 0 });
        self.report(before);
    }

    /// `force_open()`.
    pub fn force_open(&mut self) {
        if self.phase == (Phase::Open { until: None }) {
            return;
        }
        self.tally.forced_opens += 1;
        let before = self.state();
        self.enter(Phase::Open { until: None });
        self.report(before);
    }

    /// `ManualClock::advance(by)`.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(nanos(by));
    }

    /// `ManualClock::set(Instant::from_nanos(to))`, forwards or back.
    pub fn set_clock(&mut self, to: u64) {
        if to < self.now {
            self.tally.clock_set_back += 1;
        }
        self.now = to;
    }

    /// The clock's time, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// What `state()` should say.
    pub fn state(&self) -> CircuitState {
        self.phase.state()
    }

    /// Whether running call `id` is a probe.
    pub fn is_probe(&self, id: CallId) -> bool {
        self.running[&id].probe
    }

    /// The transitions reported since the last call.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// How often the interesting transitions happened so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// What `stats()` should say.
    pub fn stats(&self) -> Stats {
        let (mut failure_count, half_open_successes) = match self.phase {
            Phase::Closed { streak } => (streak, 0),
            Phase::Open { .. } => (0, 0),
            Phase::HalfOpen { successes } => (0, successes),
        };
        let (mut window_calls, mut slow_call_count) = (0, 0);
        if let (Phase::Closed { .. }, Some((_, window))) = (self.phase, &self.rate) {
            let tally = window.tally(self.now);
            (failure_count, window_calls, slow_call_count) =
                (tally.failures, tally.calls, tally.slow);
        }
        let probes = self.probes();
        Stats {
            state: self.state(),
            failure_count,
            window_calls,
            slow_call_count,
            break_duration: Duration::from_nanos(self.last_break),
            success_count: self.successes,
            last_failure_time: self.last_failure.map(Instant::from_nanos),
            last_success_time: self.last_success.map(Instant::from_nanos),
            half_open_successes,
            probes_in_flight: u32::try_from(probes).expect("a few probes"),
            forced_open: self.phase == Phase::Open { until: None },
            total_failures: self.failures,
            abandoned_calls: self.abandoned,
            rejected_calls: self.rejected,
            total_calls: self.over,
            times_opened: self.times_opened,
        }
    }

    /// Probes still running whose slots are counted.
    fn probes(&self) -> usize {
        self.running.values().filter(|call| call.counted).count()
    }

    /// Opens the circuit for the next break.
    fn open(&mut self) {
        self.openings = (self.openings + 1).min(63);
        let pause = policy::break_for(&self.breaks, self.openings, &mut self.rng);
        if pause > nanos(self.breaks.initial) {
            self.tally.grown_breaks += 1;
        }
        self.last_break = pause;
        self.enter(Phase::Open { until: Some(self.now.saturating_add(pause)) });
    }

    /// Moves to `phase` in a new period; a closed one has an empty window and counts
    /// openings from scratch.
    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.period += 1;
        if self.probes() == 0 {
            self.since_forget = 0;
        } else if self.since_forget >= 63 {
            self.tally.probes_forgotten_by_age += 1;
            self.forget_probes();
        } else {
            self.since_forget += 1;
        }
        if let Phase::Closed { .. } = phase {
            self.openings = 0;
            if let Some((rate, window)) = &mut self.rate {
                *window = ModelWindow::new(rate);
            }
        }
    }

    /// Reports the change from `before` to the current state, if it is one.
    fn report(&mut self, before: CircuitState) {
        let after = self.state();
        if before == after {
            return;
        }
        if after == CircuitState::Open {
            self.times_opened += 1;
        }
        let stats = self.stats();
        self.transitions.push(Transition { from: before, to: after, stats });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CircuitState::{Closed, HalfOpen, Open};

    const MS: Duration = Duration::from_millis(1);

    fn model(failures: u32, probes: u32, successes: u32) -> BreakerModel {
        BreakerModel::new(Config {
            half_open_max_wait: Duration::from_secs(60),
            ..Config::consecutive(failures, probes, Some(successes), 10 * MS)
        })
    }

    fn admitted(m: &mut BreakerModel) -> CallId {
        match m.admit() {
            (Some(id), _) => id,
            (None, answer) => panic!("refused: {answer:?}"),
        }
    }

    fn rejected(state: CircuitState) -> (Option<CallId>, Admission) {
        (None, Admission::Rejected(CircuitOpen { state }))
    }

    #[test]
    fn a_streak_opens_it_and_it_recovers_after_the_timeout() {
        let mut m = model(2, 1, 1);
        let a = admitted(&mut m);
        m.finish(a, Verdict::Failure);
        let b = admitted(&mut m);
        m.finish(b, Verdict::Success);
        assert_eq!(m.stats().failure_count, 0, "a success resets the streak");
        for _ in 0..2 {
            let c = admitted(&mut m);
            m.finish(c, Verdict::Failure);
        }
        assert_eq!(m.state(), Open);
        assert_eq!(m.take_transitions().len(), 1);
        m.advance(9 * MS);
        assert_eq!(m.admit(), rejected(Open));
        m.advance(MS);
        assert_eq!(m.state(), Open, "open until a call arrives");
        let (probe, answer) = m.admit();
        assert_eq!(answer, Admission::Probe);
        assert_eq!(m.admit(), rejected(HalfOpen));
        m.finish(probe.unwrap(), Verdict::Success);
        assert_eq!(m.state(), Closed);
        let moves: Vec<_> = m.take_transitions().iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(moves, [(Open, HalfOpen), (HalfOpen, Closed)]);
        let s = m.stats();
        assert_eq!((s.success_count, s.total_failures, s.rejected_calls), (2, 3, 2));
        assert_eq!((s.total_calls, s.times_opened, s.probes_in_flight), (7, 1, 0));
    }

    #[test]
    fn a_late_outcome_counts_but_moves_nothing_and_a_stray_probe_holds_its_slot() {
        let mut m = model(1, 2, 1);
        let slow = admitted(&mut m);
        let fail = admitted(&mut m);
        m.finish(fail, Verdict::Failure);
        m.finish(slow, Verdict::Failure);
        assert_eq!((m.state(), m.stats().total_failures, m.tally().late_outcomes), (Open, 2, 1));
        m.advance(10 * MS);
        let first = admitted(&mut m);
        let stray = admitted(&mut m);
        m.finish(first, Verdict::Failure);
        assert_eq!((m.state(), m.stats().probes_in_flight), (Open, 1));
        m.advance(10 * MS);
        let next = admitted(&mut m);
        assert_eq!(m.admit(), rejected(HalfOpen), "the stray holds the other slot");
        assert_eq!(m.tally().strays_in_the_way, 1);
        m.finish(stray, Verdict::Success);
        assert_eq!((m.state(), m.stats().half_open_successes), (HalfOpen, 0));
        assert!(m.is_probe(next));
        m.finish(next, Verdict::Ignore);
        assert_eq!((m.stats().abandoned_calls, m.stats().probes_in_flight), (1, 0));
    }

    #[test]
    fn a_reset_forgets_the_probes_and_their_late_ends_free_nothing() {
        let mut m = model(1, 1, 1);
        let first = admitted(&mut m);
        m.finish(first, Verdict::Failure);
        m.advance(10 * MS);
        let old = admitted(&mut m);
        m.reset();
        assert_eq!(m.stats().probes_in_flight, 0);
        let again = admitted(&mut m);
        m.finish(again, Verdict::Failure);
        m.advance(10 * MS);
        let new = admitted(&mut m);
        m.finish(old, Verdict::Ignore);
        assert_eq!(m.stats().probes_in_flight, 1, "the new probe keeps its slot");
        assert_eq!(m.admit(), rejected(HalfOpen));
        m.finish(new, Verdict::Success);
        assert_eq!(m.state(), Closed);
    }

    #[test]
    fn probes_held_past_the_maximum_wait_give_way_to_a_new_period() {
        let mut m = model(1, 1, 2);
        let first = admitted(&mut m);
        m.finish(first, Verdict::Failure);
        m.advance(10 * MS);
        let probe = admitted(&mut m);
        m.finish(probe, Verdict::Success);
        let hung = admitted(&mut m);
        m.forget(hung);
        m.advance(59_999 * MS);
        assert_eq!(m.admit(), rejected(HalfOpen));
        m.advance(MS);
        let fresh = admitted(&mut m);
        assert!(m.is_probe(fresh));
        assert_eq!((m.tally().expired_probes, m.stats().half_open_successes), (1, 1));
        m.finish(fresh, Verdict::Success);
        assert_eq!(m.state(), Closed);
    }

    #[test]
    fn success_stamps_are_sampled_while_the_clock_stands_still() {
        let mut m = model(5, 1, 1);
        for _ in 0..40 {
            let id = admitted(&mut m);
            m.finish(id, Verdict::Success);
        }
        // Stamped at 1, 2, 4, 8, 16 and 32 (strides 1, 2, 4, 8, 16); the next is due at 48.
        assert_eq!(m.tally().unstamped_successes, 34);
        m.advance(MS);
        let id = admitted(&mut m);
        m.finish(id, Verdict::Success);
        assert_eq!(m.stats().last_success_time, Some(Instant::ZERO), "not due yet");
        for _ in 0..8 {
            let id = admitted(&mut m);
            m.finish(id, Verdict::Success);
        }
        assert_eq!(m.stats().last_success_time, Some(Instant::from_nanos(1_000_000)));
    }

    #[test]
    fn forced_open_ignores_the_clock_until_reset() {
        let mut m = model(1, 1, 1);
        m.force_open();
        m.force_open();
        m.advance(Duration::MAX);
        assert_eq!(m.admit(), rejected(Open));
        assert!(m.stats().forced_open);
        m.reset();
        assert_eq!(m.admit().1, Admission::Call);
        let moves: Vec<_> = m.take_transitions().iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(moves, [(Closed, Open), (Open, Closed)]);
        assert_eq!((m.tally().forced_opens, m.stats().times_opened), (1, 1));
    }
}
