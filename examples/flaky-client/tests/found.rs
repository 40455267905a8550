//! Inputs the fuzz target found against the deliberately broken clients, kept as
//! regression tests: each still catches its broken client, and the correct client passes
//! it. Found from an empty corpus with
//! `cargo +nightly fuzz run flaky_client --features broken-<variant> -- -seed=<1 to 3>`,
//! each within 1.3 to 3.3 s (7,891 to 20,843 executions), cargo's start-up included: the
//! bypass in 1.8 to 2.6 s, the leak in 1.5 to 2.5 s, the rate-limit bypass in 2.9 to
//! 3.3 s, the open-circuit retry in 1.3 to 2.2 s. (Found again when the breaker's
//! configuration grew its policies, which changed how bytes decode.)

use arbitrary::{Arbitrary, Unstructured};
use kompoz::sim::Violation;
use kompoz_example_flaky_client::{Failure, Scenario, Variant, run};

/// Found with `--features broken-bypass` (libFuzzer seed 2): a call that hangs, a time
/// limit of zero, a breaker that opens on the first failure; the attempt times out, the
/// circuit opens, the retry is refused, and the broken client sends it anyway.
const BYPASS: &[u8] = b"\x94\xf1\xf1\xf1\xf1\x94\x05\x55\x55\x28\x55\x55\x55\x56\x00\x00\x00\xff\xff\xff\x94\xf5\x00\x00\x00\x6b\x3e\xff\xff\xff\xff\xff\xff\xff\x94\x94\x94\x00\x6c\x6b\x69\x94\x21";
/// Found with `--features broken-leak` (libFuzzer seed 2): one call that fails after a
/// millisecond, cut off by a time limit of zero; its permit stays in the broken client's
/// table of requests in flight.
const LEAK: &[u8] = b"\x84\x94\x94\x94\x94\x90\x94\x94\xff\xff\xff\xff\x14\x00\x00\x00\x00\x00\x00\x00\x94\x94\x95\x94\x00\x00\x00\x00\x00\x00\x00\xbb\x94\x00\x00\x00\x00\x00\x00\x95\x00\x25\x0a";
/// Found with `--features broken-rate` (libFuzzer seed 3): one call that fails at once,
/// a quota of one request per 584 years; the retry skips the rate limiter, and two
/// requests leave within the same instant.
const RATE: &[u8] = b"\xf7\x2a\xf7\x2a\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x23\x00\xd9\x00\x00\x00\x00\xff";
/// Found with `--features broken-retry` (libFuzzer seed 2): one call that hangs, a time
/// limit of zero and a breaker that opens on three consecutive failures; the fourth
/// attempt is refused by the open circuit, and the broken client tries a fifth.
const RETRY: &[u8] = b"\x94\x94\x84\x00\x94\x94\x94\x14\xb2\xb2\xb2\xb2\xb2\xb2\xb2\x94\x00\x00\x00\x00\x00\x00\x00\x75\x95\x94\x94\x94\x9d\x94\x94\x94\x94\x94\x94\x94\x01\x04\x8a\x6c\xff\x21";

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
            violation: Violation::RetriedOpenCircuit { attempt: 5, .. },
        }) => {}
        other => panic!("expected the retry to be caught, got {other:?}\n{scenario:#?}"),
    }
    let summary = run(&scenario, Variant::Correct).unwrap();
    assert_eq!(
        (summary.requests, summary.retries, summary.rejected),
        (3, 3, 1),
        "three attempts time out, the third retry is refused and not retried"
    );
}
