//! The fuzz harness: a [`Scenario`] from the fuzzer's bytes, run in kompoz's simulation,
//! checked after every step.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;

use arbitrary::Arbitrary;
use kompoz::ManualClock;
use kompoz::breaker::BreakerError;
use kompoz::limit::LimitError;
use kompoz::retry::RetryError;
use kompoz::retry::RetryPolicy;
use kompoz::sim::{
    Backend, BreakerConfig, BreakerWatch, JoinHandle, LimitConfig, LimitWatch, Op, RateLimitConfig,
    RateWatch, RetryBudgetConfig, RetryWatch, Sim, SimError, TimeoutConfig, Violation,
    breaker_idle, semaphore_idle,
};

use crate::client::{Client, FetchError, SharedBudget, Variant, Watches};
use crate::outage::{OutageViolation, OutageWatch};

/// One fuzz input: the seed of the simulation's scheduler, the client's configuration,
/// and what happens.
#[derive(Clone, Debug, Arbitrary)]
pub struct Scenario {
    /// Seeds the order in which ready calls run.
    pub seed: u64,
    /// The breaker.
    pub breaker: BreakerConfig,
    /// The concurrency limit.
    pub limit: LimitConfig,
    /// The time limit.
    pub timeout: TimeoutConfig,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// The retry budget, if any.
    pub budget: Option<RetryBudgetConfig>,
    /// The rate limit on requests to the backend, if any.
    pub rate: Option<RateLimitConfig>,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// What went wrong, and at which step (`None`: after the last, once idle).
#[derive(Debug)]
pub enum Failure {
    /// The configuration does not build (a hand-made scenario; generated ones always do).
    Config(String),
    /// The simulation could not go on.
    Sim {
        /// The step.
        step: Option<usize>,
        /// Why.
        error: SimError,
    },
    /// One of kompoz's invariants broke.
    Invariant {
        /// The step.
        step: Option<usize>,
        /// Which.
        violation: Violation,
    },
    /// The service's own property broke.
    Property {
        /// The step.
        step: Option<usize>,
        /// How.
        violation: OutageViolation,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |step: &Option<usize>| match step {
            Some(step) => format!("after step {step}"),
            None => "once idle".to_string(),
        };
        match self {
            Failure::Config(error) => write!(f, "the configuration does not build: {error}"),
            Failure::Sim { step, error } => write!(f, "{}: {error}", at(step)),
            Failure::Invariant { step, violation } => write!(f, "{}: {violation}", at(step)),
            Failure::Property { step, violation } => write!(f, "{}: {violation}", at(step)),
        }
    }
}

impl std::error::Error for Failure {}

impl From<BreakerError> for Failure {
    fn from(error: BreakerError) -> Failure {
        Failure::Config(error.to_string())
    }
}

impl From<LimitError> for Failure {
    fn from(error: LimitError) -> Failure {
        Failure::Config(error.to_string())
    }
}

impl From<RetryError> for Failure {
    fn from(error: RetryError) -> Failure {
        Failure::Config(error.to_string())
    }
}

/// What a run did, to see that scenarios reach the interesting places.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls made.
    pub calls: u64,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls the breaker refused.
    pub rejected: u64,
    /// Calls cut off by the time limit.
    pub timed_out: u64,
    /// Requests the rate limiter refused.
    pub rate_limited: u64,
    /// Retries made.
    pub retries: u64,
    /// Calls cancelled by the scenario.
    pub cancelled: u64,
    /// Requests the backend saw.
    pub requests: u64,
    /// Times the circuit opened.
    pub times_opened: u64,
    /// Probes the breaker forgot while they still ran (presumed hung after
    /// `half_open_max_wait`, or by `reset`).
    pub forgotten_probes: u64,
    /// The simulation's fingerprint at the end.
    pub fingerprint: u64,
}

