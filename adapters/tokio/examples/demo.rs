//! The kompoz demo: a flaky dependency behind the full stack,
//! `circuit_breaker(with_timeout(limited(call)))`, on tokio.
//!
//! Run it with `cargo run -p kompoz-tokio --example demo`. Twelve clients call a simulated
//! dependency for about ten seconds. The dependency is healthy with latency spikes, then
//! goes down (it hangs), then recovers. The timeline shows, twice a second, what the
//! calls did in that half second and what state the primitives are in; state changes of
//! the breaker are printed as they happen; a summary closes the run. A legend under the
//! header explains each column.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kompoz_tokio::breaker::{CircuitBreaker, CircuitState};
use kompoz_tokio::{
    AsyncCombinator, Outcome, Rejection, TokioClock, async_rule, circuit_breaker, limited,
    with_timeout,
};

const CLIENTS: u64 = 12;
const RUN_FOR: Duration = Duration::from_millis(10_000);
const TICK: Duration = Duration::from_millis(500);
const PERMITS: usize = 4;
/// Failures in a row that open the breaker.
const FAILURE_THRESHOLD: u32 = 5;
const MAX_WAIT: Duration = Duration::from_millis(60);
const TIME_LIMIT: Duration = Duration::from_millis(150);
/// When the dependency goes down, and when it comes back.
const OUTAGE: (Duration, Duration) = (Duration::from_millis(3_000), Duration::from_millis(6_000));

/// What one call did, counted per tick and in total.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    limit_rejected: AtomicU64,
    circuit_rejected: AtomicU64,
}

impl Tally {
    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Passed => &self.ok,
            Outcome::Failed => &self.failed,
            Outcome::TimedOut => &self.timed_out,
            Outcome::Rejected(Rejection::Circuit(_)) => &self.circuit_rejected,
            Outcome::Rejected(_) => &self.limit_rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes this tick's counts, adding them to `total`.
    fn drain_into(&self, total: &Tally) -> [u64; 5] {
        let take = |from: &AtomicU64, to: &AtomicU64| {
            let n = from.swap(0, Ordering::Relaxed);
            to.fetch_add(n, Ordering::Relaxed);
            n
        };
        [
            take(&self.ok, &total.ok),
            take(&self.failed, &total.failed),
            take(&self.timed_out, &total.timed_out),
            take(&self.limit_rejected, &total.limit_rejected),
            take(&self.circuit_rejected, &total.circuit_rejected),
        ]
    }
}

/// The simulated dependency's answer time for a call made `at` into the run, and whether
/// it answers well. Deterministic, so every run tells the same story.
fn dependency(at: Duration, call: u64) -> (Duration, bool) {
    let noise = call.wrapping_mul(2_654_435_761).rotate_left(13) % 100;
    if at >= OUTAGE.0 && at < OUTAGE.1 {
        // Down: most calls hang far beyond any sensible limit, the rest fail fast.
        return if noise < 80 {
            (Duration::from_secs(5), true)
        } else {
            (Duration::from_millis(5), false)
        };
    }
    let ms = match noise {
        0..=84 => 15 + noise / 2, // healthy: 15-57 ms
        85..=94 => 120 + noise,   // slow: 205-214 ms, beyond the time limit
        _ => 40,                  // an error answer
    };
    (Duration::from_millis(ms), noise < 95)
}

struct Paint(bool);

impl Paint {
    fn state(&self, state: CircuitState) -> String {
        let (color, text) = match state {
            CircuitState::Closed => ("32", "CLOSED   "),
            CircuitState::Open => ("31", "OPEN     "),
            CircuitState::HalfOpen => ("33", "HALF-OPEN"),
        };
        if self.0 { format!("\x1b[{color}m{text}\x1b[0m") } else { text.to_string() }
    }
}

