//! Invariant checkers: watches a fuzz target puts at the edges of the code under test,
//! and checks it calls after each step and once the simulation is idle.
//!
//! Each check returns `Err(`[`Violation`]`)` naming what went wrong and the numbers that
//! show it; a watch remembers the first violation it saw, so checking after each step is
//! enough to pin the step that broke the rule.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::breaker::{CircuitBreaker, CircuitState};
use crate::limit::Semaphore;
use crate::sync::{AtomicUsize, Ordering, SpinMutex};
use crate::time::{Clock, Instant};

/// A rule of kompoz's (or of a service built on it) that a run broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Violation {
    /// More calls inside a concurrency limit than it allows.
    TooManyInside {
        /// Calls inside at once.
        inside: usize,
        /// The limit's `max_concurrent`.
        max_concurrent: usize,
    },
    /// A call was let through a circuit that was open.
    AdmittedWhileOpen {
        /// When (on the breaker's clock).
        at: Instant,
    },
    /// More half-open probes in flight than `half_open_max_calls`.
    TooManyProbes {
        /// Probes in flight at once.
        in_flight: usize,
        /// `half_open_max_calls`.
        half_open_max_calls: u32,
        /// When.
        at: Instant,
    },
    /// A request reached the dependency without being admitted by the breaker (more
    /// requests at the dependency than admitted calls in flight).
    BypassedTheBreaker {
        /// Requests at the dependency.
        at_dependency: usize,
        /// Admitted calls in flight.
        admitted: usize,
    },
    /// Once idle, a semaphore has not got all its permits back (or has waiters).
    PermitsNotReturned {
        /// Permits free.
        available: usize,
        /// Permits it owns.
        capacity: usize,
        /// Tasks still queued.
        waiting: usize,
    },
    /// Once idle, a breaker still counts probes in flight.
    ProbeSlotsNotReturned {
        /// Probes it counts in flight.
        in_flight: u32,
    },
    /// More cells passed a rate limit over a window of time than its rate and burst
    /// allow.
    RateExceeded {
        /// Cells admitted in the window.
        admitted: u64,
        /// The window's length (from the first of those admissions to the last).
        window: Duration,
        /// What the rate allows over it: `burst + floor(window / interval)`.
        allowed: u64,
    },
    /// A retried call made more attempts than its policy's `max_attempts`.
    TooManyAttempts {
        /// Attempts made.
        attempts: u32,
        /// The policy's `max_attempts`.
        max_attempts: u32,
    },
    /// A retried call started an attempt later than its policy's `deadline` after its
    /// first.
    AttemptPastDeadline {
        /// The attempt's number (from 1).
        attempt: u32,
        /// The time since the first attempt started.
        elapsed: Duration,
        /// The policy's `deadline`.
        deadline: Duration,
    },
    /// A retried call tried again after a circuit breaker refused its previous attempt.
    RetriedOpenCircuit {
        /// The attempt's number (from 1).
        attempt: u32,
        /// When it started.
        at: Instant,
    },
    /// A retried call tried again before the rate limiter that refused its previous
    /// attempt said it would admit.
    RetriedTooSoon {
        /// The attempt's number (from 1).
        attempt: u32,
        /// When it started.
        at: Instant,
        /// When the limiter said it would admit.
        earliest: Instant,
    },
    /// More retries than a retry budget of its configuration can let through.
    RetryBudgetExceeded {
        /// Retries made.
        retries: u64,
        /// Calls made.
        calls: u64,
        /// The most a correct budget lets through over the time so far.
        allowed: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TooManyInside { inside, max_concurrent } => write!(
                f,
                "{inside} calls inside a concurrency limit of max_concurrent = {max_concurrent}"
            ),
            Violation::AdmittedWhileOpen { at } => {
                write!(f, "a call was let through an open circuit at {at:?}")
            }
            Violation::TooManyProbes { in_flight, half_open_max_calls, at } => write!(
                f,
                "{in_flight} half-open probes in flight at {at:?}, above \
                 half_open_max_calls = {half_open_max_calls}"
            ),
            Violation::BypassedTheBreaker { at_dependency, admitted } => write!(
                f,
                "{at_dependency} requests at the dependency but only {admitted} calls admitted \
                 by the breaker: a request went around it"
            ),
            Violation::PermitsNotReturned { available, capacity, waiting } => write!(
                f,
                "idle, yet only {available} of {capacity} permits are free \
                 ({waiting} waiting): a permit leaked"
            ),
            Violation::ProbeSlotsNotReturned { in_flight } => {
                write!(f, "idle, yet the breaker counts {in_flight} probes in flight")
            }
            Violation::RateExceeded { admitted, window, allowed } => write!(
                f,
                "{admitted} cells passed the rate limit within {window:?}, where it allows {allowed}"
            ),
            Violation::TooManyAttempts { attempts, max_attempts } => write!(
                f,
                "a retried call made {attempts} attempts, above max_attempts = {max_attempts}"
            ),
            Violation::AttemptPastDeadline { attempt, elapsed, deadline } => write!(
                f,
                "attempt {attempt} started {elapsed:?} after the first, past the deadline of \
                 {deadline:?}"
            ),
            Violation::RetriedOpenCircuit { attempt, at } => write!(
                f,
                "attempt {attempt} started at {at:?} although the circuit breaker refused the \
                 previous one: a retry through an open circuit"
            ),
            Violation::RetriedTooSoon { attempt, at, earliest } => write!(
                f,
                "attempt {attempt} started at {at:?}, before {earliest:?}, when the rate limiter \
                 that refused the previous one said it would admit"
            ),
            Violation::RetryBudgetExceeded { retries, calls, allowed } => write!(
                f,
                "{retries} retries for {calls} calls, where the retry budget lets at most \
                 {allowed} through"
            ),
        }
    }
}

