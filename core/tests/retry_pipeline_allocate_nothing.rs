//! Retries, pipelines and parallel compositions allocate nothing per call when the call
//! succeeds first time (and a pipeline's rate limit refusing a call allocates nothing): checked with a global allocator that counts the allocations made
//! by the test thread while a probe is armed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::CircuitBreaker;
use kompoz::limit::Semaphore;
use kompoz::pipeline::Pipeline;
use kompoz::rate::{Quota, RateLimiter};
use kompoz::retry::{Hedge, RetryBudget, RetryPolicy};
use kompoz::{AsyncCombinator, ManualClock, async_rule, parallel_and, parallel_or, retry_on};

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

fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    ARMED.with(|armed| armed.set(true));
    f();
    ARMED.with(|armed| armed.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected a ready future"),
    }
}

#[test]
fn first_time_successes_allocate_nothing() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Duration::from_millis(10))
        .jitter(Duration::from_millis(1))
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let budget = RetryBudget::builder().build_with(clock.clone()).unwrap();
    let permits = Semaphore::new(8).unwrap();
    let breaker = CircuitBreaker::builder().build_with(clock.clone()).unwrap();
    let hedge = Hedge::builder().delay(Duration::from_millis(5)).build().unwrap();
    let pipeline = Pipeline::<u32, (), _>::with_timer(clock.clone())
        .timeout(Duration::from_secs(10))
        .retry(policy)
        .budget(&budget)
        .on_retry(|_, _, _| {})
        .timeout(Duration::from_secs(1))
        .limit(&permits)
        .breaker(&breaker)
        .classify(|outcome| kompoz::breaker::Verdict::from(outcome.is_ok()));
    // A quota no loop here exhausts: every call takes a cell at once.
    let quota = Quota::per_second(1_000_000).and_then(|q| q.with_burst(1_000_000)).unwrap();
    let limiter = RateLimiter::new(quota, clock.clone());
    let rated = Pipeline::<u32, (), _>::with_timer(clock.clone())
        .retry(policy)
        .rate_limit(&limiter)
        .max_wait(Duration::from_millis(5));
    let rejecting = Pipeline::<u32, (), _>::with_timer(clock.clone()).rate_limit(&limiter).reject();
    // A quota already spent: every call is refused (a rejection never allocates).
    let spent = RateLimiter::new(Quota::per_hour(1).unwrap(), clock.clone());
    spent.check().unwrap();
    let refusing = Pipeline::<u32, (), _>::with_timer(clock.clone()).rate_limit(&spent).reject();
    let hedged = Pipeline::<u32, (), _>::with_timer(clock.clone()).hedge(&hedge);
    let fallback = Pipeline::<u32, (), _>::with_timer(clock.clone()).fallback(|_| 0);
    let rule = async_rule(async |n: &mut u32| *n > 0);
    let retried_rule = retry_on(clock.clone(), rule, policy);
    let both = parallel_and((rule, rule)).unwrap();
    let either = parallel_or((rule, rule, rule)).unwrap();
    // Warm up anything lazily initialised outside the probe.
    assert_eq!(now(pipeline.call(|| async { Ok(1) })), Ok(1));

    let cases: [(&str, &dyn Fn()); 10] = [
        ("plain retry", &|| {
            assert_eq!(
                now(policy.retry(&clock, || async { Ok::<_, ()>(2) }).budget(&budget)),
                Ok(2)
            )
        }),
        ("pipeline: timeout, retry with budget, timeout, limit, breaker", &|| {
            assert_eq!(now(pipeline.call(|| async { Ok(3) })), Ok(3))
        }),
        ("pipeline: retry, rate limit (max wait)", &|| {
            assert_eq!(now(rated.call(|| async { Ok(5) })), Ok(5))
        }),
        ("pipeline: rate limit (reject)", &|| {
            assert_eq!(now(rejecting.call(|| async { Ok(6) })), Ok(6))
        }),
        ("pipeline: rate limit refusal", &|| {
            assert!(now(refusing.call(|| async { Ok(7) })).is_err())
        }),
        ("pipeline: hedge, first attempt ready", &|| {
            assert_eq!(now(hedged.call(|| async { Ok(4) })), Ok(4))
        }),
        ("pipeline: fallback", &|| assert_eq!(now(fallback.call(|| async { Err(()) })), Ok(0))),
        ("combinator retry", &|| assert!(now(retried_rule.run(&mut 1)))),
        ("parallel_and of a tuple", &|| assert!(now(both.run(&mut 1)))),
        ("parallel_or of a tuple", &|| assert!(now(either.run(&mut 1)))),
    ];
    for (name, case) in cases {
        let count = allocations_in(|| {
            for _ in 0..1_000 {
                case();
            }
        });
        assert_eq!(count, 0, "{name}: {count} allocations in 1,000 calls");
    }
    assert!(allocations_in(|| drop(Box::new(1))) > 0, "the probe works");
}
