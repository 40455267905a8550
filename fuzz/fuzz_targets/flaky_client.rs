//! Fuzzes a client of a flaky backend, retry (under a budget) around
//! `breaker(timeout(limit(rate(call))))`, in kompoz's deterministic simulation: random
//! configurations (retry policies, budgets and rate quotas included), calls that succeed,
//! fail or hang, cancellations, resets, outages. After every step it checks kompoz's
//! invariants (the limit holds, nothing through an open circuit, probes within bounds,
//! nothing around the breaker, the quota never exceeded over any window, retries within
//! max_attempts, the deadline and the budget, never through an open circuit nor before
//! the rate limiter admits) and the client's own property (a down backend gets at most
//! half_open_max_calls requests per recovery cycle); once idle, every permit and probe
//! slot must be back. The client and harness live in examples/flaky-client.
//!
//!   cargo +nightly fuzz run flaky_client
//!   cargo +nightly fuzz run flaky_client --features broken-bypass   # finds the bug
//!   cargo +nightly fuzz run flaky_client --features broken-leak     # finds the bug
//!   cargo +nightly fuzz run flaky_client --features broken-rate     # finds the bug
//!   cargo +nightly fuzz run flaky_client --features broken-retry    # finds the bug
#![no_main]

use kompoz_example_flaky_client::{Scenario, Variant, run};
use libfuzzer_sys::fuzz_target;

const VARIANT: Variant = if cfg!(feature = "broken-bypass") {
    Variant::BypassOpenCircuit
} else if cfg!(feature = "broken-leak") {
    Variant::LeakPermitOnCancel
} else if cfg!(feature = "broken-rate") {
    Variant::BypassRateLimitOnRetry
} else if cfg!(feature = "broken-retry") {
    Variant::RetryOpenCircuit
} else {
    Variant::Correct
};

fuzz_target!(|scenario: Scenario| {
    if let Err(failure) = run(&scenario, VARIANT) {
        panic!("{failure}\n{scenario:#?}");
    }
});