impl core::error::Error for Violation {}

/// The first violation a watch saw.
#[derive(Debug, Default)]
pub(super) struct FirstViolation(SpinMutex<Option<Violation>>);

impl FirstViolation {
    pub(super) fn record(&self, violation: Violation) {
        self.0.with(|first| {
            first.get_or_insert(violation);
        });
    }

    pub(super) fn check(&self) -> Result<(), Violation> {
        self.0.with(|first| first.map_or(Ok(()), Err))
    }
}

/// Watches a concurrency limit: put [`enter`](LimitWatch::enter) first thing inside the
/// limited section (where the permit is held), and [`check`](LimitWatch::check) that
/// no more than `max_concurrent` calls were ever inside at once.
///
/// ```
/// use kompoz::sim::{LimitWatch, Violation};
///
/// let watch = LimitWatch::new(2);
/// let (a, b) = (watch.enter(), watch.enter());
/// assert_eq!(watch.check(), Ok(()));
/// let c = watch.enter(); // a third call: the limit did not hold
/// assert_eq!(watch.check(), Err(Violation::TooManyInside { inside: 3, max_concurrent: 2 }));
/// drop((a, b, c));
/// assert_eq!((watch.inside(), watch.peak()), (0, 3));
/// ```
#[derive(Debug)]
pub struct LimitWatch {
    max_concurrent: usize,
    inside: AtomicUsize,
    peak: AtomicUsize,
    violation: FirstViolation,
}

impl LimitWatch {
    /// A watch of a limit of `max_concurrent`.
    pub fn new(max_concurrent: usize) -> LimitWatch {
        LimitWatch {
            max_concurrent,
            inside: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            violation: FirstViolation::default(),
        }
    }

    /// A call is inside the limit until the returned guard is dropped.
    pub fn enter(&self) -> Inside<'_> {
        let inside = self.inside.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(inside, Ordering::Relaxed);
        if inside > self.max_concurrent {
            self.violation
                .record(Violation::TooManyInside { inside, max_concurrent: self.max_concurrent });
        }
        Inside { count: &self.inside }
    }

    /// Calls inside now.
    pub fn inside(&self) -> usize {
        self.inside.load(Ordering::Relaxed)
    }

    /// The most calls ever inside at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The first violation seen, if any.
    pub fn check(&self) -> Result<(), Violation> {
        self.violation.check()
    }
}

