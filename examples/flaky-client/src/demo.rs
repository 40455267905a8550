//! The project's own demo (`adapters/tokio/examples/demo.rs`) in the simulation: the same
//! stack built the same way, `circuit_breaker(with_timeout(limited(call).max_wait(..)))`,
//! the same configuration, the same simulated dependency (latency spikes, an outage from
//! 3 s to 6 s in which calls hang or fail fast) and the same twelve clients, for the same
//! ten seconds, on the simulated clock, with the kit's watches at the stack's edges and
//! callers that give up (cancel) at moments the fuzzer picks.

use std::cell::Cell;
use std::time::Duration;

use arbitrary::Arbitrary;
use kompoz::breaker::CircuitState;
use kompoz::sim::{
    BreakerConfig, BreakerWatch, LimitWatch, Sim, TaskId, Violation, breaker_idle, semaphore_idle,
};
use kompoz::{
    AsyncCombinator, Clock, Instant, ManualClock, Outcome, Rejection, Sleep, async_rule,
    circuit_breaker, limited, with_timeout_on,
};

use crate::harness::Failure;
use crate::outage::{AdmittedAs, OutageWatch};

/// The demo's constants.
pub const CLIENTS: u64 = 12;
const RUN_FOR: Duration = Duration::from_millis(10_000);
const PERMITS: usize = 4;
const MAX_WAIT: Duration = Duration::from_millis(60);
const TIME_LIMIT: Duration = Duration::from_millis(150);
const OUTAGE: (Duration, Duration) = (Duration::from_millis(3_000), Duration::from_millis(6_000));
/// How often the watches are checked.
const SLICE: Duration = Duration::from_millis(50);

/// The demo's breaker: threshold 5, recovery 1 s, 2 probes.
pub fn breaker_config() -> BreakerConfig {
    let mut config = BreakerConfig::default();
    config.failure_threshold = 5;
    config.recovery_timeout = Duration::from_millis(1_000);
    config.half_open_max_calls = 2;
    config.success_threshold = 2;
    config
}

/// The demo's dependency, as in `demo.rs`: the answer time of call number `call` made
/// `at` into the run, and whether it answers well.
fn dependency(at: Duration, call: u64) -> (Duration, bool) {
    let noise = call.wrapping_mul(2_654_435_761).rotate_left(13) % 100;
    if at >= OUTAGE.0 && at < OUTAGE.1 {
        return if noise < 80 {
            (Duration::from_secs(5), true)
        } else {
            (Duration::from_millis(5), false)
        };
    }
    let ms = match noise {
        0..=84 => 15 + noise / 2,
        85..=94 => 120 + noise,
        _ => 40,
    };
    (Duration::from_millis(ms), noise < 95)
}

fn is_down(at: Duration) -> bool {
    at >= OUTAGE.0 && at < OUTAGE.1
}

/// One run of the demo: the scheduler's seed and the callers who give up.
#[derive(Clone, Debug, Arbitrary)]
pub struct DemoScenario {
    /// Seeds the order in which ready tasks run.
    pub seed: u64,
    /// Moments at which a client abandons what it is doing and starts afresh.
    pub give_ups: Vec<GiveUp>,
}

/// A client that abandons its call (or its pause) and starts afresh.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub struct GiveUp {
    /// When, in milliseconds into the run (modulo the run's ten seconds).
    pub at_millis: u16,
    /// Which client (modulo twelve).
    pub client: u8,
}

/// What the demo's calls did, as the demo's own summary counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// Answered well.
    pub ok: u64,
    /// Answered with an error.
    pub failed: u64,
    /// Cut off by the time limit.
    pub timed_out: u64,
    /// Refused by the limit.
    pub limit_rejected: u64,
    /// Refused by the breaker.
    pub circuit_rejected: u64,
    /// Calls abandoned by a client giving up.
    pub abandoned: u64,
    /// Times the circuit opened.
    pub times_opened: u64,
    /// The most calls at the dependency at once.
    pub peak_at_dependency: usize,
    /// The breaker's state at the end.
    pub final_state: Option<CircuitState>,
}

