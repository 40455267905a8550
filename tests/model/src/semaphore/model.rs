//! A reference model of `kompoz::limit::Semaphore`: what the semaphore promises, written
//! as plainly as possible.
//!
//! The promises modelled:
//! * a permit is free only while nobody is queued; a released or added permit goes to
//!   the oldest queued waiter (which is woken), else to the free count;
//! * `try_acquire` and a new `acquire` never take a permit ahead of a queued waiter;
//! * a waiter dropped after a permit was handed to it passes that permit on;
//! * `close` fails every queued waiter (each is woken) and every later acquisition,
//!   but a permit already handed to a waiter is still its to take;
//! * `acquire_with_max_wait` polls the acquisition first; its timer starts on its first
//!   pending poll, registers with the manual clock, fires (waking the task once) when the
//!   clock reaches the deadline, and on expiry gives up the place in the queue;
//! * `total_acquired` counts permits handed out: taken from the free count, or handed to
//!   a waiter (counted at the hand-over, and uncounted if that waiter is dropped before it
//!   takes the permit, which then goes on); `total_rejected` counts `try_acquire`
//!   failures, expired waits, and acquisitions refused or failed by `close`.

use std::collections::{BTreeMap, VecDeque};
use std::task::Poll;
use std::time::Duration;

use kompoz::limit::{AcquireError, LimitError, MAX_PERMITS, SemaphoreStats};

/// Names a waiter of the model.
pub type WaiterId = u64;

/// The counters that `Semaphore::stats` reports, comparable with the model's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Permits owned.
    pub capacity: usize,
    /// Permits free.
    pub available: usize,
    /// Permits held, or handed to a waiter that has not taken it yet.
    pub in_flight: usize,
    /// Waiters queued.
    pub waiting: usize,
    /// Permits taken.
    pub total_acquired: u64,
    /// Acquisitions refused or failed.
    pub total_rejected: u64,
    /// Whether the semaphore is closed.
    pub closed: bool,
}

impl From<SemaphoreStats> for Stats {
    fn from(s: SemaphoreStats) -> Stats {
        Stats {
            capacity: s.capacity,
            available: s.available,
            in_flight: s.in_flight,
            waiting: s.waiting,
            total_acquired: s.total_acquired,
            total_rejected: s.total_rejected,
            closed: s.closed,
        }
    }
}

/// How often a run reached the interesting transitions (to check that random sequences
/// explore them, not to compare).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Permits handed to a queued waiter (by a release or `add_permits`).
    pub handed_off: u64,
    /// Waiters dropped with a permit handed to them, which passed it on.
    pub passed_on: u64,
    /// Maximum waits that expired while queued.
    pub elapsed: u64,
    /// Queued waiters failed by `close`.
    pub closed_in_queue: u64,
    /// Timers fired by the clock.
    pub timers_fired: u64,
}

impl core::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.handed_off += other.handed_off;
        self.passed_on += other.passed_on;
        self.elapsed += other.elapsed;
        self.closed_in_queue += other.closed_in_queue;
        self.timers_fired += other.timers_fired;
    }
}

/// Where a waiter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Made, never polled.
    New,
    /// In the queue.
    Queued,
    /// A permit was handed to it; its next poll takes it.
    Granted,
    /// Failed by `close` while queued; its next poll reports it.
    Closed,
}

#[derive(Clone, Debug)]
struct Waiter {
    state: State,
    /// The maximum wait, for `acquire_with_max_wait`.
    max_wait: Option<Duration>,
    /// The timer's deadline (nanoseconds), once the timer exists.
    deadline: Option<u64>,
    /// The timer is registered with the clock (it was pending once).
    registered: bool,
    /// The clock reached the registered timer's deadline.
    fired: bool,
    /// Wake-ups received.
    wakes: usize,
}

