//! An embedded user's clock for kompoz: a free-running **32-bit hardware tick counter**
//! (a SysTick-like or RTC counter register) that wraps, widened to 64 bits and turned into
//! kompoz's [`Clock`] and [`Sleep`].
//!
//! kompoz's [`Instant`] is 64 bits of nanoseconds and never wraps, so the widening is the
//! clock's job: [`Ticks`] remembers the last raw reading and adds the wrapping difference
//! to a 64-bit count at every reading. A wrap is then just a difference that crosses zero.
//! The one requirement: the counter must be read at least once per wrap period (2³² ticks:
//! 36 hours at 32.768 kHz, 71 minutes at 1 MHz). Calling [`Ticks::on_tick`] from the tick
//! or alarm interrupt, which reads the counter, guarantees it.
//!
//! Timers ([`TickSleep`]) wait in a fixed table of waker slots (no allocator needed);
//! [`Ticks::on_tick`] wakes those that are due. If the table is full a timer still works
//! but wakes its task on every poll instead (a busy wait), so size `TIMERS` for the number
//! of concurrent sleeps and timeouts.
//!
//! ```
//! use core::sync::atomic::{AtomicU32, Ordering};
//! use core::time::Duration;
//! use kompoz::{Clock, Sleep};
//! use kompoz_tick_clock_example::{TickCounter, Ticks};
//!
//! /// Stands in for a memory-mapped counter register.
//! struct Counter(AtomicU32);
//!
//! impl TickCounter for Counter {
//!     fn ticks(&self) -> u32 {
//!         self.0.load(Ordering::Relaxed)
//!     }
//! }
//!
//! // 1 kHz, two ticks before the counter wraps.
//! static TICKS: Ticks<Counter> = Ticks::new(Counter(AtomicU32::new(u32::MAX - 1)), 1_000);
//! let clock = TICKS.clock();
//! let start = clock.now();
//! TICKS.counter().0.store(3, Ordering::Relaxed); // 5 ticks later, after the wrap
//! assert_eq!(clock.now() - start, Duration::from_millis(5));
//! ```
#![no_std]

use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use critical_section::Mutex;
use kompoz::{Clock, Instant, Sleep};

/// A free-running 32-bit counter that wraps to zero after `u32::MAX`.
pub trait TickCounter {
    /// The counter's current raw value.
    fn ticks(&self) -> u32;
}

/// The 64-bit widening of the raw counter.
#[derive(Debug)]
struct Widened {
    /// The last raw value read.
    last_raw: u32,
    /// Ticks since the first reading's zero, counting every wrap.
    total: u64,
}

/// A timer's slot: its deadline and, until `on_tick` wakes it, the waker of its last
/// poll. The slot stays the timer's until the timer completes or is dropped.
type Slot = Option<(Instant, Option<Waker>)>;

/// The shared state of a tick clock: the counter, its rate, the widening and the timer
/// table. Usually a `static`; hand out [`TickClock`] handles with [`Ticks::clock`].
#[derive(Debug)]
pub struct Ticks<C, const TIMERS: usize = 4> {
    counter: C,
    hz: u32,
    widened: Mutex<RefCell<Widened>>,
    timers: Mutex<RefCell<[Slot; TIMERS]>>,
}

impl<C: TickCounter, const TIMERS: usize> Ticks<C, TIMERS> {
    /// A clock over `counter`, which counts `hz` ticks per second (clamped to at least 1).
    ///
    /// The epoch ([`Instant::ZERO`]) is the counter's zero: the first reading, of raw
    /// value `r`, is `r` ticks after it. From then on every reading adds the ticks since
    /// the previous one, wraps included.
    pub const fn new(counter: C, hz: u32) -> Self {
        Ticks {
            counter,
            hz: if hz == 0 { 1 } else { hz },
            widened: Mutex::new(RefCell::new(Widened { last_raw: 0, total: 0 })),
            timers: Mutex::new(RefCell::new([const { None }; TIMERS])),
        }
    }

