//! Rate limiters on a manual clock: decisions, fair waiting, cancellation, hostile
//! wakers, keyed limits, the registry.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::*;
use crate::limit::Registry;
use crate::time::{Clock, ManualClock};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(n: u64) -> Instant {
    Instant::ZERO + ms(n)
}

/// 100 cells a second (one every 10 ms), `burst` at once.
fn limiter(burst: u32) -> (ManualClock, RateLimiter<ManualClock>) {
    let clock = ManualClock::new();
    let quota = Quota::per_second(100).unwrap().with_burst(burst).unwrap();
    (clock.clone(), RateLimiter::new(quota, clock))
}

#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

type Waiting<'a> = Pin<Box<dyn Future<Output = Result<(), RateLimited>> + 'a>>;

/// A waiting future, its waker and the count of its wake-ups.
struct Task<'a> {
    future: Waiting<'a>,
    wakes: Arc<Counter>,
    waker: Waker,
}

impl<'a> Task<'a> {
    fn new(future: impl Future<Output = Result<(), RateLimited>> + 'a) -> Task<'a> {
        let wakes = Arc::new(Counter::default());
        let waker = Waker::from(wakes.clone());
        Task { future: Box::pin(future), wakes, waker }
    }

    fn poll(&mut self) -> Poll<Result<(), RateLimited>> {
        self.future.as_mut().poll(&mut Context::from_waker(&self.waker))
    }
}

fn wait(limiter: &RateLimiter<ManualClock>) -> Task<'_> {
    Task::new(async move {
        limiter.until_ready().await;
        Ok(())
    })
}

#[test]
fn a_burst_then_one_cell_per_interval_with_exact_waits() {
    let (clock, limiter) = limiter(10);
    clock.advance(ms(1_000));
    for _ in 0..10 {
        limiter.check().unwrap();
    }
    assert_eq!(limiter.check(), Err(RateLimited { earliest: at(1_010), wait: ms(10) }));
    clock.advance(ms(4));
    assert_eq!(limiter.check(), Err(RateLimited { earliest: at(1_010), wait: ms(6) }));
    clock.advance(ms(6));
    limiter.check().unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected, stats.wait, stats.available), (11, 2, ms(10), 0));
    clock.advance(ms(35));
    assert_eq!(limiter.stats().available, 3);
}

#[test]
fn batches_are_all_or_nothing_and_too_large_ones_are_told_apart() {
    let (_clock, limiter) = limiter(5);
    limiter.check_n(3).unwrap();
    assert_eq!(
        limiter.check_n(3),
        Err(BatchError::RateLimited(RateLimited { earliest: at(10), wait: ms(10) }))
    );
    assert_eq!(
        limiter.check_n(6),
        Err(BatchError::ExceedsBurst(ExceedsBurst { cells: 6, burst: 5 }))
    );
    assert_eq!(limiter.check_n(6).unwrap_err().retry_after(), None);
    limiter.check_n(0).unwrap();
    limiter.check_n(2).unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected), (5, 3));
}

#[test]
fn reset_gives_the_burst_back() {
    let (_clock, limiter) = limiter(2);
    limiter.check_n(2).unwrap();
    assert!(limiter.check().is_err());
    limiter.reset();
    limiter.check_n(2).unwrap();
    assert_eq!(limiter.quota(), Quota::per_second(100).unwrap().with_burst(2).unwrap());
}

#[test]
fn waiters_are_admitted_in_arrival_order_at_their_instants() {
    let (clock, limiter) = limiter(1);
    limiter.check().unwrap();
    let mut tasks: Vec<Task<'_>> = (0..5).map(|_| wait(&limiter)).collect();
    for task in tasks.iter_mut() {
        assert!(task.poll().is_pending());
    }
    assert_eq!(limiter.stats().waiting, 5);
    // Only the first in line sleeps on a timer.
    assert_eq!(clock.pending_timers(), 1);
    for (i, task) in tasks.iter_mut().enumerate() {
        let due = at(10 * (i as u64 + 1));
        clock.set(due - Duration::from_nanos(1));
        assert!(task.poll().is_pending(), "task {i} is not due yet");
        clock.set(due);
        assert_eq!(
            task.wakes.count(),
            1 + usize::from(i > 0),
            "task {i}: its timer (and its turn)"
        );
        assert_eq!(task.poll(), Poll::Ready(Ok(())));
        // A newcomer may not take the next cell ahead of those in line.
        assert!(limiter.check().is_err());
    }
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.waiting, stats.rejected), (6, 0, 5));
    assert_eq!(clock.pending_timers(), 0);
}

