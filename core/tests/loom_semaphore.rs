//! loom models of the semaphore: every interleaving of a few threads (up to a bounded
//! number of preemptions) is explored, and each model asserts a property that must hold in
//! all of them.
//!
//! Run them, scoped to the core (loom replaces its atomics and spin lock, see `src/sync.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p kompoz --release --test loom_semaphore
//! ```
//!
//! Without `LOOM_MAX_PREEMPTIONS` the models bound preemptions to 2 themselves, so that
//! each finishes in seconds (all six take about half a second together at 2, 3.5 s at 3).
//! A lost wake-up shows up as loom's "deadlock" failure: every thread is parked and nobody
//! is left to wake them. Under loom the core's spin lock is loom's mutex (see
//! `src/sync.rs`): loom's unfair schedules of a real spin lock would otherwise exceed its
//! branch limit with three contenders.
#![cfg(loom)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use kompoz::limit::{AcquireError, Semaphore};
use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

// The semaphore lives in a std `Arc`: the owned permits need one, and loom still sees every
// access to the semaphore's own atomics and lock.

/// Runs `f` under loom with at most two preemptions unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise, and prints how many interleavings it explored (see them with `--nocapture`).
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    let explored = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = explored.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let explored = explored.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("loom: {explored} interleavings explored");
}

/// A waker that counts its wake-ups (the count is a loom atomic, so loom sees it).
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

/// Polls `future` once with `waker`.
fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// Permits are conserved: three tasks compete for one permit (each acquires, holds,
/// releases); at no point do two hold it, nobody hangs, and afterwards the permit is back,
/// nobody is queued and every acquisition was counted.
#[test]
fn permits_are_conserved() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let holders = Arc::new(AtomicUsize::new(0));
        let task = {
            let semaphore = semaphore.clone();
            let holders = holders.clone();
            move || {
                let permit = block_on(semaphore.acquire()).expect("never closed");
                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders of one permit");
                holders.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
        };
        let a = thread::spawn(task.clone());
        let b = thread::spawn(task.clone());
        task();
        a.join().unwrap();
        b.join().unwrap();

        let stats = semaphore.stats();
        assert_eq!(
            (stats.available, stats.in_flight, stats.waiting, stats.total_acquired),
            (1, 0, 0, 3),
            "{stats:?}"
        );
        assert_eq!(semaphore.try_acquire().map(drop), Ok(()));
    });
}

/// Permits are conserved across `add_permits` and `try_acquire`: one task waits for a
/// permit that another adds, while a third tries to take one without waiting. Exactly
/// the permits that exist are handed out, and all come back.
#[test]
fn added_permits_are_conserved() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(0).unwrap());
        let waiter = {
            let semaphore = semaphore.clone();
            thread::spawn(move || {
                let permit = block_on(semaphore.clone().acquire_owned()).expect("never closed");
                drop(permit);
            })
        };
        let adder = {
            let semaphore = semaphore.clone();
            thread::spawn(move || semaphore.add_permits(1).unwrap())
        };
        // Barging: may win the added permit only if the waiter is not queued yet.
        let took = match semaphore.try_acquire() {
            Ok(permit) => {
                drop(permit);
                1
            }
            Err(error) => {
                assert_eq!(error, AcquireError::NoPermits);
                0
            }
        };
        adder.join().unwrap();
        waiter.join().unwrap();

        let stats = semaphore.stats();
        assert_eq!(
            (stats.capacity, stats.available, stats.in_flight, stats.waiting),
            (1, 1, 0, 0),
            "{stats:?}"
        );
        assert_eq!(stats.total_acquired, 1 + took);
        assert_eq!(stats.total_rejected, 1 - took);
    });
}

