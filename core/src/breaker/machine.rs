//! The breaker's state machine: a pure function over a plain value.
//!
//! [`Machine::step`] knows nothing of atomics, clocks, threads or windows. The atomic layer
//! (`cell.rs`) loads the packed state, runs `step`, and commits the result with a
//! compare-exchange; the rate policies (`window/`) decide when a closed circuit trips and
//! tell the machine with [`Event::Trip`]; tests and fuzz targets drive the very same
//! function.

use super::CircuitState;

/// The largest threshold or probe count a breaker can track (the width of the counts
/// packed beside the state).
pub const MAX_COUNT: u32 = (1 << 13) - 1;
/// Consecutive openings are counted up to here (break durations stop growing long before).
pub(crate) const MAX_OPENINGS: u32 = (1 << 5) - 1;
/// The most transitions a probe can stay in flight across before it is forgotten (as if
/// hung); see [`Machine::since_forget`].
pub(crate) const MAX_SINCE_FORGET: u32 = (1 << 6) - 1;

/// The whole state of a breaker but its deadlines and windows, as a plain value.
///
/// Every transition starts a new *generation* (a 64-bit count that never wraps in
/// practice). A call is admitted in a generation, and its outcome moves the state only if
/// that generation is still current: outcomes that arrive after a transition are late,
/// and count only in the totals.
///
/// Probes are counted until they finish, across transitions: a probe of an earlier
/// half-open period still running holds its slot, so the recovering dependency never sees
/// more than `half_open_max_calls` probes at once. Only `reset()` and the expiry of hung
/// probes *forget* the probes in flight (their count starts again from zero); a probe's
/// slot is counted if it was admitted since the last forget, which the machine tells from
/// the generations: it was admitted `generation - ticket.generation` transitions ago, and
/// the last forget was `since_forget` transitions ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Machine {
    pub(crate) state: CircuitState,
    /// Opened by `force_open`: it stays open until `reset`.
    pub(crate) forced: bool,
    pub(crate) generation: u64,
    /// Consecutive failures in this closed period (the consecutive-failures rule only).
    pub(crate) failures: u32,
    /// Probes in flight, of this half-open period or an earlier one, admitted since the
    /// last forget.
    pub(crate) probes: u32,
    /// Successful probes in this half-open episode (kept when expired probes are dropped).
    pub(crate) probe_successes: u32,
    /// Openings since the circuit was last closed (by probes or `reset`), saturating at
    /// [`MAX_OPENINGS`]: what a growing break duration grows with.
    pub(crate) openings: u32,
    /// Transitions since the probes in flight were last forgotten; 0 whenever no probe is
    /// counted. Probes that stay in flight across [`MAX_SINCE_FORGET`] transitions are
    /// forgotten like hung ones (the word has room for no more).
    pub(crate) since_forget: u32,
}

/// What trips a closed circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Rule {
    /// `failure_threshold` consecutive failures, counted by the machine itself (kompoz's
    /// rule).
    Consecutive { failure_threshold: u32 },
    /// A policy outside the machine (a window of calls) decides, and sends
    /// [`Event::Trip`].
    External,
}

/// The validated limits the machine runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Limits {
    pub(crate) rule: Rule,
    /// Probes allowed in flight at once in the half-open state (>= 1).
    pub(crate) half_open_max_calls: u32,
    /// Successful probes that close the circuit (>= 1).
    pub(crate) success_threshold: u32,
}

/// A call's admission: the generation it was admitted in, and whether it is a probe,
/// packed in one word (the probe flag in the top bit: generations never get near 2^63) so
/// that a ticket travels in a register, with no padding to copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Ticket(u64);

const PROBE: u64 = 1 << 63;

impl Ticket {
    #[inline(always)]
    pub(crate) const fn new(generation: u64, probe: bool) -> Ticket {
        Ticket(generation & !PROBE | if probe { PROBE } else { 0 })
    }

