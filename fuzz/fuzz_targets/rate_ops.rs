//! Random operation sequences on `kompoz::rate::RateLimiter` and `KeyedRateLimiter` and
//! their reference model (check, check_n, wait with and without a maximum, poll, cancel,
//! reset, keyed checks against a full limiter, retain_recent, move the manual clock either
//! way, to the end of time), on small random quotas, compared after every step: decisions
//! and reported waits to the nanosecond. A crash prints the first divergence; turn it into
//! a named test in tests/model/tests/regressions.rs.
#![no_main]

use kompoz_model::rate::{self, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(divergence) = rate::run(&scenario) {
        panic!("the rate limiters diverged from their model: {divergence}\n{scenario:#?}");
    }
});
