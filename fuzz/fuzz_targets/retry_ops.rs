//! Random retried calls (a policy's numbers and a script of attempts: how long each runs
//! and how it ends) through `RetryPolicy::retry` and through a pipeline's retry layer,
//! each compared with the reference model: attempt start times, the delays `on_retry`
//! hears, the result and the end time. A crash prints the first divergence; turn it into
//! a named test in tests/model/tests/retry_props.rs.
#![no_main]

use kompoz_model::retry::{self, Case, Face};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: Case| {
    let script = case.script();
    for face in [Face::Plain, Face::Pipeline] {
        if let Err(divergence) = retry::run(&script, face) {
            panic!("{face:?} retry diverged from its model: {divergence}\n{script:#?}");
        }
    }
});
