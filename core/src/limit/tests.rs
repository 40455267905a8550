//! Unit tests of the semaphore and the registries, polled by hand.

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
use crate::time::ManualClock;

/// A waker that counts how often it was woken.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future under test, with its own counting waker.
struct Task<F: Future> {
    future: Pin<Box<F>>,
    wakes: Arc<Counter>,
}

impl<F: Future> Task<F> {
    fn new(future: F) -> Self {
        Task { future: Box::pin(future), wakes: Arc::default() }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        let waker = Waker::from(self.wakes.clone());
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }
}

fn ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("expected the future to be ready"),
    }
}

#[test]
fn permits_are_counted_and_returned() {
    let semaphore = Semaphore::new(2).unwrap();
    let a = semaphore.try_acquire().unwrap();
    let mut b = Task::new(semaphore.acquire());
    let b = ready(b.poll()).unwrap();
    assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::NoPermits);
    let stats = semaphore.stats();
    assert_eq!((stats.capacity, stats.available, stats.in_flight), (2, 0, 2));
    assert_eq!((stats.total_acquired, stats.total_rejected), (2, 1));
    assert!(!stats.closed && !semaphore.is_closed(), "open until closed");
    drop((a, b));
    assert_eq!(semaphore.available_permits(), 2);
}

#[test]
fn waiters_are_served_in_arrival_order_and_nobody_barges() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut first = Task::new(semaphore.acquire());
    let mut second = Task::new(semaphore.acquire());
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    assert_eq!(semaphore.stats().waiting, 2);

    drop(held);
    assert_eq!((first.woken(), second.woken()), (1, 0), "only the oldest is woken");
    // The permit went to `first` directly: neither try_acquire nor a newcomer gets it.
    assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::NoPermits);
    let mut newcomer = Task::new(semaphore.acquire());
    assert!(newcomer.poll().is_pending());
    assert!(second.poll().is_pending());

    let permit = ready(first.poll()).unwrap();
    drop(permit);
    assert_eq!((second.woken(), newcomer.woken()), (1, 0));
    let permit = ready(second.poll()).unwrap();
    drop(permit);
    assert_eq!(newcomer.woken(), 1);
    drop(ready(newcomer.poll()).unwrap());
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(semaphore.stats().waiting, 0);
}

/// The classic lost wake-up: a permit is handed to a waiter that is then dropped before
/// it looks. The permit must go on to the next waiter, who must be woken.
#[test]
fn a_waiter_dropped_after_its_grant_passes_the_permit_on() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut granted = Task::new(semaphore.acquire());
    let mut next = Task::new(semaphore.acquire());
    assert!(granted.poll().is_pending());
    assert!(next.poll().is_pending());

    drop(held);
    assert_eq!(granted.woken(), 1);
    drop(granted); // cancelled between its wake-up and its poll
    assert_eq!(next.woken(), 1, "the next waiter was woken with the permit");
    let permit = ready(next.poll()).unwrap();
    assert_eq!(semaphore.available_permits(), 0);
    drop(permit);
    assert_eq!(semaphore.available_permits(), 1);
    assert_eq!(semaphore.stats().in_flight, 0);
}

#[test]
fn a_waiter_dropped_while_queued_leaves_no_trace() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut a = Task::new(semaphore.acquire());
    let mut b = Task::new(semaphore.acquire());
    let mut c = Task::new(semaphore.acquire());
    for task in [&mut a, &mut b, &mut c] {
        assert!(task.poll().is_pending());
    }
    drop(b);
    assert_eq!(semaphore.stats().waiting, 2);
    drop(held);
    assert_eq!((a.woken(), c.woken()), (1, 0));
    drop(ready(a.poll()).unwrap());
    assert_eq!(c.woken(), 1);
    drop(ready(c.poll()).unwrap());

    // Dropping every waiter clears the queue: the next try_acquire succeeds at once.
    let held = semaphore.try_acquire().unwrap();
    let mut d = Task::new(semaphore.acquire());
    assert!(d.poll().is_pending());
    drop(d);
    drop(held);
    assert!(semaphore.try_acquire().is_ok());
}

