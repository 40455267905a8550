//! `RateWatch` holds a rate limiter to exactly its bound: quiet on a limiter that keeps
//! it (kompoz's own, whichever way its callers ask), whatever the callers do; a limiter a
//! nanosecond too generous is caught.
// Safe code only (no semaphore, no unsafe on these paths) and thousands of polls: miri
// would take many minutes and could find nothing, so these run in `cargo test` alone.
#![cfg(all(feature = "sim", not(miri)))]

use std::cell::Cell;
use std::time::Duration;

use kompoz::rate::{Quota, RateLimiter};
use kompoz::sim::{RateWatch, Sim, Violation};
use kompoz::{Clock, Instant, ManualClock, Sleep, timeout};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A GCRA limiter in a few lines (the bound `RateWatch` checks is GCRA's), with a knob
/// that makes it admit `early` nanoseconds too soon.
struct Gcra {
    interval: u64,
    tolerance: u64,
    early: u64,
    tat: Cell<u64>,
}

impl Gcra {
    fn new(burst: u64, interval: u64, early: u64) -> Gcra {
        Gcra { interval, tolerance: (burst - 1) * interval, early, tat: Cell::new(0) }
    }

    /// The earliest instant at which it admits the next cell.
    fn next_admission(&self) -> Instant {
        Instant::from_nanos(self.tat.get().saturating_sub(self.tolerance + self.early))
    }

    fn check(&self, now: Instant) -> bool {
        let now = now.as_nanos();
        let tat = self.tat.get().max(now);
        if now + self.tolerance + self.early < tat {
            return false;
        }
        self.tat.set(tat + self.interval);
        true
    }
}

/// Callers arriving at pseudo-random moments for ten simulated seconds, admitted by
/// `limiter` and reported to `watch`; returns how many were admitted.
fn callers(limiter: &Gcra, watch: &RateWatch, seed: u64) -> u64 {
    let clock = ManualClock::new();
    let mut sim = Sim::with_clock(seed, clock.clone());
    for caller in 0..20u64 {
        let (clock, limiter, watch) = (clock.clone(), limiter, watch);
        sim.spawn(async move {
            let mut state = seed ^ (caller + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            while clock.now() < Instant::ZERO + Duration::from_secs(10) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                clock.sleep(Duration::from_micros(state % 20_000)).await;
                if limiter.check(clock.now()) {
                    watch.admitted(clock.now(), 1);
                }
            }
        });
    }
    sim.run().unwrap();
    watch.total()
}

#[test]
fn a_rate_limiter_at_its_exact_bound_keeps_the_rate_watch_quiet() {
    for (seed, burst) in [(1, 1), (2, 3), (3, 10)] {
        let limiter = Gcra::new(burst, 10_000_000, 0);
        let watch = RateWatch::new(burst as u32, ms(10));
        let admitted = callers(&limiter, &watch, seed);
        assert_eq!(watch.check(), Ok(()), "burst {burst}");
        // Near saturation (the watch itself checks the upper bound, over every window).
        assert!(admitted >= 900, "{admitted}");
    }
}

/// A caller that asks at the very first instant `limiter` admits its next cell.
fn greedy(limiter: &Gcra, watch: &RateWatch, cells: u32) {
    let clock = ManualClock::new();
    let mut sim = Sim::with_clock(0, clock.clone());
    sim.block_on(async {
        for _ in 0..cells {
            clock.sleep_until(limiter.next_admission()).await;
            assert!(limiter.check(clock.now()));
            watch.admitted(clock.now(), 1);
        }
    })
    .unwrap();
}

#[test]
fn a_greedy_caller_at_the_exact_bound_is_fine_and_a_nanosecond_early_is_caught() {
    let (exact, watch) = (Gcra::new(3, 10_000_000, 0), RateWatch::new(3, ms(10)));
    greedy(&exact, &watch, 50);
    assert_eq!(watch.check(), Ok(()));

    let (generous, watch) = (Gcra::new(3, 10_000_000, 1), RateWatch::new(3, ms(10)));
    greedy(&generous, &watch, 50);
    match watch.check() {
        Err(Violation::RateExceeded { admitted, window, allowed }) => {
            assert_eq!(admitted, allowed + 1);
            // `admitted - burst` more cells need that many intervals; each came a
            // nanosecond sooner than the one before.
            assert!(window < ms(10) * (admitted - 3) as u32, "{window:?}");
            assert!(window > ms(10) * (admitted - 4) as u32, "{window:?}");
        }
        other => panic!("not caught: {other:?}"),
    }

    // Random callers against a limiter a millisecond too generous.
    let (loose, watch) = (Gcra::new(3, 10_000_000, 1_000_000), RateWatch::new(3, ms(10)));
    callers(&loose, &watch, 4);
    assert!(matches!(watch.check(), Err(Violation::RateExceeded { .. })));
}

#[test]
fn batches_count_by_their_cells() {
    let watch = RateWatch::new(5, ms(100));
    watch.admitted(Instant::ZERO, 5);
    watch.admitted(Instant::ZERO + ms(100), 1);
    assert_eq!((watch.check(), watch.total()), (Ok(()), 6));
    watch.admitted(Instant::ZERO + ms(150), 1);
    assert_eq!(
        watch.check(),
        Err(Violation::RateExceeded { admitted: 7, window: ms(150), allowed: 6 })
    );
    assert_eq!(
        Violation::RateExceeded { admitted: 7, window: ms(150), allowed: 6 }.to_string(),
        "7 cells passed the rate limit within 150ms, where it allows 6"
    );
}

/// Twelve callers for five simulated seconds against the real limiter of `quota`, each
/// asking in one of its ways at pseudo-random moments: `check`, a batch, a wait, a wait
/// with a maximum, a wait cut short by a time limit (a cancelled waiter). Each admission
/// is reported to `watch` in the poll that made it.
fn real_callers(quota: Quota, watch: &RateWatch, seed: u64) -> RateLimiter<ManualClock> {
    let clock = ManualClock::new();
    let limiter = RateLimiter::new(quota, clock.clone());
    let mut sim = Sim::with_clock(seed, clock.clone());
    for caller in 0..12u64 {
        let (clock, limiter) = (clock.clone(), &limiter);
        sim.spawn(async move {
            let mut state = seed ^ (caller + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            while clock.now() < Instant::ZERO + Duration::from_secs(5) {
                clock.sleep(Duration::from_micros(next() % 30_000)).await;
                let cells = 1 + (next() % u64::from(quota.burst().min(3))) as u32;
                let within = Duration::from_micros(next() % 50_000);
                let admitted = match next() % 5 {
                    0 => limiter.check().is_ok().then_some(1),
                    1 => limiter.check_n(cells).is_ok().then_some(cells),
                    2 => {
                        limiter.until_ready().await;
                        Some(1)
                    }
                    3 => limiter.until_ready_within(within).await.is_ok().then_some(1),
                    _ => timeout(&clock, within, limiter.until_ready()).await.is_ok().then_some(1),
                };
                if let Some(cells) = admitted {
                    watch.admitted(clock.now(), cells);
                }
            }
        });
    }
    sim.run().unwrap();
    drop(sim);
    limiter
}

#[test]
fn the_real_rate_limiter_keeps_the_watch_of_its_quota_quiet_whatever_its_callers_do() {
    let quotas = [
        Quota::per_second(10).unwrap().with_burst(1).unwrap(),
        Quota::per(3, Duration::from_secs(1)).unwrap(), // an interval rounded up
        Quota::every(ms(7)).unwrap().with_burst(5).unwrap(),
        Quota::per_minute(600).unwrap().with_burst(20).unwrap(),
        Quota::every(Duration::from_nanos(1)).unwrap().with_burst(3).unwrap(),
    ];
    for (n, quota) in quotas.into_iter().enumerate() {
        for seed in 1..=3 {
            let watch = RateWatch::for_quota(&quota);
            let limiter = real_callers(quota, &watch, (n as u64) << 8 | seed);
            assert_eq!(watch.check(), Ok(()), "{quota}, seed {seed}");
            assert_eq!(watch.total(), limiter.stats().admitted, "{quota}, seed {seed}");
            // Waiters keep the slow quotas saturated: within a few cells of the bound.
            let bound = u64::from(quota.burst())
                + Duration::from_secs(5).as_nanos() as u64 / quota.interval().as_nanos() as u64;
            if quota.interval() >= ms(7) {
                assert!(watch.total() + 5 >= bound, "{quota}: {} of {bound}", watch.total());
            }
        }
    }
}
