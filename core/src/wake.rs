//! Waking tasks after a lock is released, so that no waker runs under a lock, and so that
//! a waker that panics stops neither the other wake-ups nor the caller's bookkeeping.
//!
//! Code that settles waiters under a lock (the semaphore's wait list, the manual clock's
//! timers) moves their wakers into a [`WakeBatch`] there, and wakes the batch once the
//! lock is released. The batch is bounded, so collecting wakers never allocates: long
//! hand-outs go in rounds (lock, settle at most [`BATCH`] waiters, unlock, wake them).
//!
//! A waker's `wake` is user code and may panic. The batch promises that every waker it
//! collected is woken (or at least dropped) whatever the others do:
//!
//! * with `std`, each wake runs inside `catch_unwind`; the first panic is kept, the other
//!   wakers are still woken, and the caller resumes the panic with
//!   [`resume_panic`](WakeBatch::resume_panic) once its own work is complete;
//! * without `std` there is no `catch_unwind`: a panicking wake unwinds (if the target
//!   unwinds at all; most embedded targets abort on panic) and the batch's `Drop` wakes
//!   the rest. Callers keep their remaining work in a guard whose `Drop` finishes it, so
//!   the accounting completes during the unwind too; a second panic during that unwind
//!   aborts, as Rust does for any panic while panicking.

use core::task::Waker;

/// How many wakers a batch holds: the most waiters settled in one round under a lock.
pub(crate) const BATCH: usize = 16;

/// Wakers collected under a lock, woken after it is released. See the module's docs.
#[derive(Debug, Default)]
pub(crate) struct WakeBatch {
    wakers: heapless::Deque<Waker, BATCH>,
    /// The first panic of a wake, resumed by `resume_panic`.
    #[cfg(feature = "std")]
    panic: Option<alloc::boxed::Box<dyn core::any::Any + Send + 'static>>,
}

impl WakeBatch {
    /// An empty batch.
    pub(crate) fn new() -> WakeBatch {
        WakeBatch::default()
    }

    /// Whether the batch has no room for another waker (end the round).
    pub(crate) fn is_full(&self) -> bool {
        self.wakers.is_full()
    }

    /// Adds a waker; the caller checks [`is_full`](WakeBatch::is_full) first. Moving a
    /// waker runs no user code, so this may be called under a lock.
    pub(crate) fn push(&mut self, waker: Waker) {
        let pushed = self.wakers.push_back(waker);
        debug_assert!(pushed.is_ok(), "the caller checks is_full first");
        // A full batch (a caller's bug) drops the extra waker here; the caller holds the
        // lock, so dropping it would run user code under it: forget it instead (a leak,
        // never a deadlock). Unreachable while callers check `is_full`.
        if let Err(waker) = pushed {
            core::mem::forget(waker);
        }
    }

    /// Wakes every collected waker, oldest first, and empties the batch. Call it with no
    /// lock held.
    pub(crate) fn wake_all(&mut self) {
        while let Some(waker) = self.wakers.pop_front() {
            #[cfg(feature = "std")]
            {
                let woken =
                    std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| waker.wake()));
                if let Err(panic) = woken {
                    self.panic.get_or_insert(panic);
                }
            }
            #[cfg(not(feature = "std"))]
            waker.wake();
        }
    }

    /// Resumes the first panic caught by [`wake_all`](WakeBatch::wake_all), if any: call
    /// it once the work the wake-ups belonged to is complete.
    ///
    /// If this thread is already unwinding (a permit dropped by a panicking task, whose
    /// release woke a waker that panicked too), the waker's panic is dropped instead:
    /// resuming it would be a panic while panicking, which aborts the process.
    pub(crate) fn resume_panic(&mut self) {
        #[cfg(feature = "std")]
        if let Some(panic) = self.panic.take() {
            if std::thread::panicking() {
                drop(panic);
            } else {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for WakeBatch {
    /// A collected waker is always woken, even if the batch is dropped by an unwind.
    fn drop(&mut self) {
        self.wake_all();
    }
}
