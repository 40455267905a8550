//! Rate-limit scenarios: a burst then the steady rate, a line of waiters served in order,
//! a cancelled waiter's place given back, keys kept apart, memory bounded under a million
//! keys, and the combinator's modes and shared quotas.
//!
//! Every verdict holds however the runtime schedules: on simulated time (the manual clock,
//! tokio's paused clock) instants are checked exactly; in real time, only what cannot
//! depend on load (an admission is never early; an order is an order).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use futures::future::{join_all, poll_fn};
use kompoz::limit::Registry;
use kompoz::rate::{KeyedError, KeyedRateLimiter, Quota, QuotaError, RateLimited, RateLimiter};
use kompoz::{AsyncCombinator, Clock, Outcome, Rejection, Sleep, async_rule, rate_limited_on};

use crate::harness::Runtime;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn quota(per_second: u32, burst: u32) -> Quota {
    Quota::per_second(per_second).and_then(|q| q.with_burst(burst)).expect("a valid quota")
}

/// Quotas whose next cell is an hour away: nothing conforms during a test unless `reset`.
fn hourly(burst: u32) -> Quota {
    Quota::per_hour(1).and_then(|q| q.with_burst(burst)).expect("a valid quota")
}

/// 100 per second with a burst of 10: exactly 10 at once, then one every 10 ms.
pub async fn a_burst_then_one_cell_every_interval<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let limiter = RateLimiter::new(quota(100, 10), timer.clone());
    let start = timer.now();
    let admitted = (0..11).filter(|_| limiter.check().is_ok()).count() as u64;
    let elapsed = timer.now() - start;
    // Ten, plus one per 10 ms that passed meanwhile (none on simulated time).
    assert!(admitted >= 10 && admitted <= 10 + elapsed.as_millis() as u64 / 10, "{admitted}");
    if rt.simulated_time() {
        assert_eq!(admitted, 10);
        assert_eq!(limiter.check(), Err(RateLimited { earliest: start + ms(10), wait: ms(10) }));
    }
    for j in 1..=5u64 {
        limiter.until_ready().await;
        // Cell number `admitted + j` conforms 10 ms per cell beyond the burst after start.
        let due = start + ms(10 * (admitted + j - 10));
        let at = timer.now();
        assert!(at >= due, "cell {j} admitted at {at:?}, before {due:?}");
        if rt.simulated_time() {
            assert_eq!(at, due);
        }
    }
    assert_eq!(limiter.stats().admitted, admitted + 5);
}

/// 50 tasks wait in line for a cell every 10 ms: admitted in arrival order, each at its
/// instant.
pub async fn a_line_of_fifty_is_served_in_arrival_order<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let limiter = RateLimiter::new(quota(100, 1), timer.clone());
    let start = timer.now();
    limiter.check().expect("the burst");
    let order = Mutex::new(Vec::new());
    // `join_all` polls its futures in order the first time: they join the line 0..50.
    join_all((0..50u64).map(|i| {
        let (limiter, order, timer) = (&limiter, &order, timer.clone());
        async move {
            limiter.until_ready().await;
            order.lock().expect("not poisoned").push((i, timer.now()));
        }
    }))
    .await;
    let order = order.into_inner().expect("not poisoned");
    let indices: Vec<u64> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..50).collect::<Vec<_>>());
    for (i, at) in order {
        let due = start + ms(10 * (i + 1));
        assert!(at >= due, "task {i} admitted at {at:?}, before {due:?}");
        if rt.simulated_time() {
            assert_eq!(at, due);
        }
    }
    assert_eq!(limiter.stats().waiting, 0);
}

