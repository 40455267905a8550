//! The service's own property, beside kompoz's invariants: while the backend is down, the
//! client does not hammer it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;

use kompoz::Clock;
use kompoz::breaker::{CircuitBreaker, CircuitState};
use kompoz::sim::{Admission, ProbeSlot};

/// Checks that, while the backend is down, each *recovery cycle* of the breaker (from one
/// opening of the circuit to the next) sends the backend at most `half_open_max_calls`
/// requests, plus one for each probe whose slot the breaker got back or gave up on early:
///
/// * a probe the client *abandoned* (cancelled, or dropped without a verdict) gives its
///   slot back, so the breaker may let another in;
/// * a probe the breaker *forgot* while it still ran no longer holds its slot either: the
///   breaker presumes probes hung once they have all held their slots for
///   `half_open_max_wait`, and lets the next call in as the first probe of a fresh
///   half-open period of the same cycle (no opening in between). That is the breaker
///   doing what it documents (a hung probe must not wedge recovery), so each forgotten
///   probe allows one more request, exactly as an abandoned one does; a probe counts
///   once, as forgotten or as abandoned, never both. (`reset` and forgetting by age also
///   forget probes, but both start a new cycle before another probe can be let in.)
///
/// Requests admitted before the circuit opened are not counted: they were let in while it
/// was closed. Cycles during which the backend was up at any moment are not checked (a
/// successful probe frees its slot too).
#[derive(Debug)]
pub struct OutageWatch {
    half_open_max_calls: u32,
    cycles: RefCell<BTreeMap<u64, Cycle>>,
    /// Probes in flight, by number.
    probes: RefCell<BTreeMap<u64, Probe>>,
    next_probe: Cell<u64>,
    violation: Cell<Option<OutageViolation>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Cycle {
    sent: u32,
    abandoned: u32,
    forgotten: u32,
    backend_was_up: bool,
}

impl Cycle {
    /// Requests the breaker may let through in this cycle.
    fn allowed(&self, half_open_max_calls: u32) -> u32 {
        half_open_max_calls.saturating_add(self.abandoned).saturating_add(self.forgotten)
    }
}

/// A probe in flight.
#[derive(Clone, Copy, Debug)]
struct Probe {
    cycle: u64,
    slot: ProbeSlot,
    /// Already counted as forgotten.
    forgotten: bool,
}

/// A recovery cycle that sent a down backend more requests than the breaker allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutageViolation {
    /// The cycle: how many times the circuit had opened.
    pub cycle: u64,
    /// Requests it sent the down backend.
    pub sent: u32,
    /// Probes abandoned in it.
    pub abandoned: u32,
    /// Probes the breaker forgot in it while they still ran (presumed hung).
    pub forgotten: u32,
    /// The breaker's `half_open_max_calls`.
    pub half_open_max_calls: u32,
}

impl fmt::Display for OutageViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OutageViolation { cycle, sent, abandoned, forgotten, half_open_max_calls } = self;
        write!(
            f,
            "recovery cycle {cycle} sent {sent} requests to a down backend; at most \
             half_open_max_calls ({half_open_max_calls}) + abandoned probes ({abandoned}) + \
             probes presumed hung ({forgotten}) may go"
        )
    }
}

impl std::error::Error for OutageViolation {}

impl OutageWatch {
    /// A watch for a breaker built with this `half_open_max_calls`.
    pub fn new(half_open_max_calls: u32) -> OutageWatch {
        OutageWatch {
            half_open_max_calls,
            cycles: RefCell::new(BTreeMap::new()),
            probes: RefCell::new(BTreeMap::new()),
            next_probe: Cell::new(0),
            violation: Cell::new(None),
        }
    }

