//! The service's own property, beside kompoz's invariants: while the backend is down, the
//! client does not hammer it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;

use kompoz::Clock;
use kompoz::breaker::{CircuitBreaker, CircuitState};
use kompoz::sim::Admission;

/// Checks that, while the backend is down, each *recovery cycle* of the breaker (from one
/// opening of the circuit to the next) sends the backend at most `half_open_max_calls`
/// requests, plus one for each probe the client abandoned (a cancelled probe gives its
/// slot back, so the breaker may let another in). Requests admitted before the circuit
/// opened are not counted: they were let in while it was closed. Cycles during which the
/// backend was up at any moment are not checked (a successful probe frees its slot too).
#[derive(Debug)]
pub struct OutageWatch {
    half_open_max_calls: u32,
    cycles: RefCell<BTreeMap<u64, Cycle>>,
    violation: Cell<Option<OutageViolation>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Cycle {
    sent: u32,
    abandoned: u32,
    backend_was_up: bool,
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
    /// The breaker's `half_open_max_calls`.
    pub half_open_max_calls: u32,
}

impl fmt::Display for OutageViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OutageViolation { cycle, sent, abandoned, half_open_max_calls } = self;
        write!(
            f,
            "recovery cycle {cycle} sent {sent} requests to a down backend; at most \
             half_open_max_calls ({half_open_max_calls}) + abandoned probes ({abandoned}) may go"
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
            violation: Cell::new(None),
        }
    }

    /// A call was admitted; if it is a probe, watches whether it is abandoned.
    pub fn admitted(&self, admission: &Admission<'_>) -> ProbeEnd<'_> {
        let cycle = admission.is_probe().then(|| admission.times_opened());
        ProbeEnd { watch: self, cycle, finished: false }
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
        if !tally.backend_was_up && tally.sent > self.half_open_max_calls + tally.abandoned {
            let violation = OutageViolation {
                cycle,
                sent: tally.sent,
                abandoned: tally.abandoned,
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

/// Counts a probe as abandoned unless [`finished`](ProbeEnd::finished) is called.
#[derive(Debug)]
pub struct ProbeEnd<'a> {
    watch: &'a OutageWatch,
    cycle: Option<u64>,
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
        if let (Some(cycle), false) = (self.cycle, self.finished) {
            self.watch.cycles.borrow_mut().entry(cycle).or_default().abandoned += 1;
        }
    }
}
