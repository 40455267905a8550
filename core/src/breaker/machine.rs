//! The breaker's state machine: a pure function over a plain value.
//!
//! [`Machine::step`] knows nothing of atomics, clocks or threads. The atomic layer
//! (`circuit.rs`) loads the packed state, runs `step`, and commits the result with a
//! compare-exchange; tests and fuzz targets drive the very same function.

use super::CircuitState;

/// Bits of the generation counter (it wraps).
pub(crate) const GENERATION_BITS: u32 = 24;
/// Bits of each counter packed beside it.
pub(crate) const COUNT_BITS: u32 = 18;
/// The largest threshold or probe count a breaker can track.
pub const MAX_COUNT: u32 = (1 << COUNT_BITS) - 1;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// The whole state of a breaker but its open deadline, as a plain value.
///
/// Every state change starts a new *generation*. A call is admitted in a generation, and
/// its outcome moves the state only if that generation is still current: outcomes that
/// arrive after a transition are late, and count only in the totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Machine {
    pub(crate) state: CircuitState,
    /// Opened by `force_open`: it stays open until `reset`.
    pub(crate) forced: bool,
    pub(crate) generation: u32,
    /// Consecutive failures in this closed period.
    pub(crate) failures: u32,
    /// Probe calls in flight, of this half-open period or an earlier one: a probe is in
    /// flight until it finishes or is abandoned, whatever happened to the circuit
    /// meanwhile, so the count survives every transition. `half_open_max_calls` bounds
    /// it: the recovering dependency never sees more probes at once.
    pub(crate) probes: u32,
    /// Successful probes in this half-open period.
    pub(crate) probe_successes: u32,
}

/// The validated thresholds the machine runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Thresholds {
    /// Consecutive failures in the closed state that open the circuit (>= 1).
    pub(crate) failure_threshold: u32,
    /// Probes allowed in flight at once in the half-open state (>= 1).
    pub(crate) half_open_max_calls: u32,
    /// Successful probes that close the circuit (>= 1).
    pub(crate) success_threshold: u32,
}

/// A call's admission: the generation it was admitted in, and whether it is a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ticket {
    pub(crate) generation: u32,
    pub(crate) probe: bool,
}

