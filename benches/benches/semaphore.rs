//! Semaphores, kompoz beside tokio, async-lock and maitake-sync: uncontended
//! `try_acquire` and `acquire().await` (each with the release), and a contended run.
//!
//! `cargo bench -p kompoz-benches --bench semaphore`

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::cases::semaphore;

mod common;

fn uncontended(c: &mut Criterion) {
    common::bench_case(c, &semaphore::uncontended_try());
    common::bench_case(c, &semaphore::uncontended_acquire());
}

fn contended(c: &mut Criterion) {
    common::bench_case(c, &semaphore::contended());
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = uncontended, contended
}
criterion_main!(benches);
