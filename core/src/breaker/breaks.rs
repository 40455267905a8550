//! The break of each open period: fixed, or growing with consecutive openings, with an
//! optional seeded jitter (see [`BreakDuration`](super::BreakDuration)).

use super::policy::BreakConfig;
use crate::sync::{AtomicU64, Ordering};

/// A breaker's break durations: the validated configuration, the PRNG state for the
/// jitter, and the break of the latest open period (for `stats()`).
pub(crate) struct Breaks {
    initial: u64,
    max: u64,
    jitter: f64,
    /// The PRNG's state (`fastrand::Rng`'s seed), advanced by each draw.
    rng: AtomicU64,
    /// The break of the current or last open period, in nanoseconds.
    current: AtomicU64,
}

/// The break for the `openings`-th consecutive opening (1 for the first), before jitter:
/// `initial * 2^(openings - 1)`, capped at `max`.
pub(crate) fn base(initial: u64, max: u64, openings: u32) -> u64 {
    let doublings = openings.saturating_sub(1);
    let grown = if doublings >= 64 || initial > (u64::MAX >> doublings) {
        u64::MAX
    } else {
        initial << doublings
    };
    grown.min(max)
}

/// `base` shortened by a draw of up to `jitter` of it from `rng` (no draw without jitter).
pub(crate) fn jittered(base: u64, jitter: f64, rng: &mut fastrand::Rng) -> u64 {
    if jitter == 0.0 {
        return base;
    }
    // `as` saturates; the product is at most `base`.
    let span = (base as f64 * jitter) as u64;
    base - rng.u64(0..=span.min(base))
}

impl Breaks {
    pub(crate) fn new(config: BreakConfig) -> Breaks {
        Breaks {
            initial: config.initial,
            max: config.max,
            jitter: config.jitter,
            rng: AtomicU64::new(config.seed),
            current: AtomicU64::new(0),
        }
    }

    /// The break for an open period that is the `openings`-th consecutive one; recorded as
    /// the current break.
    pub(crate) fn next(&self, openings: u32) -> u64 {
        let base = base(self.initial, self.max, openings);
        let chosen = if self.jitter == 0.0 {
            base
        } else {
            let mut seen = self.rng.load(Ordering::Relaxed);
            loop {
                let mut rng = fastrand::Rng::with_seed(seen);
                let chosen = jittered(base, self.jitter, &mut rng);
                match self.rng.compare_exchange_weak(
                    seen,
                    rng.get_seed(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break chosen,
                    Err(actual) => seen = actual,
                }
            }
        };
        self.current.store(chosen, Ordering::Relaxed);
        chosen
    }

    /// The break of the current or last open period (0 if it never opened).
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// The first break: what `recovery_timeout` reports.
    pub(crate) fn initial(&self) -> u64 {
        self.initial
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn breaks_double_up_to_the_cap_and_saturate() {
        let second = 1_000_000_000;
        let seq: [u64; 6] = core::array::from_fn(|i| base(second, 8 * second, i as u32 + 1));
        assert_eq!(seq, [1, 2, 4, 8, 8, 8].map(|s| s * second));
        assert_eq!(base(second, u64::MAX, 63), u64::MAX);
        assert_eq!(base(3, u64::MAX, 64), u64::MAX);
        assert_eq!(base(0, 0, 40), 0);
        assert_eq!(base(5, 5, 1), 5);
    }

    #[test]
    fn jitter_shortens_within_its_ratio_and_a_seed_repeats_its_breaks() {
        let breaks = |seed| {
            let b = Breaks::new(BreakConfig { initial: 1_000, max: 1_000, jitter: 0.25, seed });
            (0..50).map(|_| b.next(1)).collect::<alloc::vec::Vec<_>>()
        };
        let first = breaks(7);
        assert!(first.iter().all(|&d| (750..=1_000).contains(&d)), "{first:?}");
        assert!(first.iter().any(|&d| d != first[0]), "jittered");
        assert_eq!(first, breaks(7));
        assert_ne!(first, breaks(8));
        let full =
            Breaks::new(BreakConfig { initial: u64::MAX, max: u64::MAX, jitter: 1.0, seed: 1 });
        let chosen = full.next(1);
        assert_eq!(full.current(), chosen, "the chosen break is the current one");
    }
}