#[test]
fn a_cancelled_waiter_leaves_the_limiter_as_if_it_had_never_come() {
    let (clock, limiter) = limiter(1);
    limiter.check().unwrap();
    let mut first = wait(&limiter);
    let mut second = wait(&limiter);
    let mut third = wait(&limiter);
    for task in [&mut first, &mut second, &mut third] {
        assert!(task.poll().is_pending());
    }
    // The one in the middle gives up: the third is admitted in its place, at 20 ms.
    drop(second);
    clock.set(at(10));
    assert_eq!(first.poll(), Poll::Ready(Ok(())));
    assert_eq!(third.wakes.count(), 1, "woken when it became first in line");
    assert!(third.poll().is_pending());
    clock.set(at(20));
    assert_eq!(third.poll(), Poll::Ready(Ok(())));
    // The first in line gives up while sleeping: nothing was reserved, nothing is lost.
    let mut gone = wait(&limiter);
    assert!(gone.poll().is_pending());
    drop(gone);
    assert_eq!(clock.pending_timers(), 0);
    clock.set(at(30));
    limiter.check().unwrap();
    assert_eq!(limiter.stats().admitted, 4);
}

#[test]
fn a_maximum_wait_refuses_at_once_when_it_cannot_be_met() {
    let (clock, limiter) = limiter(1);
    limiter.check().unwrap();
    let mut patient = Task::new(limiter.until_ready_within(ms(15)));
    assert!(patient.poll().is_pending());
    // Behind it, a cell conforms at 20 ms: more than 15 ms away, refused at once.
    let mut hopeless = Task::new(limiter.until_ready_within(ms(15)));
    assert_eq!(hopeless.poll(), Poll::Ready(Err(RateLimited { earliest: at(20), wait: ms(20) })));
    // A wait of zero admits only a cell that conforms now.
    let mut now_or_never = Task::new(limiter.until_ready_within(Duration::ZERO));
    assert!(matches!(now_or_never.poll(), Poll::Ready(Err(_))));
    clock.set(at(10));
    assert_eq!(patient.poll(), Poll::Ready(Ok(())));
    assert_eq!(limiter.stats().rejected, 2);
}

#[test]
fn a_waiter_further_back_gives_up_at_its_deadline() {
    let (clock, limiter) = limiter(1);
    limiter.check().unwrap();
    let mut first = wait(&limiter);
    assert!(first.poll().is_pending());
    // Arrives with 25 ms to spare, and would be admitted at 20 ms...
    let mut second = Task::new(limiter.until_ready_within(ms(25)));
    assert!(second.poll().is_pending());
    assert_eq!(clock.pending_timers(), 2, "the head's timer and the deadline");
    // ...but the first in line is never polled again, so it holds everyone up. Refused:
    // its cell would now conform at 35 ms, after the first one's.
    clock.set(at(25));
    assert_eq!(second.wakes.count(), 1);
    assert_eq!(second.poll(), Poll::Ready(Err(RateLimited { earliest: at(35), wait: ms(10) })));
    assert_eq!(first.poll(), Poll::Ready(Ok(())));
}

#[test]
fn the_head_gives_up_when_its_cells_cannot_conform_by_its_deadline() {
    let (clock, limiter) = limiter(4);
    limiter.check_n(4).unwrap();
    let mut batch = Task::new(async {
        limiter.until_n_ready_within(3, ms(25)).await.map_err(|e| match e {
            BatchError::RateLimited(limited) => limited,
            BatchError::ExceedsBurst(_) => unreachable!(),
        })
    });
    // 3 cells conform at 30 ms: beyond the deadline.
    assert_eq!(batch.poll(), Poll::Ready(Err(RateLimited { earliest: at(30), wait: ms(30) })));
    let mut too_many = Task::new(async {
        assert_eq!(limiter.until_n_ready(5).await, Err(ExceedsBurst { cells: 5, burst: 4 }));
        Ok(())
    });
    assert_eq!(too_many.poll(), Poll::Ready(Ok(())));
    clock.set(at(40));
    limiter.check_n(4).unwrap();
}

#[test]
fn a_check_is_admitted_ahead_of_the_line_only_when_nobody_in_line_is_delayed() {
    let (clock, limiter) = limiter(4);
    limiter.check_n(4).unwrap();
    // First in line wants 2 cells (at 20 ms).
    let mut batch = Task::new(async {
        limiter.until_n_ready(2).await.unwrap();
        Ok(())
    });
    assert!(batch.poll().is_pending());
    clock.set(at(30));
    // Three cells conform now: the batch's two, and one more.
    limiter.check().unwrap();
    assert!(limiter.check().is_err(), "a second would delay the batch");
    assert_eq!(batch.poll(), Poll::Ready(Ok(())));
}

