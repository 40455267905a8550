//! The semaphore against hostile wakers: wakers whose clone, wake or drop panics, and
//! wakers that re-enter the semaphore (acquire, release, close, cancel) from their own
//! clone, wake or drop. Every hostile waker also asserts that no kompoz lock is held when
//! it runs (see `crate::test_wakers`), so user code under the lock fails deterministically.
//!
//! After each, the accounting is whole: every permit is somewhere (free, held, or handed
//! to a waiter that will find it), no waiter is left queued that nobody will wake, and no
//! waker handle is leaked.

use std::sync::Mutex;

use super::*;
use crate::test_wakers::{Hostile, expect_panic};

/// A future polled by hand with a hostile waker of its own.
struct Waiting<F: Future> {
    future: Pin<Box<F>>,
    hostile: Arc<Hostile>,
    waker: Waker,
}

impl<F: Future> Waiting<F> {
    fn new(future: F, hostile: Hostile) -> Self {
        let (hostile, waker) = hostile.waker();
        Waiting { future: Box::pin(future), hostile, waker }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        self.future.as_mut().poll(&mut Context::from_waker(&self.waker))
    }

    fn poll_with(&mut self, waker: &Waker) -> Poll<F::Output> {
        self.future.as_mut().poll(&mut Context::from_waker(waker))
    }
}

/// `(capacity, available, in_flight, waiting)`.
fn counts(semaphore: &Semaphore) -> (usize, usize, usize, usize) {
    let stats = semaphore.stats();
    (stats.capacity, stats.available, stats.in_flight, stats.waiting)
}

/// Issue 9, item 1: a re-poll swaps the stored waker; dropping the old one panics. The
/// owned future must still know its semaphore, so that dropping it unlinks its node (the
/// old code lost its `Arc` in the unwind and freed a node that was still linked).
#[test]
fn a_waker_whose_drop_panics_on_a_repoll_leaves_an_owned_waiter_cancellable() {
    let semaphore = Arc::new(Semaphore::new(0).unwrap());
    let mut waiter = Waiting::new(semaphore.clone().acquire_owned(), Hostile::new());
    assert!(waiter.poll().is_pending());
    // The list now holds the only other handle; its drop panics.
    waiter.hostile.panic_on_drop(true);
    expect_panic(|| waiter.poll_with(Waker::noop()));
    waiter.hostile.panic_on_drop(false);
    assert_eq!(waiter.hostile.live(), 1, "the list let go of the old waker");
    assert_eq!(counts(&semaphore), (0, 0, 0, 1), "still queued, with the new waker");

    let Waiting { future, hostile, waker } = waiter;
    drop((future, waker));
    assert_eq!(hostile.live(), 0);
    assert_eq!(counts(&semaphore), (0, 0, 0, 0), "dropping the future unlinked it");
    semaphore.add_permits(1).unwrap();
    assert_eq!(counts(&semaphore), (1, 1, 0, 0), "the permit went to the count, not a ghost");
}

/// The same for the borrowing future, and the future still works afterwards: it is woken
/// through the waker it was re-polled with.
#[test]
fn a_waker_whose_drop_panics_on_a_repoll_leaves_the_waiter_queued_with_the_new_waker() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiter = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(waiter.poll().is_pending());
    waiter.hostile.panic_on_drop(true);
    let (second, second_waker) = Hostile::new().waker();
    expect_panic(|| waiter.poll_with(&second_waker));
    waiter.hostile.panic_on_drop(false);
    semaphore.add_permits(1).unwrap();
    assert_eq!((waiter.hostile.wakes(), second.wakes()), (0, 1));
    drop(ready(waiter.poll()).unwrap());
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
}

/// A waker whose clone panics on the first poll: nothing is queued, nothing is taken.
#[test]
fn a_waker_whose_clone_panics_on_the_first_poll_queues_nothing() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiter = Waiting::new(semaphore.acquire(), Hostile::new());
    waiter.hostile.panic_on_clone(true);
    expect_panic(|| waiter.poll());
    assert_eq!(counts(&semaphore), (0, 0, 0, 0));
    drop(waiter);
    semaphore.add_permits(1).unwrap();
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
}

