//! The windows of the [`FailureRate`](super::FailureRate) policy: what the last calls of
//! the current closed period were, and whether their failure or slow-call rate trips the
//! circuit.
//!
//! # How it works
//!
//! A window belongs to one closed period, named by its generation. Every outcome is
//! recorded with the generation its call was admitted in: the first outcome of a newer
//! generation empties the window for it, and an outcome of an older one is late and is not
//! recorded. The window only *advises*: a trip is sent to the state machine as
//! [`Event::Trip`](super::machine::Event::Trip) with the call's ticket, and the machine
//! opens the circuit only if that generation is still current. So a window never needs to
//! be emptied at a transition: a stale window is simply replaced by the next current
//! outcome.
//!
//! The window's contents are guarded by a small spin lock ([`SpinMutex`]), held for a few
//! arithmetic operations and never across user code. The healthy case skips it:
//!
//! * while a count window is full of fast successes, one more fast success changes nothing
//!   (the last `n` calls are still `n` successes), and the window says so in one atomic
//!   word ([`RateWindow::skip_success`]), read without the lock. A success skipped this
//!   way while a failure is being recorded is ordered before that failure, which gives the
//!   same window.
//! * a time window counts every call (its throughput decides `minimum_calls`), but a fast
//!   success within the bucket it recorded in last is counted on the calling thread's own
//!   tally ([`tallies`]), on a cache line no other thread writes, and summed into the
//!   window only when a failure needs the ratio ([`RateWindow::success_unlocked`]).

use super::policy::{RateConfig, WindowConfig};
use crate::sync::{AtomicU64, Ordering, SpinMutex};

mod count;
mod tallies;
mod time;

use count::CountWindow;
pub(crate) use tallies::Ready;
use time::{Shared, TimeWindow};

/// How one call ended, as a window sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) failure: bool,
    pub(crate) slow: bool,
}

impl Outcome {
    /// A fast success.
    pub(crate) const SUCCESS: Outcome = Outcome { failure: false, slow: false };

    fn bad(self) -> bool {
        self.failure || self.slow
    }
}

/// What a window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

enum Kind {
    Count(SpinMutex<CountWindow>),
    Time { window: SpinMutex<TimeWindow>, shared: Shared },
}

/// A [`FailureRate`](super::FailureRate) at work.
pub(crate) struct RateWindow {
    kind: Kind,
    minimum_calls: u32,
    threshold: f64,
    /// `slower_than` in nanoseconds and the ratio.
    slow: Option<(u64, f64)>,
    /// A count window's `generation << 1 | 1` while the window of that generation is full
    /// of fast successes; any other value otherwise.
    clean: AtomicU64,
}

impl RateWindow {
    pub(crate) fn new(config: RateConfig) -> RateWindow {
        let kind = match config.window {
            WindowConfig::Calls(calls) => Kind::Count(SpinMutex::new(CountWindow::new(calls))),
            WindowConfig::Time { bucket, buckets } => Kind::Time {
                window: SpinMutex::new(TimeWindow::new(bucket, buckets)),
                shared: Shared::new(bucket),
            },
        };
        RateWindow {
            kind,
            minimum_calls: config.minimum_calls,
            threshold: config.threshold,
            slow: config.slow,
            // Generation 0, not clean.
            clean: AtomicU64::new(0),
        }
    }

    /// Whether this is a time window (outcomes need the time they were recorded at).
    pub(crate) fn is_time(&self) -> bool {
        matches!(self.kind, Kind::Time { .. })
    }

    /// Whether calls are timed (slow calls count).
    pub(crate) fn timed(&self) -> bool {
        self.slow.is_some()
    }

    /// Whether a call that took from `started` to `ended` (nanoseconds) is slow.
    pub(crate) fn is_slow(&self, started: u64, ended: u64) -> bool {
        self.slow.is_some_and(|(slower_than, _)| ended.saturating_sub(started) >= slower_than)
    }

    /// Whether a fast success of a call admitted in `generation` changes nothing: the count
    /// window of that generation is full of fast successes. One load, no lock.
    #[inline]
    pub(crate) fn skip_success(&self, generation: u64) -> bool {
        self.clean.load(Ordering::Acquire) == (generation << 1 | 1)
    }

    /// A fast success of a call admitted in `generation`, ending at `now`, settled without
    /// the lock: a count window full of fast successes skips it; a time window counts it on
    /// the calling thread's tally, if it holds one for that generation and the window's
    /// latest bucket, and `now` falls in that bucket (no shared write). `false` (and
    /// nothing counted): [`record`](Self::record) it.
    #[inline]
    pub(crate) fn success_unlocked(&self, generation: u64, now: u64) -> bool {
        match &self.kind {
            Kind::Time { shared, .. } => shared.bump(generation, now),
            Kind::Count(_) => self.skip_success(generation),
        }
    }