#[test]
fn reset_wakes_the_head_whose_cells_now_conform() {
    let (_clock, limiter) = limiter(1);
    limiter.check().unwrap();
    let mut task = wait(&limiter);
    assert!(task.poll().is_pending());
    limiter.reset();
    assert_eq!(task.wakes.count(), 1);
    assert_eq!(task.poll(), Poll::Ready(Ok(())));
}

#[test]
fn the_plain_future_face_runs_after_the_wait() {
    let (clock, limiter) = limiter(1);
    limiter.check().unwrap();
    let mut run = Task::new(async {
        assert_eq!(limiter.run(async { 7 }).await, 7);
        assert!(limiter.run_within(ms(1), async { 8 }).await.is_err());
        Ok(())
    });
    assert!(run.poll().is_pending());
    clock.set(at(10));
    assert_eq!(run.poll(), Poll::Ready(Ok(())));
}

/// A waker whose clone, wake and drop may panic, or call back into the limiter.
struct Hostile {
    panic_on_clone: bool,
    panic_on_wake: bool,
    reenter: Option<Arc<RateLimiter<ManualClock>>>,
}

static HOSTILE_VTABLE: core::task::RawWakerVTable =
    core::task::RawWakerVTable::new(hostile_clone, hostile_wake, hostile_wake_by_ref, hostile_drop);

fn hostile(h: Hostile) -> Waker {
    let raw = core::task::RawWaker::new(Box::into_raw(Box::new(h)) as *const (), &HOSTILE_VTABLE);
    // SAFETY: the vtable's functions treat the data pointer as the `Box<Hostile>` made here.
    unsafe { Waker::from_raw(raw) }
}

unsafe fn hostile_clone(data: *const ()) -> core::task::RawWaker {
    // SAFETY: `data` is a live `Box<Hostile>` (the waker being cloned owns it).
    let h = unsafe { &*(data as *const Hostile) };
    if h.panic_on_clone {
        panic!("hostile clone");
    }
    let copy = Hostile {
        panic_on_clone: false,
        panic_on_wake: h.panic_on_wake,
        reenter: h.reenter.clone(),
    };
    core::task::RawWaker::new(Box::into_raw(Box::new(copy)) as *const (), &HOSTILE_VTABLE)
}

unsafe fn hostile_wake(data: *const ()) {
    // SAFETY: `wake` consumes the waker, which owns the box: retaken here, it is freed
    // even if waking panics.
    let owned = unsafe { Box::from_raw(data as *mut Hostile) };
    wake_hostile(&owned);
}

unsafe fn hostile_wake_by_ref(data: *const ()) {
    // SAFETY: `data` is a live `Box<Hostile>`, owned by the waker being woken.
    wake_hostile(unsafe { &*(data as *const Hostile) });
}

fn wake_hostile(h: &Hostile) {
    if let Some(limiter) = &h.reenter {
        // Re-entrant: the limiter's lock must not be held here.
        let _ = limiter.check();
        limiter.reset();
        let _ = limiter.stats();
    }
    if h.panic_on_wake {
        panic!("hostile wake");
    }
}

unsafe fn hostile_drop(data: *const ()) {
    // SAFETY: `data` came from `Box::into_raw` and is dropped once, with its waker.
    drop(unsafe { Box::from_raw(data as *mut Hostile) });
}