    /// Not a ticket: the atomic layer's mark of a refused admission where it returns a
    /// ticket (no call is admitted in generation 2^63 - 1).
    pub(crate) const REFUSED: Ticket = Ticket(u64::MAX);

    /// An ordinary call's ticket: the generation as it is (no mask to apply: generations
    /// count transitions and never get near 2^63).
    #[inline(always)]
    pub(crate) const fn ordinary(generation: u64) -> Ticket {
        debug_assert!(generation & PROBE == 0);
        Ticket(generation)
    }

    /// The generation the call was admitted in.
    #[inline(always)]
    pub(crate) const fn generation(self) -> u64 {
        self.0 & !PROBE
    }

    /// Whether the call is a half-open probe.
    #[inline(always)]
    pub(crate) const fn probe(self) -> bool {
        self.0 & PROBE != 0
    }
}

impl core::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ticket")
            .field("generation", &self.generation())
            .field("probe", &self.probe())
            .finish()
    }
}

/// Something that happens to a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Event {
    /// A call asks to be let in. The atomic layer reads the clock; the machine stays pure:
    /// `recovered`: the circuit is open and its break has passed; `probes_expired`: every
    /// probe in flight has held its slot longer than `half_open_max_wait`.
    Admit { recovered: bool, probes_expired: bool },
    /// An admitted call succeeded.
    Success(Ticket),
    /// An admitted call failed.
    Failure(Ticket),
    /// The rate policy found the circuit unhealthy on this call's outcome (closed), or the
    /// call was a slow probe (half-open).
    Trip(Ticket),
    /// An admitted call ended without a verdict (cancelled, panicked, or ignored).
    Abandon(Ticket),
    /// `reset()`: back to closed, forgetting everything.
    Reset,
    /// `force_open()`: open until `reset()`.
    ForceOpen,
}

/// What an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Effect {
    /// The call is let in with this ticket.
    Admitted(Ticket),
    /// The call is refused.
    Rejected,
    /// The event was applied (possibly changing nothing).
    Applied,
    /// The outcome belongs to an earlier generation and does not move the state.
    Late,
}

/// The result of [`Machine::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Step {
    pub(crate) next: Machine,
    pub(crate) effect: Effect,
    /// A new open period starts: its break must be timed.
    pub(crate) opened: bool,
}

impl Machine {
    /// A closed circuit with no history.
    pub(crate) const INITIAL: Machine = Machine {
        state: CircuitState::Closed,
        forced: false,
        generation: 0,
        failures: 0,
        probes: 0,
        probe_successes: 0,
        openings: 0,
        since_forget: 0,
    };

    /// The next generation, with the probes in flight still counted (unless they have been
    /// in flight across too many transitions: then forgotten). Every other field is the
    /// caller's to set.
    fn advance(self) -> Machine {
        let (probes, since_forget) = match self.probes {
            0 => (0, 0),
            _ if self.since_forget >= MAX_SINCE_FORGET => (0, 0),
            probes => (probes, self.since_forget + 1),
        };
        Machine { generation: self.generation + 1, probes, since_forget, ..Machine::INITIAL }
    }

    /// A new closed period (probes closed it): the streak and the openings are forgotten,
    /// probes still in flight stay counted.
    fn closed(self) -> Machine {
        self.advance()
    }

    /// `reset()`: a new closed period that forgets everything, probes included.
    fn reset(self) -> Machine {
        Machine { generation: self.generation + 1, ..Machine::INITIAL }
    }

    /// A new open period. A forced opening does not count as one more failed recovery.
    fn open(self, forced: bool) -> Machine {
        let openings = if forced { self.openings } else { (self.openings + 1).min(MAX_OPENINGS) };
        Machine { state: CircuitState::Open, forced, openings, ..self.advance() }
    }

