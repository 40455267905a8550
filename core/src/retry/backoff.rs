//! [`Backoff`]: how long to wait before each retry, and the jitter added to it.

use core::time::Duration;

use fastrand::Rng;

use crate::time::duration_to_nanos;

/// How long a retry waits before its next attempt.
///
/// The `n`-th retry (counting from 0: the one after the first attempt failed) waits:
///
/// | strategy | delay |
/// | --- | --- |
/// | `None` | zero |
/// | `Constant(d)` | `d` |
/// | `Exponential { base, max }` | `min(base × 2ⁿ, max)` (kompoz's `exponential=True`) |
/// | `DecorrelatedJitter { base, max }` | `min(uniform(base, 3 × previous), max)`, `previous` starting at `base` |
///
/// Then the policy's `jitter` (kompoz's `jitter`), a uniform draw from `[0, jitter]`, is
/// added on top. Everything saturates: `Duration::MAX` means "never", not an overflow.
///
/// ```
/// use core::time::Duration;
/// use kompoz::retry::Backoff;
///
/// let ms = Duration::from_millis;
/// let exponential = Backoff::Exponential { base: ms(100), max: ms(350) };
/// let mut rng = fastrand::Rng::with_seed(7);
/// let delays: Vec<_> =
///     (0..4).map(|n| exponential.delay(n, Duration::ZERO, &mut rng)).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backoff {
    /// Retry at once.
    None,
    /// The same delay before every retry.
    Constant(Duration),
    /// Doubling from `base`, capped at `max`.
    Exponential {
        /// The first delay.
        base: Duration,
        /// The largest delay.
        max: Duration,
    },
    /// "Decorrelated jitter": each delay drawn uniformly between `base` and three times
    /// the previous one, capped at `max`. Spreads a crowd of clients that failed together
    /// better than exponential backoff with added jitter.
    DecorrelatedJitter {
        /// The smallest delay, and the first `previous`.
        base: Duration,
        /// The largest delay.
        max: Duration,
    },
}

impl Backoff {
    /// The delay before retry `n` (0 for the first retry), given the `previous` delay
    /// (only decorrelated jitter uses it; pass zero for the first retry) and a generator
    /// for its draws. Jitter added by a policy is not included.
    pub fn delay(&self, n: u32, previous: Duration, rng: &mut Rng) -> Duration {
        match *self {
            Backoff::None => Duration::ZERO,
            Backoff::Constant(delay) => delay,
            Backoff::Exponential { base, max } => {
                let factor = 1u32.checked_shl(n).unwrap_or(0);
                match factor {
                    0 => max,
                    factor => base.checked_mul(factor).unwrap_or(Duration::MAX).min(max),
                }
            }
            Backoff::DecorrelatedJitter { base, max } => {
                let previous = previous.max(base);
                let high = previous.checked_mul(3).unwrap_or(Duration::MAX);
                uniform(rng, base, high).min(max)
            }
        }
    }

    /// Whether computing a delay draws from the generator.
    pub(crate) fn draws(&self) -> bool {
        matches!(self, Backoff::DecorrelatedJitter { .. })
    }
}

/// A uniform draw from `[low, high]` (inclusive), at nanosecond resolution, clamped to
/// `u64::MAX` nanoseconds (about 584 years).
pub(crate) fn uniform(rng: &mut Rng, low: Duration, high: Duration) -> Duration {
    let (low, high) = (duration_to_nanos(low), duration_to_nanos(high));
    if high <= low {
        return Duration::from_nanos(low);
    }
    Duration::from_nanos(rng.u64(low..=high))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_doubles_and_saturates_at_the_cap() {
        let b = Backoff::Exponential { base: 10 * MS, max: Duration::MAX };
        let mut rng = Rng::with_seed(1);
        assert_eq!(b.delay(0, Duration::ZERO, &mut rng), 10 * MS);
        assert_eq!(b.delay(3, Duration::ZERO, &mut rng), 80 * MS);
        // 2^40 * 10 ms does not fit a u32 factor: the cap (here "never") wins.
        assert_eq!(b.delay(40, Duration::ZERO, &mut rng), Duration::MAX);
        let huge = Backoff::Exponential { base: Duration::MAX, max: Duration::from_secs(5) };
        assert_eq!(huge.delay(1, Duration::ZERO, &mut rng), Duration::from_secs(5));
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_three_times_the_previous() {
        let b = Backoff::DecorrelatedJitter { base: 10 * MS, max: 200 * MS };
        let mut rng = Rng::with_seed(99);
        let mut previous = Duration::ZERO;
        for n in 0..1_000 {
            let delay = b.delay(n, previous, &mut rng);
            assert!(delay >= 10 * MS && delay <= (previous.max(10 * MS) * 3).min(200 * MS));
            previous = delay;
        }
        assert!(b.draws() && !Backoff::Constant(MS).draws());
    }

    #[test]
    fn a_seeded_generator_repeats_its_draws() {
        let b = Backoff::DecorrelatedJitter { base: MS, max: Duration::from_secs(1) };
        let (mut a, mut c) = (Rng::with_seed(5), Rng::with_seed(5));
        for n in 0..20 {
            assert_eq!(b.delay(n, MS * n, &mut a), b.delay(n, MS * n, &mut c));
        }
    }

    #[test]
    fn uniform_handles_empty_and_huge_ranges() {
        let mut rng = Rng::with_seed(3);
        assert_eq!(uniform(&mut rng, 5 * MS, MS), 5 * MS);
        let d = uniform(&mut rng, Duration::ZERO, Duration::MAX);
        assert!(d <= Duration::from_nanos(u64::MAX));
    }
}
