//! A fair, cancellation-safe async semaphore.
//!
//! # The algorithm
//!
//! The semaphore is one atomic state word, a wait list behind a short spin lock, and a
//! few counters. The state word holds the number of free permits (in units of `ONE`) and
//! two flags:
//!
//! * `QUEUED`: the wait list is not empty. While it is set the free count is zero, and
//!   a released permit goes to the oldest waiter rather than to the count, so nobody
//!   (neither `try_acquire` nor a newly arriving `acquire`) can barge ahead of a waiter.
//! * `CLOSED`: set once by `close`, never cleared. Every later acquisition fails.
//!
//! The paths:
//!
//! * **Take** (`try_acquire`, and the first thing `acquire` tries): a compare-exchange
//!   that takes one permit from the count if it is at least one and `CLOSED` is clear. No
//!   lock, no allocation.
//! * **Wait** (`acquire` when no permit is free): clone the task's waker, then under the
//!   lock re-read the state: if a permit came back meanwhile, give up the lock and retry
//!   the take (dropping the spare clone first); if closed, fail; otherwise set `QUEUED`
//!   and link the future's own node at the tail (see `queue.rs`).
//! * **Release** (dropping a permit, `add_permits`): while `QUEUED` is clear, add to the
//!   count with a compare-exchange. Otherwise, under the lock, grant permits to the
//!   oldest waiters (unlinking each and moving its waker into a bounded batch); when the
//!   list empties, clear `QUEUED` and add what is left to the count in the same atomic
//!   step. Wake the batch after the lock; repeat while permits and waiters remain.
//! * **Close**: set `CLOSED`, then under the lock settle every waiter as closed, in
//!   batches, waking each batch after the lock; clear `QUEUED` once the list is empty.
//! * **Cancel** (dropping a queued future): under the lock, unlink the node if it is
//!   still waiting; if a permit was granted to it but never taken, hand that permit on
//!   as a release would (no lost wake-up); if it was closed, there is nothing to do.
//!   Clear `QUEUED` if the list became empty. Clearing only that flag matters: `close`
//!   may have set `CLOSED` an instant before and not yet taken the lock.
//!
//! # Who may touch what
//!
//! * The state word: anyone, with atomic read-modify-writes. The count may be raised
//!   without the lock only while `QUEUED` is clear; `QUEUED` is set and cleared only
//!   under the lock, together with linking the first node or unlinking the last.
//! * The wait list and every linked node's links and waker: only under the lock.
//! * A node's outcome (`GRANTED`, `CLOSED`): written under the lock by whoever settles
//!   it, read by its owner without the lock.
//!
//! # Why it is sound
//!
//! Every node in the list is alive and pinned (`queue.rs`'s invariant, upheld by the
//! futures: they are `!Unpin`, their `Drop` unlinks a node that is still linked, and they
//! always keep what they need to reach the semaphore while queued). Permits are
//! conserved: each permit is at every moment in exactly one place (the count, a holder,
//! a granted node, or the hands of a release or cancel that is handing it out, which
//! finishes the hand-out whatever happens; see below).
//!
//! # User code: never under the lock, never half-way
//!
//! Wakers are user code: their clone, wake and drop may panic or re-enter the semaphore
//! (a waker that owns a permit releases it when dropped; an executor may poll, or drop,
//! the woken future from inside `wake`). So:
//!
//! * **None runs under the lock.** Wakers are cloned before it is taken; those removed
//!   from the list (settled, unlinked, replaced) are moved out and woken or dropped after
//!   it is released. A re-poll keeps the stored waker if it `will_wake` the same task,
//!   which calls no user code. The spin lock therefore never waits on its own thread.
//! * **None runs while a node's linkage or the counts are half-done.** Each critical
//!   section leaves the list and the counts consistent before any user code runs, and a
//!   future records only states the semaphore has committed: if a waker panics mid-poll,
//!   the future is still queued (with its old or new waker) or not queued at all, and its
//!   `Drop` does the right thing. A spare waker is dropped before retrying, never while
//!   holding a permit that nobody would return.
//! * **Hand-outs finish.** `release`, `add_permits` and `close` settle waiters in rounds
//!   (`crate::wake`): a round under the lock, its wake-ups after. The rounds always run
//!   to the end, whatever a wake does: with `std` each wake's panic is caught and the first
//!   one resumed once the accounting is complete; without `std` a guard's `Drop` runs the
//!   remaining rounds during the unwind (a second panic then aborts). So a panicking wake
//!   loses no permit and leaves no waiter queued on a closed semaphore.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use core::fmt;
use core::future::{Future, IntoFuture};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::LimitError;
use super::queue::{CLOSED as WAITER_CLOSED, GRANTED, WaitList, Waiter};
use crate::combinator::Rejection;
use crate::events::{self, Event, EventKind, Listener, Primitive, Source};
use crate::sync::{AtomicU64, AtomicUsize, Ordering, SpinMutex};
use crate::time::Sleep;
use crate::timeout::timeout;
use crate::wake::WakeBatch;