#[test]
fn close_fails_every_waiter_and_later_acquire_but_keeps_held_permits() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut waiters: Vec<_> = (0..20).map(|_| Task::new(semaphore.acquire())).collect();
    for w in waiters.iter_mut() {
        assert!(w.poll().is_pending());
    }
    semaphore.close();
    for w in waiters.iter_mut() {
        assert_eq!(w.woken(), 1);
        assert_eq!(ready(w.poll()).unwrap_err(), AcquireError::Closed);
    }
    assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::Closed);
    assert_eq!(ready(Task::new(semaphore.acquire()).poll()).unwrap_err(), AcquireError::Closed);
    drop(held);
    let stats = semaphore.stats();
    assert!(stats.closed);
    assert_eq!((stats.available, stats.waiting, stats.total_rejected), (1, 0, 22));
}

/// A waiter that `close` failed but that is dropped before it looks: its node is already
/// out of the list, so dropping it must not touch the list again.
#[test]
fn a_closed_waiter_dropped_before_it_looks_leaves_the_others_alone() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut first = Task::new(semaphore.acquire());
    let mut second = Task::new(semaphore.acquire());
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    semaphore.close();
    drop(first);
    let stats = semaphore.stats();
    assert_eq!((stats.waiting, stats.total_rejected, stats.closed), (0, 2, true));
    assert_eq!(ready(second.poll()).unwrap_err(), AcquireError::Closed);
    semaphore.add_permits(1).unwrap();
    assert_eq!(semaphore.available_permits(), 1);
}

#[test]
fn added_permits_go_to_waiters_first_in_order_even_past_a_wake_batch() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| Task::new(semaphore.acquire())).collect();
    for w in waiters.iter_mut() {
        assert!(w.poll().is_pending());
    }
    semaphore.add_permits(35).unwrap();
    let woken: Vec<_> = waiters.iter().map(|w| w.woken()).collect();
    assert_eq!(&woken[..35], &[1; 35][..]);
    assert_eq!(&woken[35..], &[0; 5][..]);
    semaphore.add_permits(7).unwrap();
    assert_eq!(semaphore.available_permits(), 2);
    let permits: Vec<_> = waiters.iter_mut().map(|w| ready(w.poll()).unwrap()).collect();
    assert_eq!(permits.len(), 40);
    drop(permits);
    assert_eq!(semaphore.stats().capacity, 42);
    assert_eq!(semaphore.available_permits(), 42);
}

#[test]
fn too_many_permits_is_an_error_not_a_panic() {
    assert_eq!(
        Semaphore::new(usize::MAX).unwrap_err(),
        LimitError::TooManyPermits { requested: usize::MAX, max: MAX_PERMITS }
    );
    let semaphore = Semaphore::new(MAX_PERMITS - 1).unwrap();
    assert!(semaphore.add_permits(2).is_err());
    assert_eq!(semaphore.stats().capacity, MAX_PERMITS - 1, "a failed add changes nothing");
    semaphore.add_permits(1).unwrap();
    assert_eq!(semaphore.available_permits(), MAX_PERMITS);
}

#[test]
fn a_maximum_wait_turns_a_long_queue_into_a_rejection() {
    let clock = ManualClock::new();
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut patient = Task::new(semaphore.acquire());
    assert!(patient.poll().is_pending());
    let mut hasty = Task::new(semaphore.acquire_with_max_wait(&clock, Duration::from_millis(10)));
    assert!(hasty.poll().is_pending());
    assert_eq!(semaphore.stats().waiting, 2);
    clock.advance(Duration::from_millis(10));
    assert_eq!(hasty.woken(), 1);
    assert_eq!(ready(hasty.poll()).unwrap_err(), AcquireError::WaitElapsed);
    assert_eq!(semaphore.stats().waiting, 1, "the expired waiter left the queue");
    drop(held);
    drop(ready(patient.poll()).unwrap());

    // Zero wait: a free permit is taken, otherwise the answer is immediate.
    let held = ready(Task::new(semaphore.acquire_with_max_wait(&clock, Duration::ZERO)).poll());
    let held = held.unwrap();
    let refused = ready(Task::new(semaphore.acquire_with_max_wait(&clock, Duration::ZERO)).poll());
    assert_eq!(refused.unwrap_err(), AcquireError::WaitElapsed);
    drop(held);
    assert_eq!(semaphore.stats().total_rejected, 2);
    assert_eq!(clock.pending_timers(), 0);
}

