//! A reference model of kompoz's rate limiters: what they promise, written plainly.
//!
//! The promises modelled:
//! * [`gcra`]: the decision, in 128-bit integers (see `kompoz::rate`'s documentation);
//! * `check` and a newly arriving wait are admitted only if their cells conform behind
//!   every cell of the tasks waiting in line; a refused check counts one refusal;
//! * only the first task in line takes cells (deciding with nothing ahead); it sleeps on a
//!   timer until its cells conform; when it leaves (admitted, refused, cancelled) the next
//!   task is woken, if it polled since it was last woken; `reset` wakes the first task;
//! * a maximum wait is a deadline taken at the task's first poll: an arrival whose cells
//!   would conform after it is refused at once; the first in line is refused once its
//!   cells cannot conform by it; a task further back sleeps until it and is refused then;
//! * timers are the manual clock's: registered on their first pending poll, fired (waking
//!   the task once) when the clock reaches them, done when polled after that;
//! * the keyed limiter decides the same arithmetic per key with nothing ahead, holds at
//!   most `MAX_KEYS` keys, forgets keys whose TAT is not after now when it is full (and
//!   on `retain_recent`), and after a sweep that freed nothing refuses new keys at once
//!   until the earliest TAT it kept.

use std::collections::{BTreeMap, VecDeque};
use std::task::Poll;

use kompoz::Instant;
use kompoz::rate::{BatchError, ExceedsBurst, KeyedError, RateLimited, TooManyKeys};

use super::ops::{Config, MAX_KEYS};

/// The GCRA decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admitted: the new TAT.
    Conform(u64),
    /// Refused: the earliest instant the cells would conform.
    Wait(u64),
}

/// The decision for `cells` cells at `now` behind `ahead` queued cells, given the stored
/// `tat`, one cell every `interval` nanoseconds, `burst` at once.
pub fn gcra(tat: u64, now: u64, ahead: u64, cells: u32, interval: u64, burst: u32) -> Decision {
    let (interval, tolerance) = (u128::from(interval), u128::from(interval) * u128::from(burst));
    let base = u128::from(tat.max(now));
    let own = base + u128::from(cells) * interval;
    let total = own + u128::from(ahead) * interval;
    let end = u128::from(u64::MAX);
    if own > end {
        Decision::Wait(u64::MAX)
    } else if total <= u128::from(now) + tolerance {
        Decision::Conform(own as u64)
    } else {
        Decision::Wait((total - tolerance).min(end) as u64)
    }
}

/// What `RateLimiter::stats` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Cells admitted.
    pub admitted: u64,
    /// Requests refused.
    pub rejected: u64,
    /// Tasks in line.
    pub waiting: usize,
    /// The wait of a one-cell request now, in nanoseconds.
    pub wait: u64,
    /// Cells a request now could have.
    pub available: u32,
}

/// How often a run reached the interesting transitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Checks (and batches) refused.
    pub refused_checks: u64,
    /// Tasks admitted after waiting in line.
    pub admitted_from_line: u64,
    /// Tasks refused by their maximum wait after joining the line.
    pub gave_up: u64,
    /// Tasks that left the line cancelled while first in it.
    pub cancelled_heads: u64,
    /// Keys refused because the keyed limiter was full.
    pub keys_refused: u64,
}

impl core::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.refused_checks += other.refused_checks;
        self.admitted_from_line += other.admitted_from_line;
        self.gave_up += other.gave_up;
        self.cancelled_heads += other.cancelled_heads;
        self.keys_refused += other.keys_refused;
    }
}

/// Names a waiting task of the model.
pub type WaiterId = u64;

#[derive(Clone, Debug)]
struct Waiter {
    cells: u32,
    max_wait: Option<u64>,
    /// Taken at the first poll.
    deadline: Option<u64>,
    /// Whether it stands in line.
    queued: bool,
    /// Its slot in line holds a waker (it polled since it was last woken by the line).
    slot_waker: bool,
    /// Its timer: the deadline, and whether the clock fired it.
    timer: Option<(u64, bool)>,
    wakes: usize,
}

/// The model. Time is in nanoseconds, like a `ManualClock`.
#[derive(Clone, Debug)]
pub struct RateModel {
    config: Config,
    now: u64,
    tat: u64,
    line: VecDeque<WaiterId>,
    waiters: BTreeMap<WaiterId, Waiter>,
    next_id: WaiterId,
    admitted: u64,
    rejected: u64,
    keys: BTreeMap<u8, u64>,
    full_until: u64,
    keyed_admitted: u64,
    keyed_rejected: u64,
    tally: Tally,
}

