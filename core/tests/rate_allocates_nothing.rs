//! Rate limiting's hot paths allocate nothing: checks (admitted and refused), a warm key
//! of a keyed limiter, a wait that is admitted at once, and the combinator in each mode.
//! Counted with a global allocator that counts the test thread's allocations while armed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use kompoz::rate::{KeyedRateLimiter, Quota, RateLimiter};
use kompoz::{AsyncCombinator, ManualClock, StdClock, async_rule, rate_limited_on};

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
fn rate_limiting_hot_paths_allocate_nothing() {
    let plenty = Quota::per_second(1_000_000_000).unwrap();
    let scarce = Quota::per_hour(1).unwrap();
    let admitting = RateLimiter::new(plenty, StdClock);
    let refusing = RateLimiter::new(scarce, StdClock);
    refusing.check().unwrap();
    // Keys stay warm: each check moves a key's TAT a minute on, far from idle.
    let warm = Quota::per_hour(60).unwrap().with_burst(1_000_000).unwrap();
    let keyed = KeyedRateLimiter::new(warm, StdClock);
    let keyed_refusing = KeyedRateLimiter::new(scarce, ManualClock::new());
    // Fewer keys and calls under miri, which is slow.
    let (keys, calls) = if cfg!(miri) { (400, 20) } else { (10_000u64, 1_000) };
    for key in 0..keys {
        keyed.check(&key).unwrap();
        keyed_refusing.check(&key).unwrap();
    }
    let rule = async_rule(async |n: &mut u32| *n > 0);
    let waiting = rate_limited_on(rule, &admitting);
    let rejecting = rate_limited_on(rule, &refusing).reject();
    // Warm up: the clock's epoch, the thread's id.
    admitting.check().unwrap();

    let cases: [(&str, &dyn Fn()); 7] = [
        ("direct check, admitted", &|| admitting.check().unwrap()),
        ("direct check, refused", &|| assert!(refusing.check().is_err())),
        ("direct check_n, admitted", &|| admitting.check_n(3).unwrap()),
        ("keyed check, warm key, admitted", &|| keyed.check(&123).unwrap()),
        ("keyed check, warm key, refused", &|| assert!(keyed_refusing.check(&123).is_err())),
        ("until_ready, admitted at once", &|| now(admitting.until_ready())),
        ("rate_limited(rule) run: waits (admitted) and rejects", &|| {
            assert!(now(waiting.run(&mut 1)));
            assert!(!now(rejecting.run(&mut 1)));
        }),
    ];
    for (name, case) in cases {
        let count = allocations_in(|| {
            for _ in 0..calls {
                case();
            }
        });
        assert_eq!(count, 0, "{name}: {count} allocations in {calls} calls");
    }
    // The probe works: a path that allocates is caught.
    assert!(allocations_in(|| drop(Box::new(1))) > 0);
}
