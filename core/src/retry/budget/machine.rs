//! The retry budget's state machine: a pure function over a plain value.
//!
//! The window is cut into [`SLOTS`] slots. Each slot counts the calls made (deposits)
//! and the retries let through (withdrawals) while it was current; rolling forward
//! empties the slots that left the window. A retry may go while
//!
//! ```text
//! reserve + retry_percent % × (calls in the window) − (retries in the window) ≥ 1
//! ```
//!
//! counted in hundredths of a retry so that percentages stay exact. The atomic layer
//! (`mod.rs`) holds one [`Window`] under a short lock that never runs user code.

use core::time::Duration;

use crate::time::{Instant, duration_to_nanos};

/// Slots the window is cut into: deposits and withdrawals leave the window one slot
/// (a tenth of it) at a time.
pub(crate) const SLOTS: usize = 10;

/// The validated configuration the machine runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Limits {
    /// Hundredths of a retry each call earns (its `retry_percent`).
    pub(crate) earned_per_call: u64,
    /// Retries always allowed per window (`min_per_second` × the window), in hundredths.
    pub(crate) reserve: u64,
    /// The length of one slot, in nanoseconds (at least 1).
    pub(crate) slot_nanos: u64,
}

/// A budget's whole state, as a plain value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Window {
    /// Calls made, per slot.
    pub(crate) deposits: [u64; SLOTS],
    /// Retries let through, per slot.
    pub(crate) withdrawals: [u64; SLOTS],
    /// The slot being filled.
    pub(crate) current: usize,
    /// When the current slot started.
    pub(crate) slot_start: Instant,
}

/// The hundredths of a retry one withdrawal costs.
const ONE_RETRY: u64 = 100;

impl Window {
    /// An empty window whose first slot starts at `now`.
    pub(crate) const fn new(now: Instant) -> Window {
        Window { deposits: [0; SLOTS], withdrawals: [0; SLOTS], current: 0, slot_start: now }
    }

    /// Rolls forward to `now`, emptying the slots that left the window. A clock that
    /// stepped back rolls nothing.
    pub(crate) fn roll(mut self, now: Instant, limits: &Limits) -> Window {
        let elapsed = duration_to_nanos(now.saturating_duration_since(self.slot_start));
        let steps = elapsed / limits.slot_nanos;
        if steps == 0 {
            return self;
        }
        for _ in 0..steps.min(SLOTS as u64) {
            self.current = (self.current + 1) % SLOTS;
            self.deposits[self.current] = 0;
            self.withdrawals[self.current] = 0;
        }
        self.slot_start = self
            .slot_start
            .saturating_add(Duration::from_nanos(steps.saturating_mul(limits.slot_nanos)));
        self
    }

    /// `calls` calls were made, counted at `now`.
    pub(crate) fn deposit(self, now: Instant, calls: u64, limits: &Limits) -> Window {
        let mut next = self.roll(now, limits);
        next.deposits[next.current] = next.deposits[next.current].saturating_add(calls);
        next
    }

    /// What is left to spend, in hundredths of a retry (negative when overdrawn, which
    /// only a smaller reserve after a change of configuration could cause).
    pub(crate) fn balance(&self, limits: &Limits) -> i128 {
        let deposits: u128 = self.deposits.iter().map(|&d| u128::from(d)).sum();
        let withdrawals: u128 = self.withdrawals.iter().map(|&w| u128::from(w)).sum();
        let earned = u128::from(limits.reserve) + deposits * u128::from(limits.earned_per_call);
        let spent = withdrawals * u128::from(ONE_RETRY);
        earned as i128 - spent as i128
    }

    /// A retry asks to go at `now`: let through (and counted) if the balance covers one.
    pub(crate) fn withdraw(self, now: Instant, limits: &Limits) -> (Window, bool) {
        let mut next = self.roll(now, limits);
        if next.balance(limits) < i128::from(ONE_RETRY) {
            return (next, false);
        }
        next.withdrawals[next.current] = next.withdrawals[next.current].saturating_add(1);
        (next, true)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    /// 20 % of calls, a reserve of 2 retries, a 10 s window of 1 s slots.
    const LIMITS: Limits = Limits { earned_per_call: 20, reserve: 200, slot_nanos: 1_000_000_000 };

    fn at(secs: u64) -> Instant {
        Instant::ZERO + SEC * secs as u32
    }

    fn drain(mut w: Window, now: Instant) -> (Window, u32) {
        let mut allowed = 0;
        loop {
            let (next, ok) = w.withdraw(now, &LIMITS);
            w = next;
            if !ok {
                return (w, allowed);
            }
            allowed += 1;
        }
    }

    #[test]
    fn the_reserve_alone_allows_its_retries() {
        let (_, allowed) = drain(Window::new(at(0)), at(0));
        assert_eq!(allowed, 2);
    }

    #[test]
    fn calls_earn_their_percentage() {
        let w = Window::new(at(0)).deposit(at(0), 50, &LIMITS);
        let (_, allowed) = drain(w, at(0));
        assert_eq!(allowed, 2 + 10, "the reserve plus 20 % of 50 calls");
        let w = Window::new(at(0)).deposit(at(0), 4, &LIMITS);
        assert_eq!(w.balance(&LIMITS), 280);
        assert_eq!(drain(w, at(0)).1, 2, "0.8 of a retry is not a retry");
    }

    #[test]
    fn spent_retries_come_back_when_they_leave_the_window() {
        let (w, _) = drain(Window::new(at(0)).deposit(at(0), 50, &LIMITS), at(0));
        assert_eq!(drain(w, at(9)).1, 0, "still inside the window");
        // At 10 s the first slot leaves the window: its calls and retries with it.
        let (w, allowed) = drain(w, at(10));
        assert_eq!(allowed, 2, "only the reserve again");
        assert_eq!(w.current, 0);
        let w = w.deposit(at(15), 10, &LIMITS);
        assert_eq!(drain(w, at(15)).1, 2, "2 calls' worth, the reserve spent at 10 s");
    }

    #[test]
    fn a_long_pause_empties_everything_and_a_clock_step_back_rolls_nothing() {
        let w = Window::new(at(0)).deposit(at(3), 100, &LIMITS);
        assert_eq!(w.roll(at(1_000_000), &LIMITS).balance(&LIMITS), 200);
        assert_eq!(w.roll(at(1), &LIMITS), w);
        assert_eq!(w.slot_start, at(3));
    }

    #[test]
    fn counts_saturate() {
        let w = Window::new(at(0)).deposit(at(0), u64::MAX, &LIMITS);
        let w = w.deposit(at(0), u64::MAX, &LIMITS);
        assert!(w.balance(&LIMITS) > 0);
    }
}