/// Set in the state word once the semaphore is closed.
const CLOSED: usize = 1;
/// Set while the wait queue is not empty; then no permit is available.
const QUEUED: usize = 2;
/// One permit in the state word (the count lives above the two flag bits).
const ONE: usize = 4;

/// The largest number of permits a [`Semaphore`] can hold.
///
/// ```
/// use kompoz::limit::{LimitError, MAX_PERMITS, Semaphore};
///
/// assert!(Semaphore::new(MAX_PERMITS).is_ok());
/// assert_eq!(
///     Semaphore::new(MAX_PERMITS + 1).unwrap_err(),
///     LimitError::TooManyPermits { requested: MAX_PERMITS + 1, max: MAX_PERMITS }
/// );
/// ```
pub const MAX_PERMITS: usize = usize::MAX >> 2;

/// An async semaphore: at most its number of permits are held at once.
///
/// * **Fair.** Waiters are served strictly in arrival order. A released permit is handed
///   directly to the oldest waiter, so neither [`try_acquire`](Semaphore::try_acquire)
///   nor a newly arriving [`acquire`](Semaphore::acquire) can take a permit ahead of a task
///   already queued.
/// * **Cancellation-safe.** Dropping an [`Acquire`] future at any point leaves no trace:
///   if a permit had just been handed to it, the permit goes on to the next waiter rather
///   than being lost (no lost wake-up). A [`Permit`] is returned when dropped, including
///   while a panic unwinds.
/// * **Cheap when uncontended.** Acquiring and releasing a free permit are a
///   compare-exchange each, with no lock and no allocation; the waiter list (behind a
///   short spin lock) is only touched when tasks must wait.
/// * **No allocation when contended either.** Each waiter's node lives inside its
///   (pinned) [`Acquire`] future; a woken waiter takes its permit without the lock.
///
/// ```
/// use kompoz::limit::{AcquireError, Semaphore};
///
/// let semaphore = Semaphore::new(2)?;
/// futures::executor::block_on(async {
///     let a = semaphore.acquire().await?;
///     let _b = semaphore.acquire().await?;
///     assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::NoPermits);
///     drop(a);
///     assert!(semaphore.try_acquire().is_ok());
///     Ok::<(), AcquireError>(())
/// })?;
/// assert_eq!(semaphore.stats().total_acquired, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Semaphore {
    /// Available permits (times `ONE`) and the `CLOSED` and `QUEUED` flags.
    state: AtomicUsize,
    /// Permits owned by the semaphore: the initial count plus every `add_permits`.
    capacity: AtomicUsize,
    /// Mirror of the queue's length, for `stats` without the lock.
    waiting: AtomicUsize,
    /// Permits taken from the count (uncontended); those handed to waiters are counted
    /// by the wait list.
    acquired: AtomicU64,
    rejected: AtomicU64,
    waiters: SpinMutex<WaitList>,
    /// The name its events and `Debug` carry (empty if it has none).
    name: Cow<'static, str>,
    /// Hears the semaphore's events, if one was given (checked on slow paths only).
    listener: Option<Box<dyn Listener>>,
}

impl Semaphore {
    /// A semaphore with `permits` permits. Zero is allowed (add permits later with
    /// [`add_permits`](Semaphore::add_permits)); more than [`MAX_PERMITS`] is an error.
    ///
    /// ```
    /// use kompoz::limit::{LimitError, MAX_PERMITS, Semaphore};
    ///
    /// let pool = Semaphore::new(10)?;
    /// assert_eq!(pool.available_permits(), 10);
    /// // A typed error, never a panic, for a count that cannot be held.
    /// let error = Semaphore::new(usize::MAX).unwrap_err();
    /// assert_eq!(error, LimitError::TooManyPermits { requested: usize::MAX, max: MAX_PERMITS });
    /// # Ok::<(), LimitError>(())
    /// ```
    pub fn new(permits: usize) -> Result<Semaphore, LimitError> {
        if permits > MAX_PERMITS {
            return Err(LimitError::TooManyPermits { requested: permits, max: MAX_PERMITS });
        }
        Ok(Semaphore {
            state: AtomicUsize::new(permits * ONE),
            capacity: AtomicUsize::new(permits),
            waiting: AtomicUsize::new(0),
            acquired: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            waiters: SpinMutex::new(WaitList::new()),
            name: Cow::Borrowed(""),
            listener: None,
        })
    }

