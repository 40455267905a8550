//! A time window: the outcomes of the last `buckets × bucket` nanoseconds, counted per
//! bucket in a ring of buckets.
//!
//! Fast successes are counted on the recording thread's own [`Tallies`] entry, outside the
//! lock, while they fall in the bucket the window recorded in last; the lock is taken when
//! a thread's bucket or generation changes (to fold its tally into the ring and start a
//! new one), for every failed or slow call, and by threads without a tally. Sums include
//! the tallies that belong to the window's generation and buckets.

use alloc::boxed::Box;
use alloc::vec;

use super::tallies::{Ready, Tallies};
use super::{Outcome, Tally};
use crate::sync::{AtomicU64, Ordering};

/// No bucket recorded in this slot (for this generation).
const EMPTY: u64 = u64::MAX;

#[derive(Clone, Copy)]
struct Bucket {
    /// Which bucket of time (`now / bucket`), or `EMPTY`.
    index: u64,
    tally: Tally,
}

/// What a time window shares outside its lock: the first nanosecond of the bucket it
/// recorded in last (written under the lock, read by the tallies' fast path), its bucket
/// width, and the per-thread tallies.
pub(super) struct Shared {
    pub(super) latest: AtomicU64,
    pub(super) width: u64,
    pub(super) tallies: Tallies,
}

impl Shared {
    pub(super) fn new(width: u64) -> Shared {
        // Generation 0's window starts at bucket 0.
        Shared { latest: AtomicU64::new(0), width, tallies: Tallies::new() }
    }

    /// The fast path: a fast success of `generation` at `now` counted on the calling
    /// thread's tally, without the lock.
    #[inline]
    pub(super) fn bump(&self, generation: u64, now: u64) -> bool {
        self.tallies.bump(generation, now, &self.latest, self.width)
    }

    /// The calling thread's tally, if it is tagged for `generation` and the latest bucket.
    #[inline]
    pub(super) fn ready(&self, generation: u64) -> Option<Ready<'_>> {
        self.tallies.ready(generation, &self.latest, self.width)
    }
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

    /// Adds `tally` to the bucket `index`, unless the ring has moved past it.
    fn add(&mut self, index: u64, tally: Tally) {
        let len = self.ring.len() as u64;
        let slot = &mut self.ring[(index % len) as usize];
        if slot.index != index {
            if slot.index != EMPTY && slot.index > index {
                return; // out of the window already
            }
            *slot = Bucket { index, tally: Tally::default() };
        }
        slot.tally = Tally {
            calls: slot.tally.calls.saturating_add(tally.calls),
            failures: slot.tally.failures.saturating_add(tally.failures),
            slow: slot.tally.slow.saturating_add(tally.slow),
        };
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
        shared: &Shared,
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
        // At most `now`: no overflow.
        let start = index * self.bucket;
        if shared.latest.load(Ordering::Relaxed) != start {
            shared.latest.store(start, Ordering::Relaxed);
        }
        let fast = !outcome.failure && !outcome.slow;
        match if fast { shared.tallies.mine() } else { None } {
            Some(mine) => {
                // A fast success that missed its tally's fast path: count it on the tally,
                // after folding the tally's old bucket into the ring if it must move.
                let (tagged, at, count) = mine.read();
                if (tagged, at) == (generation, start) {
                    mine.bump();
                } else {
                    if tagged == self.generation {
                        self.add(at / self.bucket, successes(count));
                    }
                    mine.retag(generation, start, 1);
                }
            }
            None => self.add(
                index,
                Tally {
                    calls: 1,
                    failures: u32::from(outcome.failure),
                    slow: u32::from(outcome.slow),
                },
            ),
        }
        Some(if judge { self.sum(index, shared) } else { Tally::default() })
    }

    /// The buckets (and the tallies) within the window that ends with bucket `index`.
    fn sum(&self, index: u64, shared: &Shared) -> Tally {
        let len = self.ring.len() as u64;
        let within = |at: u64| at != EMPTY && at <= index && index - at < len;
        let tallied = shared
            .tallies
            .iter()
            .map(|t| t.read())
            .filter(|&(generation, start, _)| {
                generation == self.generation && within(start / self.bucket)
            })
            .fold(Tally::default(), |sum, (_, _, count)| add(sum, successes(count)));
        self.ring.iter().filter(|b| within(b.index)).fold(tallied, |sum, b| add(sum, b.tally))
    }

    pub(super) fn tally(&self, generation: u64, now: u64, shared: &Shared) -> Tally {
        if generation != self.generation {
            return Tally::default();
        }
        self.sum(self.index(now), shared)
    }
}

/// `count` fast successes, saturated: four billion calls in one bucket are plenty to judge
/// by.
fn successes(count: u64) -> Tally {
    Tally { calls: u32::try_from(count).unwrap_or(u32::MAX), ..Tally::default() }
}

fn add(a: Tally, b: Tally) -> Tally {
    Tally {
        calls: a.calls.saturating_add(b.calls),
        failures: a.failures.saturating_add(b.failures),
        slow: a.slow.saturating_add(b.slow),
    }
}
