//! A clock and timer driven by hand, for deterministic tests.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::{Clock, Instant, Sleep, duration_to_nanos};
use crate::sync::{AtomicU64, Ordering, SpinMutex};

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

/// The registered timers: a slab of slots, each owned by one [`ManualSleep`].
#[derive(Default)]
struct Timers {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

enum Slot {
    Free,
    /// A timer waiting for its deadline, with the waker of its last poll.
    Waiting {
        deadline: Instant,
        waker: Waker,
    },
    /// A timer whose deadline was reached by `advance` or `set`; it completes on its next
    /// poll even if the clock is later set back.
    Fired,
}

impl Timers {
    fn insert(&mut self, slot: Slot) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, key: usize) -> Slot {
        self.free.push(key);
        core::mem::replace(&mut self.slots[key], Slot::Free)
    }
}

impl ManualClock {
    /// A clock at [`Instant::ZERO`].
    pub fn new() -> ManualClock {
        ManualClock::starting_at(Instant::ZERO)
    }

    /// A clock that starts at `now`.
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
    pub fn set(&self, to: Instant) {
        self.shared.now.store(to.as_nanos(), Ordering::Release);
        self.fire_due(to);
    }

    /// How many timers are waiting: polled at least once, not yet due, not yet dropped.
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.with(|timers| {
            timers.slots.iter().filter(|slot| matches!(slot, Slot::Waiting { .. })).count()
        })
    }

    /// The earliest deadline among the waiting timers, if any: where a test (or a test
    /// executor that auto-advances time) should move the clock next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.shared.timers.with(|timers| {
            timers
                .slots
                .iter()
                .filter_map(|slot| match slot {
                    Slot::Waiting { deadline, .. } => Some(*deadline),
                    _ => None,
                })
                .min()
        })
    }

    fn fire_due(&self, now: Instant) {
        let mut due = Vec::new();
        self.shared.timers.with(|timers| {
            for slot in timers.slots.iter_mut() {
                if matches!(slot, Slot::Waiting { deadline, .. } if *deadline <= now) {
                    if let Slot::Waiting { waker, .. } = core::mem::replace(slot, Slot::Fired) {
                        due.push(waker);
                    }
                }
            }
        });
        // Wake outside the lock: a waker may run arbitrary executor code.
        for waker in due {
            waker.wake();
        }
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
#[must_use = "a timer does nothing unless polled"]
pub struct ManualSleep {
    shared: Arc<Shared>,
    deadline: Instant,
    key: Option<usize>,
}

impl ManualSleep {
    /// The instant at which this timer completes.
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
        let deadline = this.deadline;
        let now = &this.shared.now;
        let key = &mut this.key;
        this.shared.timers.with(|timers| {
            // Re-read the time under the lock: `fire_due` takes the lock after storing the
            // new time, so either it sees this registration or this read sees its time.
            let due = Instant::from_nanos(now.load(Ordering::Acquire)) >= deadline;
            match *key {
                Some(k) if due || matches!(timers.slots[k], Slot::Fired) => {
                    timers.remove(k);
                    *key = None;
                    Poll::Ready(())
                }
                Some(k) => {
                    if let Slot::Waiting { waker, .. } = &mut timers.slots[k] {
                        waker.clone_from(cx.waker());
                    }
                    Poll::Pending
                }
                None if due => Poll::Ready(()),
                None => {
                    *key =
                        Some(timers.insert(Slot::Waiting { deadline, waker: cx.waker().clone() }));
                    Poll::Pending
                }
            }
        })
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared.timers.with(|timers| {
                timers.remove(key);
            });
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
mod tests {
    use super::*;
    use alloc::task::Wake;
    use core::pin::pin;
    use core::sync::atomic::AtomicUsize;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        fn count(&self) -> usize {
            self.0.load(core::sync::atomic::Ordering::SeqCst)
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn several_timers_due_at_the_same_instant_all_complete_and_wake() {
        let clock = ManualClock::new();
        let wakers: Vec<Arc<CountingWaker>> = (0..3).map(|_| Arc::default()).collect();
        let mut timers: Vec<_> = (0..3).map(|_| Box::pin(clock.sleep(ms(10)))).collect();
        let mut late = Box::pin(clock.sleep(ms(11)));
        let late_waker = Arc::new(CountingWaker::default());

        for (timer, waker) in timers.iter_mut().zip(&wakers) {
            let waker = Waker::from(waker.clone());
            assert!(timer.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        }
        let waker = Waker::from(late_waker.clone());
        assert!(late.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(clock.pending_timers(), 4);

        clock.advance(ms(10));
        assert!(wakers.iter().all(|w| w.count() == 1), "each due timer woke its task once");
        assert_eq!(late_waker.count(), 0, "a timer that is not due stays asleep");
        assert_eq!(clock.pending_timers(), 1);
        assert_eq!(clock.next_deadline(), Some(Instant::ZERO + ms(11)));

        for timer in timers.iter_mut() {
            let waker = Waker::noop();
            assert_eq!(timer.as_mut().poll(&mut Context::from_waker(waker)), Poll::Ready(()));
        }
    }

    #[test]
    fn a_timer_dropped_before_it_is_due_leaves_nothing_behind() {
        let clock = ManualClock::new();
        let waker = Arc::new(CountingWaker::default());
        {
            let mut timer = pin!(clock.sleep(ms(5)));
            let w = Waker::from(waker.clone());
            assert!(timer.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
            assert_eq!(clock.pending_timers(), 1);
        }
        assert_eq!(clock.pending_timers(), 0);
        assert_eq!(clock.next_deadline(), None);
        clock.advance(ms(10));
        assert_eq!(waker.count(), 0, "a dropped timer is never woken");

        // Its slot is reused without confusion.
        let mut again = pin!(clock.sleep(ms(1)));
        let w = Waker::noop();
        assert!(again.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        clock.advance(ms(1));
        assert_eq!(again.as_mut().poll(&mut Context::from_waker(w)), Poll::Ready(()));
    }

    #[test]
    fn advancing_by_zero_moves_nothing_and_fires_what_is_due_now() {
        let clock = ManualClock::starting_at(Instant::from_nanos(100));
        let mut later = pin!(clock.sleep(ms(1)));
        let w = Waker::noop();
        assert!(later.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        clock.advance(Duration::ZERO);
        assert_eq!(clock.now(), Instant::from_nanos(100));
        assert!(later.as_mut().poll(&mut Context::from_waker(w)).is_pending());

        // A zero-length sleep is due immediately and never registers.
        let mut now = pin!(clock.sleep(Duration::ZERO));
        assert_eq!(now.as_mut().poll(&mut Context::from_waker(w)), Poll::Ready(()));
        assert_eq!(clock.pending_timers(), 1);
    }

    #[test]
    fn a_fired_timer_completes_even_if_the_clock_steps_back() {
        let clock = ManualClock::new();
        let mut timer = pin!(clock.sleep(ms(5)));
        let w = Waker::noop();
        assert!(timer.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        clock.advance(ms(5));
        clock.set(Instant::ZERO);
        assert_eq!(timer.as_mut().poll(&mut Context::from_waker(w)), Poll::Ready(()));
        assert_eq!(clock.now(), Instant::ZERO);
    }

    #[test]
    fn huge_advances_and_sleeps_saturate() {
        let clock = ManualClock::new();
        let mut forever = pin!(clock.sleep(Duration::MAX));
        let w = Waker::noop();
        assert!(forever.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Instant::MAX);
        // A deadline of Instant::MAX is reached only when the clock itself saturates.
        assert_eq!(forever.as_mut().poll(&mut Context::from_waker(w)), Poll::Ready(()));
    }

    #[test]
    fn a_repolled_timer_keeps_the_newest_waker() {
        let clock = ManualClock::new();
        let first = Arc::new(CountingWaker::default());
        let second = Arc::new(CountingWaker::default());
        let mut timer = pin!(clock.sleep(ms(1)));
        let w1 = Waker::from(first.clone());
        let w2 = Waker::from(second.clone());
        assert!(timer.as_mut().poll(&mut Context::from_waker(&w1)).is_pending());
        assert!(timer.as_mut().poll(&mut Context::from_waker(&w2)).is_pending());
        clock.advance(ms(1));
        assert_eq!((first.count(), second.count()), (0, 1));
    }

    use alloc::boxed::Box;
}
