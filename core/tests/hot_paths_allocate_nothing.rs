//! The hot paths allocate nothing: checked with a global allocator that counts the
//! allocations made by the test thread while a probe is armed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::CircuitBreaker;
use kompoz::limit::Semaphore;
use kompoz::{
    AsyncCombinator, ManualClock, async_rule, circuit_breaker, limited, timeout, with_timeout_on,
};

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

/// Polls a future that must be ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected a ready future"),
    }
}

#[test]
fn hot_paths_allocate_nothing() {
    let semaphore = Semaphore::new(4).unwrap();
    let clock = ManualClock::new();
    let rule = async_rule(async |n: &mut u32| *n > 0);
    let limited_rule = limited(rule, 4).unwrap();
    let timed_rule = with_timeout_on(clock.clone(), rule, Duration::from_secs(1));
    let closed = CircuitBreaker::builder().build().unwrap();
    let open = CircuitBreaker::builder().build().unwrap();
    open.force_open();
    let protected_closed = circuit_breaker(rule, &closed);
    let protected_open = circuit_breaker(rule, &open);
    // Warm up: anything lazily initialised (the clock's epoch, thread ids) happens
    // outside the probe.
    drop(now(semaphore.acquire()));
    assert!(now(limited_rule.run(&mut 1)));
    closed.try_acquire().unwrap().success();
    assert!(open.try_acquire().is_err());

    let cases: [(&str, &dyn Fn()); 9] = [
        ("uncontended try_acquire + release", &|| drop(semaphore.try_acquire().unwrap())),
        ("uncontended acquire().await + release", &|| drop(now(semaphore.acquire()).unwrap())),
        ("limited(rule) run, permit free", &|| assert!(now(limited_rule.run(&mut 1)))),
        ("timeout around a ready future", &|| {
            assert_eq!(now(timeout(&clock, Duration::from_secs(1), async { 3 })), Ok(3))
        }),
        ("with_timeout(rule) run, rule ready", &|| assert!(now(timed_rule.run(&mut 1)))),
        ("closed breaker: try_acquire + success", &|| closed.try_acquire().unwrap().success()),
        ("closed breaker: call", &|| assert_eq!(now(closed.call(async { Ok::<_, ()>(1) })), Ok(1))),
        ("closed breaker: circuit_breaker(rule) run", &|| {
            assert!(now(protected_closed.run(&mut 1)))
        }),
        ("open breaker: rejection", &|| {
            assert!(open.try_acquire().is_err());
            assert!(!now(protected_open.run(&mut 1)));
        }),
    ];
    for (name, case) in cases {
        let count = allocations_in(|| {
            for _ in 0..1_000 {
                case();
            }
        });
        assert_eq!(count, 0, "{name}: {count} allocations in 1,000 calls");
    }

    // The probe works: a path that allocates is caught.
    assert!(allocations_in(|| drop(Box::new(1))) > 0);
}

/// `ManualClock::advance` allocates nothing, however many timers it fires (it used to
/// collect the due wakers in a fresh `Vec` on every advance).
#[test]
fn advancing_a_manual_clock_allocates_nothing() {
    let clock = ManualClock::new();
    let mut timers: Vec<_> = (1..=100)
        .map(|i| Box::pin(kompoz::Sleep::sleep(&clock, Duration::from_millis(i))))
        .collect();
    for timer in timers.iter_mut() {
        assert!(timer.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    }
    let count = allocations_in(|| {
        for _ in 0..100 {
            clock.advance(Duration::from_millis(1));
        }
    });
    assert_eq!(count, 0, "{count} allocations in 100 advances that fired 100 timers");
    assert_eq!(clock.pending_timers(), 0);
}
