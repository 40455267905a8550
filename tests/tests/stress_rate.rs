//! The property users rely on, with real threads on the system clock: over any window of
//! length `W`, a rate limiter admits at most `burst + W / interval` cells. Two threads
//! hammer one limiter with `check()` for two seconds, recording a precise reading just
//! before and just after every admitted check; then every window is checked.
//!
//! Why the readings bracket suffices: GCRA guarantees, for the admissions `i .. j` in the
//! order their compare-exchanges took effect, `j − i + 1 <= burst + (r_j − r_i) / T`,
//! where `r` are the readings the decisions were made on. A reading lies between the
//! bracket's ends (less the clock's coarse lag, for a coarse reading), so any set of
//! admissions satisfies `count <= burst + (max after − min before + lag) / T`: that is
//! what is checked, for every run of admissions in the order of their "before" readings.

use std::sync::Arc;
use std::time::Duration;

use kompoz::rate::{Quota, RateLimiter};
use kompoz::time::Precise;
use kompoz::{Clock, Instant, StdClock};

const THREADS: usize = 2;
const RUN: Duration = Duration::from_secs(2);

/// Hammers `limiter` from `THREADS` threads for `RUN`; returns each admission's
/// (before, after) readings, sorted by "before".
fn hammer<C: Clock + Send + Sync + 'static>(limiter: Arc<RateLimiter<C>>) -> Vec<(u64, u64)> {
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                let mut admitted = Vec::new();
                let end = StdClock.now() + RUN;
                loop {
                    let before = StdClock.now();
                    if before >= end {
                        return admitted;
                    }
                    if limiter.check().is_ok() {
                        admitted.push((before.as_nanos(), StdClock.now().as_nanos()));
                    }
                }
            })
        })
        .collect();
    let mut all: Vec<(u64, u64)> =
        threads.into_iter().flat_map(|t| t.join().expect("a hammering thread")).collect();
    all.sort_unstable();
    assert_eq!(limiter.stats().admitted, all.len() as u64, "every admission counted once");
    all
}

/// Checks every run of admissions (in "before" order) against the bound.
fn assert_bounded(admissions: &[(u64, u64)], quota: Quota, lag: Duration) {
    let interval = quota.interval().as_nanos();
    let burst = u128::from(quota.burst());
    let lag = lag.as_nanos();
    assert!(admissions.len() as u128 > burst, "the burst at least was admitted");
    for (k, &(first_before, _)) in admissions.iter().enumerate() {
        let mut last_after = 0u64;
        for (m, &(_, after)) in admissions.iter().enumerate().skip(k) {
            last_after = last_after.max(after);
            let count = (m - k + 1) as u128;
            let span = u128::from(last_after - first_before) + lag;
            assert!(
                count * interval <= burst * interval + span,
                "{count} cells admitted within {span} ns (from {:?})",
                Instant::from_nanos(first_before)
            );
        }
    }
}

fn quota() -> Quota {
    Quota::per_second(2_000).and_then(|q| q.with_burst(20)).expect("a valid quota")
}

#[test]
fn two_threads_on_the_precise_clock_never_exceed_burst_plus_window_over_interval() {
    let limiter = Arc::new(RateLimiter::new(quota(), Precise(StdClock)));
    let admissions = hammer(limiter);
    assert_bounded(&admissions, quota(), Duration::ZERO);
}

#[test]
fn two_threads_on_the_coarse_clock_never_exceed_it_by_more_than_the_lag() {
    let limiter = Arc::new(RateLimiter::new(quota(), StdClock));
    let admissions = hammer(limiter);
    assert_bounded(&admissions, quota(), StdClock.coarse_lag());
}
