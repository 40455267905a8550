//! The board, simulated on the host: embassy's real executor (its raw form, polled by the
//! test) and embassy's mock time driver, advanced one millisecond at a time.
//!
//! Time moves only when the test moves it, and every task that can run runs before it
//! moves again, so a run is the same every time, however loaded the machine is. The mock
//! driver is one global clock per test binary and libtest runs tests on several threads,
//! so a [`Board`] holds a lock for its whole test and starts from a reset clock.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use embassy_executor::raw::{Executor, TaskStorage};
use embassy_time::{Duration, Instant, MockDriver};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Set by the executor when a task was woken and it wants to be polled.
static PENDED: AtomicBool = AtomicBool::new(false);

/// The executor's pender (the board's `SEV`): embassy's executor calls the function of this
/// name, which each test binary defines once. Polling happens in [`Board::run_until`].
#[unsafe(no_mangle)]
fn __pender(_context: *mut ()) {
    PENDED.store(true, Ordering::SeqCst);
}

/// Polls of one instant after which a task that keeps waking itself is a bug.
const MAX_POLLS_PER_INSTANT: usize = 10_000;

/// An embassy executor and its time, for one test.
pub struct Board {
    executor: &'static Executor,
    _exclusive: MutexGuard<'static, ()>,
}

/// Leaks `value` for the rest of the test binary: tasks and what they borrow are
/// `'static` on a board too.
pub fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

impl Board {
    /// Powers on: embassy time at tick 0, an executor with no tasks.
    pub fn boot() -> Board {
        // A failed test poisons the lock; the clock is reset anyway.
        let exclusive = EXCLUSIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        MockDriver::get().reset();
        // Tasks of earlier tests stay parked on their own executors, never polled again.
        let executor = leak(Executor::new(core::ptr::null_mut()));
        Board { executor, _exclusive: exclusive }
    }

    /// Spawns `task` on the executor, in storage of its own.
    pub fn spawn<F: Future + 'static>(&self, task: F) {
        let storage: &'static TaskStorage<F> = leak(TaskStorage::new());
        let token = storage.spawn(|| task).unwrap_or_else(|_| unreachable!("fresh storage"));
        self.executor.spawner().spawn(token);
    }

    /// Runs the tasks until embassy time reaches `until` (since boot): every task that can
    /// run runs, then time moves one millisecond, waking the timers that are due.
    pub fn run_until(&self, until: Duration) {
        loop {
            self.run_ready_tasks();
            if Instant::now().as_ticks() >= until.as_ticks() {
                return;
            }
            MockDriver::get().advance(Duration::from_millis(1));
        }
    }

    fn run_ready_tasks(&self) {
        for _ in 0..MAX_POLLS_PER_INSTANT {
            PENDED.store(false, Ordering::SeqCst);
            // SAFETY: `poll` must not be called re-entrantly: only this function calls it,
            // on the test's own thread, never from the pender.
            unsafe { self.executor.poll() };
            if !PENDED.load(Ordering::SeqCst) {
                return;
            }
        }
        panic!("a task keeps waking itself at {} ticks", Instant::now().as_ticks());
    }
}