/// A call inside a watched region; leaves it when dropped.
#[must_use = "the call leaves the region when this guard is dropped"]
#[derive(Debug)]
pub struct Inside<'a> {
    count: &'a AtomicUsize,
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Watches a circuit breaker from the inside: put [`admitted`](BreakerWatch::admitted)
/// first thing in the code the breaker guards (before any `.await`, so it runs in the
/// same poll as the admission) and [`at_dependency`](BreakerWatch::at_dependency) where
/// a request reaches the dependency. It checks that:
///
/// * no call is let through an open circuit;
/// * at most `half_open_max_calls` probes are in flight at once (probes of earlier
///   half-open periods still running included; not those the breaker has *forgotten*, by
///   `reset`, by the expiry of hung probes or by age, as
///   [`CircuitBreaker`](crate::breaker::CircuitBreaker) documents);
/// * every request that reaches the dependency was admitted (at any moment, no more
///   requests at the dependency than admitted calls in flight).
///
/// ```
/// use core::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::sim::{BreakerConfig, BreakerWatch};
///
/// let config = BreakerConfig::default();
/// let breaker = config.build_with(ManualClock::new())?;
/// let watch = BreakerWatch::new(config.half_open_max_calls);
/// let answer = futures::executor::block_on(breaker.call(async {
///     let admission = watch.admitted(&breaker);
///     assert!(!admission.is_probe());
///     let _request = watch.at_dependency();
///     Ok::<_, ()>(7)
/// }));
/// assert_eq!(answer, Ok(7));
/// assert_eq!(watch.check(), Ok(()));
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
#[derive(Debug)]
pub struct BreakerWatch {
    half_open_max_calls: u32,
    admitted: AtomicUsize,
    /// The generations the probes in flight were admitted in, one entry per probe.
    probes: SpinMutex<Vec<u64>>,
    at_dependency: AtomicUsize,
    violation: FirstViolation,
}

impl BreakerWatch {
    /// A watch of a breaker built with this `half_open_max_calls`.
    pub fn new(half_open_max_calls: u32) -> BreakerWatch {
        BreakerWatch {
            half_open_max_calls,
            admitted: AtomicUsize::new(0),
            probes: SpinMutex::new(Vec::new()),
            at_dependency: AtomicUsize::new(0),
            violation: FirstViolation::default(),
        }
    }

    /// Records that `breaker` just admitted a call; the call counts as admitted (and, if
    /// the circuit is half-open, as a probe) until the returned guard is dropped.
    pub fn admitted<C: Clock>(&self, breaker: &CircuitBreaker<C>) -> Admission<'_> {
        let state = breaker.state();
        let at = breaker.clock().now();
        self.admitted.fetch_add(1, Ordering::Relaxed);
        // In the same poll as the admission: the generation the call was admitted in.
        let generation = breaker.generation();
        let probe = state == CircuitState::HalfOpen;
        match state {
            CircuitState::Open => self.violation.record(Violation::AdmittedWhileOpen { at }),
            CircuitState::HalfOpen => {
                let in_flight = self.probes.with(|probes| {
                    probes.push(generation);
                    probes.iter().filter(|&&g| breaker.holds_probe_slot(g)).count()
                });
                if in_flight > self.half_open_max_calls as usize {
                    self.violation.record(Violation::TooManyProbes {
                        in_flight,
                        half_open_max_calls: self.half_open_max_calls,
                        at,
                    });
                }
            }
            CircuitState::Closed => {}
        }
        Admission { watch: self, probe, generation, times_opened: breaker.stats().times_opened }
    }

    /// Records that a request reached the dependency; it is there until the returned
    /// guard is dropped.
    pub fn at_dependency(&self) -> Inside<'_> {
        let at_dependency = self.at_dependency.fetch_add(1, Ordering::Relaxed) + 1;
        let admitted = self.admitted.load(Ordering::Relaxed);
        if at_dependency > admitted {
            self.violation.record(Violation::BypassedTheBreaker { at_dependency, admitted });
        }
        Inside { count: &self.at_dependency }
    }

    /// Admitted calls in flight now.
    pub fn admitted_in_flight(&self) -> usize {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Probes in flight now (forgotten ones included).
    pub fn probes_in_flight(&self) -> usize {
        self.probes.with(|probes| probes.len())
    }

    /// The first violation seen, if any.
    pub fn check(&self) -> Result<(), Violation> {
        self.violation.check()
    }
}

/// A call admitted by a watched breaker, from [`BreakerWatch::admitted`].
#[must_use = "the call counts as admitted until this guard is dropped"]
#[derive(Debug)]
pub struct Admission<'a> {
    watch: &'a BreakerWatch,
    probe: bool,
    generation: u64,
    times_opened: u64,
}

