//! Issue 9, item 1, exactly as reported: a use-after-free from safe code in
//! `AcquireOwned`. Run it under miri too:
//!
//! ```text
//! cargo +nightly miri test -p kompoz --test semaphore_hostile_wakers
//! ```
//!
//! The old `AcquireOwned::poll` took its `Arc<Semaphore>` out of the future for the poll
//! and put it back only on `Pending`. A re-poll while queued swapped the stored waker
//! under the lock; when dropping the old waker panicked, the unwind left the future
//! without its `Arc`, so its `Drop` skipped unlinking the node, and the node was freed
//! while still linked: `add_permits` then wrote into freed memory.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use kompoz::limit::Semaphore;

/// A waker whose `Drop` panics once armed (so the test's own handle can be dropped first).
struct PanicsOnDrop(AtomicBool);

impl Wake for PanicsOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if self.0.load(Ordering::SeqCst) {
            panic!("a waker whose drop panics");
        }
    }
}

#[test]
fn a_waker_whose_drop_panics_on_a_repoll_cannot_free_a_linked_node() {
    let semaphore = Arc::new(Semaphore::new(0).unwrap());
    let mut future = Box::pin(semaphore.clone().acquire_owned());
    let hostile = Arc::new(PanicsOnDrop(AtomicBool::new(false)));
    let waker = Waker::from(hostile.clone());
    assert!(future.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    // The wait list now holds the last waker handle besides `hostile` itself; arm it and
    // let go of everything else, so the list's handle is the last one.
    drop(waker);
    hostile.0.store(true, Ordering::SeqCst);
    drop(hostile);

    let repoll = catch_unwind(AssertUnwindSafe(|| {
        future.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }));
    assert!(repoll.is_err(), "dropping the old waker panicked through the poll");
    drop(future);
    semaphore.add_permits(1).unwrap();

    let stats = semaphore.stats();
    assert_eq!((stats.available, stats.in_flight, stats.waiting), (1, 0, 0), "{stats:?}");
    assert!(semaphore.try_acquire().is_ok());
}