/// Runs the demo in the simulation, checking the watches every 50 ms, and every permit and
/// probe slot once it is over.
pub fn run_demo(scenario: &DemoScenario) -> Result<DemoSummary, Failure> {
    let clock = ManualClock::new();
    let start = clock.now();
    let config = breaker_config();
    let breaker = config.build_with(clock.clone())?;
    let limit_watch = LimitWatch::new(PERMITS);
    let breaker_watch = BreakerWatch::new(config.half_open_max_calls);
    let outage = OutageWatch::new(config.half_open_max_calls);
    let numbering = Cell::new(0u64);
    let tally = Cell::new(DemoSummary::default());

    // The demo's stack, with the watches at its edges; the context carries how the call
    // was admitted down to the dependency.
    let call = async_rule(async |admitted: &mut Option<AdmittedAs>| {
        let _inside = limit_watch.enter();
        let _request = breaker_watch.at_dependency();
        let at = clock.now() - start;
        outage.request(*admitted, &breaker, is_down(at));
        let number = numbering.get();
        numbering.set(number + 1);
        let (latency, healthy) = dependency(at, number);
        clock.sleep(latency).await;
        healthy
    });
    let pooled = limited(call, PERMITS)?.max_wait(clock.clone(), MAX_WAIT);
    let timed = with_timeout_on(clock.clone(), pooled, TIME_LIMIT);
    let watched = async_rule(async |admitted: &mut Option<AdmittedAs>| {
        let admission = breaker_watch.admitted(&breaker);
        let probe = outage.admitted(&admission, &breaker);
        *admitted = Some(AdmittedAs::of(&admission));
        let outcome = timed.run_detailed(admitted).await;
        probe.finished();
        // The inner outcome is counted here; the breaker sees pass or fail.
        count(&tally, outcome);
        outcome.passed()
    });
    let stack = circuit_breaker(watched, &breaker);

    let client = |id: u64| {
        let (stack, clock, tally) = (&stack, clock.clone(), &tally);
        async move {
            let mut pause = 20 + id * 7;
            while clock.now() - start < RUN_FOR {
                // Runs the stack counts themselves (in `watched`); refusals are counted here.
                let outcome = stack.run_detailed(&mut None).await;
                if let Outcome::Rejected(Rejection::Circuit(_)) = outcome {
                    count(tally, outcome);
                }
                pause = (pause * 37 + 11) % 60 + 10;
                clock.sleep(Duration::from_millis(pause)).await;
            }
        }
    };

    let mut sim = Sim::with_clock(scenario.seed, clock.clone());
    let mut clients: Vec<TaskId> = (0..CLIENTS).map(|id| sim.spawn(client(id)).id()).collect();
    let mut give_ups: Vec<(Duration, usize)> = scenario
        .give_ups
        .iter()
        .map(|g| {
            let at = Duration::from_millis(u64::from(g.at_millis) % 10_000);
            (at, usize::from(g.client) % CLIENTS as usize)
        })
        .collect();
    give_ups.sort();
    let mut give_ups = give_ups.into_iter().peekable();

    let mut slice_start = Duration::ZERO;
    while slice_start < RUN_FOR {
        let slice_end = slice_start + SLICE;
        let cycle_before = breaker.stats().times_opened;
        while let Some((at, id)) = give_ups.next_if(|(at, _)| *at < slice_end) {
            sim.run_until(Instant::ZERO + at)
                .map_err(|error| Failure::Sim { step: None, error })?;
            if sim.cancel(clients[id]) {
                let mut t = tally.get();
                t.abandoned += 1;
                tally.set(t);
            }
            clients[id] = sim.spawn(client(id as u64)).id();
        }
        sim.run_until(Instant::ZERO + slice_end)
            .map_err(|error| Failure::Sim { step: None, error })?;
        if !is_down(slice_start) {
            outage.backend_up_during(cycle_before..=breaker.stats().times_opened);
        }
        check(&limit_watch, &breaker_watch, &outage)?;
        slice_start = slice_end;
    }
    // The clients stop once the ten seconds are over; every call ends within the limit.
    sim.run().map_err(|error| Failure::Sim { step: None, error })?;
    check(&limit_watch, &breaker_watch, &outage)?;
    let idle = |violation: Violation| Failure::Invariant { step: None, violation };
    semaphore_idle(timed.inner().semaphore()).map_err(idle)?;
    breaker_idle(&breaker).map_err(idle)?;

    let mut summary = tally.get();
    summary.times_opened = breaker.stats().times_opened;
    summary.peak_at_dependency = limit_watch.peak();
    summary.final_state = Some(breaker.state());
    Ok(summary)
}

fn count(tally: &Cell<DemoSummary>, outcome: Outcome) {
    let mut t = tally.get();
    match outcome {
        Outcome::Passed => t.ok += 1,
        Outcome::Failed => t.failed += 1,
        Outcome::TimedOut => t.timed_out += 1,
        Outcome::Rejected(Rejection::Circuit(_)) => t.circuit_rejected += 1,
        Outcome::Rejected(_) => t.limit_rejected += 1,
    }
    tally.set(t);
}

fn check(limit: &LimitWatch, breaker: &BreakerWatch, outage: &OutageWatch) -> Result<(), Failure> {
    let invariant = |violation| Failure::Invariant { step: None, violation };
    limit.check().map_err(invariant)?;
    breaker.check().map_err(invariant)?;
    outage.check().map_err(|violation| Failure::Property { step: None, violation })
}
