//! The harness on many scenarios: the correct client passes them all and reaches the
//! interesting places (openings, probes, timeouts, cancellations); each broken client is
//! caught.

use arbitrary::{Arbitrary, Unstructured};
use kompoz::sim::{Op, Violation};
use kompoz_example_flaky_client::{Failure, Scenario, Variant, run};

/// Scenarios from 2,000 byte strings of up to 400 bytes, from a fixed xorshift generator.
/// (Decoded field by field, with operations until the bytes run out: `arbitrary` ends a
/// list when a continuation byte says so, which random bytes do after one element on
/// average, while a fuzzer learns to go on.)
fn scenarios() -> impl Iterator<Item = Scenario> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..2_000).map(move |n| {
        let bytes: Vec<u8> = (0..(n * 37) % 400)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut u = Unstructured::new(&bytes);
        let mut scenario = Scenario {
            seed: u.arbitrary().unwrap(),
            breaker: u.arbitrary().unwrap(),
            limit: u.arbitrary().unwrap(),
            timeout: u.arbitrary().unwrap(),
            retry: u.arbitrary().unwrap(),
            budget: u.arbitrary().unwrap(),
            rate: u.arbitrary().unwrap(),
            ops: Vec::new(),
        };
        while !u.is_empty() {
            scenario.ops.push(Op::arbitrary(&mut u).unwrap());
        }
        scenario
    })
}

#[test]
fn the_correct_client_keeps_every_invariant_and_its_property() {
    let (mut opened, mut rejected, mut timed_out, mut cancelled, mut requests) = (0, 0, 0, 0, 0);
    let (mut rate_limited, mut retries) = (0, 0);
    // Every breaker policy is exercised: openings under a failure rate, and under breaks
    // that grow; probes presumed hung and forgotten.
    let (mut opened_on_rate, mut opened_with_growing_breaks, mut forgotten) = (0, 0, 0);
    for scenario in scenarios() {
        match run(&scenario, Variant::Correct) {
            Ok(summary) => {
                if scenario.breaker.trip_on.is_some() {
                    opened_on_rate += summary.times_opened;
                }
                if scenario.breaker.break_duration.is_some() {
                    opened_with_growing_breaks += summary.times_opened;
                }
                forgotten += summary.forgotten_probes;
                opened += summary.times_opened;
                rejected += summary.rejected;
                timed_out += summary.timed_out;
                cancelled += summary.cancelled;
                requests += summary.requests;
                rate_limited += summary.rate_limited;
                retries += summary.retries;
            }
            Err(failure) => panic!("{failure}\n{scenario:#?}"),
        }
    }
    // The scenarios reach the places where the rules matter.
    for (what, count) in [
        ("openings", opened),
        ("rejections", rejected),
        ("timeouts", timed_out),
        ("cancellations", cancelled),
        ("requests", requests),
        ("rate limitings", rate_limited),
        ("retries", retries),
    ] {
        assert!(count > 1_000, "only {count} {what}");
    }
    assert!(
        opened_on_rate > 1_000 && opened_with_growing_breaks > 1_000,
        "only {opened_on_rate} openings on a failure rate, {opened_with_growing_breaks} with \
         growing breaks"
    );
    assert!(forgotten > 100, "only {forgotten} probes forgotten");
}

#[test]
fn the_same_scenario_runs_the_same_way_twice() {
    for scenario in scenarios().step_by(50) {
        let first = run(&scenario, Variant::Correct).unwrap();
        assert_eq!(run(&scenario, Variant::Correct).unwrap(), first);
    }
}

#[test]
fn each_broken_client_is_caught_by_the_watch_of_the_rule_it_breaks() {
    // How many of 500 random scenarios catch `variant`; every catch must be the rule it
    // breaks (or, for the bypass, the outage property it breaks with it).
    let caught = |variant, rule: fn(&Failure) -> bool| {
        scenarios()
            .take(500)
            .filter_map(|scenario| run(&scenario, variant).err())
            .inspect(|failure| assert!(rule(failure), "{variant:?}: {failure}"))
            .count()
    };
    let bypass = caught(Variant::BypassOpenCircuit, |failure| {
        matches!(
            failure,
            Failure::Invariant { violation: Violation::BypassedTheBreaker { .. }, .. }
                | Failure::Property { .. }
        )
    });
    let leak = caught(Variant::LeakPermitOnCancel, |failure| {
        matches!(
            failure,
            Failure::Invariant { violation: Violation::PermitsNotReturned { .. }, .. }
        )
    });
    let rate = caught(Variant::BypassRateLimitOnRetry, |failure| {
        matches!(failure, Failure::Invariant { violation: Violation::RateExceeded { .. }, .. })
    });
    let retry = caught(Variant::RetryOpenCircuit, |failure| {
        matches!(
            failure,
            Failure::Invariant { violation: Violation::RetriedOpenCircuit { .. }, .. }
        )
    });
    // Most random scenarios never open the circuit, cancel a call, or retry against a
    // tight rate limit; the fuzzer finds each bug in seconds (see `found.rs`).
    assert!(bypass > 100 && leak > 100, "caught {bypass} bypasses, {leak} leaks");
    assert!(rate > 25 && retry > 100, "caught {rate} rate bypasses, {retry} open-circuit retries");
}
