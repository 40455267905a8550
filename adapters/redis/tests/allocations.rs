//! The shared breaker's closed path, and its rejections, allocate nothing per call:
//! checked with a global allocator that counts the allocations made by the test thread
//! (the fleet's background tasks run on the runtime's threads, uncounted).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::CallError;
use kompoz_redis::Fleet;
use kompoz_redis::tower::SharedBreakerLayer;
use support::{RedisServer, eventually};
use tower::{Layer, Service, service_fn};

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

/// Polls `future` once: it must be ready.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("not ready at its first poll"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_path_and_rejections_allocate_nothing() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = Fleet::builder(server.url()).build().unwrap();
    let breaker = fleet
        .breaker("allocations")
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(600))
        .sync_interval(Duration::from_secs(3_600))
        .build()
        .unwrap();
    breaker.refresh().await;
    let mut tower = SharedBreakerLayer::new(breaker.clone())
        .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    let mut request = |n| {
        assert!(now(tower::ServiceExt::ready(&mut tower)).is_ok());
        now(tower.call(n))
    };
    // Warm up (thread-locals, counters), then count.
    now(breaker.call(async { Ok::<_, ()>(1) })).unwrap();
    now(breaker.try_acquire()).unwrap().success();
    request(1).unwrap();
    let successes = allocations_in(|| {
        for n in 0..1_000 {
            now(breaker.call(async { Ok::<_, ()>(1) })).unwrap();
            now(breaker.try_acquire()).unwrap().success();
            assert_eq!(request(n).unwrap(), n);
        }
    });
    assert_eq!(successes, 0, "3,000 successes while closed");

    // Open, in this process's view of the fleet: rejected at once, until the open period
    // has passed, without a round trip or an allocation.
    let _ = breaker.call(async { Err::<(), _>("down") }).await;
    assert!(
        eventually(Duration::from_secs(5), || async { breaker.generation() == 1 }).await.is_some()
    );
    let rejections = allocations_in(|| {
        for n in 0..1_000 {
            let refused = now(breaker.call(async { Ok::<_, ()>(1) }));
            assert!(matches!(refused, Err(CallError::Rejected(_))));
            assert!(now(breaker.try_acquire()).is_err());
            assert!(matches!(request(n), Err(CallError::Rejected(_))));
        }
    });
    assert_eq!(rejections, 0, "3,000 rejections while open");
}