#[cfg(feature = "std")]
#[test]
fn panicking_and_reentrant_wakers_leave_the_limiter_consistent() {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let clock = ManualClock::new();
    let quota = Quota::per_second(100).unwrap().with_burst(1).unwrap();
    let limiter = Arc::new(RateLimiter::new(quota, clock.clone()));
    limiter.check().unwrap();

    // A waker whose clone panics: the poll unwinds before the task joins the line.
    let mut first = Box::pin(limiter.until_ready());
    let bad_clone = hostile(Hostile { panic_on_clone: true, panic_on_wake: false, reenter: None });
    let polled = catch_unwind(AssertUnwindSafe(|| {
        first.as_mut().poll(&mut Context::from_waker(&bad_clone))
    }));
    assert!(polled.is_err());
    assert_eq!(limiter.stats().waiting, 0);
    drop(first);

    // A head whose waker re-enters the limiter when woken by `reset`, and one behind it
    // whose waker panics when it is woken to take over.
    let reentrant = hostile(Hostile {
        panic_on_clone: false,
        panic_on_wake: false,
        reenter: Some(limiter.clone()),
    });
    let panicking = hostile(Hostile { panic_on_clone: false, panic_on_wake: true, reenter: None });
    let mut head = Box::pin(limiter.until_ready());
    let mut next = Box::pin(limiter.until_ready());
    assert!(head.as_mut().poll(&mut Context::from_waker(&reentrant)).is_pending());
    assert!(next.as_mut().poll(&mut Context::from_waker(&panicking)).is_pending());
    limiter.reset(); // wakes the head, which checks and resets from inside its waker
    // The head takes its cell and wakes `next`, whose waker panics: the panic reaches
    // the head's poll, after the head was admitted, counted, and out of the line.
    let polled = catch_unwind(AssertUnwindSafe(|| {
        head.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }));
    assert!(polled.is_err());
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.waiting), (2, 1));
    // Dropping the last waiter leaves an empty line whatever its waker did.
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(next)));
    assert!(dropped.is_ok());
    assert_eq!(limiter.stats().waiting, 0);
    clock.advance(ms(10));
    limiter.check().unwrap();
}

#[test]
fn a_lagging_coarse_clock_never_admits_early_and_refusals_near_the_edge_are_exact() {
    /// A clock whose coarse reading lags the precise one by 1 ms, and which promises
    /// no more than 3 ms.
    #[derive(Clone)]
    struct Lagging(ManualClock);
    impl Clock for Lagging {
        fn now(&self) -> Instant {
            self.0.now()
        }
        fn now_coarse(&self) -> Instant {
            self.0.now() - ms(1)
        }
        fn coarse_lag(&self) -> Duration {
            ms(3)
        }
    }
    let manual = ManualClock::starting_at(at(100));
    let quota = Quota::per_second(100).unwrap().with_burst(1).unwrap();
    let limiter = RateLimiter::new(quota, Lagging(manual.clone()));
    limiter.check().unwrap(); // the TAT counts from the coarse reading: 99 + 10 = 109 ms
    // Far from the edge: refused on the coarse reading, the wait measured from it.
    assert_eq!(limiter.check(), Err(RateLimited { earliest: at(109), wait: ms(10) }));
    // Within the lag of the edge: decided on the precise clock, and admitted (TAT 119).
    manual.set(at(109));
    limiter.check().unwrap();
    // Beyond the lag: refused on the coarse reading (the wait from it, never too short).
    manual.set(at(112));
    assert_eq!(limiter.check(), Err(RateLimited { earliest: at(119), wait: ms(8) }));
    // Near the edge: refused on the precise clock, with the exact wait.
    manual.set(at(117) + Duration::from_micros(500));
    let exact = RateLimited { earliest: at(119), wait: Duration::from_micros(1_500) };
    assert_eq!(limiter.check(), Err(exact));

    let keyed = KeyedRateLimiter::new(quota, Lagging(manual.clone()));
    keyed.check(&1).unwrap();
    assert!(matches!(keyed.check(&1), Err(KeyedError::RateLimited(_))));
    manual.advance(ms(8));
    assert!(matches!(keyed.check(&1), Err(KeyedError::RateLimited(_))), "decided precisely");
    manual.advance(ms(1));
    keyed.check(&1).unwrap();
}

#[test]
fn keyed_limits_are_per_key_and_idle_keys_are_forgotten() {
    let clock = ManualClock::new();
    let quota = Quota::per_second(10).unwrap().with_burst(2).unwrap();
    let limiter = KeyedRateLimiter::new(quota, clock.clone());
    limiter.check_n(&"a", 2).unwrap();
    assert_eq!(
        limiter.check(&"a"),
        Err(KeyedError::RateLimited(RateLimited { earliest: at(100), wait: ms(100) }))
    );
    limiter.check(&"b").unwrap();
    assert_eq!(
        limiter.check_n(&"b", 3),
        Err(KeyedError::ExceedsBurst(ExceedsBurst { cells: 3, burst: 2 }))
    );
    limiter.check_n(&"c", 0).unwrap();
    assert_eq!(limiter.len(), 2, "zero cells track no key");
    assert_eq!(limiter.stats(), KeyedStats { admitted: 3, rejected: 2, keys: 2 });
    clock.set(at(100));
    assert_eq!(limiter.retain_recent(), 1, "b is idle, a is not yet");
    clock.set(at(200));
    assert_eq!(limiter.retain_recent(), 1);
    assert!(limiter.is_empty());
    limiter.check_n(&"a", 2).unwrap();
    limiter.reset();
    limiter.check_n(&"a", 2).unwrap();
    assert_eq!(limiter.max_keys(), None);
}

