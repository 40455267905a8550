//! The layers allocate nothing per request on the happy path, nor when they reject (all
//! but the whole pipeline as one layer, whose count is pinned here too): checked with a
//! global allocator that counts the allocations made by the test thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::breaker::CircuitBreaker;
use kompoz_tower::{BreakerLayer, LimitLayer, TimeoutLayer};
use tower::{Layer, Service, ServiceBuilder, service_fn};

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

/// `poll_ready`, `call` and one poll of the response, which must be ready.
fn request<S: Service<u32>>(service: &mut S) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(error)) => return Err(error),
        Poll::Pending => panic!("not ready"),
    }
    match pin!(service.call(7)).poll(&mut cx) {
        Poll::Ready(response) => response,
        Poll::Pending => panic!("the response was not ready at once"),
    }
}

#[test]
fn the_full_stack_allocates_nothing_per_request() {
    let clock = ManualClock::new();
    let breaker = Arc::new(CircuitBreaker::builder().build_with(clock.clone()).unwrap());
    let mut service = ServiceBuilder::new()
        .layer(BreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(clock.clone(), Duration::from_secs(1)))
        .layer(LimitLayer::new(4).unwrap().shed())
        .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    assert!(request(&mut service).is_ok()); // warm up (thread-locals, counters)
    let allocations = allocations_in(|| {
        for _ in 0..1000 {
            assert!(request(&mut service).is_ok());
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(breaker.stats().success_count, 1001);
}

#[test]
fn each_layer_allocates_nothing_per_request() {
    let clock = ManualClock::new();
    let ready = service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    let breaker = Arc::new(CircuitBreaker::builder().build_with(clock.clone()).unwrap());
    let mut guarded = BreakerLayer::new(breaker).layer(ready);
    let mut timed = TimeoutLayer::new(clock.clone(), Duration::from_secs(1)).layer(ready);
    let mut waiting = LimitLayer::new(1).unwrap().layer(ready);
    let mut at_most = LimitLayer::new(1)
        .unwrap()
        .max_wait(ManualClock::new(), Duration::from_secs(1))
        .layer(ready);
    let quota = kompoz::rate::Quota::per_second(1_000_000).unwrap().with_burst(1_000_000).unwrap();
    let limiter = Arc::new(kompoz::rate::RateLimiter::new(quota, clock.clone()));
    let mut rated = kompoz_tower::RateLimitLayer::new(limiter).layer(ready);
    let keyed = Arc::new(kompoz::rate::KeyedRateLimiter::new(quota, clock.clone()));
    let mut keyed = kompoz_tower::KeyedRateLimitLayer::new(keyed, |n: &u32| *n).layer(ready);
    assert!(request(&mut keyed).is_ok()); // the key's first request makes its entry
    let policy = kompoz::retry::RetryPolicy::builder().build().unwrap();
    let mut retried = kompoz_tower::RetryLayer::new(policy, ManualClock::new()).layer(ready);
    for _ in 0..2 {
        assert_eq!(allocations_in(|| assert!(request(&mut retried).is_ok())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut rated).is_ok())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut keyed).is_ok())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut guarded).is_ok())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut timed).is_ok())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut waiting).is_ok())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut at_most).is_ok())), 0);
    }
}

#[test]
fn rejections_allocate_nothing() {
    let clock = ManualClock::new();
    let breaker = Arc::new(CircuitBreaker::builder().build_with(clock.clone()).unwrap());
    breaker.force_open();
    let ready = service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    let mut refused = BreakerLayer::new(breaker).layer(ready);
    let limit = LimitLayer::new(1).unwrap().shed();
    let _held = limit.semaphore().try_acquire().unwrap();
    let mut shed = limit.layer(ready);
    for _ in 0..2 {
        assert_eq!(allocations_in(|| assert!(request(&mut refused).is_err())), 0);
        assert_eq!(allocations_in(|| assert!(request(&mut shed).is_err())), 0);
    }
}

/// The exception, stated: the whole pipeline as one layer boxes what makes a request's
/// attempts, the pipeline's future, and each attempt's future (see `PipelineLayer`).
#[test]
fn the_pipeline_layer_allocates_three_times_per_request_and_twice_per_refusal() {
    let permits = Arc::new(kompoz::limit::Semaphore::new(1).unwrap());
    let pipeline =
        kompoz::pipeline::Pipeline::<u32, std::io::Error, _>::with_timer(ManualClock::new())
            .timeout(Duration::from_secs(1))
            .limit(permits.clone())
            .max_wait(Duration::ZERO);
    let mut service = kompoz_tower::pipeline_layer!(pipeline)
        .layer(service_fn(|n: u32| std::future::ready(Ok::<_, std::io::Error>(n))));
    request(&mut service).unwrap(); // warm
    assert_eq!(allocations_in(|| assert_eq!(request(&mut service).unwrap(), 7)), 3);
    let _held = permits.try_acquire().unwrap();
    assert_eq!(allocations_in(|| assert!(request(&mut service).is_err())), 2);
}
