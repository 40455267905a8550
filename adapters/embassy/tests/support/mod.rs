//! Host-test support: embassy's mock time driver, one test at a time, and hand polling.
//!
//! The mock driver is one global clock for the whole test binary, and libtest runs tests
//! on several threads, so each test takes [`mock_time`]'s lock for its whole run and starts
//! from a reset clock at tick 0: no test ever sees another's time.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use embassy_time::{Duration, MockDriver};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// The mock clock, held by one test.
pub struct MockTime {
    _exclusive: MutexGuard<'static, ()>,
}

/// Takes the mock clock for this test and resets it to tick 0 with no timers.
pub fn mock_time() -> MockTime {
    // A test that failed while holding the lock poisons it; the clock is reset anyway.
    let exclusive = EXCLUSIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    MockDriver::get().reset();
    MockTime { _exclusive: exclusive }
}

impl MockTime {
    /// Moves embassy time forward by `ticks`, waking the timers that come due.
    pub fn advance_ticks(&self, ticks: u64) {
        MockDriver::get().advance(Duration::from_ticks(ticks));
    }

    /// Moves embassy time forward by `millis` milliseconds.
    pub fn advance_millis(&self, millis: u64) {
        MockDriver::get().advance(Duration::from_millis(millis));
    }

    /// embassy's current tick.
    pub fn ticks(&self) -> u64 {
        embassy_time::Instant::now().as_ticks()
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task, as far as a future can tell: polls with a waker that counts its wakes.
pub struct Task {
    counter: Arc<CountingWaker>,
    waker: Waker,
}

impl Task {
    pub fn new() -> Task {
        let counter = Arc::new(CountingWaker::default());
        Task { waker: Waker::from(counter.clone()), counter }
    }

    pub fn poll<F: Future>(&self, future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(&self.waker))
    }

    /// Wakes so far; [`Task::take_wakes`] also resets the count.
    pub fn take_wakes(&self) -> usize {
        self.counter.0.swap(0, Ordering::SeqCst)
    }
}
