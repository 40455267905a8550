//! The owned face of the semaphore: [`Semaphore::acquire_owned`] and
//! [`Semaphore::try_acquire_owned`] on an `Arc<Semaphore>`, whose future and permit own
//! an `Arc` of it and so are `'static` (they can move into a spawned task).
//!
//! The waiting itself is the semaphore's (see `semaphore.rs`); the one rule this face
//! adds is that the future never lets go of its `Arc` while its node may be linked: the
//! `Arc` is borrowed for each poll and taken only once the future has completed.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use super::queue::Waiter;
use super::semaphore::{AcquireError, Semaphore};

impl Semaphore {
    /// [`acquire`](Semaphore::acquire) for a shared semaphore: the permit owns an
    /// `Arc` of it, so it can move into a spawned task.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kompoz::limit::Semaphore;
    ///
    /// let semaphore = Arc::new(Semaphore::new(1)?);
    /// let permit = futures::executor::block_on(semaphore.clone().acquire_owned())?;
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(semaphore.available_permits(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        AcquireOwned { semaphore: Some(self), waiter: Waiter::new(), queued: false }
    }

    /// [`try_acquire`](Semaphore::try_acquire) for a shared semaphore.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kompoz::limit::{AcquireError, Semaphore};
    ///
    /// let semaphore = Arc::new(Semaphore::new(1)?);
    /// let permit = semaphore.clone().try_acquire_owned()?;
    /// assert_eq!(semaphore.clone().try_acquire_owned().unwrap_err(), AcquireError::NoPermits);
    /// drop(permit);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedPermit, AcquireError> {
        self.try_acquire().map(core::mem::forget)?;
        Ok(OwnedPermit { semaphore: self })
    }
}

/// A permit that owns an `Arc` of its [`Semaphore`]; returned to it when dropped.
/// It is `'static`, so it can move into a spawned task or another thread.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::limit::Semaphore;
///
/// let semaphore = Arc::new(Semaphore::new(1)?);
/// let permit = semaphore.clone().try_acquire_owned()?;
/// std::thread::spawn(move || drop(permit)).join().unwrap();
/// assert_eq!(semaphore.available_permits(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedPermit {
    semaphore: Arc<Semaphore>,
}

impl OwnedPermit {
    /// The semaphore this permit belongs to.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let semaphore = Arc::new(kompoz::limit::Semaphore::new(1)?);
    /// let permit = semaphore.clone().try_acquire_owned()?;
    /// assert!(Arc::ptr_eq(permit.semaphore(), &semaphore));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.semaphore.release(1);
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}

/// The future of [`Semaphore::acquire_owned`]; `!Unpin`, like [`Acquire`](super::Acquire). It owns an
/// `Arc` of the semaphore until it completes, so it can be stored or spawned freely.
///
/// ```
/// use std::sync::Arc;
/// use kompoz::limit::Semaphore;
///
/// let semaphore = Arc::new(Semaphore::new(1)?);
/// let held = semaphore.clone().try_acquire_owned()?;
/// let waiter = std::thread::spawn({
///     let acquire = semaphore.clone().acquire_owned();
///     move || futures::executor::block_on(acquire).map(drop)
/// });
/// drop(held);
/// assert_eq!(waiter.join().unwrap(), Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned {
    /// `None` once the future has completed, never before: while the node may be
    /// linked, `Drop` needs the semaphore to unlink it.
    semaphore: Option<Arc<Semaphore>>,
    waiter: Waiter,
    queued: bool,
}

impl Future for AcquireOwned {
    type Output = Result<OwnedPermit, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: as for `Acquire`: `waiter` is never moved, and `Drop` unlinks it.
        let this = unsafe { self.get_unchecked_mut() };
        // Borrowed, not taken, for the poll: if a waker panics during it, the future
        // still has its semaphore, so its `Drop` can unlink a node that is still
        // linked. (Taking the `Arc` out here once freed a linked node.)
        let Some(semaphore) = this.semaphore.as_deref() else {
            // Polled after it completed: it has nothing more to give.
            return Poll::Pending;
        };
        let result = ready!(semaphore.poll_acquire(&this.waiter, &mut this.queued, cx));
        // Ready: the node is no longer queued, so `Drop` no longer needs the semaphore.
        let semaphore = this.semaphore.take();
        Poll::Ready(result.map(|()| OwnedPermit {
            semaphore: semaphore.expect("a pending future has its semaphore"),
        }))
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        if let (true, Some(semaphore)) = (self.queued, &self.semaphore) {
            semaphore.cancel_waiter(&self.waiter);
        }
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned").field("queued", &self.queued).finish()
    }
}
