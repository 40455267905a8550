//! A clock and timer driven by hand, for deterministic tests.

use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::{Clock, Instant, Sleep, duration_to_nanos};
use crate::sync::{AtomicU64, Ordering, SpinMutex};
use crate::wake::WakeBatch;

/// A [`Clock`] and [`Sleep`] whose time moves only when told to.
///
/// Time starts at [`Instant::ZERO`] (or where [`ManualClock::starting_at`] puts it) and
/// changes only through [`advance`](ManualClock::advance) and
/// [`set`](ManualClock::set). Moving time forward completes every timer that is due and
/// wakes its task; nothing sleeps in real time, so every time-dependent behaviour can be
/// tested deterministically.
///
/// Clones share one time line: keep one handle in the test and give clones to the code
/// under test.
///
/// ```
/// use core::future::Future;
/// use core::pin::pin;
/// use core::task::{Context, Poll, Waker};
/// use core::time::Duration;
/// use kompoz::{Clock, ManualClock, Sleep};
///
/// let clock = ManualClock::new();
/// let mut timer = pin!(clock.sleep(Duration::from_secs(5)));
/// let mut cx = Context::from_waker(Waker::noop());
///
/// assert!(timer.as_mut().poll(&mut cx).is_pending());
/// clock.advance(Duration::from_secs(4));
/// assert!(timer.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(clock.next_deadline(), Some(clock.now() + Duration::from_secs(1)));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(timer.as_mut().poll(&mut cx), Poll::Ready(()));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

struct Shared {
    now: AtomicU64,
    timers: SpinMutex<Timers>,
}

/// The registered timers: a slab of slots, each owned by one [`ManualSleep`], and a heap
/// of their deadlines, earliest first.
///
/// An advance pops the due deadlines off the heap: O(due timers + log n), not a scan of
/// every slot. A timer dropped (or completed) before its deadline leaves its heap entry
/// behind, marked stale by its slot's generation, and skipped when it surfaces (lazy
/// deletion); once stale entries outnumber the live ones the heap is rebuilt without them,
/// so its size stays within twice the live timers (plus a constant) at O(1) amortised
/// cost per timer.
///
/// Wakers are user code: none is cloned, woken or dropped under the lock (see
/// `crate::sync`). Slots removed under the lock are handed back to be dropped after it;
/// due wakers are woken after it, in bounded batches.
#[derive(Default)]
struct Timers {
    slots: Vec<Slot>,
    free: Vec<usize>,
    deadlines: BinaryHeap<Reverse<Deadline>>,
    /// Slots in the `Waiting` state.
    waiting: usize,
    /// Heap entries whose timer is no longer waiting (see above).
    stale: usize,
    /// Tells a slot's successive timers apart, so a stale entry is never taken for the
    /// timer that reuses its slot.
    next_generation: u64,
    /// Heap entries examined, for the test that advances stay O(due timers).
    #[cfg(test)]
    visited: usize,
}

/// A heap entry: when, which slot, and which of the slot's timers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    key: usize,
    generation: u64,
}

enum Slot {
    Free,
    /// A timer waiting for its deadline, with the waker of its last poll.
    Waiting {
        generation: u64,
        waker: Waker,
    },
    /// A timer whose deadline was reached by `advance` or `set`; it completes on its next
    /// poll even if the clock is later set back.
    Fired,
}

/// Rebuild the heap once it holds more than this many stale entries and more stale
/// entries than live ones.
const STALE_SLACK: usize = 32;

impl Timers {
    /// Registers a waiting timer; `waker` was cloned before the lock.
    fn insert(&mut self, at: Instant, waker: Waker) -> usize {
        let generation = self.next_generation;
        self.next_generation += 1;
        let slot = Slot::Waiting { generation, waker };
        let key = match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.deadlines.push(Reverse(Deadline { at, key, generation }));
        self.waiting += 1;
        key
    }

    /// Frees slot `key` and returns what it held, for the caller to drop after the lock.
    #[must_use = "drop the slot (it may hold a waker) after releasing the lock"]
    fn remove(&mut self, key: usize) -> Slot {
        self.free.push(key);
        let slot = core::mem::replace(&mut self.slots[key], Slot::Free);
        if matches!(slot, Slot::Waiting { .. }) {
            // Its heap entry stays behind.
            self.waiting -= 1;
            self.stale += 1;
            if self.stale > STALE_SLACK && self.stale > self.waiting {
                let slots = &self.slots;
                self.deadlines.retain(|Reverse(entry)| is_live(slots, entry));
                self.stale = 0;
            }
        }
        slot
    }

    /// Marks timers due at `now` as fired and moves their wakers into `wakers`, until the
    /// batch is full. Returns whether more may be due.
    fn fire_due(&mut self, now: Instant, wakers: &mut WakeBatch) -> bool {
        while !wakers.is_full() {
            let Some(&Reverse(entry)) = self.deadlines.peek() else {
                return false;
            };
            #[cfg(test)]
            {
                self.visited += 1;
            }
            if entry.at > now {
                return false;
            }
            self.deadlines.pop();
            if !is_live(&self.slots, &entry) {
                self.stale -= 1;
                continue;
            }
            if let Slot::Waiting { waker, .. } =
                core::mem::replace(&mut self.slots[entry.key], Slot::Fired)
            {
                self.waiting -= 1;
                wakers.push(waker);
            }
        }
        true
    }

