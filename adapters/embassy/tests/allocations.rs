//! Guards on embassy time allocate nothing per call, from a timer armed to one that fires:
//! checked with a global allocator that counts the test thread's allocations while armed.
//! (Firmware often has no heap; these paths must not need one.)

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use embassy_time::Timer;
use kompoz_embassy::breaker::BreakerBuilder;
use kompoz_embassy::limit::Semaphore;
use kompoz_embassy::{
    AsyncCombinator, EmbassyClock, Outcome, async_rule, circuit_breaker, limited_on, timeout,
    with_timeout,
};
use support::{MockTime, mock_time};

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

/// Polls `future` to the end, moving embassy time a millisecond whenever it waits.
fn run<F: Future>(time: &MockTime, future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        time.advance_millis(1);
    }
}

#[test]
fn guards_on_embassy_time_allocate_nothing_per_call() {
    let time = mock_time();
    let read = async_rule(async |latency_ms: &mut u64| {
        Timer::after_millis(*latency_ms).await;
        true
    });
    let breaker = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(50))
        .build_with(EmbassyClock)
        .unwrap();
    let bus = Semaphore::new(1).unwrap();
    let guarded =
        circuit_breaker(with_timeout(limited_on(read, &bus), Duration::from_millis(10)), &breaker);
    let impatient = limited_on(read, &bus).max_wait(EmbassyClock, Duration::from_millis(3));

    let allocations = allocations_in(|| {
        // A plain timeout that fires, and one that does not.
        assert!(run(&time, timeout(Duration::from_millis(5), Timer::after_millis(9))).is_err());
        assert!(run(&time, timeout(Duration::from_millis(5), Timer::after_millis(1))).is_ok());
        // The stack: passes, times out (and opens), is refused, then probes and closes.
        assert_eq!(run(&time, guarded.run_detailed(&mut 2)), Outcome::Passed);
        assert_eq!(run(&time, guarded.run_detailed(&mut 50)), Outcome::TimedOut);
        assert!(run(&time, guarded.run_detailed(&mut 2)).is_rejected());
        time.advance_millis(50);
        assert_eq!(run(&time, guarded.run_detailed(&mut 2)), Outcome::Passed);
        // A wait for a permit cut off on embassy time.
        let _held = bus.try_acquire().unwrap();
        assert!(run(&time, impatient.run_detailed(&mut 1)).is_rejected());
    });
    assert_eq!(allocations, 0);
}