    /// A handle that is the [`Clock`] and [`Sleep`]; cheap to copy.
    pub fn clock(&self) -> TickClock<'_, C, TIMERS> {
        TickClock { ticks: self }
    }

    /// The underlying counter.
    pub fn counter(&self) -> &C {
        &self.counter
    }

    /// Reads the counter and returns the widened tick count.
    ///
    /// The read happens inside the critical section, so readings are ordered and each
    /// sees a raw value no older than the previous one; the wrapping difference to it is
    /// the time that passed, wraps included, as long as less than one wrap period passed.
    pub fn ticks64(&self) -> u64 {
        critical_section::with(|cs| {
            let mut widened = self.widened.borrow_ref_mut(cs);
            let raw = self.counter.ticks();
            let elapsed = raw.wrapping_sub(widened.last_raw);
            widened.last_raw = raw;
            widened.total = widened.total.saturating_add(u64::from(elapsed));
            widened.total
        })
    }

    /// Call from the tick or alarm interrupt (or at least once per wrap period): reads the
    /// counter, keeping the widening right, and wakes the timers that are due.
    pub fn on_tick(&self) {
        let now = self.now();
        // Wake outside the critical section: a waker may run executor code. Wake in
        // rounds so no allocation is needed.
        loop {
            let mut due: [Option<Waker>; 4] = [const { None }; 4];
            let mut found = 0;
            critical_section::with(|cs| {
                for slot in self.timers.borrow_ref_mut(cs).iter_mut() {
                    if found == due.len() {
                        break;
                    }
                    if let Some((deadline, waker @ Some(_))) = slot {
                        if *deadline <= now {
                            due[found] = waker.take();
                            found += 1;
                        }
                    }
                }
            });
            for waker in due.into_iter().flatten() {
                waker.wake();
            }
            if found < 4 {
                return;
            }
        }
    }

    /// Timers holding a slot of the table (registered, not yet completed or dropped).
    pub fn waiting_timers(&self) -> usize {
        critical_section::with(|cs| self.timers.borrow_ref(cs).iter().flatten().count())
    }

    fn now(&self) -> Instant {
        let ticks = u128::from(self.ticks64());
        let nanos = ticks * 1_000_000_000 / u128::from(self.hz);
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A [`Clock`] and [`Sleep`] over a [`Ticks`].
#[derive(Debug)]
pub struct TickClock<'a, C, const TIMERS: usize = 4> {
    ticks: &'a Ticks<C, TIMERS>,
}

impl<C, const TIMERS: usize> Clone for TickClock<'_, C, TIMERS> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, const TIMERS: usize> Copy for TickClock<'_, C, TIMERS> {}

impl<C: TickCounter, const TIMERS: usize> Clock for TickClock<'_, C, TIMERS> {
    fn now(&self) -> Instant {
        self.ticks.now()
    }
}

impl<'a, C: TickCounter, const TIMERS: usize> Sleep for TickClock<'a, C, TIMERS> {
    type Timer = TickSleep<'a, C, TIMERS>;

    fn sleep_until(&self, deadline: Instant) -> TickSleep<'a, C, TIMERS> {
        TickSleep { ticks: self.ticks, deadline, slot: None }
    }
}

/// A timer of a [`TickClock`]: completes once the widened clock reaches its deadline.
#[derive(Debug)]
#[must_use = "a timer does nothing unless polled"]
pub struct TickSleep<'a, C: TickCounter, const TIMERS: usize = 4> {
    ticks: &'a Ticks<C, TIMERS>,
    deadline: Instant,
    /// Its slot in the timer table, while it has one.
    slot: Option<usize>,
}

impl<C: TickCounter, const TIMERS: usize> TickSleep<'_, C, TIMERS> {
    /// The instant at which this timer completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn free_slot(&mut self) {
        if let Some(index) = self.slot.take() {
            critical_section::with(|cs| self.ticks.timers.borrow_ref_mut(cs)[index] = None);
        }
    }
}

impl<C: TickCounter, const TIMERS: usize> Future for TickSleep<'_, C, TIMERS> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.ticks.now() >= this.deadline {
            this.free_slot();
            return Poll::Ready(());
        }
        let (deadline, slot) = (this.deadline, this.slot);
        let registered = critical_section::with(|cs| {
            let mut timers = this.ticks.timers.borrow_ref_mut(cs);
            let index = slot.or_else(|| timers.iter().position(Option::is_none));
            if let Some(index) = index {
                timers[index] = Some((deadline, Some(cx.waker().clone())));
            }
            index
        });
        this.slot = registered;
        // A tick may have come between the first reading and the registration, and
        // `on_tick` found nothing to wake: check again now that we are registered.
        if this.ticks.now() >= this.deadline {
            this.free_slot();
            return Poll::Ready(());
        }
        if registered.is_none() {
            // No free slot: poll again soon rather than never.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<C: TickCounter, const TIMERS: usize> Drop for TickSleep<'_, C, TIMERS> {
    fn drop(&mut self) {
        self.free_slot();
    }
}