/// The model. Time is kept in nanoseconds, like a `ManualClock`.
#[derive(Clone, Debug)]
pub struct SemaphoreModel {
    capacity: usize,
    available: usize,
    queue: VecDeque<WaiterId>,
    waiters: BTreeMap<WaiterId, Waiter>,
    next_id: WaiterId,
    held: usize,
    closed: bool,
    acquired: u64,
    rejected: u64,
    now: u64,
    tally: Tally,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl SemaphoreModel {
    /// A semaphore with `permits` permits and a clock at zero.
    pub fn new(permits: usize) -> SemaphoreModel {
        assert!(permits <= MAX_PERMITS);
        SemaphoreModel {
            capacity: permits,
            available: permits,
            queue: VecDeque::new(),
            waiters: BTreeMap::new(),
            next_id: 0,
            held: 0,
            closed: false,
            acquired: 0,
            rejected: 0,
            now: 0,
            tally: Tally::default(),
        }
    }

    /// `acquire()`, or `acquire_with_max_wait(clock, max_wait)`: a new waiter, polled once.
    /// If it is not ready, it stays as the waiter returned.
    pub fn acquire(
        &mut self,
        max_wait: Option<Duration>,
    ) -> (WaiterId, Poll<Result<(), AcquireError>>) {
        let id = self.next_id;
        self.next_id += 1;
        let waiter = Waiter {
            state: State::New,
            max_wait,
            deadline: None,
            registered: false,
            fired: false,
            wakes: 0,
        };
        self.waiters.insert(id, waiter);
        (id, self.poll(id))
    }

    /// Polls waiter `id`. Once ready, the waiter is gone (its permit, if any, is held).
    pub fn poll(&mut self, id: WaiterId) -> Poll<Result<(), AcquireError>> {
        let state = self.waiters[&id].state;
        // The acquisition itself is polled first.
        let acquisition = match state {
            State::New if self.closed => {
                self.rejected += 1;
                Poll::Ready(Err(AcquireError::Closed))
            }
            State::New if self.available > 0 && self.queue.is_empty() => {
                self.available -= 1;
                self.acquired += 1;
                Poll::Ready(Ok(()))
            }
            State::New => {
                self.queue.push_back(id);
                self.waiter(id).state = State::Queued;
                Poll::Pending
            }
            State::Queued => Poll::Pending,
            // Counted when it was handed over.
            State::Granted => Poll::Ready(Ok(())),
            // Counted as rejected by `close`.
            State::Closed => Poll::Ready(Err(AcquireError::Closed)),
        };
        if let Poll::Ready(result) = acquisition {
            self.waiters.remove(&id);
            if result.is_ok() {
                self.held += 1;
            }
            return Poll::Ready(result);
        }
        // Pending: then the timer of a maximum wait, made now if it does not exist yet.
        let now = self.now;
        let waiter = self.waiter(id);
        if let Some(max_wait) = waiter.max_wait {
            let deadline = *waiter.deadline.get_or_insert(now.saturating_add(nanos(max_wait)));
            if waiter.fired || now >= deadline {
                // Expired: the acquisition is dropped, giving up its place in the queue.
                self.drop_waiter(id);
                self.rejected += 1;
                self.tally.elapsed += 1;
                return Poll::Ready(Err(AcquireError::WaitElapsed));
            }
            waiter.registered = true;
        }
        Poll::Pending
    }

    /// Drops waiter `id`'s future, wherever it is.
    pub fn drop_waiter(&mut self, id: WaiterId) {
        let waiter = self.waiters.remove(&id).expect("a live waiter");
        match waiter.state {
            State::Queued => self.queue.retain(|&queued| queued != id),
            // The permit handed to it goes on, and was never acquired by it.
            State::Granted => {
                self.tally.passed_on += 1;
                self.acquired -= 1;
                self.release(1);
            }
            State::New | State::Closed => {}
        }
    }

    /// `try_acquire()`. On success the permit is held.
    pub fn try_acquire(&mut self) -> Result<(), AcquireError> {
        if self.closed {
            self.rejected += 1;
            Err(AcquireError::Closed)
        } else if self.available > 0 && self.queue.is_empty() {
            self.available -= 1;
            self.acquired += 1;
            self.held += 1;
            Ok(())
        } else {
            self.rejected += 1;
            Err(AcquireError::NoPermits)
        }
    }

    /// Drops a held permit.
    pub fn drop_permit(&mut self) {
        assert!(self.held > 0, "no permit is held");
        self.held -= 1;
        self.release(1);
    }

    /// `close()`.
    pub fn close(&mut self) {
        self.closed = true;
        while let Some(id) = self.queue.pop_front() {
            let waiter = self.waiter(id);
            waiter.state = State::Closed;
            waiter.wakes += 1;
            self.rejected += 1;
            self.tally.closed_in_queue += 1;
        }
    }

    /// `add_permits(n)`.
    pub fn add_permits(&mut self, n: usize) -> Result<(), LimitError> {
        match self.capacity.checked_add(n).filter(|&total| total <= MAX_PERMITS) {
            Some(total) => {
                self.capacity = total;
                self.release(n);
                Ok(())
            }
            None => Err(LimitError::TooManyPermits {
                requested: self.capacity.saturating_add(n),
                max: MAX_PERMITS,
            }),
        }
    }

    /// `ManualClock::advance(by)`.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(nanos(by));
        self.fire_due_timers();
    }

