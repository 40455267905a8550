//! What a scenario runs on: the [`Runtime`] trait, the manual-clock runtime, and probes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use kompoz::{Clock, Instant, ManualClock, Sleep};

/// A runtime to run scenarios on: a timer and a way to block on a future.
pub trait Runtime {
    /// The runtime's clock and timer.
    type Timer: Sleep + Clone + Send + Sync + 'static;

    /// A handle to the runtime's timer.
    fn timer(&self) -> Self::Timer;

    /// Runs `future` to completion on this runtime.
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// Whether time is simulated (the manual clock, tokio's paused clock): then a scenario
    /// may wait for minutes at no real cost, and must.
    fn simulated_time(&self) -> bool;
}

/// A runtime on a [`ManualClock`]: a single-threaded `block_on` that, whenever the future
/// is stuck and no wake-up is pending, moves the clock to the next timer's deadline. Time
/// passes only through the clock, so runs are deterministic and take no real time.
#[derive(Clone, Debug, Default)]
pub struct ManualRuntime {
    clock: ManualClock,
}

impl ManualRuntime {
    /// A runtime on a fresh clock at zero.
    pub fn new() -> Self {
        ManualRuntime::default()
    }

    /// The clock, to inspect or move by hand.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

#[derive(Default)]
struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Runtime for ManualRuntime {
    type Timer = ManualClock;

    fn timer(&self) -> ManualClock {
        self.clock.clone()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let flag = Arc::new(WakeFlag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            flag.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            if flag.0.load(Ordering::SeqCst) {
                continue;
            }
            match self.clock.next_deadline() {
                Some(deadline) => self.clock.advance(deadline - self.clock.now()),
                None => panic!("the future waits, but no wake-up and no timer is pending"),
            }
        }
    }

    fn simulated_time(&self) -> bool {
        true
    }
}

/// Wraps a timer and counts the timers it makes.
#[derive(Clone, Debug)]
pub struct CountingTimer<S> {
    inner: S,
    made: Arc<AtomicUsize>,
}

impl<S> CountingTimer<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingTimer { inner, made: Arc::default() }
    }

    /// How many timers were made so far.
    pub fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }
}

impl<S: Clock> Clock for CountingTimer<S> {
    fn now(&self) -> Instant {
        self.inner.now()
    }
}

impl<S: Sleep> Sleep for CountingTimer<S> {
    type Timer = S::Timer;

    fn sleep_until(&self, deadline: Instant) -> S::Timer {
        self.made.fetch_add(1, Ordering::SeqCst);
        self.inner.sleep_until(deadline)
    }

    fn sleep(&self, duration: std::time::Duration) -> S::Timer {
        self.made.fetch_add(1, Ordering::SeqCst);
        self.inner.sleep(duration)
    }
}

/// A flag raised when its [`DropFlag::guard`] is dropped: proof that a future was
/// cancelled (or finished) and its state released.
#[derive(Clone, Debug, Default)]
pub struct DropFlag(Arc<AtomicBool>);

/// Raises its [`DropFlag`] when dropped.
#[derive(Debug)]
pub struct DropGuard(Arc<AtomicBool>);

impl DropFlag {
    /// A new, lowered flag.
    pub fn new() -> Self {
        DropFlag::default()
    }

    /// A guard that raises the flag when dropped; move it into the future under test.
    pub fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    /// Whether the guard has been dropped.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
