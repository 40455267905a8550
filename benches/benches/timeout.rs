//! A timeout around a ready future: `kompoz_tokio::timeout` beside `tokio::time::timeout`
//! (and the bare future).
//!
//! `cargo bench -p kompoz-benches --bench timeout`

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::cases::timeout;

mod common;

fn ready_inner(c: &mut Criterion) {
    common::bench_case(c, &timeout::ready_inner());
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = ready_inner
}
criterion_main!(benches);