    /// The earliest deadline of a waiting timer, dropping stale entries off the top.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse(entry)) = self.deadlines.peek() {
            if is_live(&self.slots, &entry) {
                return Some(entry.at);
            }
            self.deadlines.pop();
            self.stale -= 1;
        }
        None
    }
}

/// Whether a heap entry still belongs to a waiting timer.
fn is_live(slots: &[Slot], entry: &Deadline) -> bool {
    matches!(slots[entry.key], Slot::Waiting { generation, .. } if generation == entry.generation)
}

/// Fires every due timer in rounds, waking each round's batch after the lock. The rounds
/// run to the end even if a wake panics (see `crate::wake`): with `std` the panic is
/// caught and resumed after the last round; without, this guard's `Drop` runs the
/// remaining rounds during the unwind.
struct FireDue<'a> {
    timers: &'a SpinMutex<Timers>,
    now: Instant,
    wakers: WakeBatch,
    done: bool,
}

impl FireDue<'_> {
    fn run(&mut self) {
        loop {
            self.wakers.wake_all();
            if self.done {
                return;
            }
            let (now, wakers) = (self.now, &mut self.wakers);
            self.done = !self.timers.with(|timers| timers.fire_due(now, wakers));
        }
    }
}

impl Drop for FireDue<'_> {
    fn drop(&mut self) {
        self.run();
    }
}

impl ManualClock {
    /// A clock at [`Instant::ZERO`].
    ///
    /// ```
    /// use kompoz::{Clock, Instant, ManualClock};
    ///
    /// assert_eq!(ManualClock::new().now(), Instant::ZERO);
    /// ```
    pub fn new() -> ManualClock {
        ManualClock::starting_at(Instant::ZERO)
    }

    /// A clock that starts at `now`.
    ///
    /// ```
    /// use kompoz::{Clock, Instant, ManualClock};
    ///
    /// let clock = ManualClock::starting_at(Instant::from_nanos(1_000));
    /// assert_eq!(clock.now(), Instant::from_nanos(1_000));
    /// ```
    pub fn starting_at(now: Instant) -> ManualClock {
        ManualClock {
            shared: Arc::new(Shared {
                now: AtomicU64::new(now.as_nanos()),
                timers: SpinMutex::new(Timers::default()),
            }),
        }
    }

    /// Moves time forward by `by` (saturating at [`Instant::MAX`]), completes every timer
    /// that is now due and wakes the tasks waiting on them. Advancing by zero completes
    /// the timers that are due at the current instant (those created with a deadline that
    /// had already passed are due on their first poll anyway).
    ///
    /// It costs O(due timers + log n) for n registered timers and allocates nothing. The
    /// due timers' tasks are woken after the clock's lock is released; a waker may use the
    /// clock again (even advance it). If a wake panics, the other due timers still fire
    /// and wake, and the panic is resumed afterwards (with `std`).
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, Instant, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(1_500));
    /// assert_eq!(clock.now(), Instant::ZERO + Duration::from_millis(1_500));
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let previous = self
            .shared
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| Some(now.saturating_add(by)))
            .unwrap_or_else(|now| now);
        self.fire_due(Instant::from_nanos(previous.saturating_add(by)));
    }

    /// Sets the time to `to`, even backwards: a clock that steps back is something
    /// kompoz must survive, so tests can simulate it. Timers that are due at `to` complete.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Clock, Instant, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.set(Instant::from_nanos(5_000));
    /// clock.set(Instant::from_nanos(1_000)); // a step back
    /// assert_eq!(clock.now(), Instant::from_nanos(1_000));
    /// ```
    pub fn set(&self, to: Instant) {
        self.shared.now.store(to.as_nanos(), Ordering::Release);
        self.fire_due(to);
    }

    /// How many timers are waiting: polled at least once, not yet due, not yet dropped.
    ///
    /// ```
    /// use core::task::{Context, Waker};
    /// use core::time::Duration;
    /// use kompoz::{ManualClock, Sleep};
    ///
    /// let clock = ManualClock::new();
    /// let mut timer = Box::pin(clock.sleep(Duration::from_secs(1)));
    /// assert_eq!(clock.pending_timers(), 0); // registered on its first poll
    /// assert!(timer.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    /// assert_eq!(clock.pending_timers(), 1);
    /// drop(timer);
    /// assert_eq!(clock.pending_timers(), 0);
    /// ```
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.with(|timers| timers.waiting)
    }

    /// The earliest deadline among the waiting timers, if any: where a test (or a test
    /// executor that auto-advances time) should move the clock next.
    ///
    /// ```
    /// use core::task::{Context, Waker};
    /// use core::time::Duration;
    /// use kompoz::{Clock, ManualClock, Sleep};
    ///
    /// let clock = ManualClock::new();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut late = Box::pin(clock.sleep(Duration::from_secs(9)));
    /// let mut soon = Box::pin(clock.sleep(Duration::from_secs(2)));
    /// assert!(late.as_mut().poll(&mut cx).is_pending() && soon.as_mut().poll(&mut cx).is_pending());
    /// // Jump straight to the next deadline.
    /// let next = clock.next_deadline().unwrap();
    /// clock.set(next);
    /// assert!(soon.as_mut().poll(&mut cx).is_ready());
    /// assert_eq!(clock.next_deadline(), Some(clock.now() + Duration::from_secs(7)));
    /// ```
    pub fn next_deadline(&self) -> Option<Instant> {
        self.shared.timers.with(Timers::next_deadline)
    }

    fn fire_due(&self, now: Instant) {
        let mut rounds =
            FireDue { timers: &self.shared.timers, now, wakers: WakeBatch::new(), done: false };
        rounds.run();
        rounds.wakers.resume_panic();
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .field("pending_timers", &self.pending_timers())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.shared.now.load(Ordering::Acquire))
    }
}