/// A task that leaves the line gives back its place: the task behind it moves up.
/// Timing-free: the quota admits nothing in the test's time but through `reset`.
pub async fn a_cancelled_waiter_gives_back_its_place<R: Runtime>(rt: &R) {
    let limiter = RateLimiter::new(hourly(1), rt.timer());
    limiter.check().expect("the burst");
    let order = Mutex::new(Vec::new());
    let task = |name: &'static str| {
        let (limiter, order) = (&limiter, &order);
        Box::pin(async move {
            limiter.until_ready().await;
            order.lock().expect("not poisoned").push(name);
        }) as Pin<Box<dyn Future<Output = ()> + '_>>
    };
    let (mut a, mut b, mut c) = (task("a"), task("b"), task("c"));
    poll_fn(|cx| {
        for waiting in [&mut a, &mut b, &mut c] {
            assert!(waiting.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    assert_eq!(limiter.stats().waiting, 3);
    drop(b);
    assert_eq!(limiter.stats().waiting, 2);
    // Two cells: the first goes to `a`, the second to `c`, which took `b`'s place.
    limiter.reset();
    a.await;
    limiter.reset();
    c.await;
    assert_eq!(*order.lock().expect("not poisoned"), ["a", "c"]);
    assert_eq!(limiter.stats().admitted, 3);
}

/// On simulated time, the same with its instants: the task behind a cancelled one is
/// admitted at the cancelled one's instant.
pub async fn a_cancelled_waiters_instant_goes_to_the_next<R: Runtime>(rt: &R) {
    if !rt.simulated_time() {
        return;
    }
    let timer = rt.timer();
    let limiter = RateLimiter::new(quota(100, 1), timer.clone());
    let start = timer.now();
    limiter.check().expect("the burst");
    let mut a = Box::pin(limiter.until_ready());
    let mut b = Box::pin(limiter.until_ready());
    let mut c = Box::pin(limiter.until_ready());
    poll_fn(|cx| {
        assert!(a.as_mut().poll(cx).is_pending());
        assert!(b.as_mut().poll(cx).is_pending());
        assert!(c.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    drop(b);
    a.await;
    assert_eq!(timer.now(), start + ms(10));
    c.await;
    assert_eq!(timer.now(), start + ms(20));
}

/// A keyed limiter keeps keys apart: one client's exhausted quota does not touch another's.
pub async fn a_keyed_limiter_isolates_keys<R: Runtime>(rt: &R) {
    let limiter = KeyedRateLimiter::new(hourly(2), rt.timer());
    limiter.check_n(&"10.0.0.1", 2).expect("its burst");
    assert!(matches!(limiter.check(&"10.0.0.1"), Err(KeyedError::RateLimited(_))));
    limiter.check(&"10.0.0.2").expect("another key has its own burst");
    limiter.check(&"10.0.0.2").expect("another key has its own burst");
    assert!(matches!(limiter.check(&"10.0.0.2"), Err(KeyedError::RateLimited(_))));
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected, stats.keys), (4, 2, 2));
}

/// A million distinct keys, each idle a millisecond after its cell: the limiter tracks a
/// few thousand at most, never the million.
pub async fn eviction_keeps_memory_bounded_under_a_million_keys<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let limiter = KeyedRateLimiter::new(quota(1_000, 1), timer.clone());
    let mut most = 0;
    for batch in 0..1_000u64 {
        for key in batch * 1_000..(batch + 1) * 1_000 {
            limiter.check(&key).expect("a new key conforms");
        }
        most = most.max(limiter.len());
        // Every key of this batch is idle after 1 ms.
        timer.sleep(ms(2)).await;
    }
    // At most 2,000 keys are live at once: each shard holds at most twice its live keys
    // (plus 16), in tables at most about twice that.
    assert!(most <= 16_384, "{most} keys tracked at once");
    assert!(limiter.key_capacity() <= 32_768, "room for {} keys", limiter.key_capacity());
    limiter.retain_recent();
    assert!(limiter.is_empty());
    assert_eq!(limiter.stats().admitted, 1_000_000);
}

/// The combinator: waits for its cell by default, rejects at once when told to (a
/// rejection, not a failure), gives up at once when its maximum wait cannot be met.
pub async fn the_combinator_waits_rejects_or_gives_up<R: Runtime>(rt: &R) {
    let limiter = RateLimiter::new(hourly(2), rt.timer());
    let rule = async_rule(async |n: &mut u32| *n > 0);
    let waiting = rate_limited_on(rule, &limiter);
    assert_eq!(waiting.run_owned(1).await, (true, 1));
    let rejecting = rate_limited_on(rule, &limiter).reject();
    assert_eq!(rejecting.run_detailed(&mut 2).await, Outcome::Passed);
    match rejecting.run_detailed(&mut 3).await {
        Outcome::Rejected(Rejection::Rate(limited)) => {
            assert!(limited.wait > Duration::from_secs(3_000), "{limited:?}");
        }
        other => panic!("expected a rate rejection, got {other:?}"),
    }
    let impatient = rate_limited_on(rule, &limiter).max_wait(ms(50));
    let start = rt.timer().now();
    let outcome = impatient.run_detailed(&mut 4).await;
    assert!(matches!(outcome, Outcome::Rejected(Rejection::Rate(_))) && !outcome.passed());
    if rt.simulated_time() {
        assert_eq!(rt.timer().now(), start, "refused at once, without waiting 50 ms");
    }
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected, stats.waiting), (2, 2, 0));
}

/// Two rules limited under one name share its cells; the same name with another quota is
/// an error naming both.
pub async fn two_rules_share_one_named_quota<R: Runtime>(rt: &R) {
    let registry = Registry::new();
    let name = "conformance.api_quota";
    let shared = registry.rate_limiter(name, hourly(3), rt.timer()).expect("new");
    let again = registry.rate_limiter(name, hourly(3), rt.timer()).expect("the same");
    let read = rate_limited_on(async_rule(async |_: &mut ()| true), shared).reject();
    let write = rate_limited_on(async_rule(async |_: &mut ()| true), again).reject();
    assert!(std::ptr::eq(read.limiter(), write.limiter()));
    let results = [
        read.run(&mut ()).await,
        write.run(&mut ()).await,
        read.run(&mut ()).await,
        write.run(&mut ()).await,
    ];
    assert_eq!(results, [true, true, true, false], "three cells between the two");
    let mismatch = registry.rate_limiter(name, hourly(4), rt.timer()).map(|_| ());
    assert_eq!(
        mismatch,
        Err(QuotaError::QuotaMismatch {
            name: name.into(),
            existing: hourly(3),
            requested: hourly(4)
        })
    );
}

/// A clock far along or at the end of time, and zero or oversized batches: errors and
/// saturation, never a panic.
pub async fn edges_are_errors_not_panics<R: Runtime>(rt: &R) {
    assert_eq!(Quota::per_second(0), Err(QuotaError::ZeroCells));
    assert!(Quota::per(5, Duration::ZERO).is_err());
    let limiter = RateLimiter::new(quota(10, 2), rt.timer());
    assert!(limiter.check_n(3).is_err());
    limiter.check_n(0).expect("nothing to admit");
    assert!(limiter.until_n_ready(3).await.is_err());
    assert!(limiter.until_n_ready_within(3, ms(5)).await.is_err());
    assert_eq!(limiter.stats().rejected, 3);
}