    /// Gives the semaphore a [`Listener`] for its events: refusals, tasks that queue, and
    /// permits granted after a wait. It is called after the change, outside the lock, on
    /// the thread that caused it; the uncontended paths never call it (nor check for it).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use kompoz::events::{Event, EventKind};
    /// use kompoz::limit::Semaphore;
    ///
    /// let refusals = Arc::new(AtomicUsize::new(0));
    /// let counted = refusals.clone();
    /// let pool = Semaphore::new(1)?.with_listener(move |event: &Event<'_>| {
    ///     if let EventKind::Rejected(_) = event.kind {
    ///         counted.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// let _held = pool.try_acquire()?;
    /// assert!(pool.try_acquire().is_err());
    /// assert_eq!(refusals.load(Ordering::Relaxed), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_listener(mut self, listener: impl Listener + 'static) -> Semaphore {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Names the semaphore: its events (to the `tracing` and `metrics` integrations) and
    /// its `Debug` carry the name. A [`Registry`](super::Registry) names its semaphores
    /// after their keys.
    ///
    /// ```
    /// use kompoz::limit::Semaphore;
    ///
    /// let pool = Semaphore::new(10)?.with_name("db_pool");
    /// assert_eq!(pool.name(), Some("db_pool"));
    /// assert_eq!(Semaphore::new(1)?.name(), None);
    /// assert!(format!("{pool:?}").contains("db_pool"));
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Semaphore {
        self.name = name.into();
        self
    }

    /// The semaphore's name, if it has one (as for breakers and rate limiters).
    pub fn name(&self) -> Option<&str> {
        (!self.name.is_empty()).then_some(&*self.name)
    }

    /// A semaphore with no permits, in a `const` context (for fixed registries).
    #[cfg(not(loom))]
    pub(crate) const fn empty() -> Semaphore {
        Semaphore {
            state: AtomicUsize::new(0),
            capacity: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            acquired: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            waiters: SpinMutex::new(WaitList::new()),
            name: Cow::Borrowed(""),
            listener: None,
        }
    }

