//! Inputs the fuzz target found against the deliberately broken clients, kept as
//! regression tests: each still catches its broken client, and the correct client passes
//! it. Found from an empty corpus with
//! `cargo +nightly fuzz run flaky_client --features broken-<variant> -- -seed=<1 to 3>`,
//! each within 2.0 to 4.7 s (8,069 to 19,989 executions), cargo's start-up included: the
//! bypass in 3.0 to 4.1 s, the leak in 2.3 to 4.7 s, the rate-limit bypass in 2.4 to 3.8 s,
//! the open-circuit retry in 2.1 to 2.7 s.

use arbitrary::{Arbitrary, Unstructured};
use kompoz::sim::Violation;
use kompoz_example_flaky_client::{Failure, Scenario, Variant, run};

/// Found with `--features broken-bypass` (libFuzzer seed 2): one call, a time limit of
/// zero, a breaker that opens on two failures; the attempts time out until the circuit
/// opens, the next attempt is refused, and the broken client sends it anyway.
const BYPASS: &[u8] = b"\x28\x0a\xe6\x00\x00\xe6\xe6\xe6\xe6\xe6\xe6\x3d\xe6\xff\xff\xe6\x00\x00\x2c\x00\xe6\xe6\x28\x0a\xe6\x0b\x00\x00\x00\x00\x00\x00\x00\x21\xe1\xe6\xe6";
/// Found with `--features broken-leak` (libFuzzer seed 3): one call that answers after a
/// second, cut off by a time limit of 226 ms; its permit stays in the broken client's
/// table of requests in flight.
const LEAK: &[u8] = b"\xff\xff\x06\xff\xff\x63\x63\xff\xff\x01\x00\x00\x00\x86\x35\x4f\x01\x01\x00\x40\x63\x63\x63\xff\xff\x01\x00\x00\x00\x00\x00\x20\x00\x00\xff\x22\xff\x22";
/// Found with `--features broken-rate` (libFuzzer seed 3): one call that fails at once,
/// a quota of one request per 584 years; the retry skips the rate limiter, and two
/// requests leave within the same instant.
const RATE: &[u8] = b"\xff\xfd\xff\xff\xff\x01\x00\xf6\x00\x00\x80\x00\x84\x21\x00\x00\x08\x20\xfa\x00\x02\xfa\x00\x02\x01\x00\x00\x00\x00\x00\x00\x01\x00\x02\x00\x13\x00\x19";
/// Found with `--features broken-retry` (libFuzzer seed 3): one call that hangs, a time
/// limit of zero and a breaker that opens on the first failure; the second attempt is
/// refused by the open circuit, and the broken client tries a third.
const RETRY: &[u8] = b"\xff\xff\xfd\xff\xfd\xff\xff\xff\xff\x7e\x00\x00\x00\x00\x9c\x00\x00\x00\x00\x13\x00\x1a\xfb\xff\x00\x02\x00\x00\x00\x7e\x00\x00\x00\x01\x00\x13";

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

#[test]
fn the_found_rate_limit_bypass_is_caught_and_the_correct_client_passes_it() {
    let scenario = scenario(RATE);
    match run(&scenario, Variant::BypassRateLimitOnRetry) {
        Err(Failure::Invariant {
            step: Some(0),
            violation: Violation::RateExceeded { admitted: 2, allowed: 1, .. },
        }) => {}
        other => panic!("expected the rate bypass to be caught, got {other:?}\n{scenario:#?}"),
    }
    let summary = run(&scenario, Variant::Correct).unwrap();
    assert_eq!((summary.requests, summary.rate_limited), (1, 0), "the retry waits in line");
}

#[test]
fn the_found_open_circuit_retry_is_caught_and_the_correct_client_passes_it() {
    let scenario = scenario(RETRY);
    match run(&scenario, Variant::RetryOpenCircuit) {
        Err(Failure::Invariant {
            step: Some(0),
            violation: Violation::RetriedOpenCircuit { attempt: 3, .. },
        }) => {}
        other => panic!("expected the retry to be caught, got {other:?}\n{scenario:#?}"),
    }
    let summary = run(&scenario, Variant::Correct).unwrap();
    assert_eq!((summary.retries, summary.rejected), (1, 1), "one retry, refused, not retried");
}