#[test]
fn a_full_keyed_limiter_forgets_idle_keys_and_refuses_only_when_none_is() {
    let clock = ManualClock::new();
    let quota = Quota::per_second(10).unwrap().with_burst(1).unwrap();
    assert_eq!(
        KeyedRateLimiter::<u32, _>::with_max_keys(quota, clock.clone(), 0).unwrap_err(),
        QuotaError::ZeroMaxKeys
    );
    let limiter = KeyedRateLimiter::with_max_keys(quota, clock.clone(), 3).unwrap();
    for key in 0..3u32 {
        limiter.check(&key).unwrap();
    }
    let full = KeyedError::TooManyKeys(TooManyKeys { max_keys: 3 });
    assert_eq!(limiter.check(&3), Err(full));
    assert_eq!(limiter.check(&4), Err(full), "refused at once, until a key may be idle");
    // Known keys still work.
    assert!(matches!(limiter.check(&0), Err(KeyedError::RateLimited(_))));
    clock.set(at(100));
    limiter.check(&3).unwrap();
    assert_eq!(limiter.len(), 1, "the sweep forgot every idle key");
    assert_eq!(limiter.max_keys(), Some(3));
}

#[test]
fn a_million_distinct_keys_keep_memory_bounded() {
    let clock = ManualClock::new();
    // Each key is idle 1 ms after its cell.
    let limiter = KeyedRateLimiter::new(Quota::per_second(1_000).unwrap(), clock.clone());
    // Fewer under miri, which is slow.
    let (keys, batch) = if cfg!(miri) { (600, 100) } else { (1_000_000u64, 1_000) };
    for key in 0..keys {
        limiter.check(&key).unwrap();
        if key % batch == batch - 1 {
            clock.advance(ms(1));
        }
    }
    assert!(limiter.len() <= 16_384, "{} keys tracked", limiter.len());
    assert!(limiter.key_capacity() <= 32_768, "room for {} keys", limiter.key_capacity());
    clock.advance(ms(1));
    limiter.retain_recent();
    assert!(limiter.is_empty());
}

#[test]
fn quotas_are_shared_by_name_and_mismatches_name_both() {
    let registry = Registry::new();
    let clock = ManualClock::new();
    let quota = Quota::per_second(5).unwrap();
    let a = registry.rate_limiter("api", quota, clock.clone()).unwrap();
    let b = registry.rate_limiter("api", quota, clock.clone()).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let other = quota.with_burst(1).unwrap();
    assert_eq!(
        registry.rate_limiter("api", other, clock.clone()).unwrap_err(),
        QuotaError::QuotaMismatch { name: "api".into(), existing: quota, requested: other }
    );
    let wrong_clock = registry.rate_limiter("api", quota, crate::time::Precise(clock.clone()));
    assert!(matches!(wrong_clock, Err(QuotaError::ClockMismatch { .. })));
    assert!(registry.get_rate_limiter::<ManualClock>("api").is_some());
    assert!(registry.get_rate_limiter::<ManualClock>("nope").is_none());
    // Semaphores and rate limits have separate names.
    registry.get_or_create("api", 3).unwrap();
    assert_eq!((registry.len(), registry.rate_limits()), (1, 1));
    let message = alloc::format!("{}", registry.rate_limiter("api", other, clock).unwrap_err());
    assert!(message.contains("burst 5") && message.contains("burst 1"), "{message}");
}

#[test]
fn errors_say_what_happened() {
    let limited = RateLimited { earliest: at(10), wait: ms(10) };
    assert_eq!(alloc::format!("{limited}"), "rate limited: retry after 10ms");
    assert_eq!(BatchError::from(limited).retry_after(), Some(ms(10)));
    assert_eq!(KeyedError::from(limited).retry_after(), Some(ms(10)));
    let full = KeyedError::TooManyKeys(TooManyKeys { max_keys: 7 });
    assert_eq!(full.retry_after(), None);
    assert!(alloc::format!("{full}").contains('7'));
    let exceeds = ExceedsBurst { cells: 9, burst: 3 };
    assert!(alloc::format!("{}", BatchError::from(exceeds)).contains("burst of 3"));
    assert_eq!(alloc::format!("{}", QuotaError::ZeroBurst), "burst must be at least 1, got 0");
}