    /// Waits for a permit. Resolves to [`AcquireError::Closed`] if the semaphore is or
    /// becomes closed first. Waiters are served in arrival order; dropping the future
    /// gives up its place (or passes on a permit handed to it meanwhile).
    ///
    /// ```
    /// use kompoz::limit::Semaphore;
    ///
    /// let semaphore = Semaphore::new(1)?;
    /// futures::executor::block_on(async {
    ///     let permit = semaphore.acquire().await?;
    ///     assert_eq!(semaphore.available_permits(), 0);
    ///     drop(permit); // returned to the semaphore
    ///     assert_eq!(semaphore.available_permits(), 1);
    ///     Ok::<(), kompoz::limit::AcquireError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire { semaphore: self, waiter: Waiter::new(), queued: false }
    }

    /// Takes a permit if one is free and nobody is queued for it; never waits.
    ///
    /// Fails with [`AcquireError::NoPermits`] or [`AcquireError::Closed`].
    ///
    /// ```
    /// use kompoz::limit::{AcquireError, Semaphore};
    ///
    /// let semaphore = Semaphore::new(1)?;
    /// let permit = semaphore.try_acquire()?;
    /// assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::NoPermits);
    /// drop(permit);
    /// assert!(semaphore.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Permit<'_>, AcquireError> {
        match self.try_take() {
            Ok(()) => Ok(Permit { semaphore: self }),
            Err(error) => {
                self.reject(error);
                Err(error)
            }
        }
    }

    /// Waits for a permit for at most `max_wait` on `timer`: a long queue becomes
    /// [`AcquireError::WaitElapsed`] instead of a hang. The abandoned place in the queue
    /// is given up cleanly. A `max_wait` of zero takes a permit only if one is free now.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::ManualClock;
    /// use kompoz::limit::{AcquireError, Semaphore};
    ///
    /// let clock = ManualClock::new();
    /// let semaphore = Semaphore::new(1)?;
    /// let _held = semaphore.try_acquire()?;
    /// let mut wait = Box::pin(semaphore.acquire_with_max_wait(&clock, Duration::from_millis(50)));
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// assert!(wait.as_mut().poll(&mut cx).is_pending());
    /// clock.advance(Duration::from_millis(50));
    /// assert!(matches!(wait.as_mut().poll(&mut cx), core::task::Poll::Ready(Err(AcquireError::WaitElapsed))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire_with_max_wait<S: Sleep>(
        &self,
        timer: S,
        max_wait: Duration,
    ) -> Result<Permit<'_>, AcquireError> {
        match timeout(timer, max_wait, self.acquire()).await {
            Ok(result) => result,
            Err(_elapsed) => {
                self.reject(AcquireError::WaitElapsed);
                Err(AcquireError::WaitElapsed)
            }
        }
    }

    /// Runs `future` while holding a permit: waits for the permit, runs the future to
    /// completion, and releases the permit however the run ends (completion, panic, or
    /// cancellation of the returned future).
    ///
    /// ```
    /// use kompoz::limit::Semaphore;
    ///
    /// let semaphore = Semaphore::new(1)?;
    /// let answer = futures::executor::block_on(semaphore.run(async { 6 * 7 }))?;
    /// assert_eq!((answer, semaphore.available_permits()), (42, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn run<F: IntoFuture>(&self, future: F) -> Result<F::Output, AcquireError> {
        let _permit = self.acquire().await?;
        Ok(future.await)
    }

    /// [`run`](Semaphore::run), but waiting at most `max_wait` on `timer` for the permit;
    /// the run itself is not limited in time.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::ManualClock;
    /// use kompoz::limit::{AcquireError, Semaphore};
    ///
    /// let clock = ManualClock::new();
    /// let semaphore = Semaphore::new(1)?;
    /// let run = semaphore.run_with_max_wait(&clock, Duration::from_secs(1), async { "done" });
    /// assert_eq!(futures::executor::block_on(run), Ok("done"));
    /// // With the only permit held and no wait allowed, the call is refused at once.
    /// let _held = semaphore.try_acquire()?;
    /// let refused = semaphore.run_with_max_wait(&clock, Duration::ZERO, async { "done" });
    /// assert_eq!(futures::executor::block_on(refused), Err(AcquireError::WaitElapsed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn run_with_max_wait<S: Sleep, F: IntoFuture>(
        &self,
        timer: S,
        max_wait: Duration,
        future: F,
    ) -> Result<F::Output, AcquireError> {
        let _permit = self.acquire_with_max_wait(timer, max_wait).await?;
        Ok(future.await)
    }

    /// Closes the semaphore: every queued and every later acquire fails with
    /// [`AcquireError::Closed`]. Permits already held stay valid and are returned as usual.
    ///
    /// ```
    /// use kompoz::limit::{AcquireError, Semaphore};
    ///
    /// let semaphore = Semaphore::new(2)?;
    /// let held = semaphore.try_acquire()?;
    /// semaphore.close();
    /// assert!(semaphore.is_closed());
    /// assert_eq!(semaphore.try_acquire().unwrap_err(), AcquireError::Closed);
    /// assert_eq!(futures::executor::block_on(semaphore.acquire()).unwrap_err(), AcquireError::Closed);
    /// drop(held); // still returned
    /// assert_eq!(semaphore.available_permits(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        let mut closed = 0;
        self.in_rounds(|queue, wakers| {
            let mut closed_now = 0;
            while !wakers.is_full() {
                match queue.settle_front(WAITER_CLOSED) {
                    Some(waker) => {
                        wakers.push(waker);
                        closed_now += 1;
                    }
                    None => break,
                }
            }
            self.rejected.fetch_add(closed_now, Ordering::Relaxed);
            closed += closed_now;
            self.waiting.store(queue.len(), Ordering::Relaxed);
            let drained = queue.len() == 0;
            if drained {
                self.state.fetch_and(!QUEUED, Ordering::AcqRel);
            }
            drained
        });
        // Reported after the lock is released, one event per refused waiter.
        if events::enabled(self.listener.as_deref()) {
            for _ in 0..closed {
                report(self, EventKind::Rejected(Rejection::Limit(AcquireError::Closed)));
            }
        }
    }

    /// Whether [`close`](Semaphore::close) has been called.
    ///
    /// ```
    /// let semaphore = kompoz::limit::Semaphore::new(1)?;
    /// assert!(!semaphore.is_closed());
    /// semaphore.close();
    /// assert!(semaphore.is_closed());
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Adds `n` permits, handing them to queued waiters first (oldest first). Fails,
    /// adding nothing, if the total would exceed [`MAX_PERMITS`].
    ///
    /// ```
    /// use kompoz::limit::{MAX_PERMITS, Semaphore};
    ///
    /// let semaphore = Semaphore::new(0)?;
    /// let mut waiter = Box::pin(semaphore.acquire());
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// assert!(waiter.as_mut().poll(&mut cx).is_pending());
    /// semaphore.add_permits(2)?;
    /// // The waiter was served first (one permit is handed to it); the other one is free.
    /// assert_eq!(semaphore.available_permits(), 1);
    /// assert!(waiter.as_mut().poll(&mut cx).is_ready());
    /// assert!(semaphore.add_permits(MAX_PERMITS).is_err());
    /// assert_eq!(semaphore.stats().capacity, 2);
    /// # Ok::<(), kompoz::limit::LimitError>(())
    /// ```
    pub fn add_permits(&self, n: usize) -> Result<(), LimitError> {
        let mut grown = self.capacity.load(Ordering::Relaxed);
        loop {
            let total = grown.checked_add(n).filter(|&total| total <= MAX_PERMITS);
            let Some(total) = total else {
                return Err(LimitError::TooManyPermits {
                    requested: grown.saturating_add(n),
                    max: MAX_PERMITS,
                });
            };
            match self.capacity.compare_exchange_weak(
                grown,
                total,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => grown = actual,
            }
        }
        self.release(n);
        Ok(())
    }

    /// Permits free right now.
    ///
    /// ```
    /// let semaphore = kompoz::limit::Semaphore::new(3)?;
    /// let _permit = semaphore.try_acquire()?;
    /// assert_eq!(semaphore.available_permits(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Acquire) / ONE
    }

    /// A snapshot of the semaphore's counters. Each field is read atomically, but not all
    /// together: under concurrent use they may be a moment apart.
    ///
    /// ```
    /// let semaphore = kompoz::limit::Semaphore::new(2)?;
    /// let _permit = semaphore.try_acquire()?;
    /// let stats = semaphore.stats();
    /// assert_eq!((stats.capacity, stats.available, stats.in_flight), (2, 1, 1));
    /// assert_eq!((stats.total_acquired, stats.total_rejected, stats.closed), (1, 0, false));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> SemaphoreStats {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let available = self.available_permits();
        SemaphoreStats {
            capacity,
            available,
            in_flight: capacity.saturating_sub(available),
            waiting: self.waiting.load(Ordering::Relaxed),
            total_acquired: self.acquired.load(Ordering::Relaxed)
                + self.waiters.with(|queue| queue.granted()),
            total_rejected: self.rejected.load(Ordering::Relaxed),
            closed: self.is_closed(),
        }
    }

    /// The lock-free fast path: takes a free permit, if any, and counts it. Never takes
    /// one while waiters are queued (then the count is zero). Failures are not counted:
    /// the caller decides whether they are rejections.
    fn try_take(&self) -> Result<(), AcquireError> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & CLOSED != 0 {
                return Err(AcquireError::Closed);
            }
            if state < ONE {
                return Err(AcquireError::NoPermits);
            }
            match self.state.compare_exchange_weak(
                state,
                state - ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.acquired.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Polls on behalf of the future owning `waiter`; `queued` says whether the node is
    /// (or was, until its owner saw the outcome) in the wait list. `queued` changes only
    /// when the semaphore has committed the change: if a waker panics half-way, the
    /// owner's `Drop` still finds the truth.
    pub(super) fn poll_acquire(
        &self,
        waiter: &Waiter,
        queued: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        if *queued {
            return self.poll_queued(waiter, queued, cx);
        }
        loop {
            match self.try_take() {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(AcquireError::Closed) => {
                    self.reject(AcquireError::Closed);
                    return Poll::Ready(Err(AcquireError::Closed));
                }
                // None free: queue up below.
                Err(_) => {}
            }
            // Cloned before the lock: no user code runs under it.
            let mut waker = Some(cx.waker().clone());
            let outcome = self.waiters.with(|queue| {
                let mut state = self.state.load(Ordering::Acquire);
                loop {
                    if state & CLOSED != 0 {
                        return Enqueue::Closed;
                    }
                    if state >= ONE {
                        // A permit came back since the fast path: take it there.
                        return Enqueue::Retry;
                    }
                    // `QUEUED` keeps the count at zero, so nobody can barge ahead.
                    match self.state.compare_exchange_weak(
                        state,
                        state | QUEUED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(actual) => state = actual,
                    }
                }
                if let Some(waker) = waker.take() {
                    // SAFETY: the node is not queued (`queued` is false), and its owner is
                    // a pinned future that unlinks it in `Drop` (`cancel_waiter`) before its
                    // memory can be reused, and keeps the semaphore within reach until then.
                    unsafe { queue.push_back(waiter, waker) };
                }
                self.waiting.store(queue.len(), Ordering::Relaxed);
                Enqueue::Queued
            });
            // The spare clone (if not queued) is dropped here, outside the lock, while
            // this call holds nothing: a panic in its drop loses nothing.
            drop(waker);
            match outcome {
                Enqueue::Queued => {
                    *queued = true;
                    if events::enabled(self.listener.as_deref()) {
                        wait_started(self, waiter);
                    }
                    return Poll::Pending;
                }
                Enqueue::Closed => {
                    self.reject(AcquireError::Closed);
                    return Poll::Ready(Err(AcquireError::Closed));
                }
                Enqueue::Retry => {}
            }
        }
    }

    /// [`poll_acquire`](Semaphore::poll_acquire) for a node that is (or was) queued.
    fn poll_queued(
        &self,
        waiter: &Waiter,
        queued: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        // A woken waiter learns its outcome without the lock.
        if let Some(outcome) = settled(waiter.state()) {
            *queued = false;
            if events::enabled(self.listener.as_deref()) {
                waited(self, waiter, outcome);
            }
            return Poll::Ready(outcome);
        }
        let keeps_waker = self.waiters.with(|queue| {
            if settled(waiter.state()).is_some() {
                return true; // settled meanwhile: no waker is needed any more
            }
            // SAFETY: still waiting (read under the lock), so still linked in this list.
            unsafe { queue.will_wake(waiter, cx.waker()) }
        });
        if !keeps_waker {
            // A different task (or executor) polls now: store its waker, cloned outside
            // the lock, and drop the old one outside it too.
            let fresh = cx.waker().clone();
            let swapped = self.waiters.with(|queue| match settled(waiter.state()) {
                Some(_) => Err(fresh),
                // SAFETY: still waiting (read under the lock), so still linked in this list.
                None => Ok(unsafe { queue.replace_waker(waiter, fresh) }),
            });
            // Outside the lock. If a drop panics, `queued` is still true and the node is
            // either linked (with the fresh waker) or settled: `Drop` handles both.
            match swapped {
                Ok(old) => drop(old),
                Err(spare) => drop(spare),
            }
        }
        match settled(waiter.state()) {
            Some(outcome) => {
                *queued = false;
                if events::enabled(self.listener.as_deref()) {
                    waited(self, waiter, outcome);
                }
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }

    /// Counts a refused acquisition and reports it (after the refusal, outside the lock).
    #[inline]
    fn reject(&self, error: AcquireError) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if events::enabled(self.listener.as_deref()) {
            report(self, EventKind::Rejected(Rejection::Limit(error)));
        }
    }

    /// The future owning `waiter`, which is queued (or was, until its outcome), is being
    /// dropped: unlink it, or pass on a permit that was handed to it but never taken.
    pub(super) fn cancel_waiter(&self, waiter: &Waiter) {
        let mut wakers = WakeBatch::new();
        let unlinked = self.waiters.with(|queue| match waiter.state() {
            GRANTED => {
                // No lost wake-up: the permit goes on to the next waiter (or the count).
                // This waiter never took it, so the hand-over is taken back from the
                // count of acquisitions. One permit and an empty batch: `hand_out`
                // always finishes in this one round.
                queue.take_back_grant();
                self.hand_out(queue, 1, &mut wakers);
                None
            }
            // `close` settled it: nothing is linked, nothing is owed.
            WAITER_CLOSED => None,
            _ => {
                // SAFETY: still waiting, so still linked in this list.
                let waker = unsafe { queue.unlink(waiter) };
                self.waiting.store(queue.len(), Ordering::Relaxed);
                if queue.len() == 0 {
                    // Only `QUEUED`: a `close` may have set `CLOSED` an instant ago.
                    self.state.fetch_and(!QUEUED, Ordering::AcqRel);
                }
                waker
            }
        });
        // Outside the lock, with the list and the counts whole.
        drop(unlinked);
        wakers.wake_all();
        wakers.resume_panic();
    }

    /// Returns `n` permits: to queued waiters first, oldest first, then to the count.
    pub(super) fn release(&self, n: usize) {
        let mut state = self.state.load(Ordering::Acquire);
        while state & QUEUED == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + n * ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        let mut left = n;
        self.in_rounds(move |queue, wakers| {
            left = self.hand_out(queue, left, wakers);
            left == 0
        });
    }

    /// Runs `round` under the lock until it reports that it is done, waking the wakers it
    /// collects after each round, outside the lock. The rounds run to the end whatever a
    /// wake does (see `Rounds`); the first panic of a wake is then resumed.
    fn in_rounds(&self, round: impl FnMut(&mut WaitList, &mut WakeBatch) -> bool) {
        let mut rounds =
            Rounds { waiters: &self.waiters, round, wakers: WakeBatch::new(), done: false };
        rounds.run();
        rounds.wakers.resume_panic();
    }

    /// Under the lock: grants up to `n` permits to the oldest waiters (as many as `wakers`
    /// has room for); once the queue is empty, clears `QUEUED` and adds the rest to the
    /// count in one atomic step. Returns the permits still to hand out.
    fn hand_out(&self, queue: &mut WaitList, mut n: usize, wakers: &mut WakeBatch) -> usize {
        while n > 0 && !wakers.is_full() {
            match queue.settle_front(GRANTED) {
                Some(waker) => {
                    wakers.push(waker);
                    n -= 1;
                }
                None => break,
            }
        }
        self.waiting.store(queue.len(), Ordering::Relaxed);
        if queue.len() == 0 {
            let rest = n * ONE;
            let _ = self.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                Some((state & !QUEUED) + rest)
            });
            n = 0;
        }
        n
    }
}

