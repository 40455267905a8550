//! A named breaker with an events listener reports its transitions and rejections without
//! allocating: the event borrows the name and is passed by reference. Counted with a
//! global allocator that counts the test thread's allocations while a probe is armed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::breaker::{BreakerBuilder, BreakerMap};
use kompoz::events::{Event, EventKind};
use kompoz::rate::{Quota, RateLimiter};

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

/// Counts (transitions, rejections), allocating nothing.
#[derive(Clone, Default)]
struct Counts(Arc<(AtomicUsize, AtomicUsize)>);

impl Counts {
    fn listener(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let counts = self.0.clone();
        move |event: &Event<'_>| match event.kind {
            EventKind::Transition { .. } => {
                counts.0.fetch_add(1, Ordering::Relaxed);
            }
            EventKind::Rejected(_) => {
                counts.1.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn get(&self) -> (usize, usize) {
        (self.0.0.load(Ordering::Relaxed), self.0.1.load(Ordering::Relaxed))
    }
}

#[test]
fn a_named_breakers_events_allocate_nothing() {
    let clock = ManualClock::new();
    let counts = Counts::default();
    let b = BreakerBuilder::new()
        .name(String::from("payments"))
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(1))
        .listener(counts.listener())
        .build_with(clock.clone())
        .unwrap();
    let cycles = 1_000;
    let allocations = allocations_in(|| {
        for _ in 0..cycles {
            b.try_acquire().unwrap().success(); // closed: no event
            b.try_acquire().unwrap().failure(); // closed -> open
            assert!(b.try_acquire().is_err()); // rejected while open
            clock.advance(Duration::from_secs(1));
            let probe = b.try_acquire().unwrap(); // open -> half-open
            assert!(b.try_acquire().is_err()); // rejected while half-open
            probe.success(); // half-open -> closed
        }
    });
    assert_eq!(counts.get(), (3 * cycles, 2 * cycles), "every event was heard");
    assert_eq!(allocations, 0);
}

#[test]
fn a_named_maps_breakers_and_a_named_rate_limiter_report_without_allocating() {
    let clock = ManualClock::new();
    let counts = Counts::default();
    let per_host =
        BreakerMap::builder(BreakerBuilder::new().failure_threshold(1).listener(counts.listener()))
            .name_with(|host: &u32| format!("host-{host}"))
            .build_with(clock.clone())
            .unwrap();
    let breaker = per_host.get(&7); // naming allocates once, here
    let limiter = RateLimiter::new(Quota::per_second(1).unwrap(), clock.clone()).with_name("api");
    limiter.check().unwrap();
    let allocations = allocations_in(|| {
        for _ in 0..1_000 {
            breaker.try_acquire().unwrap().failure();
            assert!(breaker.try_acquire().is_err());
            breaker.reset();
            assert!(limiter.check().is_err());
        }
    });
    assert_eq!(counts.get(), (2_000, 1_000));
    assert_eq!(allocations, 0);
}
