//! The kompoz demo: a flaky dependency called through `with_timeout` on tokio.
//!
//! Run it with `cargo run -p kompoz-tokio --example demo`. It prints a timeline of the
//! calls, each ending in time or cancelled by its time limit, and a summary.

use std::time::{Duration, Instant};

use kompoz_tokio::{AsyncCombinator, Outcome, async_rule, with_timeout};

/// Each call's context: which call it is, and what the dependency did.
#[derive(Debug, Default)]
struct Call {
    id: u32,
    /// How long the dependency would take to answer.
    latency: Duration,
    /// Set by the timeout handler when the limit cut the call short.
    cancelled: bool,
}

/// The simulated dependency's latency for call `id`: usually fast, with spikes.
fn latency_of(id: u32) -> Duration {
    // A small deterministic pseudo-random sequence, so every run tells the same story.
    let noise = id.wrapping_mul(2_654_435_761).rotate_left(7) % 100;
    let ms = match noise {
        0..=64 => 10 + noise / 2,     // healthy: 10-42 ms
        65..=84 => 60 + noise,        // slow: 125-144 ms
        _ => 300 + 10 * (noise - 85), // spike: 300-440 ms
    };
    Duration::from_millis(u64::from(ms))
}

#[tokio::main]
async fn main() {
    let limit = Duration::from_millis(100);
    let dependency = async_rule(async |call: &mut Call| {
        call.latency = latency_of(call.id);
        tokio::time::sleep(call.latency).await;
        true
    });
    let guarded =
        with_timeout(dependency, limit).on_timeout(|call: &mut Call| call.cancelled = true);

    println!("kompoz demo: 16 calls to a flaky dependency, each limited to {limit:?}\n");
    let start = Instant::now();
    let (mut passed, mut timed_out, mut time_saved) = (0, 0, Duration::ZERO);
    for id in 1..=16 {
        let mut call = Call { id, ..Call::default() };
        let began = start.elapsed();
        let outcome = guarded.run_detailed(&mut call).await;
        let took = start.elapsed() - began;
        let at = began.as_millis();
        match outcome {
            Outcome::Passed => {
                passed += 1;
                println!("  t={at:>5} ms  call {id:>2}  ok          answered in {took:>9.1?}");
            }
            Outcome::TimedOut => {
                timed_out += 1;
                time_saved += call.latency.saturating_sub(took);
                println!(
                    "  t={at:>5} ms  call {id:>2}  TIMED OUT   cancelled after {took:>9.1?} \
                     (the dependency wanted {:?}; cancelled: {})",
                    call.latency, call.cancelled
                );
            }
            other => println!("  t={at:>5} ms  call {id:>2}  {other:?}"),
        }
    }
    println!(
        "\nsummary: {passed} answered in time, {timed_out} timed out and were cancelled, \
         {:.1?} of waiting avoided; total {:.1?}",
        time_saved,
        start.elapsed()
    );
}
