//! The project's own demo (adapters/tokio/examples/demo.rs) in kompoz's simulation: its
//! stack, configuration, dependency and twelve clients for ten simulated seconds, with
//! the scheduler's seed and the moments callers give up chosen by the fuzzer; kompoz's
//! invariants and the outage property checked every 50 ms, permits and probe slots once
//! it is over. (examples/flaky-client/src/demo.rs)
#![no_main]

use kompoz_example_flaky_client::demo::{DemoScenario, run_demo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: DemoScenario| {
    if let Err(failure) = run_demo(&scenario) {
        panic!("{failure}\n{scenario:#?}");
    }
});