impl RateModel {
    /// Limiters with `config`, and a clock at zero.
    pub fn new(config: Config) -> RateModel {
        RateModel {
            config,
            now: 0,
            tat: 0,
            line: VecDeque::new(),
            waiters: BTreeMap::new(),
            next_id: 0,
            admitted: 0,
            rejected: 0,
            keys: BTreeMap::new(),
            full_until: 0,
            keyed_admitted: 0,
            keyed_rejected: 0,
            tally: Tally::default(),
        }
    }

    fn decide(&self, tat: u64, ahead: u64, cells: u32) -> Decision {
        gcra(tat, self.now, ahead, cells, self.config.interval_nanos, self.config.burst)
    }

    fn limited(&self, earliest: u64) -> RateLimited {
        let earliest = Instant::from_nanos(earliest);
        RateLimited { earliest, wait: earliest - Instant::from_nanos(self.now) }
    }

    fn queued_cells(&self) -> u64 {
        self.line.iter().map(|id| u64::from(self.waiters[id].cells)).sum()
    }

    fn exceeds(&self, cells: u32) -> Option<ExceedsBurst> {
        (cells > self.config.burst).then_some(ExceedsBurst { cells, burst: self.config.burst })
    }

    /// `check_n(cells)` (`check()` is one cell).
    pub fn check_n(&mut self, cells: u32) -> Result<(), BatchError> {
        if let Some(exceeds) = self.exceeds(cells) {
            self.rejected += 1;
            self.tally.refused_checks += 1;
            return Err(exceeds.into());
        }
        if cells == 0 {
            return Ok(());
        }
        match self.decide(self.tat, self.queued_cells(), cells) {
            Decision::Conform(tat) => {
                self.tat = tat;
                self.admitted += u64::from(cells);
                Ok(())
            }
            Decision::Wait(earliest) => {
                self.rejected += 1;
                self.tally.refused_checks += 1;
                Err(self.limited(earliest).into())
            }
        }
    }

    /// A new waiting task for `cells`, with an optional maximum wait, polled once.
    pub fn wait(
        &mut self,
        cells: u32,
        max_wait: Option<u64>,
    ) -> (WaiterId, Poll<Result<(), BatchError>>) {
        let id = self.next_id;
        self.next_id += 1;
        let waiter = Waiter {
            cells,
            max_wait,
            deadline: None,
            queued: false,
            slot_waker: false,
            timer: None,
            wakes: 0,
        };
        self.waiters.insert(id, waiter);
        (id, self.poll(id))
    }

    /// Polls waiting task `id`. Once ready, the task is gone.
    pub fn poll(&mut self, id: WaiterId) -> Poll<Result<(), BatchError>> {
        let result = self.poll_inner(id);
        if result.is_ready() {
            self.waiters.remove(&id);
        }
        result
    }

