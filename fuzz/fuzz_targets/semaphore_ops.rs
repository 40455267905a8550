//! Random operation sequences on `kompoz::limit::Semaphore` and its reference model
//! (acquire, wait with a maximum on a manual clock, try, poll, cancel, release, close,
//! add permits, move the clock either way), compared after every step. A crash prints the
//! first divergence; turn it into a named test in tests/model/tests/regressions.rs.
#![no_main]

use kompoz_model::semaphore::{self, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(divergence) = semaphore::run(&scenario) {
        panic!("the semaphore diverged from its model: {divergence}\n{scenario:#?}");
    }
});
