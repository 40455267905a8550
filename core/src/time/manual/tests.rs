//! Unit tests of the manual clock, polled by hand.

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

impl ManualClock {
    fn visited(&self) -> usize {
        self.shared.timers.with(|timers| timers.visited)
    }
}

fn heap_len(clock: &ManualClock) -> usize {
    clock.shared.timers.with(|timers| timers.deadlines.len())
}

/// Timers dropped before their deadline leave stale heap entries behind; the heap is
/// rebuilt before they can pile up, so a test that sets (and cancels) many timeouts
/// without ever advancing does not grow the clock without bound.
#[test]
fn timers_dropped_before_their_deadline_do_not_pile_up() {
    let clock = ManualClock::new();
    let w = Waker::noop();
    let mut long_lived = Box::pin(clock.sleep(ms(1)));
    assert!(long_lived.as_mut().poll(&mut Context::from_waker(w)).is_pending());
    // Fewer under miri: still many rebuilds' worth (one every 33 stale entries).
    let created = if cfg!(miri) { 300 } else { 10_000 };
    for i in 0..created {
        let mut timer = Box::pin(clock.sleep(ms(1_000 + i)));
        assert!(timer.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        assert!(heap_len(&clock) <= 2 * clock.pending_timers() + STALE_SLACK + 1);
    }
    assert_eq!(clock.pending_timers(), 1);
    assert_eq!(clock.next_deadline(), Some(Instant::ZERO + ms(1)));
    clock.advance(ms(1));
    assert_eq!(long_lived.as_mut().poll(&mut Context::from_waker(w)), Poll::Ready(()));
}

/// A slot freed by a dropped timer is reused by a later one with another deadline: the
/// dropped timer's heap entry must not fire the newcomer.
#[test]
fn a_stale_deadline_does_not_fire_the_timer_that_reuses_its_slot() {
    let clock = ManualClock::new();
    let early = Arc::new(CountingWaker::default());
    let late = Arc::new(CountingWaker::default());
    let mut first = Box::pin(clock.sleep(ms(10)));
    let w = Waker::from(early.clone());
    assert!(first.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    drop(first);
    let mut second = Box::pin(clock.sleep(ms(20)));
    let w = Waker::from(late.clone());
    assert!(second.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    assert_eq!(clock.next_deadline(), Some(Instant::ZERO + ms(20)));
    clock.advance(ms(10));
    assert_eq!((early.count(), late.count()), (0, 0));
    assert!(second.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    clock.advance(ms(10));
    assert_eq!(late.count(), 1);
    assert_eq!(second.as_mut().poll(&mut Context::from_waker(&w)), Poll::Ready(()));
}

/// More timers due at once than a wake batch holds: all fire in one advance.
#[test]
fn more_due_timers_than_a_batch_all_fire_in_one_advance() {
    let clock = ManualClock::new();
    let wakers: Vec<Arc<CountingWaker>> = (0..40).map(|_| Arc::default()).collect();
    let mut timers: Vec<_> = (0..40).map(|i| Box::pin(clock.sleep(ms(1 + i % 3)))).collect();
    for (timer, waker) in timers.iter_mut().zip(&wakers) {
        let waker = Waker::from(waker.clone());
        assert!(timer.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    }
    clock.advance(ms(3));
    assert!(wakers.iter().all(|w| w.count() == 1));
    assert_eq!(clock.pending_timers(), 0);
}

/// Issue 9, item 8: an advance visits the timers that are due (and a bounded number of
/// others), not every timer ever registered.
#[test]
fn advancing_visits_only_the_due_timers() {
    let clock = ManualClock::new();
    let w = Waker::noop();
    let count = if cfg!(miri) { 100 } else { 1_000 };
    let mut timers: Vec<_> = (1..=count).map(|i| Box::pin(clock.sleep(ms(i)))).collect();
    for timer in timers.iter_mut() {
        assert!(timer.as_mut().poll(&mut Context::from_waker(w)).is_pending());
    }
    for step in 1..=count {
        let before = clock.visited();
        clock.advance(ms(1));
        let visited = clock.visited() - before;
        assert!(visited <= 2, "advance {step} visited {visited} timers, one was due");
        assert_eq!(clock.pending_timers(), (count - step) as usize);
    }
}

mod hostile {
    //! The manual clock against wakers that panic or re-enter it. Each hostile waker also
    //! checks that it never runs under the clock's lock (see `crate::test_wakers`).

    use super::*;
    use crate::test_wakers::{Hostile, expect_panic};

    fn poll_with(timer: Pin<&mut ManualSleep>, waker: &Waker) -> Poll<()> {
        timer.poll(&mut Context::from_waker(waker))
    }

    /// A waker whose drop uses the clock (it advances it, so it takes the clock's lock):
    /// dropped when a re-poll swaps it out, when its timer completes, and when its timer
    /// is dropped. Dropping it under the lock would spin forever.
    #[test]
    fn a_waker_whose_drop_uses_the_clock_can_be_dropped_by_it() {
        let clock = ManualClock::new();
        let make = || {
            let clock = clock.clone();
            Hostile::new().on_drop(move || clock.advance(Duration::ZERO)).waker()
        };
        // Swapped out by a re-poll with another waker.
        let (first, first_waker) = make();
        let mut timer = Box::pin(clock.sleep(ms(5)));
        assert!(poll_with(timer.as_mut(), &first_waker).is_pending());
        let (second, second_waker) = make();
        assert!(poll_with(timer.as_mut(), &second_waker).is_pending());
        assert_eq!(first.live(), 1, "the clock let go of the first waker");
        // Completed: the clock drops its slot.
        clock.advance(ms(5));
        assert_eq!(second.wakes(), 1);
        assert_eq!(poll_with(timer.as_mut(), &second_waker), Poll::Ready(()));
        assert_eq!(second.live(), 1);
        // Dropped while waiting.
        let (third, third_waker) = make();
        let mut dropped = Box::pin(clock.sleep(ms(5)));
        assert!(poll_with(dropped.as_mut(), &third_waker).is_pending());
        drop(dropped);
        assert_eq!((third.live(), clock.pending_timers()), (1, 0));
        drop((first_waker, second_waker, third_waker));
    }

    /// A due timer's slot is removed by the poll that completes it while its waker is
    /// still stored (the clock was set, not advanced, so nobody fired it): the waker is
    /// dropped outside the lock too.
    #[test]
    fn completing_an_unfired_timer_drops_its_waker_outside_the_lock() {
        let clock = ManualClock::new();
        let inner = clock.clone();
        let (hostile, waker) =
            Hostile::new().on_drop(move || assert!(inner.pending_timers() <= 1)).waker();
        let mut timer = Box::pin(clock.sleep(ms(5)));
        assert!(poll_with(timer.as_mut(), &waker).is_pending());
        // Moves the time without firing: a store another thread could make between an
        // advance's store and its lock.
        clock.shared.now.store(ms(5).as_nanos() as u64, Ordering::Release);
        assert_eq!(poll_with(timer.as_mut(), &waker), Poll::Ready(()));
        assert_eq!((hostile.live(), hostile.wakes(), clock.pending_timers()), (1, 0, 0));
    }

    /// A waker whose clone panics: nothing is registered.
    #[test]
    fn a_waker_whose_clone_panics_registers_nothing() {
        let clock = ManualClock::new();
        let (hostile, waker) = Hostile::new().waker();
        hostile.panic_on_clone(true);
        let mut timer = Box::pin(clock.sleep(ms(5)));
        expect_panic(|| poll_with(timer.as_mut(), &waker));
        assert_eq!(clock.pending_timers(), 0);
        hostile.panic_on_clone(false);
        assert!(poll_with(timer.as_mut(), &waker).is_pending());
        // A re-poll whose clone panics keeps the stored waker.
        let (other, other_waker) = Hostile::new().waker();
        other.panic_on_clone(true);
        expect_panic(|| poll_with(timer.as_mut(), &other_waker));
        clock.advance(ms(5));
        assert_eq!((hostile.wakes(), other.wakes()), (1, 0));
    }

    /// Twenty timers due at once, the first one's wake panics: every other timer still
    /// fires and wakes its task, and the panic comes out of `advance` afterwards.
    #[test]
    fn a_panicking_wake_does_not_stop_the_other_timers() {
        let clock = ManualClock::new();
        let mut timers: Vec<_> = (0..20)
            .map(|_| {
                let (hostile, waker) = Hostile::new().waker();
                let mut timer = Box::pin(clock.sleep(ms(5)));
                assert!(poll_with(timer.as_mut(), &waker).is_pending());
                (timer, hostile, waker)
            })
            .collect();
        timers[0].1.panic_on_wake(true);
        expect_panic(|| clock.advance(ms(5)));
        assert_eq!(clock.pending_timers(), 0);
        for (timer, hostile, waker) in timers.iter_mut() {
            assert_eq!(hostile.wakes(), 1);
            assert_eq!(poll_with(timer.as_mut(), waker), Poll::Ready(()));
        }
    }

    /// Wakes that re-enter the clock: one advances it further (firing the next timer from
    /// inside the first one's wake), one registers a new timer.
    #[test]
    fn a_wake_may_advance_the_clock_and_register_timers() {
        let clock = ManualClock::new();
        let inner = clock.clone();
        let registered = Arc::new(std::sync::Mutex::new(None));
        let slot = registered.clone();
        let (first, first_waker) = Hostile::new()
            .on_wake(move || {
                inner.advance(ms(1));
                let mut timer = Box::pin(inner.sleep(ms(10)));
                assert!(poll_with(timer.as_mut(), Waker::noop()).is_pending());
                *slot.lock().unwrap() = Some(timer);
            })
            .waker();
        let (second, second_waker) = Hostile::new().waker();
        let mut a = Box::pin(clock.sleep(ms(1)));
        let mut b = Box::pin(clock.sleep(ms(2)));
        assert!(poll_with(a.as_mut(), &first_waker).is_pending());
        assert!(poll_with(b.as_mut(), &second_waker).is_pending());
        clock.advance(ms(1));
        assert_eq!(clock.now(), Instant::ZERO + ms(2));
        assert_eq!((first.wakes(), second.wakes()), (1, 1));
        assert_eq!(clock.pending_timers(), 1, "the timer registered from inside the wake");
        assert_eq!(clock.next_deadline(), Some(Instant::ZERO + ms(12)));
        assert_eq!(poll_with(a.as_mut(), &first_waker), Poll::Ready(()));
        assert_eq!(poll_with(b.as_mut(), &second_waker), Poll::Ready(()));
        drop(registered.lock().unwrap().take());
        assert_eq!(clock.pending_timers(), 0);
    }
}