    /// A time window's fast path, first half, before the clock is read: the calling
    /// thread's tally, if it is tagged for `generation` and the window's latest bucket
    /// ([`Ready::count`] is the second half). `None` for a count window.
    #[inline]
    pub(crate) fn ready_tally(&self, generation: u64) -> Option<Ready<'_>> {
        match &self.kind {
            Kind::Time { shared, .. } => shared.ready(generation),
            Kind::Count(_) => None,
        }
    }

    /// A fast success of a call admitted in `generation`, recorded in a count window under
    /// its lock with nothing summed (a success never trips): the path every success takes
    /// while the window holds a failed or slow call. `false` for a time window (nothing
    /// recorded).
    #[inline]
    pub(crate) fn count_success(&self, generation: u64) -> bool {
        let Kind::Count(window) = &self.kind else {
            return false;
        };
        window.with(|w| {
            if w.push(generation, Outcome::SUCCESS) {
                self.mark_clean(generation, w.is_clean());
            }
        });
        true
    }

    /// Publishes whether the count window of `generation` is full of fast successes (under
    /// its lock), writing the shared word only when that changes.
    #[inline]
    fn mark_clean(&self, generation: u64, clean: bool) {
        let mark = generation << 1 | u64::from(clean);
        if self.clean.load(Ordering::Relaxed) != mark {
            self.clean.store(mark, Ordering::Release);
        }
    }

    /// Records `outcome` of a call admitted in `generation`, ending at `now` (nanoseconds,
    /// for a time window); returns whether it trips the circuit.
    pub(crate) fn record(&self, generation: u64, outcome: Outcome, now: u64) -> bool {
        let tally = match &self.kind {
            Kind::Count(window) => window.with(|w| {
                let tally = w.record(generation, outcome)?;
                self.mark_clean(generation, w.is_clean());
                Some(tally)
            }),
            Kind::Time { window, shared } => {
                window.with(|w| w.record(generation, outcome, now, outcome.bad(), shared))
            }
        };
        match tally {
            Some(tally) => outcome.bad() && self.trips(tally),
            None => false,
        }
    }

    /// The rule: enough calls, and a rate at or above its threshold.
    fn trips(&self, t: Tally) -> bool {
        if t.calls < self.minimum_calls {
            return false;
        }
        let calls = f64::from(t.calls);
        f64::from(t.failures) / calls >= self.threshold
            || self.slow.is_some_and(|(_, ratio)| f64::from(t.slow) / calls >= ratio)
    }

    /// What the window of `generation` holds at `now` (empty if it holds another
    /// generation's calls).
    pub(crate) fn tally(&self, generation: u64, now: u64) -> Tally {
        match &self.kind {
            Kind::Count(window) => window.with(|w| w.tally(generation)),
            Kind::Time { window, shared } => window.with(|w| w.tally(generation, now, shared)),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::breaker::FailureRate;
    use core::time::Duration;

    const OK: Outcome = Outcome { failure: false, slow: false };
    const FAILED: Outcome = Outcome { failure: true, slow: false };
    const SLOW: Outcome = Outcome { failure: false, slow: true };

    fn window(rate: FailureRate) -> RateWindow {
        RateWindow::new(rate.validate().unwrap())
    }

    #[test]
    fn a_count_window_needs_its_minimum_then_trips_at_the_threshold() {
        let w = window(FailureRate::over_calls(10).minimum_calls(5).threshold(0.5));
        for _ in 0..4 {
            assert!(!w.record(0, FAILED, 0), "fewer calls than the minimum");
        }
        assert!(w.record(0, FAILED, 0));
        let w = window(FailureRate::over_calls(10).minimum_calls(5).threshold(0.5));
        for _ in 0..5 {
            assert!(!w.record(0, OK, 0), "a success never trips");
        }
        for _ in 0..4 {
            assert!(!w.record(0, FAILED, 0));
        }
        assert!(w.record(0, FAILED, 0), "five failures of ten calls");
        assert_eq!(w.tally(0, 0), Tally { calls: 10, failures: 5, slow: 0 });
    }

    #[test]
    fn old_outcomes_leave_a_full_count_window_and_late_ones_never_enter() {
        let w = window(FailureRate::over_calls(3).threshold(1.0));
        assert!(!w.record(5, FAILED, 0));
        assert!(!w.record(5, FAILED, 0));
        assert!(!w.record(5, OK, 0));
        assert!(!w.record(5, FAILED, 0), "the first failure left: 2 of 3");
        assert!(!w.record(4, FAILED, 0), "late: not recorded");
        assert_eq!(w.tally(5, 0), Tally { calls: 3, failures: 2, slow: 0 });
        assert!(!w.record(5, FAILED, 0), "the success is still in the window");
        assert!(w.record(5, FAILED, 0), "3 of 3");
        // A newer generation starts empty; the old one reads as empty.
        assert!(!w.record(7, FAILED, 0));
        assert_eq!(w.tally(7, 0), Tally { calls: 1, failures: 1, slow: 0 });
        assert_eq!(w.tally(5, 0), Tally::default());
    }

    #[test]
    fn a_count_window_full_of_fast_successes_lets_successes_skip_the_lock() {
        let w = window(FailureRate::over_calls(3));
        assert!(!w.skip_success(0));
        for _ in 0..3 {
            assert!(!w.skip_success(0));
            w.record(0, OK, 0);
        }
        assert!(w.skip_success(0));
        assert!(!w.skip_success(1), "another generation's window");
        w.record(0, SLOW, 0);
        assert!(!w.skip_success(0), "a slow call in the window");
        for _ in 0..3 {
            w.record(0, OK, 0);
        }
        assert!(w.skip_success(0), "the slow call left");
    }

    #[test]
    fn a_count_windows_locked_success_path_records_without_summing() {
        let w = window(FailureRate::over_calls(3).threshold(1.0));
        w.record(4, FAILED, 0);
        assert!(w.count_success(4) && w.count_success(4));
        assert_eq!(w.tally(4, 0), Tally { calls: 3, failures: 1, slow: 0 });
        assert!(!w.skip_success(4), "the failure is still in the window");
        assert!(w.count_success(4), "pushes the failure out");
        assert!(w.skip_success(4), "full of fast successes again");
        assert!(w.count_success(3), "a late success: handled, not recorded");
        assert_eq!(w.tally(4, 0), Tally { calls: 3, failures: 0, slow: 0 });
        assert!(w.count_success(5), "a newer generation's window starts with it");
        assert_eq!(w.tally(5, 0), Tally { calls: 1, failures: 0, slow: 0 });
        let time = window(FailureRate::over_time(Duration::from_secs(10)));
        assert!(!time.count_success(0), "a time window records its successes elsewhere");
        assert_eq!(time.tally(0, 0), Tally::default());
    }

    #[test]
    fn slow_calls_trip_at_their_own_ratio_failures_or_not() {
        let rate =
            FailureRate::over_calls(4).threshold(1.0).slow_calls(Duration::from_millis(100), 0.5);
        let w = window(rate);
        assert!(w.timed());
        assert!(w.is_slow(0, 100_000_000) && !w.is_slow(0, 99_999_999) && !w.is_slow(5, 0));
        w.record(0, OK, 0);
        w.record(0, SLOW, 0);
        w.record(0, OK, 0);
        assert!(w.record(0, Outcome { failure: true, slow: true }, 0), "2 slow of 4");
        assert!(!window(FailureRate::over_calls(4)).timed());
    }

    #[test]
    fn a_time_window_forgets_whole_buckets() {
        let second = 1_000_000_000;
        let rate = FailureRate::over_time(Duration::from_secs(10)).minimum_calls(2).threshold(0.6);
        let w = window(rate);
        assert!(!w.record(0, FAILED, 0), "one call: below the minimum");
        // 9.999 s later the failure is still in the window (same 10 s, bucket by bucket).
        assert!(w.record(0, FAILED, 9 * second + 999_999_999));
        let w = window(rate);
        w.record(0, FAILED, 500_000_000);
        w.record(0, OK, second);
        // At 10.5 s the bucket of 0.5 s is out (its whole second is more than 10 s ago).
        assert!(!w.record(0, FAILED, 10 * second + 500_000_000), "1 failure of 2");
        assert_eq!(w.tally(0, 10 * second + 500_000_000), Tally { calls: 2, failures: 1, slow: 0 });
        assert_eq!(w.tally(0, 11 * second), Tally { calls: 1, failures: 1, slow: 0 });
        assert_eq!(w.tally(0, 100 * second), Tally::default());
    }

    /// A fast success as the breaker records it: on the thread's tally if it can, else
    /// under the lock; whether the tally took it.
    fn succeed(w: &RateWindow, generation: u64, now: u64) -> bool {
        if w.success_unlocked(generation, now) {
            return true;
        }
        assert!(!w.record(generation, OK, now), "a success never trips");
        false
    }

    #[cfg(feature = "std")]
    #[test]
    fn fast_successes_count_on_the_threads_tally_and_fold_into_the_ring() {
        let second = 1_000_000_000;
        let rate = FailureRate::over_time(Duration::from_secs(3)).buckets(3).minimum_calls(4);
        let w = window(rate.threshold(0.5));
        // Bucket 0: the first success tags this thread's tally under the lock, the rest
        // skip it.
        assert!(!succeed(&w, 1, 0));
        assert!(succeed(&w, 1, 0) && succeed(&w, 1, second - 1));
        assert_eq!(w.tally(1, 0), Tally { calls: 3, failures: 0, slow: 0 });
        // Another thread's failure, judged with this thread's tally: 1 of 4.
        std::thread::scope(|s| s.spawn(|| assert!(!w.record(1, FAILED, 0))).join().unwrap());
        // Bucket 1: the tally of bucket 0 is folded into the ring.
        assert!(!succeed(&w, 1, second));
        assert!(succeed(&w, 1, second));
        assert_eq!(w.tally(1, second), Tally { calls: 6, failures: 1, slow: 0 });
        // At 3 s bucket 0 has left the window, the tally of bucket 1 has not.
        assert_eq!(w.tally(1, 3 * second), Tally { calls: 2, failures: 0, slow: 0 });
        // Two failures at 3 s: 2 of 4.
        assert!(!w.record(1, FAILED, 3 * second));
        assert!(w.record(1, FAILED, 3 * second));
        assert!(!succeed(&w, 1, 2 * second), "the window recorded in a later bucket");
        // A newer generation: the old tally no longer counts, nor do late successes.
        assert!(!w.record(2, FAILED, 3 * second));
        assert_eq!(w.tally(2, 3 * second), Tally { calls: 1, failures: 1, slow: 0 });
        assert!(succeed(&w, 1, 3 * second), "late, on the stale tally: not counted");
        assert!(!w.record(1, OK, 3 * second), "late, under the lock: not recorded");
        assert!(!succeed(&w, 2, 3 * second));
        assert_eq!(w.tally(2, 3 * second), Tally { calls: 2, failures: 1, slow: 0 });
        assert!(!w.record(3, FAILED, 3 * second));
        assert!(succeed(&w, 2, 3 * second), "late, on the stale tally");
        assert_eq!(w.tally(3, 3 * second), Tally { calls: 1, failures: 1, slow: 0 });
    }

    #[cfg(feature = "std")]
    #[test]
    fn threads_beyond_the_tallies_record_under_the_lock_and_exited_writers_hand_theirs_on() {
        let rate = FailureRate::over_time(Duration::from_secs(10)).minimum_calls(1);
        let w = window(rate);
        let held = std::sync::Barrier::new(tallies::WRITERS + 1);
        std::thread::scope(|s| {
            // Every tally taken by a live thread.
            for _ in 0..tallies::WRITERS {
                s.spawn(|| {
                    assert!(!succeed(&w, 0, 5) && succeed(&w, 0, 5));
                    held.wait();
                    held.wait();
                });
            }
            held.wait();
            s.spawn(|| {
                for _ in 0..3 {
                    assert!(!succeed(&w, 0, 5), "no tally free: under the lock");
                }
            })
            .join()
            .unwrap();
            held.wait();
        });
        let all = 2 * tallies::WRITERS as u32 + 3;
        assert_eq!(w.tally(0, 5), Tally { calls: all, failures: 0, slow: 0 });
        // Their writers have exited: a new thread takes a tally over, and its count goes on.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!succeed(&w, 0, 5), "claims an exited writer's tally");
                assert!(succeed(&w, 0, 5));
            });
        });
        assert_eq!(w.tally(0, 5), Tally { calls: all + 2, failures: 0, slow: 0 });
    }

    #[test]
    fn a_time_window_counts_an_outcome_from_a_clock_set_back_in_the_latest_bucket() {
        let second = 1_000_000_000;
        let w = window(FailureRate::over_time(Duration::from_secs(10)).minimum_calls(3));
        w.record(3, OK, 20 * second);
        w.record(3, FAILED, 0);
        assert_eq!(w.tally(3, 0), Tally { calls: 2, failures: 1, slow: 0 });
        assert_eq!(w.tally(3, 29 * second), Tally { calls: 2, failures: 1, slow: 0 });
        assert_eq!(w.tally(3, 30 * second), Tally::default());
        assert!(!w.record(2, FAILED, 30 * second), "late");
        assert!(w.record(3, FAILED, 20 * second), "2 failures of 3");
    }
}