    /// `ManualClock::set(Instant::from_nanos(to))`, forwards or back.
    pub fn set_clock(&mut self, to: u64) {
        self.now = to;
        self.fire_due_timers();
    }

    /// The clock's time, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Wake-ups waiter `id` received so far.
    pub fn wakes(&self, id: WaiterId) -> usize {
        self.waiters[&id].wakes
    }

    /// Permits held (taken and not dropped).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Timers registered with the clock and not fired yet.
    pub fn pending_timers(&self) -> usize {
        self.waiters.values().filter(|w| w.registered && !w.fired).count()
    }

    /// How often the interesting transitions happened so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// What `stats()` should say.
    pub fn stats(&self) -> Stats {
        Stats {
            capacity: self.capacity,
            available: self.available,
            in_flight: self.capacity - self.available,
            waiting: self.queue.len(),
            total_acquired: self.acquired,
            total_rejected: self.rejected,
            closed: self.closed,
        }
    }

    /// Hands `n` permits to the oldest queued waiters, one each, and frees the rest.
    fn release(&mut self, mut n: usize) {
        while n > 0 {
            let Some(id) = self.queue.pop_front() else { break };
            let waiter = self.waiter(id);
            waiter.state = State::Granted;
            waiter.wakes += 1;
            n -= 1;
            self.acquired += 1;
            self.tally.handed_off += 1;
        }
        self.available += n;
    }

    fn fire_due_timers(&mut self) {
        let now = self.now;
        for waiter in self.waiters.values_mut() {
            let due = waiter.deadline.is_some_and(|deadline| deadline <= now);
            if waiter.registered && !waiter.fired && due {
                waiter.fired = true;
                waiter.wakes += 1;
                self.tally.timers_fired += 1;
            }
        }
    }

    fn waiter(&mut self, id: WaiterId) -> &mut Waiter {
        self.waiters.get_mut(&id).expect("a live waiter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiter_gets_a_released_permit() {
        let mut m = SemaphoreModel::new(1);
        assert_eq!(m.try_acquire(), Ok(()));
        let (a, pa) = m.acquire(None);
        let (b, pb) = m.acquire(None);
        assert!(pa.is_pending() && pb.is_pending());
        assert_eq!(m.try_acquire(), Err(AcquireError::NoPermits));
        m.drop_permit();
        assert_eq!((m.wakes(a), m.wakes(b)), (1, 0));
        assert_eq!(m.try_acquire(), Err(AcquireError::NoPermits), "nobody barges");
        m.drop_waiter(a);
        assert_eq!(m.wakes(b), 1, "the dropped grant went on");
        assert_eq!(m.poll(b), Poll::Ready(Ok(())));
        let s = m.stats();
        assert_eq!((s.available, s.in_flight, s.waiting), (0, 1, 0));
        assert_eq!((s.total_acquired, s.total_rejected), (2, 2));
    }

    #[test]
    fn a_maximum_wait_expires_when_the_clock_reaches_it() {
        let mut m = SemaphoreModel::new(0);
        let (a, pa) = m.acquire(Some(Duration::from_millis(5)));
        assert!(pa.is_pending());
        assert_eq!(m.pending_timers(), 1);
        m.advance(Duration::from_millis(4));
        assert!(m.poll(a).is_pending());
        m.set_clock(0);
        m.advance(Duration::from_millis(5));
        assert_eq!(m.wakes(a), 1);
        assert_eq!(m.poll(a), Poll::Ready(Err(AcquireError::WaitElapsed)));
        assert_eq!((m.stats().waiting, m.stats().total_rejected, m.pending_timers()), (0, 1, 0));
    }

    #[test]
    fn close_fails_the_queue_but_not_a_grant() {
        let mut m = SemaphoreModel::new(0);
        let (a, _) = m.acquire(None);
        let (b, _) = m.acquire(None);
        assert_eq!(m.add_permits(1), Ok(()));
        m.close();
        assert_eq!((m.wakes(a), m.wakes(b)), (1, 1));
        assert_eq!(m.poll(a), Poll::Ready(Ok(())));
        assert_eq!(m.poll(b), Poll::Ready(Err(AcquireError::Closed)));
        assert_eq!(m.try_acquire(), Err(AcquireError::Closed));
        assert!(m.add_permits(MAX_PERMITS).is_err());
    }
}
