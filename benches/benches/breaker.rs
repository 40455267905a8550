//! Circuit breakers, kompoz beside failsafe and recloser: a closed call around a ready
//! future on one and on two threads, and the rejection of a call by an open breaker; kompoz
//! through `call` and through its guard face (`try_acquire` + `success`).
//!
//! `cargo bench -p kompoz-benches --bench breaker`

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::cases::breaker;

mod common;

fn closed(c: &mut Criterion) {
    common::bench_case(c, &breaker::closed_one_thread());
    common::bench_case(c, &breaker::closed_two_threads());
    common::bench_case(c, &breaker::closed_guard_one_thread());
    common::bench_case(c, &breaker::closed_guard_two_threads());
}

fn open(c: &mut Criterion) {
    common::bench_case(c, &breaker::open_rejection());
    common::bench_case(c, &breaker::open_guard());
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = closed, open
}
criterion_main!(benches);