impl Admission<'_> {
    /// Whether the call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// How many times the circuit had opened when the call was admitted: for a probe,
    /// the number of the open period it is probing the end of.
    pub fn times_opened(&self) -> u64 {
        self.times_opened
    }

    /// For a probe, its claim on its half-open slot, to ask later (from anywhere, while
    /// the probe runs) whether the breaker still counts it; `None` for a call admitted
    /// while closed.
    pub fn probe_slot(&self) -> Option<ProbeSlot> {
        self.probe.then_some(ProbeSlot { generation: self.generation })
    }
}

/// A running probe's claim on its half-open slot, from [`Admission::probe_slot`]: a plain
/// value a watch can keep for each probe in flight and ask
/// [`held_in`](ProbeSlot::held_in) later. The breaker *forgets* its probes on `reset`,
/// when they have all held their slots for `half_open_max_wait` (presumed hung), and
/// after 63 transitions in a row with a probe in flight; a forgotten probe no longer
/// holds a slot, so the breaker may let another probe in while it still runs.
///
/// ```
/// use core::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::sim::{BreakerConfig, BreakerWatch};
///
/// let clock = ManualClock::new();
/// let mut config = BreakerConfig::default();
/// config.failure_threshold = 1;
/// config.recovery_timeout = Duration::ZERO;
/// config.half_open_max_wait = Duration::from_secs(5);
/// let breaker = config.build_with(clock.clone())?;
/// let watch = BreakerWatch::new(config.half_open_max_calls);
/// breaker.try_acquire()?.failure();
///
/// let probe = breaker.try_acquire()?; // a probe that hangs
/// let admission = watch.admitted(&breaker);
/// let slot = admission.probe_slot().expect("admitted while half-open");
/// assert!(slot.held_in(&breaker));
/// clock.advance(Duration::from_secs(5));
/// let next = breaker.try_acquire()?; // the hung probe is presumed hung, and forgotten
/// assert!(next.is_probe() && !slot.held_in(&breaker));
/// # drop((probe, next));
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeSlot {
    generation: u64,
}

impl ProbeSlot {
    /// Whether `breaker` (the one that admitted the probe) still counts the probe in
    /// flight against `half_open_max_calls`: `false` once it was forgotten. Meaningful
    /// while the probe runs.
    pub fn held_in<C: Clock>(&self, breaker: &CircuitBreaker<C>) -> bool {
        breaker.holds_probe_slot(self.generation)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.watch.admitted.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            self.watch.probes.with(|probes| {
                if let Some(at) = probes.iter().position(|&g| g == self.generation) {
                    probes.swap_remove(at);
                }
            });
        }
    }
}

/// Checks, once the simulation is idle (no task alive), that `semaphore` got every
/// permit back and has no waiter.
///
/// ```
/// use kompoz::limit::Semaphore;
/// use kompoz::sim::{Violation, semaphore_idle};
///
/// let semaphore = Semaphore::new(2)?;
/// let leaked = semaphore.try_acquire()?;
/// core::mem::forget(leaked);
/// assert_eq!(
///     semaphore_idle(&semaphore),
///     Err(Violation::PermitsNotReturned { available: 1, capacity: 2, waiting: 0 }),
/// );
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
pub fn semaphore_idle(semaphore: &Semaphore) -> Result<(), Violation> {
    let stats = semaphore.stats();
    if stats.available == stats.capacity && stats.waiting == 0 {
        return Ok(());
    }
    Err(Violation::PermitsNotReturned {
        available: stats.available,
        capacity: stats.capacity,
        waiting: stats.waiting,
    })
}

/// Checks, once the simulation is idle (no task alive), that `breaker` got every probe
/// slot back.
///
/// ```
/// use kompoz::ManualClock;
/// use kompoz::sim::{BreakerConfig, breaker_idle};
///
/// let breaker = BreakerConfig::default().build_with(ManualClock::new())?;
/// assert_eq!(breaker_idle(&breaker), Ok(()));
/// # Ok::<(), kompoz::breaker::BreakerError>(())
/// ```
pub fn breaker_idle<C: Clock>(breaker: &CircuitBreaker<C>) -> Result<(), Violation> {
    match breaker.stats().probes_in_flight {
        0 => Ok(()),
        in_flight => Err(Violation::ProbeSlotsNotReturned { in_flight }),
    }
}
