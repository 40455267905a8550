//! A time window: the outcomes of the last `buckets × bucket` nanoseconds, counted per
//! bucket in a ring of buckets.

use alloc::boxed::Box;
use alloc::vec;

use super::{Outcome, Tally};

/// No bucket recorded in this slot (for this generation).
const EMPTY: u64 = u64::MAX;

#[derive(Clone, Copy)]
struct Bucket {
    /// Which bucket of time (`now / bucket`), or `EMPTY`.
    index: u64,
    tally: Tally,
}

/// The buckets of one generation (guarded by the window's lock).
pub(super) struct TimeWindow {
    generation: u64,
    /// Nanoseconds per bucket.
    bucket: u64,
    /// The latest bucket recorded in: an outcome read on a clock that stepped back counts
    /// in it.
    latest: u64,
    ring: Box<[Bucket]>,
}

impl TimeWindow {
    pub(super) fn new(bucket: u64, buckets: u32) -> TimeWindow {
        TimeWindow {
            generation: 0,
            bucket,
            latest: 0,
            ring: vec![Bucket { index: EMPTY, tally: Tally::default() }; buckets as usize]
                .into_boxed_slice(),
        }
    }

    /// The bucket `now` falls in, never before the latest one recorded.
    fn index(&self, now: u64) -> u64 {
        (now / self.bucket).max(self.latest)
    }

    /// Records `outcome` at `now` for `generation`: `None` if that generation is older than
    /// the window's (late), else what the window holds after it (summed only if `judge`:
    /// a success is never judged).
    pub(super) fn record(
        &mut self,
        generation: u64,
        outcome: Outcome,
        now: u64,
        judge: bool,
    ) -> Option<Tally> {
        if generation != self.generation {
            if generation < self.generation {
                return None;
            }
            self.generation = generation;
            self.latest = 0;
            self.ring.iter_mut().for_each(|b| b.index = EMPTY);
        }
        let index = self.index(now);
        self.latest = index;
        let len = self.ring.len() as u64;
        let slot = &mut self.ring[(index % len) as usize];
        if slot.index != index {
            *slot = Bucket { index, tally: Tally::default() };
        }
        // Saturating: four billion calls in one bucket are plenty to judge by.
        slot.tally.calls = slot.tally.calls.saturating_add(1);
        slot.tally.failures = slot.tally.failures.saturating_add(u32::from(outcome.failure));
        slot.tally.slow = slot.tally.slow.saturating_add(u32::from(outcome.slow));
        Some(if judge { self.sum(index) } else { Tally::default() })
    }

    /// The buckets within the window that ends with bucket `index`.
    fn sum(&self, index: u64) -> Tally {
        let len = self.ring.len() as u64;
        self.ring
            .iter()
            .filter(|b| b.index != EMPTY && b.index <= index && index - b.index < len)
            .fold(Tally::default(), |sum, b| Tally {
                calls: sum.calls.saturating_add(b.tally.calls),
                failures: sum.failures.saturating_add(b.tally.failures),
                slow: sum.slow.saturating_add(b.tally.slow),
            })
    }

    pub(super) fn tally(&self, generation: u64, now: u64) -> Tally {
        if generation != self.generation {
            return Tally::default();
        }
        self.sum(self.index(now))
    }
}
