//! The GCRA decision: a pure function over plain integers.
//!
//! [`Gcra::step`] knows nothing of atomics, clocks, maps or waiters. The direct limiter
//! applies it to one `AtomicU64` with compare-exchange, the keyed limiter to a `u64` in a
//! map shard; the reference model, the fuzzer and (in another language) the Redis script
//! reproduce the same arithmetic, spelled out in the [module documentation](super).

/// The validated parameters of a [`Quota`](super::Quota), in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Gcra {
    /// `T`: nanoseconds per cell (>= 1).
    pub(crate) interval: u64,
    /// `τ = burst × T`: how far ahead of now the TAT may run (fits in a `u64`).
    pub(crate) tolerance: u64,
    /// The most cells admitted at once (>= 1).
    pub(crate) burst: u32,
}

/// What [`Gcra::step`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Decision {
    /// The cells conform: this is the new TAT.
    Conform {
        /// The theoretical arrival time after these cells.
        tat: u64,
    },
    /// They do not: the earliest instant at which they would, if nothing else changed
    /// (`u64::MAX`: never, on this clock).
    Wait {
        /// Nanoseconds on the limiter's clock.
        earliest: u64,
    },
}

impl Gcra {
    pub(crate) const fn new(quota: super::Quota) -> Gcra {
        let interval = quota.interval_nanos();
        let burst = quota.burst();
        // The quota checked that the product fits.
        Gcra { interval, tolerance: interval * burst as u64, burst }
    }

    /// The quota these parameters came from.
    pub(crate) const fn quota(&self) -> super::Quota {
        super::Quota::from_valid(self.interval, self.burst)
    }

    /// Decides whether `cells` more cells conform at `now`, behind `ahead` cells that
    /// waiters queued earlier still have to take, given the stored `tat`.
    ///
    /// ```text
    /// base  = max(tat, now)
    /// total = base + (ahead + cells) × T        (exact: 128 bits)
    /// if base + cells × T > u64::MAX:  Wait { earliest: u64::MAX }   (beyond the end of time)
    /// if total <= now + τ:             Conform { tat: base + cells × T }
    /// else:                            Wait { earliest: min(total − τ, u64::MAX) }
    /// ```
    ///
    /// The caller checks `cells <= burst` first (a larger batch never conforms) and
    /// handles `cells == 0` (nothing to admit).
    #[inline]
    pub(crate) fn step(&self, tat: u64, now: u64, ahead: u64, cells: u32) -> Decision {
        if ahead == 0 && cells <= self.burst {
            return self.step_alone(tat, now, cells);
        }
        let base = if tat > now { tat } else { now };
        let interval = self.interval as u128;
        let own = base as u128 + cells as u128 * interval;
        if own > u64::MAX as u128 {
            return Decision::Wait { earliest: u64::MAX };
        }
        let total = own + ahead as u128 * interval;
        let limit = now as u128 + self.tolerance as u128;
        if total <= limit {
            Decision::Conform { tat: own as u64 }
        } else {
            let earliest = total - self.tolerance as u128;
            Decision::Wait { earliest: u64::try_from(earliest).unwrap_or(u64::MAX) }
        }
    }

    /// [`step`](Gcra::step) with nobody ahead, for `cells <= burst`: the common case, in
    /// 64 bits (`cells × T <= τ` fits, and `own >= now`). It is what a direct `check`
    /// inlines.
    #[inline(always)]
    pub(crate) fn step_alone(&self, tat: u64, now: u64, cells: u32) -> Decision {
        debug_assert!(cells <= self.burst);
        let base = if tat > now { tat } else { now };
        // `cells × T <= burst × T = τ`, which the quota checked fits.
        let Some(own) = base.checked_add(cells as u64 * self.interval) else {
            return Decision::Wait { earliest: u64::MAX };
        };
        if own - now <= self.tolerance {
            Decision::Conform { tat: own }
        } else {
            Decision::Wait { earliest: own - self.tolerance }
        }
    }

    /// How many cells would conform at `now` behind `ahead` queued cells (0 to `burst`).
    pub(crate) fn available(&self, tat: u64, now: u64, ahead: u64) -> u32 {
        let base = if tat > now { tat } else { now };
        let limit = now as u128 + self.tolerance as u128;
        let used = base as u128 + ahead as u128 * self.interval as u128;
        let room = limit.saturating_sub(used) / self.interval as u128;
        // Also no further than the end of time.
        let to_end = (u64::MAX - base) / self.interval;
        room.min(to_end as u128).min(self.burst as u128) as u32
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::Quota;
    use super::*;

    const MS: u64 = 1_000_000;

    fn gcra(per_second: u32, burst: u32) -> Gcra {
        Gcra::new(Quota::per_second(per_second).unwrap().with_burst(burst).unwrap())
    }

    /// Applies `step` for one cell at `now`, keeping the TAT.
    fn one(g: &Gcra, tat: &mut u64, now: u64) -> Decision {
        let decision = g.step(*tat, now, 0, 1);
        if let Decision::Conform { tat: next } = decision {
            *tat = next;
        }
        decision
    }

    #[test]
    fn a_burst_then_one_cell_per_interval() {
        let g = gcra(100, 10);
        let mut tat = 0;
        let now = 1_000 * MS;
        for _ in 0..10 {
            assert!(matches!(one(&g, &mut tat, now), Decision::Conform { .. }));
        }
        assert_eq!(one(&g, &mut tat, now), Decision::Wait { earliest: now + 10 * MS });
        assert_eq!(
            one(&g, &mut tat, now + 10 * MS - 1),
            Decision::Wait { earliest: now + 10 * MS }
        );
        assert_eq!(one(&g, &mut tat, now + 10 * MS), Decision::Conform { tat: now + 110 * MS });
    }

    #[test]
    fn a_batch_conforms_all_or_nothing_and_queued_cells_come_first() {
        let g = gcra(100, 10);
        assert_eq!(g.step(0, 0, 0, 10), Decision::Conform { tat: 100 * MS });
        assert_eq!(g.step(50 * MS, 0, 0, 6), Decision::Wait { earliest: 10 * MS });
        // Four cells queued ahead: one more fits now, two do not.
        assert_eq!(g.step(50 * MS, 0, 4, 1), Decision::Conform { tat: 60 * MS });
        assert_eq!(g.step(50 * MS, 0, 4, 2), Decision::Wait { earliest: 10 * MS });
        assert_eq!(g.step(50 * MS, 0, 4, 3), Decision::Wait { earliest: 20 * MS });
        assert_eq!(g.available(50 * MS, 0, 4), 1);
        assert_eq!(g.available(50 * MS, 0, 0), 5);
        assert_eq!(g.available(0, 7, 0), 10);
    }

    #[test]
    fn the_ends_of_time_saturate() {
        let g = gcra(1, 1);
        let end = u64::MAX;
        // Nothing conforms whose TAT would pass the end of time.
        assert_eq!(g.step(0, end, 0, 1), Decision::Wait { earliest: end });
        assert_eq!(g.step(end, end - 2_000_000_000, 0, 1), Decision::Wait { earliest: end });
        assert_eq!(g.available(end, end, 0), 0);
        // A clock that stepped back far behind the TAT: a long wait, no overflow.
        assert_eq!(
            g.step(end - 1_000_000_000, 0, 0, 1),
            Decision::Wait { earliest: end - 1_000_000_000 }
        );
        // A huge queue ahead saturates the earliest instant.
        assert_eq!(g.step(0, 0, u64::MAX, 1), Decision::Wait { earliest: end });
    }
}