/// A released permit goes to the oldest waiter: with A queued first, B arriving
/// concurrently with the release, and a third task trying to barge with `try_acquire`,
/// the permit always lands with A, and B gets it only after A gives it back.
#[test]
fn a_released_permit_goes_to_the_oldest_waiter() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let held = semaphore.clone().try_acquire_owned().unwrap();
        let (a_wakes, a_waker) = counting_waker();
        let mut a = Box::pin(semaphore.clone().acquire_owned());
        assert!(poll_once(&mut a, &a_waker).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let late = {
            let semaphore = semaphore.clone();
            thread::spawn(move || {
                let (_, waker) = counting_waker();
                let mut b = Box::pin(semaphore.acquire_owned());
                // Whether or not the release happened yet, B is behind A.
                assert!(poll_once(&mut b, &waker).is_pending(), "B overtook A");
                b
            })
        };
        assert_eq!(semaphore.try_acquire().map(drop), Err(AcquireError::NoPermits), "barged");
        releaser.join().unwrap();
        let mut b = late.join().unwrap();

        assert_eq!(a_wakes.0.load(Ordering::SeqCst), 1, "A is woken exactly once");
        let (b_wakes, b_waker) = counting_waker();
        assert!(poll_once(&mut b, &b_waker).is_pending(), "B got A's permit");
        let a_permit = match poll_once(&mut a, &a_waker) {
            Poll::Ready(Ok(permit)) => permit,
            other => panic!("A was not granted the released permit: {other:?}"),
        };
        drop(a_permit);
        assert_eq!(b_wakes.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll_once(&mut b, &b_waker), Poll::Ready(Ok(_))));
        assert_eq!(semaphore.available_permits(), 1);
    });
}

/// A waiter cancelled at the moment it is woken does not lose the wake-up for the next
/// waiter: A and B are queued; the permit is released while A's future is dropped. If the
/// permit reached A first, dropping A must pass it on to B. Either way B is woken exactly
/// once and its next poll has the permit.
///
/// (B is polled again only after both threads finish, which checks the hand-off itself;
/// the wake-up count checks that B was woken for it.)
#[test]
fn a_waiter_cancelled_as_it_is_woken_passes_the_permit_on() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let held = semaphore.clone().try_acquire_owned().unwrap();
        let (a_wakes, a_waker) = counting_waker();
        let (b_wakes, b_waker) = counting_waker();
        let mut a = Box::pin(semaphore.clone().acquire_owned());
        let mut b = Box::pin(semaphore.clone().acquire_owned());
        assert!(poll_once(&mut a, &a_waker).is_pending());
        assert!(poll_once(&mut b, &b_waker).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let canceller = thread::spawn(move || drop(a));
        releaser.join().unwrap();
        canceller.join().unwrap();

        assert!(a_wakes.0.load(Ordering::SeqCst) <= 1);
        assert_eq!(b_wakes.0.load(Ordering::SeqCst), 1, "B's wake-up was lost");
        let stats = semaphore.stats();
        assert_eq!((stats.available, stats.in_flight, stats.waiting), (0, 1, 0), "{stats:?}");
        let permit = match poll_once(&mut b, &b_waker) {
            Poll::Ready(Ok(permit)) => permit,
            other => panic!("B does not have the permit: {other:?}"),
        };
        assert_eq!(semaphore.stats().total_acquired, 2);
        drop(permit);
        assert_eq!(semaphore.available_permits(), 1);
    });
}

/// `close()` racing with `acquire` and with a release: the waiter either gets the
/// released permit or sees `Closed` and never hangs; later acquisitions fail, the counters
/// add up, and the permit comes back.
#[test]
fn close_racing_with_acquire() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let held = semaphore.clone().try_acquire_owned().unwrap();
        let acquirer = {
            let semaphore = semaphore.clone();
            thread::spawn(move || match block_on(semaphore.acquire()) {
                Ok(permit) => {
                    drop(permit);
                    true
                }
                Err(error) => {
                    assert_eq!(error, AcquireError::Closed);
                    false
                }
            })
        };
        let closer = {
            let semaphore = semaphore.clone();
            thread::spawn(move || semaphore.close())
        };
        drop(held);
        closer.join().unwrap();
        let acquired = acquirer.join().unwrap();

        assert_eq!(semaphore.try_acquire().map(drop), Err(AcquireError::Closed));
        let stats = semaphore.stats();
        assert!(stats.closed);
        assert_eq!((stats.available, stats.in_flight, stats.waiting), (1, 0, 0), "{stats:?}");
        assert_eq!(stats.total_acquired, 1 + u64::from(acquired));
        // The late try_acquire is a rejection too.
        assert_eq!(stats.total_rejected, 1 + u64::from(!acquired));
    });
}

