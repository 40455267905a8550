//! `profile`: runs exactly `N` operations of one contender of one case, for a profiler.
//!
//! ```sh
//! # rustix through libc: valgrind 3.19 crashes on rustix's direct vDSO call, and with
//! # this flag StdClock reads its coarse clock under valgrind as it does in production
//! RUSTFLAGS="--cfg rustix_use_libc" CARGO_TARGET_DIR=target/cg \
//!     cargo build --release -p kompoz-benches --bin profile
//! # instructions per operation, repeatable on a noisy machine: run twice with different
//! # N and divide the difference in instructions by the difference in N
//! valgrind --tool=callgrind target/cg/release/profile breaker_closed_1t kompoz 100000
//! perf record -g target/cg/release/profile breaker_open kompoz 50000000
//! ```
//!
//! With no arguments it lists the cases and their contenders.

use std::process::ExitCode;

use kompoz_benches::all_cases;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [case_id, name, n] = args.as_slice() else {
        eprintln!("usage: profile <case> <contender> <operations>\n\ncases and contenders:");
        for case in all_cases() {
            let names: Vec<_> = (case.contenders)().iter().map(|c| c.name).collect();
            eprintln!("  {:<24} {}", case.id, names.join(" "));
        }
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("the number of operations must be a whole number, not {n:?}");
        return ExitCode::from(2);
    };
    let Some(case) = all_cases().into_iter().find(|c| c.id == case_id) else {
        eprintln!("no case {case_id:?}; run without arguments for the list");
        return ExitCode::from(2);
    };
    let Some(mut contender) = (case.contenders)().into_iter().find(|c| c.name == name) else {
        eprintln!("case {case_id:?} has no contender {name:?}");
        return ExitCode::from(2);
    };
    let sample = (contender.run)(n);
    let threads = sample.ops / n.max(1);
    println!(
        "{case_id} / {name}: {} operations on {threads} thread(s) in {:?}: {:.1} ns per \
         operation per thread (as the table reports it); waited for a CPU: {:?}",
        sample.ops,
        sample.elapsed,
        sample.elapsed.as_nanos() as f64 / n.max(1) as f64,
        sample.waited
    );
    ExitCode::SUCCESS
}
