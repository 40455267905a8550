//! A time window: the outcomes of the last `buckets × bucket` nanoseconds, counted per
//! bucket in a ring of buckets.
//!
//! The breaker's owner thread (the one that owns its counters) keeps the fast successes of
//! its current bucket in an [`OwnerTally`] outside the lock, counting with plain loads and
//! stores; it takes the lock only when its bucket or the generation changes, to fold the
//! tally into the ring and start a new one. Everyone else, and every failed or slow call,
//! records under the lock, and sums include the owner's tally when it belongs to the
//! window's generation.

use alloc::boxed::Box;
use alloc::vec;

use super::{Outcome, Tally};
use crate::sync::{AtomicU64, Ordering};

/// The owner thread's fast successes in its current bucket. `generation` and `bucket` are
/// written by the owner under the window's lock (so read consistently under it, and by the
/// owner itself at any time); `count` by the owner alone, without the lock.
pub(crate) struct OwnerTally {
    generation: AtomicU64,
    bucket: AtomicU64,
    count: AtomicU64,
    /// The window's latest bucket recorded in (written under the lock): the owner's fast
    /// path must not count in an older one (a clock set back).
    latest: AtomicU64,
}

impl OwnerTally {
    pub(crate) fn new() -> OwnerTally {
        OwnerTally {
            generation: AtomicU64::new(u64::MAX),
            bucket: AtomicU64::new(EMPTY),
            count: AtomicU64::new(0),
            latest: AtomicU64::new(0),
        }
    }

    /// The owner's fast path: one more fast success, if its tally is for `generation` and
    /// the bucket `index`, and no one has recorded in a later bucket since (the clock set
    /// back); `false` if the lock must be taken instead.
    #[inline]
    pub(crate) fn bump(&self, generation: u64, index: u64) -> bool {
        if self.generation.load(Ordering::Relaxed) != generation
            || self.bucket.load(Ordering::Relaxed) != index
            || self.latest.load(Ordering::Relaxed) != index
        {
            return false;
        }
        let count = self.count.load(Ordering::Relaxed);
        self.count.store(count + 1, Ordering::Release);
        true
    }
}

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

    /// The bucket `now` falls in, as the owner's fast path compares it.
    pub(super) fn raw_index(bucket: u64, now: u64) -> u64 {
        now / bucket
    }

    /// The owner's tally, if it is for this window's generation: `(bucket, successes)`.
    fn owner_part(&self, owner: &OwnerTally) -> Option<(u64, u32)> {
        (owner.generation.load(Ordering::Relaxed) == self.generation).then(|| {
            let count = owner.count.load(Ordering::Acquire);
            (owner.bucket.load(Ordering::Relaxed), u32::try_from(count).unwrap_or(u32::MAX))
        })
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
        owner: &OwnerTally,
        owned: bool,
    ) -> Option<Tally> {
        if generation != self.generation {
            if generation < self.generation {
                return None;
            }
            self.generation = generation;
            self.latest = 0;
            owner.latest.store(0, Ordering::Relaxed);
            self.ring.iter_mut().for_each(|b| b.index = EMPTY);
        }
        let index = self.index(now);
        self.latest = index;
        owner.latest.store(index, Ordering::Relaxed);
        let one =
            Tally { calls: 1, failures: u32::from(outcome.failure), slow: u32::from(outcome.slow) };
        if owned && !outcome.failure && !outcome.slow {
            // The owner's fast success that missed its tally: fold the old tally into the
            // ring, and start one for this bucket with this success.
            if let Some((bucket, successes)) = self.owner_part(owner) {
                self.add(bucket, Tally { calls: successes, ..Tally::default() });
            }
            owner.generation.store(generation, Ordering::Relaxed);
            owner.bucket.store(index, Ordering::Relaxed);
            owner.count.store(1, Ordering::Release);
        } else {
            // Saturating: four billion calls in one bucket are plenty to judge by.
            self.add(index, one);
        }
        Some(if judge { self.sum(index, owner) } else { Tally::default() })
    }

    /// The buckets (and the owner's tally) within the window that ends with bucket
    /// `index`.
    fn sum(&self, index: u64, owner: &OwnerTally) -> Tally {
        let len = self.ring.len() as u64;
        let within = |at: u64| at != EMPTY && at <= index && index - at < len;
        let owned = self.owner_part(owner).filter(|(bucket, _)| within(*bucket)).map_or(
            Tally::default(),
            |(_, successes)| Tally { calls: successes, ..Tally::default() },
        );
        self.ring.iter().filter(|b| within(b.index)).fold(owned, |sum, b| Tally {
            calls: sum.calls.saturating_add(b.tally.calls),
            failures: sum.failures.saturating_add(b.tally.failures),
            slow: sum.slow.saturating_add(b.tally.slow),
        })
    }

    pub(super) fn tally(&self, generation: u64, now: u64, owner: &OwnerTally) -> Tally {
        if generation != self.generation {
            return Tally::default();
        }
        self.sum(self.index(now), owner)
    }
}