    fn poll_inner(&mut self, id: WaiterId) -> Poll<Result<(), BatchError>> {
        let now = self.now;
        let w = self.waiters[&id].clone();
        if !w.queued && w.deadline.is_none() && w.timer.is_none() {
            // The first poll: the burst check, then an admission at once.
            if let Some(exceeds) = self.exceeds(w.cells) {
                self.rejected += 1;
                return Poll::Ready(Err(exceeds.into()));
            }
            if w.cells == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Decision::Conform(tat) = self.decide(self.tat, self.queued_cells(), w.cells) {
                self.tat = tat;
                self.admitted += u64::from(w.cells);
                return Poll::Ready(Ok(()));
            }
            let deadline = w.max_wait.map(|max| now.saturating_add(max));
            self.waiter(id).deadline = deadline;
        }
        // A timer that fired (or is due) is done.
        if let Some((at, fired)) = self.waiters[&id].timer {
            if fired || now >= at {
                self.waiter(id).timer = None;
            }
        }
        let w = self.waiters[&id].clone();
        let too_late = |earliest: u64| w.deadline.is_some_and(|d| earliest > d);
        let until = if !w.queued {
            match self.decide(self.tat, self.queued_cells(), w.cells) {
                Decision::Conform(tat) => {
                    self.tat = tat;
                    self.admitted += u64::from(w.cells);
                    return Poll::Ready(Ok(()));
                }
                Decision::Wait(earliest) if too_late(earliest) => {
                    self.rejected += 1;
                    return Poll::Ready(Err(self.limited(earliest).into()));
                }
                Decision::Wait(earliest) => {
                    let head = self.line.is_empty();
                    self.line.push_back(id);
                    let waiter = self.waiter(id);
                    waiter.queued = true;
                    waiter.slot_waker = true;
                    if head { Some(earliest) } else { w.deadline }
                }
            }
        } else if self.line.front() == Some(&id) {
            match self.decide(self.tat, 0, w.cells) {
                Decision::Conform(tat) => {
                    self.tat = tat;
                    self.admitted += u64::from(w.cells);
                    self.tally.admitted_from_line += 1;
                    self.leave(id);
                    return Poll::Ready(Ok(()));
                }
                Decision::Wait(earliest) if too_late(earliest) => {
                    self.rejected += 1;
                    self.tally.gave_up += 1;
                    self.leave(id);
                    return Poll::Ready(Err(self.limited(earliest).into()));
                }
                Decision::Wait(earliest) => {
                    self.waiter(id).slot_waker = true;
                    Some(earliest)
                }
            }
        } else if w.deadline.is_some_and(|d| now >= d) {
            let position = self.line.iter().position(|&other| other == id).expect("in line");
            let ahead: u64 =
                self.line.iter().take(position).map(|o| u64::from(self.waiters[o].cells)).sum();
            let earliest = match self.decide(self.tat, ahead, w.cells) {
                Decision::Conform(_) => now,
                Decision::Wait(earliest) => earliest,
            };
            self.rejected += 1;
            self.tally.gave_up += 1;
            self.leave(id);
            return Poll::Ready(Err(self.limited(earliest).into()));
        } else {
            self.waiter(id).slot_waker = true;
            w.deadline
        };
        // The timer: replaced if its deadline changed, and polled when new.
        let current = self.waiters[&id].timer.map(|(at, _)| at);
        if until != current {
            self.waiter(id).timer = None;
            if let Some(at) = until {
                if now >= at {
                    // Already due: the task wakes itself to decide again.
                    self.waiter(id).wakes += 1;
                } else {
                    self.waiter(id).timer = Some((at, false));
                }
            }
        }
        Poll::Pending
    }

    /// Takes `id` out of the line; wakes the next task if `id` was first.
    fn leave(&mut self, id: WaiterId) {
        let was_head = self.line.front() == Some(&id);
        self.line.retain(|&other| other != id);
        let waiter = self.waiter(id);
        waiter.queued = false;
        waiter.slot_waker = false;
        if was_head {
            self.wake_head();
        }
    }

    fn wake_head(&mut self) {
        if let Some(&head) = self.line.front() {
            let waiter = self.waiter(head);
            if waiter.slot_waker {
                waiter.slot_waker = false;
                waiter.wakes += 1;
            }
        }
    }

    /// Drops waiting task `id`.
    pub fn cancel(&mut self, id: WaiterId) {
        if self.waiters[&id].queued {
            if self.line.front() == Some(&id) {
                self.tally.cancelled_heads += 1;
            }
            self.leave(id);
        }
        self.waiters.remove(&id);
    }

    /// `reset()`.
    pub fn reset(&mut self) {
        self.tat = 0;
        self.wake_head();
    }

    /// The keyed limiter's `check_n(key, cells)`.
    pub fn keyed_check(&mut self, key: u8, cells: u32) -> Result<(), KeyedError> {
        let result = self.keyed_decide(key, cells);
        match result {
            Ok(()) => self.keyed_admitted += u64::from(cells),
            Err(_) => self.keyed_rejected += 1,
        }
        result
    }

    fn keyed_decide(&mut self, key: u8, cells: u32) -> Result<(), KeyedError> {
        if let Some(exceeds) = self.exceeds(cells) {
            return Err(KeyedError::ExceedsBurst(exceeds));
        }
        if cells == 0 {
            return Ok(());
        }
        let full = KeyedError::TooManyKeys(TooManyKeys { max_keys: MAX_KEYS });
        let known = self.keys.contains_key(&key);
        if self.now < self.full_until && !known {
            self.tally.keys_refused += 1;
            return Err(full);
        }
        if !known && self.keys.len() >= MAX_KEYS {
            let now = self.now;
            self.keys.retain(|_, tat| *tat > now);
            if self.keys.len() >= MAX_KEYS {
                let earliest_kept = self.keys.values().copied().min().unwrap_or(u64::MAX);
                self.full_until = self.full_until.max(earliest_kept);
                self.tally.keys_refused += 1;
                return Err(full);
            }
        }
        let tat = self.keys.get(&key).copied().unwrap_or(0);
        let decision = self.decide(tat, 0, cells);
        self.keys.insert(key, tat);
        match decision {
            Decision::Conform(next) => {
                self.keys.insert(key, next);
                Ok(())
            }
            Decision::Wait(earliest) => Err(KeyedError::RateLimited(self.limited(earliest))),
        }
    }

