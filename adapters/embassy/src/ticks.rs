//! Converting between embassy's ticks and kompoz's nanoseconds, exactly, at any tick rate.
//!
//! embassy counts time in ticks of `TICK_HZ` per second (a cargo feature of `embassy-time`,
//! 1 MHz unless the application picks another); kompoz counts nanoseconds. A tick count
//! becomes nanoseconds **rounded down**, and a nanosecond deadline becomes the **first
//! tick at or after it** (rounded up). Together these make the timer exact: it fires on
//! the first tick at which the clock reads the deadline or later, never a tick before and
//! never a tick after.
//!
//! Both directions reduce the ratio `1e9 / TICK_HZ` by its greatest common divisor first
//! (at 1 MHz a tick is exactly 1000 ns, at 32.768 kHz it is 1953125/64 ns), so the usual
//! conversion is one 64-bit multiplication and a division by a constant; only a product
//! that overflows 64 bits takes the 128-bit path. Results that do not fit saturate: a
//! tick count past kompoz's 584 years reads [`Instant::MAX`](kompoz::Instant::MAX), and a
//! deadline past embassy's last tick becomes that last tick.

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A tick rate, as the reduced fraction of nanoseconds per tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TickRate {
    /// Nanoseconds per tick, numerator: `1e9 / gcd`.
    nanos: u64,
    /// Nanoseconds per tick, denominator: `hz / gcd`.
    ticks: u64,
}

impl TickRate {
    /// The rate of `hz` ticks per second; `hz` must not be zero (checked when the
    /// constant for embassy's rate is evaluated, so at compile time).
    pub(crate) const fn new(hz: u64) -> TickRate {
        assert!(hz > 0, "a tick rate of zero ticks per second");
        let divisor = gcd(hz, NANOS_PER_SEC);
        TickRate { nanos: NANOS_PER_SEC / divisor, ticks: hz / divisor }
    }

    /// `ticks` as nanoseconds, rounded down, saturating at `u64::MAX`.
    #[inline]
    pub(crate) const fn to_nanos(self, ticks: u64) -> u64 {
        match ticks.checked_mul(self.nanos) {
            Some(product) => product / self.ticks,
            None => saturate(ticks as u128 * self.nanos as u128 / self.ticks as u128),
        }
    }

    /// The first tick at or after `nanos` (rounded up), saturating at `u64::MAX`.
    #[inline]
    pub(crate) const fn to_ticks_ceil(self, nanos: u64) -> u64 {
        match nanos.checked_mul(self.ticks) {
            Some(product) => product.div_ceil(self.nanos),
            None => saturate((nanos as u128 * self.ticks as u128).div_ceil(self.nanos as u128)),
        }
    }
}

const fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

const fn saturate(value: u128) -> u64 {
    if value > u64::MAX as u128 { u64::MAX } else { value as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rates embassy offers, from its slowest to its fastest, with awkward ones between.
    const RATES: [u64; 9] =
        [1, 100, 1_000, 32_768, 1_000_000, 16_777_216, 1_000_000_000, 1_310_720_000, 5_242_880_000];

    #[test]
    fn common_rates_reduce_to_small_fractions() {
        assert_eq!(TickRate::new(1_000_000), TickRate { nanos: 1_000, ticks: 1 });
        assert_eq!(TickRate::new(32_768), TickRate { nanos: 1_953_125, ticks: 64 });
        assert_eq!(TickRate::new(1_000_000_000), TickRate { nanos: 1, ticks: 1 });
    }

    #[test]
    fn at_one_megahertz_a_tick_is_a_microsecond() {
        let rate = TickRate::new(1_000_000);
        assert_eq!(rate.to_nanos(7), 7_000);
        assert_eq!(rate.to_ticks_ceil(7_000), 7);
        assert_eq!(rate.to_ticks_ceil(7_001), 8);
        assert_eq!(rate.to_ticks_ceil(6_999), 7);
        assert_eq!(rate.to_ticks_ceil(0), 0);
    }

    #[test]
    fn at_32768_hz_ticks_round_down_and_deadlines_round_up() {
        let rate = TickRate::new(32_768);
        // One tick is 30517.578125 ns.
        assert_eq!(rate.to_nanos(1), 30_517);
        assert_eq!(rate.to_nanos(64), 1_953_125);
        assert_eq!(rate.to_nanos(32_768), NANOS_PER_SEC);
        assert_eq!(rate.to_ticks_ceil(30_517), 1);
        assert_eq!(rate.to_ticks_ceil(30_518), 2);
        assert_eq!(rate.to_ticks_ceil(NANOS_PER_SEC), 32_768);
    }

    /// The property the timer relies on: `to_ticks_ceil(n)` is the first tick whose
    /// reading is `n` or later.
    fn check_first_tick_at_or_after(rate: TickRate, nanos: u64) {
        let tick = rate.to_ticks_ceil(nanos);
        if tick == u64::MAX {
            // embassy's last tick: no earlier tick reads the deadline. (Past the end of
            // embassy's range the last tick reads less: such a deadline is never reached.)
            assert!(rate.to_nanos(u64::MAX - 1) < nanos, "{rate:?}: {nanos} saturated early");
            return;
        }
        assert!(rate.to_nanos(tick) >= nanos, "{rate:?}: tick {tick} reads before {nanos}");
        if tick > 0 {
            assert!(rate.to_nanos(tick - 1) < nanos, "{rate:?}: tick {tick} is not the first");
        }
    }

    #[test]
    fn a_deadline_becomes_the_first_tick_that_reads_it_at_every_rate() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for hz in RATES {
            let rate = TickRate::new(hz);
            for nanos in (0..2_000).chain([u64::MAX - 1, u64::MAX, u64::MAX / 2, 1 << 63]) {
                check_first_tick_at_or_after(rate, nanos);
            }
            for _ in 0..20_000 {
                // xorshift: spread over the whole range, and over small values.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                check_first_tick_at_or_after(rate, state);
                check_first_tick_at_or_after(rate, state >> (state % 64));
            }
        }
    }

    #[test]
    fn the_ends_of_both_ranges_saturate_without_overflow() {
        for hz in RATES {
            let rate = TickRate::new(hz);
            let last = rate.to_nanos(u64::MAX);
            if hz <= NANOS_PER_SEC {
                // embassy's range is at least kompoz's: its last tick is past 584 years.
                assert_eq!(last, u64::MAX, "{hz} Hz");
                // So kompoz's last instant is a real tick of embassy's.
                assert_eq!(rate.to_nanos(rate.to_ticks_ceil(u64::MAX)), u64::MAX, "{hz} Hz");
            } else {
                // Faster than a nanosecond: embassy's range ends first, and a deadline
                // past it becomes its last tick.
                assert!(last < u64::MAX, "{hz} Hz");
                assert_eq!(rate.to_ticks_ceil(u64::MAX), u64::MAX, "{hz} Hz");
                assert_eq!(rate.to_ticks_ceil(last + 1), u64::MAX, "{hz} Hz");
            }
        }
    }
}