    /// A call was admitted by `breaker`; if it is a probe, watches whether it is
    /// abandoned. First counts the probes in flight the breaker has forgotten (admitting
    /// this one may just have made it forget them).
    pub fn admitted<C: Clock>(
        &self,
        admission: &Admission<'_>,
        breaker: &CircuitBreaker<C>,
    ) -> ProbeEnd<'_> {
        self.count_forgotten(breaker);
        let probe = admission.probe_slot().map(|slot| {
            let number = self.next_probe.get();
            self.next_probe.set(number + 1);
            let probe = Probe { cycle: admission.times_opened(), slot, forgotten: false };
            self.probes.borrow_mut().insert(number, probe);
            number
        });
        ProbeEnd { watch: self, probe, finished: false }
    }

    /// Counts, in their cycles, the probes in flight that `breaker` no longer counts.
    fn count_forgotten<C: Clock>(&self, breaker: &CircuitBreaker<C>) {
        let mut cycles = self.cycles.borrow_mut();
        for probe in self.probes.borrow_mut().values_mut() {
            if !probe.forgotten && !probe.slot.held_in(breaker) {
                probe.forgotten = true;
                cycles.entry(probe.cycle).or_default().forgotten += 1;
            }
        }
    }

    /// A request reaches the backend, admitted as `admitted` (`None`: not through the
    /// breaker at all).
    pub fn request<C: Clock>(
        &self,
        admitted: Option<AdmittedAs>,
        breaker: &CircuitBreaker<C>,
        backend_down: bool,
    ) {
        if !backend_down {
            return;
        }
        let cycle = match admitted {
            Some(AdmittedAs { probe: true, times_opened }) => times_opened,
            // Let in while the circuit was closed.
            Some(_) => return,
            None if breaker.state() == CircuitState::Closed => return,
            None => breaker.stats().times_opened,
        };
        let mut cycles = self.cycles.borrow_mut();
        let tally = cycles.entry(cycle).or_default();
        tally.sent += 1;
        if !tally.backend_was_up && tally.sent > tally.allowed(self.half_open_max_calls) {
            let violation = OutageViolation {
                cycle,
                sent: tally.sent,
                abandoned: tally.abandoned,
                forgotten: tally.forgotten,
                half_open_max_calls: self.half_open_max_calls,
            };
            self.violation.set(self.violation.get().or(Some(violation)));
        }
    }

    /// The backend was up at some moment of these cycles: they are not checked.
    pub fn backend_up_during(&self, cycles: RangeInclusive<u64>) {
        let mut tallies = self.cycles.borrow_mut();
        for cycle in cycles {
            tallies.entry(cycle).or_default().backend_was_up = true;
        }
    }

    /// Probes the breaker forgot while they still ran, over the run so far (counted when
    /// the next call is admitted, or when they end).
    pub fn forgotten_probes(&self) -> u64 {
        self.cycles.borrow().values().map(|cycle| u64::from(cycle.forgotten)).sum()
    }

    /// The first violation, if any.
    pub fn check(&self) -> Result<(), OutageViolation> {
        self.violation.get().map_or(Ok(()), Err)
    }
}

/// How a call was admitted, carried to where its request reaches the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdmittedAs {
    /// Whether it is a half-open probe.
    pub probe: bool,
    /// How many times the circuit had opened when it was admitted.
    pub times_opened: u64,
}

impl AdmittedAs {
    /// How `admission` was admitted.
    pub fn of(admission: &Admission<'_>) -> AdmittedAs {
        AdmittedAs { probe: admission.is_probe(), times_opened: admission.times_opened() }
    }
}

/// Counts a probe as abandoned unless [`finished`](ProbeEnd::finished) is called, or the
/// breaker had already forgotten it (it then gives no slot back, and was counted as
/// forgotten when the breaker let the next probe in).
#[derive(Debug)]
pub struct ProbeEnd<'a> {
    watch: &'a OutageWatch,
    /// The probe's number, if the call is one.
    probe: Option<u64>,
    finished: bool,
}

impl ProbeEnd<'_> {
    /// The call came back with a verdict for the breaker.
    pub fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for ProbeEnd<'_> {
    fn drop(&mut self) {
        let Some(number) = self.probe else { return };
        let Some(probe) = self.watch.probes.borrow_mut().remove(&number) else { return };
        if !self.finished && !probe.forgotten {
            self.watch.cycles.borrow_mut().entry(probe.cycle).or_default().abandoned += 1;
        }
    }
}