/// `close()` racing with a queued waiter and a second arrival: both end with `Closed`
/// (the permit stays held), each is woken, and the queue ends empty.
#[test]
fn close_wakes_every_waiter_exactly_once() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let held = semaphore.clone().try_acquire_owned().unwrap();
        let (a_wakes, a_waker) = counting_waker();
        let mut a = Box::pin(semaphore.clone().acquire_owned());
        assert!(poll_once(&mut a, &a_waker).is_pending());

        let late = {
            let semaphore = semaphore.clone();
            thread::spawn(move || block_on(semaphore.acquire_owned()).map(drop))
        };
        let closer = {
            let semaphore = semaphore.clone();
            thread::spawn(move || semaphore.close())
        };
        closer.join().unwrap();
        assert_eq!(late.join().unwrap(), Err(AcquireError::Closed));
        assert_eq!(a_wakes.0.load(Ordering::SeqCst), 1, "the queued waiter is woken once");
        assert!(matches!(poll_once(&mut a, &a_waker), Poll::Ready(Err(AcquireError::Closed))));

        let stats = semaphore.stats();
        assert_eq!((stats.available, stats.in_flight, stats.waiting), (0, 1, 0), "{stats:?}");
        assert_eq!((stats.total_acquired, stats.total_rejected), (1, 2), "{stats:?}");
        drop(held);
        assert_eq!(semaphore.available_permits(), 1);
    });
}

/// `close()` racing the cancellation of the only queued waiter. Whichever comes first,
/// the semaphore ends closed (a cancellation that empties the list clears only `QUEUED`,
/// even when it lands between `close`'s `fetch_or` and its lock), nobody is left queued,
/// and the held permit still comes back.
///
/// Kills two mutants that no sequential test can: deleting `cancel_waiter`'s arm for a
/// node `close` already settled (the cancel would then unlink a node that is not linked,
/// and the list's length would wrap), and clearing the wrong bits in its `fetch_and`
/// (which would reopen the semaphore).
#[test]
fn close_racing_the_cancellation_of_a_queued_waiter() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let held = semaphore.clone().try_acquire_owned().unwrap();
        let (wakes, waker) = counting_waker();
        let mut queued = Box::pin(semaphore.clone().acquire_owned());
        assert!(poll_once(&mut queued, &waker).is_pending());

        let canceller = thread::spawn(move || drop(queued));
        let closer = {
            let semaphore = semaphore.clone();
            thread::spawn(move || semaphore.close())
        };
        canceller.join().unwrap();
        closer.join().unwrap();

        assert!(semaphore.is_closed(), "a cancellation reopened the semaphore");
        let stats = semaphore.stats();
        assert_eq!((stats.available, stats.in_flight, stats.waiting), (0, 1, 0), "{stats:?}");
        assert!(wakes.0.load(Ordering::SeqCst) <= 1);
        assert_eq!(semaphore.try_acquire().map(drop), Err(AcquireError::Closed));
        drop(held);
        assert_eq!(semaphore.available_permits(), 1);
        assert!(semaphore.is_closed());
    });
}

/// A queued waiter re-polled with a different waker (the stored waker is swapped in two
/// short critical sections, cloned and dropped outside them) while a permit is released:
/// if the re-poll says `Pending`, the release must have woken the new waker; otherwise
/// the re-poll took the permit itself. Either way the permit is not lost.
#[test]
fn a_repoll_with_a_new_waker_racing_a_release_loses_no_wake_up() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1).unwrap());
        let held = semaphore.clone().try_acquire_owned().unwrap();
        let (old_wakes, old_waker) = counting_waker();
        let mut queued = Box::pin(semaphore.clone().acquire_owned());
        assert!(poll_once(&mut queued, &old_waker).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let (new_wakes, new_waker) = counting_waker();
        let permit = match poll_once(&mut queued, &new_waker) {
            Poll::Ready(Ok(permit)) => Some(permit),
            Poll::Ready(Err(error)) => panic!("{error}"),
            Poll::Pending => None,
        };
        releaser.join().unwrap();

        let woken = (old_wakes.0.load(Ordering::SeqCst), new_wakes.0.load(Ordering::SeqCst));
        let permit = match permit {
            Some(permit) => permit,
            None => {
                assert_eq!(
                    woken,
                    (0, 1),
                    "Pending, so the release came later: it woke the new waker"
                );
                match poll_once(&mut queued, &new_waker) {
                    Poll::Ready(Ok(permit)) => permit,
                    other => panic!("woken without the permit: {other:?}"),
                }
            }
        };
        assert_eq!(woken.0 + woken.1, 1, "woken exactly once: {woken:?}");
        drop(permit);
        assert_eq!(semaphore.available_permits(), 1);
    });
}
