//! Concurrency-limit scenarios: kompoz's own cases, fairness, maximum waits, closing, and
//! a cancellation storm.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::future::{join, join_all, poll_fn};
use kompoz::limit::{AcquireError, Semaphore};
use kompoz::{AsyncCombinator, Outcome, Rejection, Sleep, async_rule, limited, limited_named};

use crate::harness::Runtime;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts how many runs are inside a rule at once, and the most ever seen.
#[derive(Clone, Default)]
struct Occupancy {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Occupancy {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A rule that takes `millis` on the runtime's timer, tracking occupancy.
fn busy_rule<R: Runtime>(
    rt: &R,
    occupancy: &Occupancy,
    millis: u64,
) -> impl AsyncCombinator<i32> + use<R> {
    let timer = rt.timer();
    let occupancy = occupancy.clone();
    async_rule(async move |_: &mut i32| {
        occupancy.enter();
        timer.sleep(ms(millis)).await;
        occupancy.leave();
        true
    })
}

/// kompoz: a limited rule passes its verdict and context through.
pub async fn limited_passes_through<R: Runtime>(_rt: &R) {
    let check = limited(async_rule(async |n: &mut i32| *n > 0), 5).expect("a valid limit");
    assert_eq!(check.run_owned(42).await, (true, 42));
    assert_eq!(check.run_owned(-42).await, (false, -42));
    assert_eq!(check.semaphore().stats().total_acquired, 2);
}

/// kompoz: 10 concurrent runs of a 50 ms rule under max 3 all pass; the peak is exactly 3.
pub async fn ten_runs_under_three_permits_peak_at_three<R: Runtime>(rt: &R) {
    let occupancy = Occupancy::default();
    let limiter = limited(busy_rule(rt, &occupancy, 50), 3).expect("a valid limit");
    let results = join_all((0..10).map(|i| limiter.run_owned(i))).await;
    assert!(results.iter().all(|(ok, _)| *ok), "all runs pass: {results:?}");
    assert_eq!(occupancy.peak(), 3);
    let stats = limiter.semaphore().stats();
    assert_eq!((stats.in_flight, stats.total_acquired, stats.waiting), (0, 10, 0));
}

/// kompoz: two different rules limited to 2 under one name, 5 + 5 concurrent runs: the
/// combined peak is exactly 2.
pub async fn two_rules_share_one_named_limit<R: Runtime>(rt: &R) {
    let occupancy = Occupancy::default();
    let name = "conformance.shared_pool";
    let a = limited_named(busy_rule(rt, &occupancy, 30), name, 2).expect("a valid limit");
    let b = limited_named(busy_rule(rt, &occupancy, 20), name, 2).expect("the same limit");
    assert!(std::ptr::eq(a.semaphore(), b.semaphore()));
    let (ra, rb) =
        join(join_all((0..5).map(|i| a.run_owned(i))), join_all((0..5).map(|i| b.run_owned(i))))
            .await;
    assert!(ra.iter().chain(&rb).all(|(ok, _)| *ok));
    assert_eq!(occupancy.peak(), 2);
    let mismatch = limited_named(busy_rule(rt, &occupancy, 1), name, 3);
    assert!(mismatch.is_err(), "a different size under the same name is refused");
}

/// Waiters get permits in the order they queued.
pub async fn waiters_are_served_first_come_first_served<R: Runtime>(rt: &R) {
    let semaphore = Semaphore::new(1).expect("a valid semaphore");
    let order = std::sync::Mutex::new(Vec::new());
    let timer = rt.timer();
    let holder = async {
        let _permit = semaphore.acquire().await.expect("open");
        timer.sleep(ms(10)).await;
    };
    let waiter = |i: usize| {
        let (semaphore, order, timer) = (&semaphore, &order, rt.timer());
        async move {
            let _permit = semaphore.acquire().await.expect("open");
            order.lock().expect("not poisoned").push(i);
            timer.sleep(ms(1)).await;
        }
    };
    // `join_all` polls its futures in order, so the holder goes first and waiters queue
    // as 0, 1, 2, ...
    let mut all: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = vec![Box::pin(holder)];
    all.extend((0..8).map(|i| Box::pin(waiter(i)) as Pin<Box<dyn Future<Output = ()>>>));
    join_all(all).await;
    assert_eq!(*order.lock().expect("not poisoned"), (0..8).collect::<Vec<_>>());
}

/// A limited rule whose maximum wait passes is rejected, not failed, and not run.
pub async fn a_maximum_wait_expires_into_a_rejection<R: Runtime>(rt: &R) {
    let occupancy = Occupancy::default();
    let limiter = limited(busy_rule(rt, &occupancy, 200), 1)
        .expect("a valid limit")
        .max_wait(rt.timer(), ms(20));
    let (first, second) = join(limiter.run_detailed(&mut 1), limiter.run_detailed(&mut 2)).await;
    assert_eq!(first, Outcome::Passed);
    assert_eq!(second, Outcome::Rejected(Rejection::Limit(AcquireError::WaitElapsed)));
    assert!(second.is_rejected() && !second.passed());
    let stats = limiter.semaphore().stats();
    assert_eq!((stats.total_acquired, stats.total_rejected, stats.waiting), (1, 1, 0));

    // The plain-future face: the same, with any future.
    let semaphore = Semaphore::new(1).expect("a valid semaphore");
    let _held = semaphore.try_acquire().expect("free");
    let late = semaphore.run_with_max_wait(rt.timer(), ms(5), async { 1 }).await;
    assert_eq!(late, Err(AcquireError::WaitElapsed));
}

/// `close()` wakes every waiter with `Closed`; permits held stay valid.
pub async fn close_wakes_every_waiter<R: Runtime>(rt: &R) {
    let semaphore = Semaphore::new(1).expect("a valid semaphore");
    let held = semaphore.try_acquire().expect("free");
    let timer = rt.timer();
    let closer = async {
        timer.sleep(ms(10)).await;
        assert_eq!(semaphore.stats().waiting, 6);
        semaphore.close();
    };
    let waiters = join_all((0..6).map(|_| semaphore.acquire()));
    let ((), results) = join(closer, waiters).await;
    assert!(results.iter().all(|r| matches!(r, Err(AcquireError::Closed))));
    assert_eq!(semaphore.stats().in_flight, 1);
    drop(held);
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(semaphore.acquire().await.unwrap_err(), AcquireError::Closed);
}

/// Many waiters, random ones dropped (some just after being handed a permit), permits
/// released in between: afterwards every permit is free and a new acquire succeeds at
/// once.
pub async fn a_cancellation_storm_leaves_every_permit_free<R: Runtime>(_rt: &R) {
    const PERMITS: usize = 4;
    let semaphore = Semaphore::new(PERMITS).expect("a valid semaphore");
    let mut seed = 0x2545_f491_u32;
    let mut random = move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize % below
    };
    let mut held: Vec<_> = (0..PERMITS).map(|_| semaphore.try_acquire().expect("free")).collect();
    let mut waiters: Vec<_> = (0..200).map(|_| Box::pin(semaphore.acquire())).collect();
    // Queue every waiter.
    poll_fn(|cx| {
        for waiter in waiters.iter_mut() {
            assert!(waiter.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    assert_eq!(semaphore.stats().waiting, 200);

    while !waiters.is_empty() {
        match random(3) {
            // Release a held permit: it goes straight to the oldest waiter.
            0 if !held.is_empty() => drop(held.swap_remove(random(held.len()))),
            // Drop a random waiter, granted or not.
            1 => drop(waiters.swap_remove(random(waiters.len()))),
            // Poll a random waiter; if it got its permit, hold it.
            _ => {
                let index = random(waiters.len());
                let outcome = poll_fn(|cx| Poll::Ready(waiters[index].as_mut().poll(cx))).await;
                if let Poll::Ready(result) = outcome {
                    held.push(result.expect("open"));
                    drop(waiters.swap_remove(index));
                }
            }
        }
        assert!(held.len() <= PERMITS, "never more permits out than exist");
    }
    drop(held);
    let stats = semaphore.stats();
    assert_eq!((stats.available, stats.in_flight, stats.waiting), (PERMITS, 0, 0));
    let again: Vec<_> = (0..PERMITS).map(|_| semaphore.try_acquire()).collect();
    assert!(again.iter().all(Result::is_ok), "every permit is free again");
}

/// `max_concurrent = 0` is refused when built (kompoz would block forever).
pub async fn zero_permits_is_refused<R: Runtime>(_rt: &R) {
    let rule = async_rule(async |_: &mut i32| true);
    assert!(limited(rule, 0).is_err());
    assert!(limited_named(rule, "conformance.zero", 0).is_err());
}
