//! Random operation sequences on `kompoz::breaker::CircuitBreaker` and its reference model
//! (admit through guards and call futures, succeed, fail, ignore, cancel, leak a guard,
//! finish slowly, reset, force open, move the manual clock either way, within a bucket or
//! to the end of time), under every policy (consecutive failures, count and time windows,
//! slow calls, fixed, growing and jittered breaks) with small random parameters, compared
//! after every step. A crash prints the first divergence; turn it
//! into a named test in tests/model/tests/regressions.rs.
#![no_main]

use kompoz_model::breaker::{self, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(divergence) = breaker::run(&scenario) {
        panic!("the breaker diverged from its model: {divergence}\n{scenario:#?}");
    }
});
