//! `observability_cost`: what the `tracing` and `metrics` integrations cost a hot path when
//! they are compiled in and nothing is installed (no subscriber, no recorder), measured
//! the way `compare` measures: the same case and contender, both builds sampled in
//! alternation in the same minutes, medians compared.
//!
//! One process cannot hold both builds (cargo unifies features: with `observability` on,
//! every `kompoz` in the binary has them), so this binary drives two builds of the
//! `profile` binary, one without the features and one with them:
//!
//! ```sh
//! cargo build --release -p kompoz-benches --bin profile --bin observability_cost
//! CARGO_TARGET_DIR=target/observability \
//!     cargo build --release -p kompoz-benches --bin profile --features observability
//! target/release/observability_cost target/release/profile target/observability/release/profile
//! # optional: [case (breaker_closed_1t)] [contender (kompoz)] [rounds (21)] [operations (2000000)]
//! ```
//!
//! The issue's target: the features-on row within 1 ns of the features-off row.

use std::process::{Command, ExitCode};

/// The nanoseconds per operation one run of `profile` reports.
fn run(profile: &str, case: &str, contender: &str, operations: &str) -> Result<f64, String> {
    let output = Command::new(profile)
        .args([case, contender, operations])
        .output()
        .map_err(|error| format!("could not run {profile}: {error}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("{profile} failed: {text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    // "... in 80.1ms: 40.0 ns per operation per thread ..."
    text.split(" ns per operation")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| format!("no \"ns per operation\" in {profile}'s output: {text}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(off), Some(on)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: observability_cost <profile built without the features> <profile built \
             with --features observability> [case] [contender] [rounds] [operations]"
        );
        return ExitCode::from(2);
    };
    let case = args.get(2).map_or("breaker_closed_1t", String::as_str);
    let contender = args.get(3).map_or("kompoz", String::as_str);
    let rounds: usize = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(21).max(1);
    let operations = args.get(5).map_or("2000000", String::as_str);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which build goes first, as `compare` rotates its contenders.
        let order =
            if round % 2 == 0 { [(off, false), (on, true)] } else { [(on, true), (off, false)] };
        for (profile, features) in order {
            match run(profile, case, contender, operations) {
                Ok(ns) if features => with.push(ns),
                Ok(ns) => without.push(ns),
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let (without, with) = (median(without), median(with));
    let difference = with - without;
    println!(
        "{case} / {contender}, median of {rounds} alternating runs of {operations} operations:\n\
         features off: {without:.2} ns per operation\n\
         tracing + metrics compiled in, nothing installed: {with:.2} ns per operation\n\
         difference: {difference:+.2} ns (target: within 1 ns): {}",
        if difference.abs() <= 1.0 { "met" } else { "NOT met" }
    );
    ExitCode::SUCCESS
}