/// What the wait path decided under the lock.
enum Enqueue {
    /// The node is linked; the waker went into it.
    Queued,
    /// The semaphore is closed.
    Closed,
    /// A permit is free after all: take it on the fast path.
    Retry,
}

/// Work on the wait list done in rounds: `round` under the lock (collecting at most a
/// batch of wakers), then the wake-ups outside it, until `round` reports it is done.
///
/// A hand-out holds permits that are in nobody else's hands until it finishes, and a close
/// leaves waiters queued until it finishes, so the rounds must run to the end even if a
/// wake panics. With `std`, [`WakeBatch::wake_all`] catches each panic, so `run` simply
/// goes on. Without `std` a panic unwinds out of `run`, and this guard's `Drop` runs the
/// remaining rounds during the unwind.
struct Rounds<'a, F: FnMut(&mut WaitList, &mut WakeBatch) -> bool> {
    waiters: &'a SpinMutex<WaitList>,
    round: F,
    wakers: WakeBatch,
    done: bool,
}

impl<F: FnMut(&mut WaitList, &mut WakeBatch) -> bool> Rounds<'_, F> {
    fn run(&mut self) {
        loop {
            self.wakers.wake_all();
            if self.done {
                return;
            }
            let (round, wakers) = (&mut self.round, &mut self.wakers);
            self.done = self.waiters.with(|queue| round(queue, wakers));
        }
    }
}

