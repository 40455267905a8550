//! What the criterion benchmarks share: one criterion group per case, one benchmark per
//! contender, timed by the contender's own runner (the same one `compare` uses).

use std::time::Duration;

use criterion::{Criterion, Throughput};
use kompoz_benches::Case;

/// Short runs: every case here is a few nanoseconds to a few hundred per operation.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

/// Benchmarks every contender of `case`. One criterion iteration is `case.min_ops`
/// operations (one for most cases; a batch that keeps every task busy when contended),
/// and criterion reports the throughput in operations.
pub(crate) fn bench_case(c: &mut Criterion, case: &Case) {
    let mut group = c.benchmark_group(case.id);
    group.throughput(Throughput::Elements(case.min_ops));
    for mut contender in (case.contenders)() {
        group.bench_function(contender.name, |b| {
            b.iter_custom(|iters| (contender.run)(iters * case.min_ops).elapsed)
        });
    }
    group.finish();
}
