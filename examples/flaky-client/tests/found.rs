//! Inputs the fuzz target found against the deliberately broken clients, kept as
//! regression tests: each still catches its broken client, and the correct client passes
//! it. Found from an empty corpus with
//! `cargo +nightly fuzz run flaky_client --features broken-bypass` (and `broken-leak`),
//! libFuzzer seeds 1 to 3: the bypass in 2.4 to 3.3 s (5,170 to 8,956 executions), the
//! leak in 2.5 to 3.0 s (5,776 to 7,716 executions), cargo's start-up included.

use arbitrary::{Arbitrary, Unstructured};
use kompoz::sim::Violation;
use kompoz_example_flaky_client::{Failure, Scenario, Variant, run};

/// Found with `--features broken-bypass` (libFuzzer seed 2): one call, a time limit of
/// zero, a breaker that opens on three failures; the retries time out until the circuit
/// opens, the next attempt is refused, and the broken client sends it anyway.
const BYPASS: &[u8] = b"\x00\x00\x00\x20\x00\x00\x00\x00\x02\x01\x00\x00\x00\x20\x00\x00\x00\x00\x02\x01\x00\x00\x00\xff\x00\x02\x00\x00\x00\xff\x03\x00\x0a";
/// Found with `--features broken-leak` (libFuzzer seed 3): one call that hangs, cancelled
/// when the scenario winds down; its permit stays in the broken client's table of
/// requests in flight.
const LEAK: &[u8] = b"\x9a\x0a\xa4\xa4\xe4\xa4\x1d\x01\x00\x01\x00\x00\x00\x00\x41\x00\x00\xa4\xa4\xa4\xa4\xa0\xd9\xa0\xa4\xa4\xa4\xa4\x00\x27\x00\x1d\xf8";

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