#[test]
fn owned_permits_outlive_the_borrow() {
    let semaphore = Arc::new(Semaphore::new(1).unwrap());
    let permit = semaphore.clone().try_acquire_owned().unwrap();
    assert_eq!(semaphore.clone().try_acquire_owned().unwrap_err(), AcquireError::NoPermits);
    let mut waiter = Task::new(semaphore.clone().acquire_owned());
    assert!(waiter.poll().is_pending());
    drop(permit);
    let permit = ready(waiter.poll()).unwrap();
    assert!(Arc::ptr_eq(permit.semaphore(), &semaphore));
    drop(permit);
    assert_eq!(semaphore.available_permits(), 1);

    // Dropped after its grant: the permit goes back.
    let held = semaphore.clone().try_acquire_owned().unwrap();
    let mut waiter = Task::new(semaphore.clone().acquire_owned());
    assert!(waiter.poll().is_pending());
    drop(held);
    drop(waiter);
    assert_eq!(semaphore.available_permits(), 1);
}

#[cfg(feature = "std")]
#[test]
fn a_permit_is_returned_while_a_panic_unwinds() {
    let semaphore = Semaphore::new(1).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures::executor::block_on(semaphore.run(async { panic!("the guarded call panicked") }))
    }));
    assert!(result.is_err());
    assert_eq!(semaphore.available_permits(), 1);
}

#[test]
fn registry_shares_by_name_and_refuses_mismatched_sizes() {
    let registry = Registry::new();
    let a = registry.get_or_create("pool", 3).unwrap();
    let b = registry.get_or_create(alloc::string::String::from("pool"), 3).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let error = registry.get_or_create("pool", 4).unwrap_err();
    assert_eq!(error, LimitError::SizeMismatch { name: "pool".into(), existing: 3, requested: 4 });
    assert_eq!(
        alloc::format!("{error}"),
        "the limit \"pool\" exists with max_concurrent = 3; it cannot also have max_concurrent = 4"
    );
    assert_eq!(registry.get_or_create("other", 0).unwrap_err(), LimitError::ZeroPermits);
    assert_eq!(registry.len(), 1);
    assert!(registry.get("other").is_none());
    assert!(Arc::ptr_eq(&registry.get("pool").unwrap(), &a));
}

/// Writes what it is given, and asks the registry for a limit on every write: legal user
/// code (a `fmt::Write` of the caller's), which would spin for ever if the registry's
/// `Debug` wrote under its own lock.
#[cfg(feature = "std")]
struct ReentrantWriter<'a> {
    registry: &'a Registry,
    text: alloc::string::String,
}

#[cfg(feature = "std")]
impl core::fmt::Write for ReentrantWriter<'_> {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let _ = self.registry.get("pool");
        self.text.push_str(text);
        Ok(())
    }
}

