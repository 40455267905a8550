//! Every breaker policy's hot paths allocate nothing: successes, failures, rejections,
//! probes and openings, counted with a global allocator that counts the test thread's
//! allocations while a probe is armed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::breaker::{BreakDuration, BreakerBuilder, CircuitBreaker, FailureRate};

struct CountingAllocator;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting touches
// only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: forwarded with the caller's layout, under the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    ARMED.with(|armed| armed.set(true));
    f();
    ARMED.with(|armed| armed.set(false));
    ALLOCATIONS.with(Cell::get)
}

const MS: Duration = Duration::from_millis(1);

/// A whole life cycle, a thousand times over: closed successes and failures, an opening, a
/// rejection, a probe that fails, one that succeeds.
fn cycle(b: &CircuitBreaker<ManualClock>, clock: &ManualClock) {
    for _ in 0..20 {
        b.try_acquire().unwrap().success();
    }
    while b.try_acquire().map(|guard| guard.failure()).is_ok() {}
    assert!(b.try_acquire().is_err());
    clock.advance(Duration::from_secs(60));
    let probe = b.try_acquire().unwrap();
    clock.advance(20 * MS);
    probe.failure();
    clock.advance(Duration::from_secs(60));
    b.try_acquire().unwrap().success();
    assert!(b.try_acquire().is_ok(), "closed again");
}

#[test]
fn every_policy_runs_without_allocating() {
    let policies: [(&str, BreakerBuilder); 5] = [
        ("consecutive failures", BreakerBuilder::new().failure_threshold(3)),
        (
            "count window",
            BreakerBuilder::new().trip_on(FailureRate::over_calls(10).minimum_calls(3)),
        ),
        (
            "time window",
            BreakerBuilder::new()
                .trip_on(FailureRate::over_time(Duration::from_secs(10)).minimum_calls(3)),
        ),
        (
            "count window with slow calls",
            BreakerBuilder::new()
                .trip_on(FailureRate::over_calls(10).minimum_calls(3).slow_calls(10 * MS, 0.5)),
        ),
        (
            "growing, jittered breaks",
            BreakerBuilder::new().failure_threshold(3).break_duration(
                BreakDuration::exponential(Duration::from_secs(1), Duration::from_secs(30))
                    .jitter(0.5, 9),
            ),
        ),
    ];
    for (name, builder) in policies {
        let clock = ManualClock::new();
        let b = builder.success_threshold(1).build_with(clock.clone()).unwrap();
        cycle(&b, &clock); // anything lazily initialised (thread tokens) happens here
        let count = allocations_in(|| {
            for _ in 0..1_000 {
                cycle(&b, &clock);
            }
        });
        assert_eq!(count, 0, "{name}: {count} allocations in 1,000 cycles");
        assert!(b.stats().times_opened > 1_000, "{name}: the cycles did open it");
    }
    // A breaker per key: getting a known key's breaker and calling through it allocates
    // nothing (making a new key's breaker does, once).
    let clock = ManualClock::new();
    let per_host = kompoz::breaker::BreakerMapBuilder::new(BreakerBuilder::new())
        .build_with(clock.clone())
        .unwrap();
    let hosts: Vec<String> = (0..100).map(|i| format!("host-{i}")).collect();
    for host in &hosts {
        per_host.get(host).try_acquire().unwrap().success();
    }
    let count = allocations_in(|| {
        for _ in 0..100 {
            for host in &hosts {
                per_host.get(host).try_acquire().unwrap().success();
            }
        }
    });
    assert_eq!(count, 0, "a known key: {count} allocations in 10,000 calls");

    // The probe works: a path that allocates is caught.
    assert!(allocations_in(|| drop(Box::new(1))) > 0);
}