/// Something that happens to a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Event {
    /// A call asks to be let in. `recovered`: the circuit is open and its recovery time
    /// has passed (the atomic layer reads the clock; the machine stays pure).
    Admit { recovered: bool },
    /// An admitted call succeeded.
    Success(Ticket),
    /// An admitted call failed.
    Failure(Ticket),
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
    /// A new open period starts: its recovery deadline must be set.
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
    };

    fn next_generation(self) -> u32 {
        self.generation.wrapping_add(1) & GENERATION_MASK
    }

    /// A new closed period; probes still in flight stay counted.
    fn closed(self) -> Machine {
        Machine { generation: self.next_generation(), probes: self.probes, ..Machine::INITIAL }
    }

    /// A new open period; probes still in flight stay counted.
    fn open(self, forced: bool) -> Machine {
        Machine {
            state: CircuitState::Open,
            forced,
            generation: self.next_generation(),
            probes: self.probes,
            ..Machine::INITIAL
        }
    }

    /// This machine with one probe fewer in flight, if `ticket` is a probe's.
    fn finish_probe(self, ticket: Ticket) -> Machine {
        if ticket.probe { Machine { probes: self.probes.saturating_sub(1), ..self } } else { self }
    }

    fn stay(self, effect: Effect) -> Step {
        Step { next: self, effect, opened: false }
    }

    fn go(next: Machine, effect: Effect) -> Step {
        Step { next, effect, opened: next.state == CircuitState::Open }
    }

    /// Applies `event` under `limits`.
    pub(crate) fn step(self, event: Event, limits: &Thresholds) -> Step {
        use CircuitState::{Closed, HalfOpen, Open};
        let room_for_a_probe = self.probes < limits.half_open_max_calls;
        match event {
            Event::Admit { recovered } => match self.state {
                Closed => self
                    .stay(Effect::Admitted(Ticket { generation: self.generation, probe: false })),
                Open if recovered && !self.forced && room_for_a_probe => {
                    let next = Machine {
                        state: HalfOpen,
                        generation: self.next_generation(),
                        probes: self.probes + 1,
                        ..Machine::INITIAL
                    };
                    let ticket = Ticket { generation: next.generation, probe: true };
                    Machine::go(next, Effect::Admitted(ticket))
                }
                HalfOpen if room_for_a_probe => {
                    let next = Machine { probes: self.probes + 1, ..self };
                    let ticket = Ticket { generation: self.generation, probe: true };
                    Machine::go(next, Effect::Admitted(ticket))
                }
                Open | HalfOpen => self.stay(Effect::Rejected),
            },
            Event::Success(ticket) | Event::Failure(ticket) | Event::Abandon(ticket)
                if ticket.generation != self.generation =>
            {
                // Late: only its probe slot (if any) is given back.
                let next = self.finish_probe(ticket);
                Step { next, effect: Effect::Late, opened: false }
            }
            Event::Success(ticket) => {
                let after = self.finish_probe(ticket);
                match self.state {
                    Closed if self.failures == 0 => after.stay(Effect::Applied),
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
            Event::Failure(ticket) => {
                let after = self.finish_probe(ticket);
                match self.state {
                    Closed if self.failures + 1 >= limits.failure_threshold => {
                        Machine::go(after.open(false), Effect::Applied)
                    }
                    Closed => Machine::go(
                        Machine { failures: self.failures + 1, ..after },
                        Effect::Applied,
                    ),
                    HalfOpen => Machine::go(after.open(false), Effect::Applied),
                    Open => after.stay(Effect::Late),
                }
            }
            Event::Abandon(ticket) => {
                Step { next: self.finish_probe(ticket), effect: Effect::Applied, opened: false }
            }
            Event::Reset => Machine::go(self.closed(), Effect::Applied),
            Event::ForceOpen if self.state == Open && self.forced => self.stay(Effect::Applied),
            Event::ForceOpen => Machine::go(self.open(true), Effect::Applied),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use CircuitState::{Closed, HalfOpen, Open};

    const LIMITS: Thresholds =
        Thresholds { failure_threshold: 2, half_open_max_calls: 2, success_threshold: 2 };

    fn admit(m: Machine, recovered: bool) -> (Machine, Effect) {
        let step = m.step(Event::Admit { recovered }, &LIMITS);
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
        assert_eq!((step.next.state, step.opened), (Open, true));
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
        assert_eq!((m.state, m.failures, m.probes), (Closed, 0, 0));
    }

    #[test]
    fn a_failed_probe_reopens_and_an_abandoned_one_frees_its_slot() {
        let (m, e1) = admit(Machine::INITIAL.open(false), true);
        let (m, _e2) = admit(m, false);
        let m = m.step(Event::Abandon(ticket(e1)), &LIMITS).next;
        assert_eq!(m.probes, 1);
        let (m, e3) = admit(m, false);
        let step = m.step(Event::Failure(ticket(e3)), &LIMITS);
        assert_eq!((step.next.state, step.opened), (Open, true));
    }

    #[test]
    fn late_outcomes_do_not_move_the_state() {
        let (closed, e) = admit(Machine::INITIAL, false);
        let old = ticket(e);
        let half_open = admit(closed.open(false), true).0;
        assert_eq!(half_open.step(Event::Success(old), &LIMITS).effect, Effect::Late);
        assert_eq!(half_open.step(Event::Failure(old), &LIMITS).next, half_open);
        assert_eq!(half_open.step(Event::Abandon(old), &LIMITS).next, half_open);
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
        // The stray probe finishes late: its success does not count, its slot comes back.
        let step = m.step(Event::Success(ticket(e2)), &LIMITS);
        assert_eq!(
            (step.effect, step.next.probes, step.next.probe_successes),
            (Effect::Late, 1, 0)
        );
        let m = step.next.step(Event::Abandon(ticket(e3)), &LIMITS).next;
        assert_eq!(m.probes, 0);
        // With every slot taken by strays, a recovered circuit waits rather than probe.
        let full = Machine { probes: 2, ..Machine::INITIAL.open(false) };
        assert_eq!(admit(full, true).1, Effect::Rejected);
    }

    #[test]
    fn forced_open_ignores_recovery_until_reset() {
        let forced = Machine::INITIAL.step(Event::ForceOpen, &LIMITS).next;
        assert_eq!((forced.state, forced.forced), (Open, true));
        assert_eq!(admit(forced, true).1, Effect::Rejected);
        assert_eq!(forced.step(Event::ForceOpen, &LIMITS).next, forced);
        let reset = forced.step(Event::Reset, &LIMITS).next;
        assert_eq!((reset.state, reset.forced), (Closed, false));
        assert_ne!(reset.generation, forced.generation);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        let m = Machine { generation: GENERATION_MASK, ..Machine::INITIAL };
        assert_eq!(m.step(Event::Reset, &LIMITS).next.generation, 0);
    }
}