#[cfg(feature = "std")]
#[test]
fn a_registry_prints_itself_outside_its_locks() {
    let registry = Arc::new(Registry::new());
    registry.get_or_create("pool", 3).unwrap();
    // On a thread of its own: a regression spins for ever instead of failing.
    let (done, printed) = std::sync::mpsc::channel();
    let shared = registry.clone();
    std::thread::spawn(move || {
        let mut writer = ReentrantWriter { registry: &shared, text: alloc::string::String::new() };
        core::fmt::write(&mut writer, format_args!("{shared:?}")).unwrap();
        done.send(writer.text).unwrap();
    });
    let printed = printed.recv_timeout(Duration::from_secs(30));
    assert_eq!(printed.as_deref(), Ok(r#"{"pool": 3}"#), "the registry spun on its own lock");
}

#[cfg(feature = "std")]
#[test]
fn registry_is_thread_safe() {
    let registry = Arc::new(Registry::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let registry = registry.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| registry.get_or_create(alloc::format!("limit-{}", i % 10), 2).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<Arc<Semaphore>>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(registry.len(), 10);
    for per_thread in &results {
        for (i, semaphore) in per_thread.iter().enumerate() {
            let name = alloc::format!("limit-{}", i % 10);
            assert!(Arc::ptr_eq(semaphore, &registry.get(&name).unwrap()));
        }
    }
}

#[test]
fn fixed_registry_needs_no_allocation_and_reports_when_full() {
    let registry: FixedRegistry<2> = FixedRegistry::new();
    let a = registry.get_or_create("a", 2).unwrap();
    assert!(core::ptr::eq(a, registry.get_or_create("a", 2).unwrap()));
    assert_eq!(a.available_permits(), 2);
    assert_eq!(
        registry.get_or_create("a", 1).unwrap_err(),
        LimitError::SizeMismatch { name: "a".into(), existing: 2, requested: 1 }
    );
    registry.get_or_create("b", 1).unwrap();
    let full = registry.get_or_create("c", 1).unwrap_err();
    assert_eq!(full, LimitError::RegistryFull { name: "c".into(), capacity: 2 });
    assert_eq!(
        alloc::format!("{full}"),
        "cannot add the limit \"c\": the registry is full (2 limits)"
    );
    assert!(registry.get("c").is_none());
    assert_eq!(registry.get_or_create("d", 0).unwrap_err(), LimitError::ZeroPermits);
}

#[test]
fn errors_explain_themselves() {
    assert_eq!(
        alloc::format!("{}", LimitError::ZeroPermits),
        "max_concurrent must be at least 1, got 0 (it would admit nothing)"
    );
    assert_eq!(alloc::format!("{}", AcquireError::Closed), "the semaphore is closed");
    let _: &dyn core::error::Error = &AcquireError::WaitElapsed;
}

/// Wakers that panic or re-enter: the semaphore's accounting and its list survive them.
mod hostile;

/// Every type prints something a person can read in a log or a failed assertion.
#[test]
fn debug_output_says_what_each_thing_is() {
    let semaphore = Arc::new(Semaphore::new(1).unwrap());
    let permit = semaphore.try_acquire().unwrap();
    assert_eq!(alloc::format!("{permit:?}"), "Permit { .. }");
    let mut waiter = Task::new(semaphore.acquire());
    assert_eq!(alloc::format!("{:?}", waiter.future), "Acquire { queued: false }");
    assert!(waiter.poll().is_pending());
    assert_eq!(alloc::format!("{:?}", waiter.future), "Acquire { queued: true }");
    let mut owned = Task::new(semaphore.clone().acquire_owned());
    assert!(owned.poll().is_pending());
    assert_eq!(alloc::format!("{:?}", owned.future), "AcquireOwned { queued: true }");
    let printed = alloc::format!("{semaphore:?}");
    assert!(printed.starts_with("Semaphore { stats: SemaphoreStats { capacity: 1,"), "{printed}");
    assert!(printed.contains("waiting: 2"), "{printed}");
    drop((permit, waiter, owned));
    let owned = semaphore.clone().try_acquire_owned().unwrap();
    assert_eq!(alloc::format!("{owned:?}"), "OwnedPermit { .. }");
}

/// The uncontended paths take no lock: acquiring and releasing a free permit (borrowed or
/// owned, waiting or not) are compare-exchanges on the state word only.
#[test]
fn uncontended_acquire_and_release_take_no_lock() {
    let semaphore = Arc::new(Semaphore::new(2).unwrap());
    let before = crate::sync::locks_taken();
    for _ in 0..10 {
        let a = semaphore.try_acquire().unwrap();
        let b = ready(Task::new(semaphore.acquire()).poll()).unwrap();
        drop((a, b));
        let owned = semaphore.clone().try_acquire_owned().unwrap();
        drop(owned);
        semaphore.add_permits(0).unwrap();
    }
    assert_eq!(crate::sync::locks_taken() - before, 0);
    assert_eq!(semaphore.available_permits(), 2);
}
