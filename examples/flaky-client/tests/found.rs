//! Inputs the fuzz target found against the deliberately broken clients, kept as
//! regression tests: each still catches its broken client, and the correct client passes
//! it. Found from an empty corpus with
//! `cargo +nightly fuzz run flaky_client --features broken-bypass` (and `broken-leak`):
//! about 1 to 4 seconds and 3,000 to 7,300 executions each (five libFuzzer seeds each).

use arbitrary::{Arbitrary, Unstructured};
use kompoz::sim::Violation;
use kompoz_example_flaky_client::{Failure, Scenario, Variant, run};

/// `fuzz/artifacts/flaky_client/crash-c09c922d...`, found with `--features broken-bypass`:
/// a breaker that opens on one failure and a time limit of zero; a hanging call times out
/// and opens the circuit, the next call is refused and the broken client sends it anyway.
const BYPASS: &[u8] =
    b"\x07\xff\xff\xff\xff\xff\xff\x2b\xff\x2f\xff\xff\x2a\x2a\x2f\x04\x00\x3d\x20\xbc\xff\x00\x3d";
/// `fuzz/artifacts/flaky_client/crash-5cfe1005...`, found with `--features broken-leak`:
/// a time limit of zero cuts off the only call, whose permit stays in the broken client's
/// table of requests in flight.
const LEAK: &[u8] =
    b"\x11\x00\x00\x38\x28\x00\x2b\x4f\x2b\x2a\x8e\x00\x00\x00\x04\x00\x00\x11\x11\x01\x0a";

/// Decodes a fuzz input exactly as the fuzz target does.
fn scenario(bytes: &[u8]) -> Scenario {
    Scenario::arbitrary_take_rest(Unstructured::new(bytes)).unwrap()
}

#[test]
fn the_found_bypass_is_caught_and_the_correct_client_passes_it() {
    let scenario = scenario(BYPASS);
    match run(&scenario, Variant::BypassOpenCircuit) {
        Err(Failure::Invariant { violation: Violation::BypassedTheBreaker { .. }, .. }) => {}
        other => panic!("expected the bypass to be caught, got {other:?}\n{scenario:#?}"),
    }
    assert!(run(&scenario, Variant::Correct).is_ok());
}

#[test]
fn the_found_leak_is_caught_and_the_correct_client_passes_it() {
    let scenario = scenario(LEAK);
    match run(&scenario, Variant::LeakPermitOnCancel) {
        Err(Failure::Invariant { step: None, violation: Violation::PermitsNotReturned { .. } }) => {
        }
        other => panic!("expected the leak to be caught, got {other:?}\n{scenario:#?}"),
    }
    assert!(run(&scenario, Variant::Correct).is_ok());
}
