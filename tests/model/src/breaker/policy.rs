//! The policies in the model: the failure-rate window of the current closed period, and the
//! break of each opening. Written plainly: a queue of the last calls, a map of buckets.
//!
//! * **Count window** of `n`: the outcomes (failed? slow?) of the last `n` calls of the
//!   current closed period that ended with a verdict.
//! * **Time window** of `buckets` buckets of `span / buckets`: the outcomes recorded in the
//!   bucket `now / bucket` (or, on a clock set back, the latest bucket recorded in) and the
//!   `buckets - 1` before it.
//! * **The rule**, checked when a failed or slow call is recorded: the window holds at least
//!   `minimum_calls`, and `failures / calls >= threshold` or `slow / calls >= slow ratio`
//!   (as `f64`).
//! * **Breaks**: the `k`-th opening since the circuit was last closed breaks for
//!   `min(initial * 2^(k-1), max)`, shortened, with jitter, by `rng.u64(0..=span)` where
//!   `span = (break as f64 * ratio) as u64` and `rng` is one `fastrand::Rng` seeded with the
//!   seed, drawn once per opening (not for `force_open`).

use std::collections::{BTreeMap, VecDeque};

use super::ops::{Breaks, Rate, Window};

/// What a window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

impl Tally {
    fn add(self, failed: bool, slow: bool) -> Tally {
        Tally {
            calls: self.calls + 1,
            failures: self.failures + u32::from(failed),
            slow: self.slow + u32::from(slow),
        }
    }
}

/// The window of the current closed period.
#[derive(Clone, Debug)]
pub(crate) enum ModelWindow {
    Calls { size: usize, last: VecDeque<(bool, bool)> },
    Time { bucket: u64, buckets: u64, latest: u64, counts: BTreeMap<u64, Tally> },
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl ModelWindow {
    /// An empty window for `rate`.
    pub(crate) fn new(rate: &Rate) -> ModelWindow {
        match rate.window {
            Window::Calls(n) => ModelWindow::Calls { size: n as usize, last: VecDeque::new() },
            Window::Time { span, buckets } => ModelWindow::Time {
                bucket: nanos(span) / u64::from(buckets),
                buckets: u64::from(buckets),
                latest: 0,
                counts: BTreeMap::new(),
            },
        }
    }

    /// Records an outcome at `now`; returns what the window holds after it.
    pub(crate) fn record(&mut self, failed: bool, slow: bool, now: u64) -> Tally {
        match self {
            ModelWindow::Calls { size, last } => {
                last.push_back((failed, slow));
                if last.len() > *size {
                    last.pop_front();
                }
            }
            ModelWindow::Time { bucket, latest, counts, .. } => {
                let index = (now / *bucket).max(*latest);
                *latest = index;
                let entry = counts.entry(index).or_default();
                *entry = entry.add(failed, slow);
            }
        }
        self.tally(now)
    }

    /// What the window holds at `now`.
    pub(crate) fn tally(&self, now: u64) -> Tally {
        match self {
            ModelWindow::Calls { last, .. } => {
                last.iter().fold(Tally::default(), |t, &(failed, slow)| t.add(failed, slow))
            }
            ModelWindow::Time { bucket, buckets, latest, counts } => {
                let index = (now / *bucket).max(*latest);
                counts.range(index.saturating_sub(buckets - 1)..=index).fold(
                    Tally::default(),
                    |t, (_, b)| Tally {
                        calls: t.calls + b.calls,
                        failures: t.failures + b.failures,
                        slow: t.slow + b.slow,
                    },
                )
            }
        }
    }
}

/// Whether `tally` (after a failed or slow call) trips the circuit under `rate`.
pub(crate) fn trips(rate: &Rate, tally: Tally) -> bool {
    if tally.calls < rate.minimum_calls {
        return false;
    }
    let calls = f64::from(tally.calls);
    f64::from(tally.failures) / calls >= rate.threshold
        || rate.slow.is_some_and(|(_, ratio)| f64::from(tally.slow) / calls >= ratio)
}

/// The break of the `openings`-th consecutive opening, drawing from `rng` if jittered.
pub(crate) fn break_for(breaks: &Breaks, openings: u32, rng: &mut fastrand::Rng) -> u64 {
    let (initial, max) = (nanos(breaks.initial), nanos(breaks.max));
    let mut base = initial;
    for _ in 1..openings {
        base = base.saturating_mul(2);
    }
    let base = base.min(max);
    match breaks.jitter {
        None => base,
        Some((ratio, _)) => {
            let span = ((base as f64 * ratio) as u64).min(base);
            base - rng.u64(0..=span)
        }
    }
}