impl Sleep for ManualClock {
    type Timer = ManualSleep;

    fn sleep_until(&self, deadline: Instant) -> ManualSleep {
        ManualSleep { shared: self.shared.clone(), deadline, key: None }
    }
}

/// The timer of a [`ManualClock`]: completes once the clock reaches its deadline.
///
/// It registers with the clock on its first pending poll and unregisters when it
/// completes or is dropped, so a dropped timer leaves no trace.
///
/// ```
/// use core::task::{Context, Poll, Waker};
/// use core::time::Duration;
/// use kompoz::{ManualClock, Sleep};
///
/// let clock = ManualClock::new();
/// let mut timer = Box::pin(clock.sleep(Duration::from_millis(10)));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(timer.as_mut().poll(&mut cx).is_pending());
/// clock.advance(Duration::from_millis(10));
/// assert_eq!(timer.as_mut().poll(&mut cx), Poll::Ready(()));
/// ```
#[must_use = "a timer does nothing unless polled"]
pub struct ManualSleep {
    shared: Arc<Shared>,
    deadline: Instant,
    key: Option<usize>,
}

impl ManualSleep {
    /// The instant at which this timer completes.
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::{Instant, ManualClock, Sleep};
    ///
    /// let clock = ManualClock::new();
    /// let timer = clock.sleep(Duration::from_secs(3));
    /// assert_eq!(timer.deadline(), Instant::ZERO + Duration::from_secs(3));
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(self.shared.now.load(Ordering::Acquire))
    }
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.key.is_none() && this.now() >= this.deadline {
            return Poll::Ready(());
        }
        let (shared, deadline) = (&*this.shared, this.deadline);
        // Re-read the time under the lock: `fire_due` takes the lock after storing the new
        // time, so either it sees this registration or this read sees its time.
        let due = || Instant::from_nanos(shared.now.load(Ordering::Acquire)) >= deadline;
        let Some(key) = this.key else {
            // First pending poll: register, with a waker cloned before the lock.
            let waker = cx.waker().clone();
            let registered = shared.timers.with(|timers| {
                if due() {
                    return Err(waker);
                }
                Ok(timers.insert(deadline, waker))
            });
            return match registered {
                Ok(key) => {
                    this.key = Some(key);
                    Poll::Pending
                }
                // Due after all: the clone is dropped here, outside the lock.
                Err(_spare) => Poll::Ready(()),
            };
        };
        // Registered: complete if due or fired, else keep the stored waker if it wakes
        // the same task. Nothing removed from the slab is dropped under the lock.
        let step = shared.timers.with(|timers| match &timers.slots[key] {
            Slot::Waiting { waker, .. } if !due() => Step::Wait(waker.will_wake(cx.waker())),
            _ => Step::Done(timers.remove(key)),
        });
        let replaced = match step {
            Step::Done(removed) => {
                this.key = None;
                drop(removed);
                return Poll::Ready(());
            }
            Step::Wait(true) => return Poll::Pending,
            Step::Wait(false) => {
                let fresh = cx.waker().clone();
                shared.timers.with(|timers| match &mut timers.slots[key] {
                    Slot::Waiting { waker, .. } if !due() => {
                        Step::Wait(core::mem::replace(waker, fresh))
                    }
                    _ => Step::Done((timers.remove(key), fresh)),
                })
            }
        };
        // Outside the lock: drop the old waker, or the removed slot and the spare clone.
        match replaced {
            Step::Wait(old) => {
                drop(old);
                Poll::Pending
            }
            Step::Done(removed) => {
                this.key = None;
                drop(removed);
                Poll::Ready(())
            }
        }
    }
}

/// What a registered timer's poll decided under the lock.
enum Step<W, D> {
    /// Still waiting (with what the waker check or swap produced).
    Wait(W),
    /// Due or fired: its slot was removed (and is to be dropped after the lock).
    Done(D),
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let removed = self.shared.timers.with(|timers| timers.remove(key));
            // The slot's waker (user code) is dropped outside the lock.
            drop(removed);
        }
    }
}

impl fmt::Debug for ManualSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.key.is_some())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