// mutants: emptying this `drop` survives the default `.ci/mutants` run, which tests with
// `std`: there every wake's panic is caught, so `run` always completes and this guard
// never has work left. It is killed by the same unit tests without `std`
// (`cargo test -p kompoz --no-default-features --lib`, in .ci/run): two hostile-waker
// tests fail (permits lost, waiters left queued). Excluded in .cargo/mutants.toml.
impl<F: FnMut(&mut WaitList, &mut WakeBatch) -> bool> Drop for Rounds<'_, F> {
    fn drop(&mut self) {
        self.run();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Semaphore");
        if !self.name.is_empty() {
            debug.field("name", &self.name);
        }
        debug.field("stats", &self.stats()).finish()
    }
}

/// Counters of a [`Semaphore`], from [`Semaphore::stats`].
///
/// ```
/// use kompoz::limit::Semaphore;
///
/// let semaphore = Semaphore::new(1)?;
/// let _held = semaphore.try_acquire()?;
/// assert!(semaphore.try_acquire().is_err());
/// let stats = semaphore.stats();
/// assert_eq!((stats.in_flight, stats.waiting, stats.total_rejected), (1, 0, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SemaphoreStats {
    /// Permits the semaphore owns: its initial count plus every `add_permits`.
    pub capacity: usize,
    /// Permits free right now.
    pub available: usize,
    /// Permits held right now (`capacity - available`).
    pub in_flight: usize,
    /// Tasks queued for a permit right now.
    pub waiting: usize,
    /// Permits handed out since creation: taken from the free count, or handed to a
    /// waiter (counted at the hand-over; a waiter dropped before it takes its permit
    /// passes it on, and that hand-over is not counted).
    pub total_acquired: u64,
    /// Acquisitions that failed: no free permit for `try_acquire`, a maximum wait that
    /// passed, or a closed semaphore.
    pub total_rejected: u64,
    /// Whether the semaphore is closed.
    pub closed: bool,
}

