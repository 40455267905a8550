//! loom models of the breaker's atomic layer. Run, scoped to the core:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p kompoz --release --test loom_breaker
//! ```
#![cfg(loom)]

use std::time::Duration;

use kompoz::breaker::{BreakerBuilder, CircuitBreaker, CircuitState, FailureRate};
use kompoz::{Clock, Instant, ManualClock};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const SECOND: Duration = Duration::from_secs(1);

/// Runs `f` under loom, with preemptions bounded (LOOM_MAX_PREEMPTIONS, default 2).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// Counts reported transitions by kind.
#[derive(Default)]
struct Reports {
    closed_to_open: AtomicUsize,
    open_to_half_open: AtomicUsize,
    half_open_to_closed: AtomicUsize,
    other: AtomicUsize,
}

fn breaker_reporting(
    clock: &ManualClock,
    failures: u32,
    recovery: Duration,
) -> (Arc<CircuitBreaker<ManualClock>>, std::sync::Arc<Reports>) {
    let reports = std::sync::Arc::new(Reports::default());
    let seen = reports.clone();
    let breaker = BreakerBuilder::new()
        .failure_threshold(failures)
        .recovery_timeout(recovery)
        .on_state_change(move |old, new, _| {
            let counter = match (old, new) {
                (CircuitState::Closed, CircuitState::Open) => &seen.closed_to_open,
                (CircuitState::Open, CircuitState::HalfOpen) => &seen.open_to_half_open,
                (CircuitState::HalfOpen, CircuitState::Closed) => &seen.half_open_to_closed,
                _ => &seen.other,
            };
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build_with(clock.clone())
        .unwrap();
    (Arc::new(breaker), reports)
}

/// Two calls fail at once on a circuit with threshold 2: it opens, and the transition is
/// reported exactly once, by whichever thread made it.
#[test]
fn racing_failures_open_once_and_report_once() {
    model(|| {
        let clock = ManualClock::new();
        let (breaker, reports) = breaker_reporting(&clock, 2, SECOND);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let breaker = breaker.clone();
                // The first failure cannot open the circuit, so both calls are admitted.
                thread::spawn(move || breaker.try_acquire().unwrap().failure())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = breaker.stats();
        assert_eq!(stats.state, CircuitState::Open);
        assert_eq!(reports.closed_to_open.load(Ordering::SeqCst), 1);
        assert_eq!(reports.other.load(Ordering::SeqCst), 0);
        assert_eq!((stats.times_opened, stats.total_failures), (1, 2));
    });
}

/// Two threads race for the single probe slot of a recovered circuit; the winner may
/// abandon its probe. At most one probe is ever in flight, a dropped probe frees its
/// slot, and each transition is reported once.
#[test]
fn one_probe_slot_is_never_shared_and_always_returned() {
    model(|| {
        let clock = ManualClock::new();
        let (breaker, reports) = breaker_reporting(&clock, 1, Duration::ZERO);
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.state(), CircuitState::Open);
        let probes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = [false, true]
            .into_iter()
            .map(|succeed| {
                let (breaker, probes) = (breaker.clone(), probes.clone());
                thread::spawn(move || {
                    // Admitted as a probe, or, once the other thread's probe closed the
                    // circuit, as an ordinary call.
                    if let Ok(guard) = breaker.try_acquire() {
                        if guard.is_probe() {
                            assert_eq!(probes.fetch_add(1, Ordering::SeqCst), 0, "a second probe");
                            probes.fetch_sub(1, Ordering::SeqCst);
                        }
                        if succeed {
                            guard.success();
                        } // else dropped: abandoned
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = breaker.stats();
        assert_eq!(stats.probes_in_flight, 0, "every probe slot came back");
        assert_eq!(reports.closed_to_open.load(Ordering::SeqCst), 1);
        let half_opened = reports.open_to_half_open.load(Ordering::SeqCst);
        let closed = reports.half_open_to_closed.load(Ordering::SeqCst);
        assert!(half_opened <= 1 && closed <= half_opened);
        assert_eq!(stats.state == CircuitState::Closed, closed == 1);
        assert_eq!(reports.other.load(Ordering::SeqCst), 0);
        // Whatever happened, the breaker is not wedged: the next call gets through.
        let next = breaker.try_acquire().expect("not wedged");
        next.success();
        assert_eq!(breaker.state(), CircuitState::Closed);
    });
}

/// An opener that is slow to publish its deadline races a reset and a later opening:
/// the later open period's deadline must survive (a stale publisher writes nothing).
#[test]
fn a_stale_deadline_never_overwrites_a_later_one() {
    model(|| {
        let clock = ManualClock::new();
        // Leaked so that a guard admitted here can move into a thread (a few KiB per
        // explored interleaving).
        let breaker: &'static CircuitBreaker<ManualClock> = Box::leak(Box::new(
            BreakerBuilder::new()
                .failure_threshold(1)
                .recovery_timeout(10 * SECOND)
                .build_with(clock.clone())
                .unwrap(),
        ));
        let early = breaker.try_acquire().unwrap();
        let (b2, c2) = (breaker, clock.clone());
        let t1 = thread::spawn(move || early.failure());
        let t2 = thread::spawn(move || {
            b2.reset();
            c2.advance(5 * SECOND);
            if let Ok(guard) = b2.try_acquire() {
                guard.failure();
            }
        });
        t1.join().unwrap();
        t2.join().unwrap();
        // `early` failing after the reset is late, so the last opening is always t2's, at
        // 5 s: its deadline is 15 s.
        assert_eq!(breaker.state(), CircuitState::Open);
        clock.set(Instant::ZERO + 15 * SECOND - Duration::from_nanos(1));
        assert!(breaker.try_acquire().is_err(), "recovered early: a stale deadline won");
        clock.advance(Duration::from_nanos(1));
        assert!(breaker.try_acquire().is_ok(), "never recovered: the deadline was lost");
        assert_eq!(clock.now(), Instant::ZERO + 15 * SECOND);
    });
}

/// A probe from before a reset finishes while another thread resets, reopens and admits
/// a new probe: whatever the interleaving, the old probe never frees the new probe's
/// slot, so while the new probe runs exactly one probe is in flight and a second call is
/// refused (issue 9, item 4: late completions must not corrupt the new count).
#[test]
fn a_late_probe_never_frees_a_slot_of_a_probe_after_a_reset() {
    model(|| {
        let clock = ManualClock::new();
        let breaker: &'static CircuitBreaker<ManualClock> = Box::leak(Box::new(
            BreakerBuilder::new()
                .failure_threshold(1)
                .recovery_timeout(Duration::ZERO)
                .build_with(clock.clone())
                .unwrap(),
        ));
        breaker.try_acquire().unwrap().failure();
        let old = breaker.try_acquire().unwrap();
        assert!(old.is_probe());
        let t1 = thread::spawn(move || drop(old));
        let t2 = thread::spawn(move || {
            breaker.reset();
            breaker.try_acquire().unwrap().failure();
            let new = breaker.try_acquire().expect("a fresh half-open period");
            assert!(new.is_probe());
            assert_eq!(breaker.stats().probes_in_flight, 1);
            assert!(breaker.try_acquire().is_err(), "the new probe's slot was given away");
            new.success();
        });
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.stats().probes_in_flight, 0);
    });
}

/// A breaker on a failure-rate policy, leaked so that guards can move into threads.
fn rate_breaker(rate: FailureRate) -> &'static CircuitBreaker<ManualClock> {
    Box::leak(Box::new(BreakerBuilder::new().trip_on(rate).build_with(ManualClock::new()).unwrap()))
}