/// A waker whose clone panics on a re-poll: the waiter keeps its place and its old waker.
#[test]
fn a_waker_whose_clone_panics_on_a_repoll_keeps_the_old_waker() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiter = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(waiter.poll().is_pending());
    let (second, second_waker) = Hostile::new().waker();
    second.panic_on_clone(true);
    expect_panic(|| waiter.poll_with(&second_waker));
    assert_eq!(counts(&semaphore), (0, 0, 0, 1));
    semaphore.add_permits(1).unwrap();
    assert_eq!((waiter.hostile.wakes(), second.wakes()), (1, 0));
    drop(ready(waiter.poll()).unwrap());
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
}

/// Dropping a queued waiter drops its stored waker; if that panics, the waiter is still
/// gone from the queue and the semaphore is still usable.
#[test]
fn a_waker_whose_drop_panics_when_its_waiter_is_cancelled_leaves_the_queue_whole() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut first = Waiting::new(semaphore.acquire(), Hostile::new());
    let mut second = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    let Waiting { future, hostile, waker } = first;
    drop(waker);
    hostile.panic_on_drop(true);
    expect_panic(move || drop(future));
    assert_eq!(hostile.live(), 0);
    assert_eq!(counts(&semaphore), (0, 0, 0, 1));
    semaphore.add_permits(2).unwrap();
    assert_eq!(second.hostile.wakes(), 1);
    drop(ready(second.poll()).unwrap());
    assert_eq!(counts(&semaphore), (2, 2, 0, 0));
}

/// Issue 9, item 3: 20 queued waiters, the first one's wake panics; `add_permits(40)`
/// still hands 20 permits to the waiters and adds 20 to the count, and wakes everyone.
#[test]
fn a_panicking_wake_does_not_lose_added_permits() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiters: Vec<_> =
        (0..20).map(|_| Waiting::new(semaphore.acquire(), Hostile::new())).collect();
    for waiter in waiters.iter_mut() {
        assert!(waiter.poll().is_pending());
    }
    waiters[0].hostile.panic_on_wake(true);
    expect_panic(|| semaphore.add_permits(40));
    assert_eq!(counts(&semaphore), (40, 20, 20, 0));
    for waiter in &waiters {
        assert_eq!((waiter.hostile.wakes(), waiter.hostile.live()), (1, 1));
    }
    let permits: Vec<_> = waiters.iter_mut().map(|waiter| ready(waiter.poll()).unwrap()).collect();
    drop(permits);
    assert_eq!(counts(&semaphore), (40, 40, 0, 0));
}

/// Issue 9, item 3: the same with `close()`: no waiter is left queued on a closed
/// semaphore, and every one of them is woken and sees `Closed`.
#[test]
fn a_panicking_wake_during_close_leaves_no_waiter_queued() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiters: Vec<_> =
        (0..20).map(|_| Waiting::new(semaphore.acquire(), Hostile::new())).collect();
    for waiter in waiters.iter_mut() {
        assert!(waiter.poll().is_pending());
    }
    waiters[0].hostile.panic_on_wake(true);
    expect_panic(|| semaphore.close());
    let stats = semaphore.stats();
    assert_eq!((stats.waiting, stats.total_rejected, stats.closed), (0, 20, true));
    for waiter in waiters.iter_mut() {
        assert_eq!(waiter.hostile.wakes(), 1);
        assert_eq!(ready(waiter.poll()).unwrap_err(), AcquireError::Closed);
    }
}

/// A permit dropped while the next waiter's wake panics: the permit was still handed over.
#[test]
fn a_panicking_wake_when_a_permit_is_returned_still_hands_it_over() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut first = Waiting::new(semaphore.acquire(), Hostile::new());
    let mut second = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    first.hostile.panic_on_wake(true);
    expect_panic(move || drop(held));
    first.hostile.panic_on_wake(false);
    assert_eq!(counts(&semaphore), (1, 0, 1, 1));
    let permit = ready(first.poll()).unwrap();
    drop(permit);
    assert_eq!(second.hostile.wakes(), 1);
    drop(ready(second.poll()).unwrap());
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
}

/// A granted waiter is dropped before it takes its permit; the permit goes on to the next
/// waiter, whose wake panics: the next waiter has it all the same.
#[test]
fn a_panicking_wake_when_a_granted_waiter_passes_its_permit_on() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut granted = Waiting::new(semaphore.acquire(), Hostile::new());
    let mut next = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(granted.poll().is_pending());
    assert!(next.poll().is_pending());
    drop(held);
    next.hostile.panic_on_wake(true);
    expect_panic(move || drop(granted));
    next.hostile.panic_on_wake(false);
    assert_eq!(counts(&semaphore), (1, 0, 1, 0));
    assert_eq!(next.hostile.wakes(), 1);
    drop(ready(next.poll()).unwrap());
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
    assert_eq!(semaphore.stats().total_acquired, 2, "the abandoned hand-over is not counted");
}

