//! The harness on many scenarios: the correct client passes them all and reaches the
//! interesting places (openings, probes, timeouts, cancellations); each broken client is
//! caught.

use arbitrary::{Arbitrary, Unstructured};
use kompoz::sim::Op;
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
    for scenario in scenarios() {
        match run(&scenario, Variant::Correct) {
            Ok(summary) => {
                opened += summary.times_opened;
                rejected += summary.rejected;
                timed_out += summary.timed_out;
                cancelled += summary.cancelled;
                requests += summary.requests;
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
    ] {
        assert!(count > 1_000, "only {count} {what}");
    }
}

#[test]
fn the_same_scenario_runs_the_same_way_twice() {
    for scenario in scenarios().step_by(50) {
        let first = run(&scenario, Variant::Correct).unwrap();
        assert_eq!(run(&scenario, Variant::Correct).unwrap(), first);
    }
}

#[test]
fn each_broken_client_is_caught() {
    let caught = |variant| {
        scenarios()
            .take(500)
            .filter_map(|scenario| run(&scenario, variant).err())
            .inspect(|failure| {
                assert!(!matches!(failure, Failure::Config(_) | Failure::Sim { .. }))
            })
            .count()
    };
    let (bypass, leak) = (caught(Variant::BypassOpenCircuit), caught(Variant::LeakPermitOnCancel));
    // Of 500 random scenarios (most of which never open the circuit or cancel a call).
    assert!(bypass > 100 && leak > 100, "caught {bypass} bypasses, {leak} leaks");
}