/// Runs `scenario` against the client `variant`, checking kompoz's invariants (the
/// limit, the breaker, the rate limit, the retries) and the service's property after
/// every step, then cancels what is still running and checks
/// that every permit and probe slot came back.
pub fn run(scenario: &Scenario, variant: Variant) -> Result<Summary, Failure> {
    let clock = ManualClock::new();
    let breaker = scenario.breaker.build_with(clock.clone())?;
    let limit = scenario.limit.semaphore()?;
    let backend = Backend::new(clock.clone());
    let budget = scenario.budget.map(|budget| budget.build_with(clock.clone())).transpose()?;
    let limiter = scenario.rate.map(|rate| rate.limiter_with(clock.clone()));
    let mut retry_watch = RetryWatch::new(&scenario.retry);
    if let Some(budget) = &scenario.budget {
        retry_watch = retry_watch.with_budget(budget);
    }
    let watches = Watches {
        limit: LimitWatch::new(scenario.limit.max_concurrent),
        breaker: BreakerWatch::new(scenario.breaker.half_open_max_calls),
        rate: scenario.rate.map(|rate| RateWatch::for_quota(&rate.quota)),
        retry: retry_watch,
        outage: OutageWatch::new(scenario.breaker.half_open_max_calls),
    };
    let client = Client {
        backend: &backend,
        retry: scenario.retry,
        budget: SharedBudget(budget.as_ref()),
        breaker: &breaker,
        limit: &limit,
        clock: clock.clone(),
        time_limit: scenario.timeout.time_limit,
        max_wait: scenario.limit.max_wait,
        rate: limiter.as_ref(),
        rate_max_wait: scenario.rate.and_then(|rate| rate.max_wait),
        variant,
        watches: &watches,
        in_flight: RefCell::new(BTreeMap::new()),
        next_request: Cell::new(0),
    };
    let mut sim = Sim::with_clock(scenario.seed, clock.clone());
    let mut calls: Vec<JoinHandle<Result<(), FetchError>>> = Vec::new();
    let mut summary = Summary::default();

    for (step, op) in scenario.ops.iter().enumerate() {
        let cycle_before = breaker.stats().times_opened;
        let ran = match *op {
            Op::Advance(by) => sim.run_for(by),
            Op::Call(reply) => {
                summary.calls += 1;
                calls.push(sim.spawn(client.fetch(reply)));
                sim.run_until_idle()
            }
            Op::Cancel { call } => {
                tally_finished(&mut calls, &mut summary);
                if !calls.is_empty() {
                    let call = calls.remove(usize::from(call) % calls.len());
                    if sim.cancel(call.id()) {
                        summary.cancelled += 1;
                    }
                }
                sim.run_until_idle()
            }
            Op::Reset => {
                breaker.reset();
                sim.run_until_idle()
            }
            Op::ForceOpen => {
                breaker.force_open();
                sim.run_until_idle()
            }
            Op::BackendDown => {
                backend.set_down(true);
                Ok(())
            }
            Op::BackendUp => {
                backend.set_down(false);
                Ok(())
            }
            _ => Ok(()),
        };
        ran.map_err(|error| Failure::Sim { step: Some(step), error })?;
        if !backend.is_down() {
            watches.outage.backend_up_during(cycle_before..=breaker.stats().times_opened);
        }
        check(&watches, Some(step))?;
    }

    // Wind down: cancel whatever still runs, then everything must be back.
    tally_finished(&mut calls, &mut summary);
    for call in calls.drain(..) {
        if sim.cancel(call.id()) {
            summary.cancelled += 1;
        }
    }
    sim.run().map_err(|error| Failure::Sim { step: None, error })?;
    check(&watches, None)?;
    let idle = |violation| Failure::Invariant { step: None, violation };
    semaphore_idle(&limit).map_err(idle)?;
    breaker_idle(&breaker).map_err(idle)?;

    summary.requests = backend.stats().requests;
    summary.rate_limited = limiter.as_ref().map_or(0, |limiter| limiter.stats().rejected);
    summary.retries = watches.retry.retries();
    summary.times_opened = breaker.stats().times_opened;
    summary.forgotten_probes = watches.outage.forgotten_probes();
    summary.fingerprint = sim.fingerprint();
    Ok(summary)
}

fn check(watches: &Watches, step: Option<usize>) -> Result<(), Failure> {
    let invariant = |violation| Failure::Invariant { step, violation };
    watches.limit.check().map_err(invariant)?;
    watches.breaker.check().map_err(invariant)?;
    if let Some(rate) = &watches.rate {
        rate.check().map_err(invariant)?;
    }
    watches.retry.check().map_err(invariant)?;
    watches.outage.check().map_err(|violation| Failure::Property { step, violation })
}

/// Drops the handles of finished calls, counting how they ended.
fn tally_finished(calls: &mut Vec<JoinHandle<Result<(), FetchError>>>, summary: &mut Summary) {
    calls.retain(|call| match call.take_output() {
        Ok(answer) => {
            match answer {
                Ok(()) => summary.succeeded += 1,
                Err(FetchError::CircuitOpen) => summary.rejected += 1,
                Err(FetchError::TimedOut) => summary.timed_out += 1,
                Err(_) => {}
            }
            false
        }
        Err(_) => true,
    });
}