/// Issue 9, item 2: a waker that owns a permit of the same semaphore releases it when its
/// last handle is dropped. The semaphore drops stored wakers on a re-poll (swap) and on a
/// cancellation: outside its lock, or this would spin forever on the lock its own thread
/// holds (the hostile waker's check turns that into a failure instead).
#[test]
fn a_waker_that_owns_a_permit_of_the_same_semaphore_may_be_dropped_by_it() {
    let semaphore = Arc::new(Semaphore::new(2).unwrap());
    // Swapped out on a re-poll: its permit goes to the waiter itself.
    let _other = semaphore.clone().try_acquire_owned().unwrap();
    let owned = Mutex::new(Some(semaphore.clone().try_acquire_owned().unwrap()));
    let mut waiter = Waiting::new(
        semaphore.clone().acquire_owned(),
        Hostile::new().on_drop(move || drop(owned.lock().unwrap().take())),
    );
    assert!(waiter.poll().is_pending());
    // A re-poll with another waker swaps the stored one out and drops it (after the
    // lock): its permit comes back and goes to this very waiter, which the same poll
    // then finds granted.
    let (plain, plain_waker) = Hostile::new().waker();
    let permit = ready(waiter.poll_with(&plain_waker)).unwrap();
    assert_eq!(plain.wakes(), 1, "granted the released permit, and woken for it");
    drop(permit);
    assert_eq!(counts(&semaphore), (2, 1, 1, 0));

    // Dropped when its waiter is cancelled.
    let owned = Mutex::new(Some(semaphore.clone().try_acquire_owned().unwrap()));
    let (hostile, waker) =
        Hostile::new().on_drop(move || drop(owned.lock().unwrap().take())).waker();
    let mut cancelled = Box::pin(semaphore.clone().acquire_owned());
    assert!(cancelled.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    assert_eq!(counts(&semaphore), (2, 0, 2, 1));
    drop(cancelled);
    assert_eq!(hostile.live(), 1);
    assert_eq!(counts(&semaphore), (2, 1, 1, 0), "the waker's permit came back");
    drop(waker);
}

/// A waker whose clone frees a permit: the permit comes back between the fast path and
/// the lock, so the poll takes it and the clone is not needed. Dropping that spare clone
/// panics: the permit the poll took must not be lost in the unwind.
#[test]
fn a_spare_waker_whose_drop_panics_does_not_lose_the_permit_just_taken() {
    let semaphore = Arc::new(Semaphore::new(1).unwrap());
    let held = Mutex::new(Some(semaphore.clone().try_acquire_owned().unwrap()));
    let mut waiter = Waiting::new(
        semaphore.clone().acquire_owned(),
        Hostile::new().on_clone(move || drop(held.lock().unwrap().take())),
    );
    waiter.hostile.panic_on_drop(true);
    expect_panic(|| waiter.poll());
    waiter.hostile.panic_on_drop(false);
    assert_eq!(waiter.hostile.live(), 1, "the spare clone was dropped");
    assert_eq!(counts(&semaphore), (1, 1, 0, 0), "the permit came back in the unwind");
    drop(ready(waiter.poll()).unwrap());

    // Without the panic the poll simply succeeds and drops the spare clone.
    let held = Mutex::new(Some(semaphore.clone().try_acquire_owned().unwrap()));
    let mut waiter = Waiting::new(
        semaphore.clone().acquire_owned(),
        Hostile::new().on_clone(move || drop(held.lock().unwrap().take())),
    );
    let permit = ready(waiter.poll()).unwrap();
    assert_eq!(waiter.hostile.live(), 1);
    assert_eq!(counts(&semaphore), (1, 0, 1, 0));
    drop(permit);
}

/// A wake that re-enters the semaphore: it tries to take a permit (there is none: it was
/// handed to the woken waiter), adds one, and takes and returns it.
#[test]
fn a_re_entrant_wake_may_acquire_and_release_on_the_same_semaphore() {
    let semaphore = Arc::new(Semaphore::new(1).unwrap());
    let held = semaphore.clone().try_acquire_owned().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (inner, log) = (semaphore.clone(), seen.clone());
    let mut waiter = Waiting::new(
        semaphore.acquire(),
        Hostile::new().on_wake(move || {
            let mut log = log.lock().unwrap();
            log.push(inner.try_acquire().map(drop));
            inner.add_permits(1).unwrap();
            log.push(inner.clone().try_acquire_owned().map(drop));
        }),
    );
    assert!(waiter.poll().is_pending());
    drop(held);
    assert_eq!(*seen.lock().unwrap(), [Err(AcquireError::NoPermits), Ok(())]);
    drop(ready(waiter.poll()).unwrap());
    assert_eq!(counts(&semaphore), (2, 2, 0, 0));
}

/// A wake that closes the semaphore while `add_permits` is still handing permits out:
/// the first batch keeps its permits, the waiters behind it see `Closed`, and the rest of
/// the added permits go to the count.
#[test]
fn a_wake_that_closes_the_semaphore_during_a_hand_out_loses_nothing() {
    let semaphore = Arc::new(Semaphore::new(0).unwrap());
    let inner = semaphore.clone();
    let mut waiters: Vec<_> = (0..20)
        .map(|i| {
            let inner = inner.clone();
            let hostile =
                if i == 0 { Hostile::new().on_wake(move || inner.close()) } else { Hostile::new() };
            Waiting::new(semaphore.acquire(), hostile)
        })
        .collect();
    for waiter in waiters.iter_mut() {
        assert!(waiter.poll().is_pending());
    }
    semaphore.add_permits(30).unwrap();
    let stats = semaphore.stats();
    assert_eq!((stats.capacity, stats.waiting, stats.closed), (30, 0, true));
    let outcomes: Vec<_> = waiters.iter_mut().map(|waiter| ready(waiter.poll())).collect();
    let granted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert!(waiters.iter().all(|waiter| waiter.hostile.wakes() == 1));
    assert!(outcomes[granted..].iter().all(|o| matches!(o, Err(AcquireError::Closed))));
    assert_eq!(semaphore.available_permits(), 30 - granted);
    assert!((1..20).contains(&granted), "some were granted before the close, not all");
    drop(outcomes);
    assert_eq!(semaphore.available_permits(), 30);
}

/// Issue 9, item 6, made deterministic: `close()` wakes in batches, outside its lock; a
/// wake in the first batch drops the last waiter still queued, so the queue empties
/// between `close`'s first batch and its next look. The semaphore must stay closed (a
/// cancellation that cleared more than its `QUEUED` flag would reopen it).
#[test]
fn a_wake_during_close_that_cancels_the_last_queued_waiter_keeps_it_closed() {
    let semaphore = Arc::new(Semaphore::new(0).unwrap());
    let last = Arc::new(Mutex::new(None));
    let slot = last.clone();
    let mut waiters: Vec<_> = (0..16)
        .map(|i| {
            let slot = slot.clone();
            let hostile = if i == 0 {
                Hostile::new().on_wake(move || drop(slot.lock().unwrap().take()))
            } else {
                Hostile::new()
            };
            Waiting::new(semaphore.clone().acquire_owned(), hostile)
        })
        .collect();
    for waiter in waiters.iter_mut() {
        assert!(waiter.poll().is_pending());
    }
    // The 17th waiter, behind a full batch: its owner is the first waiter's wake.
    let mut seventeenth = Box::pin(semaphore.clone().acquire_owned());
    assert!(seventeenth.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    *last.lock().unwrap() = Some(seventeenth);
    assert_eq!(semaphore.stats().waiting, 17);

    semaphore.close();
    assert!(last.lock().unwrap().is_none(), "the wake dropped the last waiter");
    assert!(semaphore.is_closed());
    assert_eq!(counts(&semaphore), (0, 0, 0, 0));
    assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::Closed);
    assert_eq!(ready(Task::new(semaphore.acquire()).poll()).unwrap_err(), AcquireError::Closed);
    for waiter in waiters.iter_mut() {
        assert_eq!(ready(waiter.poll()).unwrap_err(), AcquireError::Closed);
    }
    semaphore.add_permits(1).unwrap();
    assert_eq!(semaphore.available_permits(), 1);
    assert!(semaphore.is_closed());
}

/// An executor that polls inside `wake`: the woken future takes its permit from within
/// the wake, or is dropped from within it (passing the permit on).
#[test]
fn a_wake_that_polls_or_drops_its_own_future_inline() {
    type Slot = Arc<Mutex<Option<Pin<Box<AcquireOwned>>>>>;
    let semaphore = Arc::new(Semaphore::new(1).unwrap());
    let held = semaphore.clone().try_acquire_owned().unwrap();
    let polled: Slot = Arc::default();
    let dropped: Slot = Arc::default();
    let got = Arc::new(Mutex::new(None));
    let (slot, out) = (polled.clone(), got.clone());
    let (polling, polling_waker) = Hostile::new()
        .on_wake(move || {
            let mut future = slot.lock().unwrap().take().unwrap();
            let poll = future.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            *out.lock().unwrap() = Some(ready(poll).unwrap());
        })
        .waker();
    let slot = dropped.clone();
    let (dropping, dropping_waker) =
        Hostile::new().on_wake(move || drop(slot.lock().unwrap().take())).waker();
    let mut last = Waiting::new(semaphore.clone().acquire_owned(), Hostile::new());

    // Queue: the dropping one, the polling one, then `last`.
    for (slot, waker) in [(&dropped, &dropping_waker), (&polled, &polling_waker)] {
        let mut future = Box::pin(semaphore.clone().acquire_owned());
        assert!(future.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
        *slot.lock().unwrap() = Some(future);
    }
    assert!(last.poll().is_pending());
    drop(held);
    // The permit went to the dropping waiter, which passed it on to the polling one,
    // which took it from inside its wake.
    assert_eq!((dropping.wakes(), polling.wakes(), last.hostile.wakes()), (1, 1, 0));
    let permit = got.lock().unwrap().take().expect("the inline poll took the permit");
    assert_eq!(counts(&semaphore), (1, 0, 1, 1));
    drop(permit);
    drop(ready(last.poll()).unwrap());
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
    drop((dropping_waker, polling_waker));
    assert_eq!((dropping.live(), polling.live()), (0, 0));
}

/// With `std`, every panicking wake is caught so the others still run; the first panic is
/// resumed once the hand-out is complete. (Without `std` a second panic during the unwind
/// aborts, as any panic while panicking does.)
#[cfg(feature = "std")]
#[test]
fn several_panicking_wakes_still_complete_the_hand_out() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiters: Vec<_> =
        (0..20).map(|_| Waiting::new(semaphore.acquire(), Hostile::new())).collect();
    for waiter in waiters.iter_mut() {
        assert!(waiter.poll().is_pending());
    }
    for i in [0, 5, 17] {
        waiters[i].hostile.panic_on_wake(true);
    }
    expect_panic(|| semaphore.add_permits(25));
    assert_eq!(counts(&semaphore), (25, 5, 20, 0));
    assert!(waiters.iter().all(|waiter| waiter.hostile.wakes() == 1));
}

/// A task panics while it holds a permit; the permit is returned during the unwind, and
/// the next waiter's wake panics too. The permit still reaches that waiter, and the
/// task's own panic carries on (resuming the waker's would abort the process).
#[cfg(feature = "std")]
#[test]
fn a_permit_returned_during_an_unwind_tolerates_a_panicking_wake() {
    let semaphore = Semaphore::new(1).unwrap();
    let held = semaphore.try_acquire().unwrap();
    let mut next = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(next.poll().is_pending());
    next.hostile.panic_on_wake(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _permit = held;
        panic!("the guarded call failed");
    }));
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the guarded call failed"));
    next.hostile.panic_on_wake(false);
    assert_eq!(next.hostile.wakes(), 1);
    drop(ready(next.poll()).unwrap());
    assert_eq!(counts(&semaphore), (1, 1, 0, 0));
}

/// Re-polling a queued waiter with the waker it already stored (the common case: the same
/// task polls again) keeps the stored one: no clone, no drop, no swap.
#[test]
fn a_repoll_with_the_same_waker_clones_nothing() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut waiter = Waiting::new(semaphore.acquire(), Hostile::new());
    assert!(waiter.poll().is_pending());
    assert_eq!((waiter.hostile.clones(), waiter.hostile.live()), (1, 2));
    for _ in 0..3 {
        assert!(waiter.poll().is_pending());
    }
    assert_eq!((waiter.hostile.clones(), waiter.hostile.live()), (1, 2));
    semaphore.add_permits(1).unwrap();
    assert_eq!(waiter.hostile.wakes(), 1);
    drop(ready(waiter.poll()).unwrap());
}
