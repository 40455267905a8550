//! A reference model of `kompoz::timeout` and `timeout_at` over a `ManualClock`.
//!
//! The promises modelled:
//! * the inner future is polled first; if it is ready, so is the timeout, with its output;
//! * the timer is made on the first poll where the inner future is pending: a relative
//!   limit counts from then, an absolute one was fixed when the timeout was made;
//! * a manual-clock timer completes on a poll once the clock has reached its deadline; if
//!   it was pending on a poll, it is registered, and the clock's `advance` or `set` that
//!   reaches its deadline fires it (it stays fired even if the clock steps back) and
//!   wakes the task once;
//! * at expiry the inner future (and with it its own timer) is dropped, and the result is
//!   `Elapsed`.

use std::collections::BTreeMap;
use std::task::Poll;

/// Names a timeout of the model.
pub type TimeoutId = u64;

/// A manual-clock timer.
#[derive(Clone, Copy, Debug)]
struct Timer {
    deadline: u64,
    registered: bool,
    fired: bool,
}

impl Timer {
    fn new(deadline: u64) -> Timer {
        Timer { deadline, registered: false, fired: false }
    }

    /// A poll of the timer at `now`: ready, or registered and pending.
    fn poll(&mut self, now: u64) -> bool {
        if self.fired || now >= self.deadline {
            self.registered = false;
            return true;
        }
        self.registered = true;
        false
    }

    fn waiting(&self) -> bool {
        self.registered && !self.fired
    }
}

#[derive(Clone, Copy, Debug)]
enum InnerState {
    Ready,
    Never,
    Sleep(Timer),
    Gate { open: bool, waiting: bool },
}

#[derive(Clone, Debug)]
struct Limited {
    inner: InnerState,
    /// The limit in nanoseconds (relative), or the deadline (absolute).
    limit: u64,
    absolute: bool,
    timer: Option<Timer>,
    wakes: usize,
}

/// The model.
#[derive(Clone, Debug, Default)]
pub struct TimeoutModel {
    timeouts: BTreeMap<TimeoutId, Limited>,
    next_id: TimeoutId,
    now: u64,
}

fn millis(ms: u64) -> u64 {
    ms * 1_000_000
}

impl TimeoutModel {
    /// No timeouts, the clock at zero.
    pub fn new() -> TimeoutModel {
        TimeoutModel::default()
    }

    /// Makes a timeout (not polled yet).
    pub fn start(&mut self, limit_ms: u8, at: bool, inner: super::Inner) -> TimeoutId {
        let limit = millis(u64::from(limit_ms));
        let inner = match inner {
            super::Inner::Ready => InnerState::Ready,
            super::Inner::Never => InnerState::Never,
            super::Inner::Sleep(ms) => {
                InnerState::Sleep(Timer::new(self.now.saturating_add(millis(u64::from(ms)))))
            }
            super::Inner::Gate => InnerState::Gate { open: false, waiting: false },
        };
        let limited = Limited {
            inner,
            limit: if at { self.now.saturating_add(limit) } else { limit },
            absolute: at,
            timer: None,
            wakes: 0,
        };
        let id = self.next_id;
        self.next_id += 1;
        self.timeouts.insert(id, limited);
        id
    }

    /// Polls timeout `id`: `Ready(Ok)` when the inner future finished, `Ready(Err)` when
    /// the limit passed. A finished timeout is gone.
    pub fn poll(&mut self, id: TimeoutId) -> Poll<Result<(), ()>> {
        let now = self.now;
        let t = self.timeouts.get_mut(&id).expect("a live timeout");
        let inner_ready = match &mut t.inner {
            InnerState::Ready => true,
            InnerState::Never => false,
            InnerState::Sleep(timer) => timer.poll(now),
            InnerState::Gate { open, waiting } => {
                *waiting = !*open;
                *open
            }
        };
        if inner_ready {
            self.timeouts.remove(&id);
            return Poll::Ready(Ok(()));
        }
        let deadline = if t.absolute { t.limit } else { now.saturating_add(t.limit) };
        let timer = t.timer.get_or_insert(Timer::new(deadline));
        if timer.poll(now) {
            self.timeouts.remove(&id);
            return Poll::Ready(Err(()));
        }
        Poll::Pending
    }

    /// Drops timeout `id`.
    pub fn drop_timeout(&mut self, id: TimeoutId) {
        self.timeouts.remove(&id).expect("a live timeout");
    }

    /// Opens the gate of timeout `id`, if its inner future is a gate; wakes the task if the
    /// gate had been polled while closed.
    pub fn open(&mut self, id: TimeoutId) {
        let t = self.timeouts.get_mut(&id).expect("a live timeout");
        if let InnerState::Gate { open, waiting } = &mut t.inner {
            if !*open && *waiting {
                t.wakes += 1;
            }
            *open = true;
            *waiting = false;
        }
    }

    /// `ManualClock::advance`, in nanoseconds.
    pub fn advance(&mut self, by: u64) {
        self.now = self.now.saturating_add(by);
        self.fire();
    }

    /// `ManualClock::set`, in nanoseconds.
    pub fn set_clock(&mut self, to: u64) {
        self.now = to;
        self.fire();
    }

    /// The clock.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Wake-ups timeout `id`'s task received.
    pub fn wakes(&self, id: TimeoutId) -> usize {
        self.timeouts[&id].wakes
    }

    /// Timers registered with the clock and not fired.
    pub fn pending_timers(&self) -> usize {
        let mut n = 0;
        for t in self.timeouts.values() {
            if let InnerState::Sleep(timer) = &t.inner {
                n += usize::from(timer.waiting());
            }
            n += usize::from(t.timer.is_some_and(|timer| timer.waiting()));
        }
        n
    }

    fn fire(&mut self) {
        let now = self.now;
        for t in self.timeouts.values_mut() {
            let inner = match &mut t.inner {
                InnerState::Sleep(timer) => Some(timer),
                _ => None,
            };
            for timer in inner.into_iter().chain(t.timer.as_mut()) {
                if timer.waiting() && timer.deadline <= now {
                    timer.fired = true;
                    t.wakes += 1;
                }
            }
        }
    }
}