/// Why a permit was not acquired.
///
/// ```
/// use kompoz::limit::{AcquireError, Semaphore};
///
/// let semaphore = Semaphore::new(1)?;
/// let _held = semaphore.try_acquire()?;
/// match semaphore.try_acquire() {
///     Err(AcquireError::NoPermits) => {} // busy: shed the work, or wait with `acquire`
///     other => panic!("unexpected {other:?}"),
/// }
/// assert_eq!(AcquireError::Closed.to_string(), "the semaphore is closed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireError {
    /// [`Semaphore::try_acquire`]: no permit is free (or others are queued for it).
    NoPermits,
    /// The maximum wait passed before a permit was free.
    WaitElapsed,
    /// The semaphore is closed.
    Closed,
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::NoPermits => "no permit is free",
            AcquireError::WaitElapsed => "no permit became free within the maximum wait",
            AcquireError::Closed => "the semaphore is closed",
        })
    }
}

impl core::error::Error for AcquireError {}

/// A permit of a [`Semaphore`]; returned to it when dropped.
///
/// ```
/// let semaphore = kompoz::limit::Semaphore::new(1)?;
/// {
///     let permit = semaphore.try_acquire()?;
///     assert!(core::ptr::eq(permit.semaphore(), &semaphore));
///     assert_eq!(semaphore.available_permits(), 0);
/// } // dropped here: returned
/// assert_eq!(semaphore.available_permits(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit<'a> {
    semaphore: &'a Semaphore,
}