    /// A new half-open period with this call as its first probe, beside the probes still
    /// counted (none if `forget`: the probes in flight have expired). `probe_successes`
    /// is kept when expired probes are dropped, reset when the circuit recovers from open.
    fn half_open(self, forget: bool, probe_successes: u32) -> Step {
        let base = if forget { self.reset() } else { self.advance() };
        let next = Machine {
            state: CircuitState::HalfOpen,
            probes: base.probes + 1,
            probe_successes,
            openings: self.openings,
            ..base
        };
        let ticket = Ticket::new(next.generation, true);
        Machine::go(next, Effect::Admitted(ticket))
    }

    /// Whether admitting a call needs to know if the probes in flight have expired: the
    /// circuit is half-open with every probe slot taken.
    pub(crate) fn probes_full(self, limits: &Limits) -> bool {
        self.state == CircuitState::HalfOpen && self.probes >= limits.half_open_max_calls
    }

    /// Whether another probe may be let in: fewer probes counted than `half_open_max_calls`.
    fn probe_slot_free(self, limits: &Limits) -> bool {
        self.probes < limits.half_open_max_calls
    }

    /// Whether `ticket`'s probe slot is still counted: it was admitted since the last
    /// forget.
    pub(crate) fn counts(self, ticket: Ticket) -> bool {
        ticket.probe()
            && self.probes > 0
            && self.generation.wrapping_sub(ticket.generation()) <= u64::from(self.since_forget)
    }

    /// This machine with `ticket`'s probe slot given back, if it is still counted.
    fn finish_probe(self, ticket: Ticket) -> Machine {
        if !self.counts(ticket) {
            return self;
        }
        match self.probes - 1 {
            0 => Machine { probes: 0, since_forget: 0, ..self },
            probes => Machine { probes, ..self },
        }
    }

    fn stay(self, effect: Effect) -> Step {
        Step { next: self, effect, opened: false }
    }

    fn go(next: Machine, effect: Effect) -> Step {
        Step { next, effect, opened: next.state == CircuitState::Open && !next.forced }
    }

