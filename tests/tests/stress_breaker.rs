//! A multi-threaded stress test of the circuit breaker on tokio's multi-thread runtime,
//! in real time: 100,000 calls on 2 worker threads with random outcomes and random
//! cancellation. Probes in flight never exceed `half_open_max_calls`, every transition is
//! reported exactly once, and once the dependency turns healthy the circuit closes within
//! one recovery timeout plus its probes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kompoz_tokio::breaker::{CircuitBreaker, CircuitState, Verdict};

const TASKS: usize = 200;
const CALLS_PER_TASK: usize = 500;
const PROBES: u32 = 3;
const RECOVERY: Duration = Duration::from_millis(5);

fn random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn a_hundred_thousand_calls_on_two_threads_keep_every_promise() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let transitions: Arc<Mutex<HashMap<(CircuitState, CircuitState), u64>>> = Arc::default();
    let seen = transitions.clone();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .failure_threshold(3)
            .recovery_timeout(RECOVERY)
            .half_open_max_calls(PROBES)
            .success_threshold(2)
            .on_state_change(move |old, new, _| {
                *seen.lock().expect("not poisoned").entry((old, new)).or_default() += 1;
            })
            .build()
            .expect("a valid breaker"),
    );
    let probes_now = Arc::new(AtomicUsize::new(0));
    let probes_peak = Arc::new(AtomicUsize::new(0));

    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (breaker, now, peak) =
                    (breaker.clone(), probes_now.clone(), probes_peak.clone());
                tokio::spawn(async move {
                    let mut seed =
                        0x9e37_79b9_7f4a_7c15 ^ (task as u64 + 1).wrapping_mul(0x2545_f491);
                    for _ in 0..CALLS_PER_TASK {
                        let dice = random(&mut seed) % 100;
                        if dice < 5 {
                            // The future face, cancelled by a tiny time limit at a random point.
                            let call = breaker.call(async {
                                tokio::task::yield_now().await;
                                Ok::<_, ()>(())
                            });
                            let limit = Duration::from_micros(random(&mut seed) % 50);
                            let _ = tokio::time::timeout(limit, call).await;
                            continue;
                        }
                        let Ok(guard) = breaker.try_acquire() else {
                            tokio::task::yield_now().await;
                            continue;
                        };
                        let probe = guard.is_probe();
                        if probe {
                            let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(inside, Ordering::SeqCst);
                        }
                        for _ in 0..random(&mut seed) % 3 {
                            tokio::task::yield_now().await;
                        }
                        if probe {
                            now.fetch_sub(1, Ordering::SeqCst);
                        }
                        match random(&mut seed) % 10 {
                            0 => drop(guard), // cancelled: no verdict
                            1..=3 => guard.record(Verdict::Failure),
                            _ => guard.record(Verdict::Success),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("no task panicked");
        }

        // The dependency turns healthy: the circuit closes within one recovery timeout
        // plus the probes.
        let healthy_from = Instant::now();
        while breaker.state() != CircuitState::Closed {
            if let Ok(guard) = breaker.try_acquire() {
                guard.success();
            }
            tokio::task::yield_now().await;
            assert!(
                healthy_from.elapsed() < Duration::from_secs(5),
                "it never closed: {:?}",
                breaker.stats()
            );
        }
        let took = healthy_from.elapsed();
        // Tolerant of a loaded machine, but far below what a wedged breaker would need.
        assert!(took < RECOVERY + Duration::from_millis(500), "closed after {took:?}");
    });

    let stats = breaker.stats();
    assert!(
        probes_peak.load(Ordering::SeqCst) <= PROBES as usize,
        "peak probes {}",
        probes_peak.load(Ordering::SeqCst)
    );
    assert_eq!(stats.probes_in_flight, 0);
    assert!(stats.total_calls >= (TASKS * CALLS_PER_TASK) as u64 * 9 / 10, "{stats:?}");
    assert!(
        stats.abandoned_calls > 0 && stats.rejected_calls > 0 && stats.times_opened > 1,
        "{stats:?}"
    );

    // Every transition reported exactly once: each state is entered as often as it is
    // left, plus one if it is the final state (the initial state counts as one entry).
    use CircuitState::{Closed, HalfOpen, Open};
    let t = transitions.lock().expect("not poisoned");
    let n = |from, to| t.get(&(from, to)).copied().unwrap_or(0);
    let is_final = |state| u64::from(stats.state == state);
    assert_eq!(
        n(Closed, Open) + n(HalfOpen, Open),
        n(Open, HalfOpen) + n(Open, Closed) + is_final(Open)
    );
    assert_eq!(n(Open, HalfOpen), n(HalfOpen, Open) + n(HalfOpen, Closed) + is_final(HalfOpen));
    assert_eq!(
        1 + n(HalfOpen, Closed) + n(Open, Closed),
        n(Closed, Open) + n(Closed, HalfOpen) + is_final(Closed)
    );
    assert_eq!(
        n(Closed, Open) + n(HalfOpen, Open),
        stats.times_opened,
        "reported once per opening"
    );
    assert!(n(HalfOpen, Closed) > 0 && n(HalfOpen, Open) > 0, "{t:?}");
}

/// Issue 9, item 5, for real: a guard admitted while closed is held across 2^24
/// transitions (the span of the generation bits packed in the state word, made with
/// `force_open`/`reset`), then fails. The circuit must stay closed: the failure is late.
/// Before the fix the generation had wrapped and the failure opened the circuit.
#[test]
fn a_guard_held_across_two_to_the_24_transitions_is_late() {
    let breaker = kompoz::breaker::BreakerBuilder::new()
        .failure_threshold(1)
        .build_with(kompoz::ManualClock::new())
        .expect("a valid breaker");
    let old = breaker.try_acquire().expect("closed");
    for _ in 0..(1u32 << 23) {
        breaker.force_open();
        breaker.reset();
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.stats().times_opened, 1 << 23);
    old.failure();
    assert_eq!(breaker.state(), CircuitState::Closed, "a late failure opened the circuit");
    breaker.try_acquire().expect("closed").failure();
    assert_eq!(breaker.state(), CircuitState::Open, "a current one does");
}