/// What the columns mean, for a reader who has not seen the code.
fn print_legend() {
    println!(
        "\n  legend: each line shows the state at that moment, then the calls that ended in the
  half second before it:
    breaker    CLOSED: calls go through; OPEN: calls are refused at once; HALF-OPEN: a
               few probe calls test whether the dependency is back
    in use     permits held right now, of the {PERMITS} ({PERMITS}/{PERMITS}: all taken)
    waiting    calls queued for a permit right now
    ok         answered well
    failed     answered with an error
    timeout    cut off by the time limit ({TIME_LIMIT:?}): the call is cancelled
    limit-rej  refused by the limit: no permit within {MAX_WAIT:?}
    open-rej   refused by the breaker at once, without calling the dependency
  the breaker takes every call that did not pass for a failure: errors, timeouts and
  limit rejections alike. 'threshold {FAILURE_THRESHOLD}' means {FAILURE_THRESHOLD} failures \
in a row open it, so the
  scattered failures before the outage leave it closed; 'failed calls since the start'
  beside a transition counts them all.\n"
    );
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let paint = Arc::new(Paint(std::io::stdout().is_terminal()));
    let painter = paint.clone();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(FAILURE_THRESHOLD)
        .recovery_timeout(Duration::from_millis(1_000))
        .half_open_max_calls(2)
        .on_state_change(move |old, new, stats| {
            println!(
                "  {:>5.2}s  ** breaker {} -> {}   (failed calls since the start: {}; opened {} time(s))",
                start.elapsed().as_secs_f64(),
                painter.state(old).trim_end(),
                painter.state(new).trim_end(),
                stats.total_failures,
                stats.times_opened,
            );
        })
        .build()
        .expect("a valid breaker");

    let calls = Arc::new(AtomicU64::new(0));
    let numbering = calls.clone();
    let call = async_rule(async move |_: &mut ()| {
        let (latency, healthy) =
            dependency(start.elapsed(), numbering.fetch_add(1, Ordering::Relaxed));
        tokio::time::sleep(latency).await;
        healthy
    });
    // breaker(timeout(limit(call))): the permit wait counts against the time limit, and
    // every run that does not pass counts against the breaker.
    let pooled = limited(call, PERMITS).expect("a valid limit").max_wait(TokioClock, MAX_WAIT);
    let stack = Arc::new(circuit_breaker(with_timeout(pooled, TIME_LIMIT), breaker));

    println!("kompoz demo: {CLIENTS} clients call a flaky dependency for {:?}", RUN_FOR);
    println!(
        "  stack: circuit_breaker(threshold {FAILURE_THRESHOLD}, recovery 1 s) > with_timeout({TIME_LIMIT:?}) > \
         limited({PERMITS} permits, max wait {MAX_WAIT:?})"
    );
    println!(
        "  the dependency: healthy with spikes, DOWN (hanging) from {:?} to {:?}, then healthy",
        OUTAGE.0, OUTAGE.1
    );
    print_legend();
    println!("   time   breaker    in use  waiting |    ok  failed  timeout  limit-rej  open-rej");

    let tick = Arc::new(Tally::default());
    let total = Tally::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (stack, tick) = (stack.clone(), tick.clone());
            tokio::spawn(async move {
                let mut pause = 20 + client * 7;
                while start.elapsed() < RUN_FOR {
                    tick.count(stack.run_detailed(&mut ()).await);
                    pause = (pause * 37 + 11) % 60 + 10;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            })
        })
        .collect();

    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    while start.elapsed() < RUN_FOR {
        ticks.tick().await;
        let [ok, failed, timed_out, limit_rej, open_rej] = tick.drain_into(&total);
        let permits = stack.inner().inner().semaphore().stats();
        println!(
            "  {:>5.2}s  {}  {:>4}/{PERMITS}  {:>7}  | {:>5}  {:>6}  {:>7}  {:>9}  {:>8}",
            start.elapsed().as_secs_f64(),
            paint.state(stack.state()),
            permits.in_flight,
            permits.waiting,
            ok,
            failed,
            timed_out,
            limit_rej,
            open_rej,
        );
    }
    for client in clients {
        client.await.expect("a client panicked");
    }
    tick.drain_into(&total);

    let stats = stack.stats();
    let permits = stack.inner().inner().semaphore().stats();
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let all = n(&total.ok)
        + n(&total.failed)
        + n(&total.timed_out)
        + n(&total.limit_rejected)
        + n(&total.circuit_rejected);
    println!("\nsummary after {:.1?}: {all} calls", start.elapsed());
    println!("  answered well             {:>6}", n(&total.ok));
    println!("  answered with an error    {:>6}", n(&total.failed));
    println!(
        "  cut off by the time limit {:>6}  (each cancelled at {TIME_LIMIT:?})",
        n(&total.timed_out)
    );
    println!(
        "  refused by the limit      {:>6}  (no permit within {MAX_WAIT:?})",
        n(&total.limit_rejected)
    );
    println!(
        "  refused by the breaker    {:>6}  (at once, without touching the dependency)",
        n(&total.circuit_rejected)
    );
    println!(
        "  breaker: opened {} time(s), now {}; semaphore: {} permits handed out, {} of {PERMITS} \
         free at the end (each permit came back, however its call ended)",
        stats.times_opened,
        paint.state(stats.state).trim_end(),
        permits.total_acquired,
        permits.available,
    );
    println!(
        "  while the dependency was down, the breaker answered at once instead of letting each \
         call wait {TIME_LIMIT:?} for nothing"
    );
}