impl Permit<'_> {
    /// The semaphore this permit belongs to.
    ///
    /// ```
    /// let semaphore = kompoz::limit::Semaphore::new(1)?;
    /// let permit = semaphore.try_acquire()?;
    /// assert_eq!(permit.semaphore().available_permits(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn semaphore(&self) -> &Semaphore {
        self.semaphore
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.semaphore.release(1);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// Reports `kind` for `semaphore`: to the integrations compiled in and to its listener.
#[cold]
fn report(semaphore: &Semaphore, kind: EventKind) {
    let source = Source { primitive: Primitive::Limit, name: &semaphore.name };
    events::emit(semaphore.listener.as_deref(), &Event { source, kind });
}

/// The owner of `waiter` has just queued it: stamps the time (for the wait-time metric)
/// and reports the wait.
#[cold]
fn wait_started(semaphore: &Semaphore, waiter: &Waiter) {
    #[cfg(feature = "metrics")]
    waiter.queued_at.store(
        crate::time::Clock::now(&crate::time::StdClock).as_nanos().max(1),
        Ordering::Relaxed,
    );
    let _ = waiter;
    report(semaphore, EventKind::WaitStarted);
}

/// The owner of `waiter` has learnt its outcome after waiting: reports the permit (with
/// the time it waited, where it was stamped) or the refusal.
#[cold]
fn waited(semaphore: &Semaphore, waiter: &Waiter, outcome: Result<(), AcquireError>) {
    // A waiter refused because the semaphore closed was reported by `close`.
    if outcome.is_err() {
        return;
    }
    #[cfg(feature = "metrics")]
    let waited = match waiter.queued_at.load(Ordering::Relaxed) {
        0 => None,
        at => Some(
            crate::time::Clock::now(&crate::time::StdClock) - crate::time::Instant::from_nanos(at),
        ),
    };
    #[cfg(not(feature = "metrics"))]
    let waited = {
        let _ = waiter;
        None
    };
    report(semaphore, EventKind::PermitAcquired { waited });
}

/// What a settled waiter's state means for its owner (`None`: still waiting).
fn settled(state: usize) -> Option<Result<(), AcquireError>> {
    match state {
        GRANTED => Some(Ok(())),
        WAITER_CLOSED => Some(Err(AcquireError::Closed)),
        _ => None,
    }
}

/// The future of [`Semaphore::acquire`]. While it waits, its node is linked in the
/// semaphore's wait list, so it is `!Unpin`: pin it to poll it by hand (`.await` does).
///
/// ```
/// use core::pin::pin;
/// use core::task::{Context, Poll, Waker};
/// use kompoz::limit::Semaphore;
///
/// let semaphore = Semaphore::new(1)?;
/// let held = semaphore.try_acquire()?;
/// let mut acquire = pin!(semaphore.acquire());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(acquire.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(semaphore.stats().waiting, 1);
/// drop(held); // handed straight to the queued future
/// assert!(matches!(acquire.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    semaphore: &'a Semaphore,
    /// This future's node in the wait list (linked while `queued` and waiting).
    waiter: Waiter,
    queued: bool,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<Permit<'a>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of `this`: `waiter` stays where it is (the wait
        // list holds its address while it is queued) and `Drop` unlinks it before the
        // memory goes away, as the pinning contract guarantees `Drop` runs first.
        let this = unsafe { self.get_unchecked_mut() };
        let semaphore = this.semaphore;
        semaphore.poll_acquire(&this.waiter, &mut this.queued, cx).map_ok(|()| Permit { semaphore })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.semaphore.cancel_waiter(&self.waiter);
        }
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").field("queued", &self.queued).finish()
    }
}