    /// Applies `event` under `limits`.
    pub(crate) fn step(self, event: Event, limits: &Limits) -> Step {
        use CircuitState::{Closed, HalfOpen, Open};
        match event {
            Event::Admit { recovered, probes_expired } => match self.state {
                Closed => self.stay(Effect::Admitted(Ticket::new(self.generation, false))),
                // (An open circuit that may recover always has a free slot, see below: the
                // check is a guard for that argument, written once for both arms.)
                Open if recovered && !self.forced && self.probe_slot_free(limits) => {
                    self.half_open(false, 0)
                }
                HalfOpen if self.probe_slot_free(limits) => {
                    let next = Machine { probes: self.probes + 1, ..self };
                    let ticket = Ticket::new(self.generation, true);
                    Machine::go(next, Effect::Admitted(ticket))
                }
                // Every probe in flight is hung: they are forgotten (their outcomes will be
                // late and free nothing) and this call probes in a new half-open period. (An
                // open circuit never has every slot taken: it opened when a probe ended, or
                // from a closed circuit, whose probes were fewer still; or it was forced
                // open, and only `reset`, which forgets them, ends that.)
                HalfOpen if probes_expired => self.half_open(true, self.probe_successes),
                Open | HalfOpen => self.stay(Effect::Rejected),
            },
            Event::Success(ticket)
            | Event::Failure(ticket)
            | Event::Trip(ticket)
            | Event::Abandon(ticket)
                if ticket.generation() != self.generation =>
            {
                // Late: only its probe slot, if still counted, is given back.
                self.finish_probe(ticket).stay(Effect::Late)
            }
            Event::Success(ticket) => {
                let after = self.finish_probe(ticket);
                match self.state {
                    // A success ends the streak (if any).
                    Closed => Machine::go(Machine { failures: 0, ..after }, Effect::Applied),
                    HalfOpen if self.probe_successes + 1 >= limits.success_threshold => {
                        Machine::go(after.closed(), Effect::Applied)
                    }
                    HalfOpen => Machine::go(
                        Machine { probe_successes: self.probe_successes + 1, ..after },
                        Effect::Applied,
                    ),
                    // No call is ever admitted in an open generation.
                    Open => after.stay(Effect::Late),
                }
            }
            Event::Failure(ticket) => match (self.state, limits.rule) {
                (Closed, Rule::Consecutive { failure_threshold })
                    if self.failures + 1 >= failure_threshold =>
                {
                    Machine::go(self.open(false), Effect::Applied)
                }
                (Closed, Rule::Consecutive { .. }) => {
                    Machine::go(Machine { failures: self.failures + 1, ..self }, Effect::Applied)
                }
                // The policy counts it; only a trip moves the state.
                (Closed, Rule::External) => self.stay(Effect::Applied),
                (HalfOpen, _) => {
                    Machine::go(self.finish_probe(ticket).open(false), Effect::Applied)
                }
                (Open, _) => self.stay(Effect::Late),
            },
            Event::Trip(ticket) => match self.state {
                Closed | HalfOpen => {
                    Machine::go(self.finish_probe(ticket).open(false), Effect::Applied)
                }
                Open => self.stay(Effect::Late),
            },
            Event::Abandon(ticket) => self.finish_probe(ticket).stay(Effect::Applied),
            Event::Reset => Machine::go(self.reset(), Effect::Applied),
            Event::ForceOpen if self.state == Open && self.forced => self.stay(Effect::Applied),
            Event::ForceOpen => Machine::go(self.open(true), Effect::Applied),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use CircuitState::{Closed, HalfOpen, Open};

    const LIMITS: Limits = Limits {
        rule: Rule::Consecutive { failure_threshold: 2 },
        half_open_max_calls: 2,
        success_threshold: 2,
    };

    fn admit(m: Machine, recovered: bool) -> (Machine, Effect) {
        let step = m.step(Event::Admit { recovered, probes_expired: false }, &LIMITS);
        (step.next, step.effect)
    }

    fn ticket(effect: Effect) -> Ticket {
        match effect {
            Effect::Admitted(ticket) => ticket,
            other => panic!("expected an admission, got {other:?}"),
        }
    }

    #[test]
    fn consecutive_failures_open_and_a_success_resets_the_count() {
        let m = Machine::INITIAL;
        let (m, e) = admit(m, false);
        let t = ticket(e);
        let m = m.step(Event::Failure(t), &LIMITS).next;
        assert_eq!((m.state, m.failures), (Closed, 1));
        let m = m.step(Event::Success(t), &LIMITS).next;
        assert_eq!(m.failures, 0);
        let m = m.step(Event::Failure(t), &LIMITS).next;
        let step = m.step(Event::Failure(t), &LIMITS);
        assert_eq!((step.next.state, step.opened, step.next.openings), (Open, true, 1));
        assert_eq!(step.next.generation, 1);
    }

    #[test]
    fn half_open_admits_up_to_the_limit_then_closes_on_enough_successes() {
        let open = Machine::INITIAL.open(false);
        assert_eq!(admit(open, false).1, Effect::Rejected);
        let (m, e1) = admit(open, true);
        assert_eq!((m.state, m.probes), (HalfOpen, 1));
        let (m, e2) = admit(m, false);
        assert_eq!(admit(m, false).1, Effect::Rejected, "extra calls are rejected, not queued");
        let m = m.step(Event::Success(ticket(e1)), &LIMITS).next;
        assert_eq!((m.state, m.probes, m.probe_successes), (HalfOpen, 1, 1));
        let m = m.step(Event::Success(ticket(e2)), &LIMITS).next;
        assert_eq!((m.state, m.failures, m.probes, m.openings), (Closed, 0, 0, 0));
    }

    #[test]
    fn a_failed_probe_reopens_and_an_abandoned_one_frees_its_slot() {
        let (m, e1) = admit(Machine::INITIAL.open(false), true);
        let (m, _e2) = admit(m, false);
        let m = m.step(Event::Abandon(ticket(e1)), &LIMITS).next;
        assert_eq!(m.probes, 1);
        let (m, e3) = admit(m, false);
        let step = m.step(Event::Failure(ticket(e3)), &LIMITS);
        assert_eq!((step.next.state, step.opened, step.next.openings), (Open, true, 2));
    }

    #[test]
    fn late_outcomes_do_not_move_the_state() {
        let (closed, e) = admit(Machine::INITIAL, false);
        let old = ticket(e);
        let half_open = admit(closed.open(false), true).0;
        for event in
            [Event::Success(old), Event::Failure(old), Event::Trip(old), Event::Abandon(old)]
        {
            let step = half_open.step(event, &LIMITS);
            assert_eq!((step.effect, step.next), (Effect::Late, half_open));
        }
    }

    #[test]
    fn probes_of_an_earlier_period_still_count_against_the_limit() {
        let (m, e1) = admit(Machine::INITIAL.open(false), true);
        let (m, e2) = admit(m, false);
        // The first probe fails: the circuit reopens while the second is still running.
        let m = m.step(Event::Failure(ticket(e1)), &LIMITS).next;
        assert_eq!((m.state, m.probes), (Open, 1));
        let (m, e3) = admit(m, true);
        assert_eq!((m.state, m.probes), (HalfOpen, 2));
        assert_eq!(admit(m, false).1, Effect::Rejected, "two probes are in flight already");
        // The stray finishes late: its success does not count, its slot comes back.
        let step = m.step(Event::Success(ticket(e2)), &LIMITS);
        assert_eq!(
            (step.effect, step.next.probes, step.next.probe_successes),
            (Effect::Late, 1, 0)
        );
        let m = step.next.step(Event::Abandon(ticket(e3)), &LIMITS).next;
        assert_eq!((m.probes, m.since_forget), (0, 0));
        // With every slot taken by strays, a half-open circuit refuses more probes...
        let full = Machine { state: HalfOpen, probes: 2, since_forget: 1, ..Machine::INITIAL };
        assert_eq!(admit(full, false).1, Effect::Rejected);
        // ...unless they are hung: then forgotten, and this call probes.
        let step = full.step(Event::Admit { recovered: false, probes_expired: true }, &LIMITS);
        assert_eq!((step.next.state, step.next.probes, step.next.since_forget), (HalfOpen, 1, 0));
        assert_eq!(step.next.generation, full.generation + 1);
    }

    #[test]
    fn a_probe_in_flight_across_too_many_transitions_is_forgotten() {
        let (mut m, e) = admit(Machine::INITIAL.open(false), true);
        let probe = ticket(e);
        for transition in 1..=MAX_SINCE_FORGET {
            m = m.advance();
            assert!(m.counts(probe), "still counted after {transition} transitions");
            assert_eq!((m.probes, m.since_forget), (1, transition));
        }
        m = m.advance();
        assert_eq!((m.probes, m.since_forget), (0, 0), "forgotten, like a hung probe");
        assert!(!m.counts(probe));
        // Its late end frees nothing.
        assert_eq!(m.step(Event::Success(probe), &LIMITS).next, m);
    }

    #[test]
    fn reset_forgets_the_probes_and_a_probe_from_before_frees_nothing() {
        let (m, e1) = admit(Machine::INITIAL.open(false), true);
        let m = m.step(Event::Reset, &LIMITS).next;
        assert_eq!((m.state, m.probes, m.openings), (Closed, 0, 0));
        let m = m.step(Event::ForceOpen, &LIMITS).next;
        let m = m.step(Event::Reset, &LIMITS).next;
        let m = m.step(Event::Failure(ticket(admit(m, false).1)), &LIMITS).next;
        let m = m.step(Event::Failure(ticket(admit(m, false).1)), &LIMITS).next;
        let (m, e2) = admit(m, true);
        assert_eq!((m.state, m.probes), (HalfOpen, 1));
        let step = m.step(Event::Abandon(ticket(e1)), &LIMITS);
        assert_eq!((step.effect, step.next.probes), (Effect::Late, 1));
        let m = step.next.step(Event::Success(ticket(e2)), &LIMITS).next;
        assert_eq!((m.probes, m.probe_successes), (0, 1));
    }

    #[test]
    fn expired_probes_are_dropped_for_a_new_half_open_period() {
        let limits = Limits { half_open_max_calls: 1, success_threshold: 3, ..LIMITS };
        let m = Machine::INITIAL.open(false);
        let admit = |m: Machine, probes_expired| {
            m.step(Event::Admit { recovered: true, probes_expired }, &limits)
        };
        let first = admit(m, false);
        let m = first.next.step(Event::Success(ticket(first.effect)), &limits).next;
        let hung = admit(m, false);
        let m = hung.next;
        assert!(m.probes_full(&limits));
        assert_eq!(admit(m, false).effect, Effect::Rejected, "not expired yet");
        let fresh = admit(m, true);
        assert_eq!(fresh.next.state, HalfOpen);
        assert_eq!((fresh.next.probes, fresh.next.probe_successes), (1, 1), "successes are kept");
        assert_ne!(ticket(fresh.effect).generation(), ticket(hung.effect).generation());
        assert!(!fresh.opened);
        // The hung probe answers at last: late, it frees nothing.
        let late = fresh.next.step(Event::Failure(ticket(hung.effect)), &limits);
        assert_eq!((late.effect, late.next), (Effect::Late, fresh.next));
    }

    #[test]
    fn an_external_rule_counts_nothing_and_opens_on_a_trip() {
        let limits = Limits { rule: Rule::External, ..LIMITS };
        let (m, e) = admit(Machine::INITIAL, false);
        let t = ticket(e);
        let m = m.step(Event::Failure(t), &limits).next;
        let m = m.step(Event::Failure(t), &limits).next;
        assert_eq!((m.state, m.failures), (Closed, 0));
        let step = m.step(Event::Trip(t), &limits);
        assert_eq!((step.next.state, step.opened), (Open, true));
        // A trip on a probe reopens a half-open circuit too (a slow probe).
        let (m, probe) = admit(step.next, true);
        let step = m.step(Event::Trip(ticket(probe)), &limits);
        assert_eq!((step.next.state, step.next.probes, step.next.openings), (Open, 0, 2));
        assert_eq!(step.next.step(Event::Trip(ticket(probe)), &limits).effect, Effect::Late);
    }

    #[test]
    fn forced_open_ignores_recovery_until_reset_and_is_no_failed_recovery() {
        let forced = Machine::INITIAL.step(Event::ForceOpen, &LIMITS);
        assert!(!forced.opened, "a forced opening has no break to time");
        let forced = forced.next;
        assert_eq!((forced.state, forced.forced, forced.openings), (Open, true, 0));
        assert_eq!(admit(forced, true).1, Effect::Rejected);
        assert_eq!(forced.step(Event::ForceOpen, &LIMITS).next, forced);
        let reset = forced.step(Event::Reset, &LIMITS).next;
        assert_eq!((reset.state, reset.forced), (Closed, false));
        assert_eq!(reset.generation, forced.generation + 1);
    }

    #[test]
    fn a_ticket_prints_its_generation_and_whether_it_is_a_probe() {
        let ticket = Ticket::new(41, true);
        assert_eq!((ticket.generation(), ticket.probe()), (41, true));
        assert_eq!(alloc::format!("{ticket:?}"), "Ticket { generation: 41, probe: true }");
        assert!(!Ticket::new(7, false).probe());
    }

    #[test]
    fn openings_saturate() {
        let mut m = Machine::INITIAL;
        for _ in 0..MAX_OPENINGS + 5 {
            m = m.open(false);
        }
        assert_eq!(m.openings, MAX_OPENINGS);
        assert_eq!(m.open(true).openings, MAX_OPENINGS);
    }
}