/// Two threads record outcomes into a count window at once: the window never loses or
/// double-counts one.
#[test]
fn a_count_window_counts_concurrent_outcomes_exactly() {
    model(|| {
        let breaker = rate_breaker(FailureRate::over_calls(8).threshold(1.0));
        let threads: Vec<_> = [true, false]
            .into_iter()
            .map(|fail| {
                thread::spawn(move || {
                    for _ in 0..2 {
                        let guard = breaker.try_acquire().unwrap();
                        if fail { guard.failure() } else { guard.success() }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = breaker.stats();
        assert_eq!((stats.window_calls, stats.failure_count), (4, 2));
        assert_eq!((stats.success_count, stats.total_failures), (2, 2));
    });
}

/// A window full of successes lets a success skip its lock while another thread records a
/// failure: whichever order they take, the window is the same (the success was one of many
/// alike).
#[test]
fn a_success_skipping_a_clean_window_races_a_failure_without_losing_it() {
    model(|| {
        let breaker = rate_breaker(FailureRate::over_calls(2).threshold(1.0));
        for _ in 0..2 {
            breaker.try_acquire().unwrap().success();
        }
        let failing = thread::spawn(move || breaker.try_acquire().unwrap().failure());
        let succeeding = thread::spawn(move || breaker.try_acquire().unwrap().success());
        failing.join().unwrap();
        succeeding.join().unwrap();
        let stats = breaker.stats();
        assert_eq!(
            (stats.state, stats.window_calls, stats.failure_count),
            (CircuitState::Closed, 2, 1)
        );
        // The window still counts calls one by one: two more failures fill it (2 of 2).
        breaker.try_acquire().unwrap().failure();
        if breaker.state() == CircuitState::Closed {
            breaker.try_acquire().unwrap().failure();
        }
        assert_eq!(breaker.state(), CircuitState::Open);
    });
}

/// The same for a time window, whose every outcome takes the lock.
#[test]
fn a_time_window_counts_concurrent_outcomes_exactly() {
    model(|| {
        let rate = FailureRate::over_time(SECOND).minimum_calls(3).threshold(1.0);
        let breaker = rate_breaker(rate);
        let t1 = thread::spawn(move || breaker.try_acquire().unwrap().failure());
        let t2 = thread::spawn(move || breaker.try_acquire().unwrap().success());
        t1.join().unwrap();
        t2.join().unwrap();
        let stats = breaker.stats();
        assert_eq!((stats.window_calls, stats.failure_count), (2, 1));
    });
}

/// Two threads count fast successes of a time window on their own tallies (the first under
/// the lock, claiming the tally, the next without it) while one of them then records a
/// failure under the lock: the failure's sum and the window afterwards count every success
/// exactly once.
#[test]
fn a_time_windows_tallies_count_concurrent_successes_exactly() {
    model(|| {
        let rate = FailureRate::over_time(SECOND).minimum_calls(5).threshold(0.4);
        let breaker = rate_breaker(rate);
        let succeeding = thread::spawn(move || {
            for _ in 0..2 {
                breaker.try_acquire().unwrap().success();
            }
        });
        let failing = thread::spawn(move || {
            breaker.try_acquire().unwrap().success();
            breaker.try_acquire().unwrap().failure();
        });
        succeeding.join().unwrap();
        failing.join().unwrap();
        let stats = breaker.stats();
        assert_eq!(
            (stats.state, stats.window_calls, stats.failure_count),
            (CircuitState::Closed, 4, 1)
        );
        // 2 failures of 5 calls: open. (One success lost: below the minimum; one counted
        // twice: 2 of 6.)
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    });
}
