//! A count window: the outcomes of the last `n` calls, in a ring of one byte per call.

use alloc::boxed::Box;
use alloc::vec;

use super::{Outcome, Tally};

const FAILED: u8 = 1;
const SLOW: u8 = 2;

/// The last `ring.len()` outcomes of one generation (guarded by the window's lock).
pub(super) struct CountWindow {
    generation: u64,
    /// Outcomes recorded in this generation; the next goes to `recorded % len`.
    recorded: u64,
    ring: Box<[u8]>,
    failures: u32,
    slow: u32,
}

impl CountWindow {
    pub(super) fn new(calls: u32) -> CountWindow {
        CountWindow {
            generation: 0,
            recorded: 0,
            ring: vec![0; calls as usize].into_boxed_slice(),
            failures: 0,
            slow: 0,
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.recorded >= self.ring.len() as u64
    }

    fn calls(&self) -> u32 {
        // At most the ring's length, which is a `u32`.
        self.recorded.min(self.ring.len() as u64) as u32
    }

    /// Records `outcome` for `generation`: `None` if that generation is older than the
    /// window's (late), else what the window holds after it.
    pub(super) fn record(&mut self, generation: u64, outcome: Outcome) -> Option<Tally> {
        self.push(generation, outcome).then(|| self.tally(generation))
    }

    /// Whether the window of `generation` is full of fast successes.
    pub(super) fn is_clean(&self) -> bool {
        self.is_full() && self.failures == 0 && self.slow == 0
    }

    /// Records `outcome` for `generation` without summing the window: `false` if that
    /// generation is older than the window's (late, not recorded).
    #[inline]
    pub(super) fn push(&mut self, generation: u64, outcome: Outcome) -> bool {
        if generation != self.generation {
            if generation < self.generation {
                return false;
            }
            // A newer closed period: its window starts empty (the ring is read only where
            // this generation has written).
            self.generation = generation;
            self.recorded = 0;
            self.failures = 0;
            self.slow = 0;
        }
        let len = self.ring.len() as u64;
        let slot = (self.recorded % len) as usize;
        if self.recorded >= len {
            let leaving = self.ring[slot];
            self.failures -= u32::from(leaving & FAILED);
            self.slow -= u32::from(leaving & SLOW) >> 1;
        }
        let entering =
            if outcome.failure { FAILED } else { 0 } | if outcome.slow { SLOW } else { 0 };
        self.ring[slot] = entering;
        self.failures += u32::from(outcome.failure);
        self.slow += u32::from(outcome.slow);
        self.recorded += 1;
        true
    }

    pub(super) fn tally(&self, generation: u64) -> Tally {
        if generation != self.generation {
            return Tally::default();
        }
        Tally { calls: self.calls(), failures: self.failures, slow: self.slow }
    }
}