    /// The keyed limiter's `retain_recent()`: how many keys it forgot.
    pub fn retain_recent(&mut self) -> usize {
        let before = self.keys.len();
        let now = self.now;
        self.keys.retain(|_, tat| *tat > now);
        self.full_until = 0;
        before - self.keys.len()
    }

    /// The keyed limiter's `reset()`.
    pub fn keyed_reset(&mut self) {
        self.keys.clear();
        self.full_until = 0;
    }

    /// The keyed limiter's stats: (admitted, rejected, keys).
    pub fn keyed_stats(&self) -> (u64, u64, usize) {
        (self.keyed_admitted, self.keyed_rejected, self.keys.len())
    }

    /// `ManualClock::advance(by)` in nanoseconds (saturating).
    pub fn advance(&mut self, by: u64) {
        self.set_clock(self.now.saturating_add(by));
    }

    /// `ManualClock::set(to)`: fires the timers that are due.
    pub fn set_clock(&mut self, to: u64) {
        self.now = to;
        for waiter in self.waiters.values_mut() {
            if let Some((at, false)) = waiter.timer {
                if at <= to {
                    waiter.timer = Some((at, true));
                    waiter.wakes += 1;
                }
            }
        }
    }

    /// What `stats()` should say.
    pub fn stats(&self) -> Stats {
        let queued = self.queued_cells();
        let wait = match self.decide(self.tat, queued, 1) {
            Decision::Conform(_) => 0,
            Decision::Wait(earliest) => earliest.saturating_sub(self.now),
        };
        let interval = self.config.interval_nanos;
        let base = self.tat.max(self.now);
        let limit = u128::from(self.now) + u128::from(interval) * u128::from(self.config.burst);
        let used = u128::from(base) + u128::from(queued) * u128::from(interval);
        let room = limit.saturating_sub(used) / u128::from(interval);
        let to_end = u128::from((u64::MAX - base) / interval);
        let available = room.min(to_end).min(u128::from(self.config.burst)) as u32;
        Stats {
            admitted: self.admitted,
            rejected: self.rejected,
            waiting: self.line.len(),
            wait,
            available,
        }
    }

    /// The clock, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Wake-ups task `id` received.
    pub fn wakes(&self, id: WaiterId) -> usize {
        self.waiters[&id].wakes
    }

    /// Timers registered with the clock and not fired.
    pub fn pending_timers(&self) -> usize {
        self.waiters.values().filter(|w| matches!(w.timer, Some((_, false)))).count()
    }

    /// How often the interesting transitions happened.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    fn waiter(&mut self, id: WaiterId) -> &mut Waiter {
        self.waiters.get_mut(&id).expect("a live waiter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_arithmetic_of_the_documentation() {
        // 100 per second, burst 10.
        let g = |tat, now, ahead, cells| gcra(tat, now, ahead, cells, 10 * MS, 10);
        assert_eq!(g(0, 0, 0, 10), Decision::Conform(100 * MS));
        assert_eq!(g(100 * MS, 0, 0, 1), Decision::Wait(10 * MS));
        assert_eq!(g(50 * MS, 0, 4, 2), Decision::Wait(10 * MS));
        assert_eq!(g(0, u64::MAX, 0, 1), Decision::Wait(u64::MAX));
        assert_eq!(g(0, 0, u64::MAX, 1), Decision::Wait(u64::MAX));
    }

    #[test]
    fn the_line_is_served_in_order_and_a_cancelled_task_leaves_no_trace() {
        let mut m = RateModel::new(Config { interval_nanos: 10 * MS, burst: 1 });
        assert_eq!(m.check_n(1), Ok(()));
        let (a, pa) = m.wait(1, None);
        let (b, pb) = m.wait(1, None);
        let (c, _) = m.wait(1, None);
        assert!(pa.is_pending() && pb.is_pending());
        assert_eq!(m.pending_timers(), 1);
        m.cancel(b);
        m.set_clock(10 * MS);
        assert_eq!(m.wakes(a), 1);
        assert_eq!(m.poll(a), Poll::Ready(Ok(())));
        assert_eq!(m.wakes(c), 1);
        assert!(m.poll(c).is_pending());
        m.set_clock(20 * MS);
        assert_eq!(m.poll(c), Poll::Ready(Ok(())));
        assert_eq!(m.stats().admitted, 3);
    }
}
