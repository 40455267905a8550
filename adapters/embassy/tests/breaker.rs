//! A circuit breaker on embassy time (the mock driver, 1 MHz): it opens when the calls
//! time out, rejects until exactly `recovery_timeout` of embassy time has passed, and
//! recovers through a probe. Every transition is stamped with the embassy instant at
//! which `on_state_change` saw it.

mod support;

use core::pin::pin;
use core::task::Poll;
use core::time::Duration;
use std::sync::{Arc, Mutex};

use embassy_time::Timer;
use kompoz_embassy::breaker::{BreakerBuilder, CircuitBreaker, CircuitState};
use kompoz_embassy::{
    AsyncCombinator, EmbassyClock, Outcome, Rejection, async_rule, circuit_breaker, with_timeout,
};
use support::{MockTime, Task, mock_time};

type Transitions = Arc<Mutex<Vec<(u64, CircuitState, CircuitState)>>>;

/// A breaker on [`EmbassyClock`] that records each transition with embassy's tick.
fn breaker(failures: u32, recovery: Duration) -> (CircuitBreaker<EmbassyClock>, Transitions) {
    let transitions = Transitions::default();
    let log = transitions.clone();
    let breaker = BreakerBuilder::new()
        .failure_threshold(failures)
        .recovery_timeout(recovery)
        .on_state_change(move |old, new, _| {
            let tick = embassy_time::Instant::now().as_ticks();
            log.lock().unwrap().push((tick, old, new));
        })
        .build_with(EmbassyClock)
        .unwrap();
    (breaker, transitions)
}

/// Runs `rule` to completion on `task`, advancing embassy time one millisecond at a time;
/// gives the outcome and how many milliseconds it took.
fn run_to_end<R: AsyncCombinator<u64>>(
    time: &MockTime,
    rule: &R,
    latency_ms: u64,
) -> (Outcome, u64) {
    let task = Task::new();
    let start = time.ticks();
    let mut ctx = latency_ms;
    let mut run = pin!(rule.run_detailed(&mut ctx));
    loop {
        if let Poll::Ready(outcome) = task.poll(run.as_mut()) {
            return (outcome, (time.ticks() - start) / 1_000);
        }
        time.advance_millis(1);
    }
}

#[test]
fn the_breaker_recovers_after_recovery_timeout_in_embassy_time() {
    let time = mock_time();
    time.advance_millis(1_000);
    let (breaker, transitions) = breaker(2, Duration::from_millis(500));
    // A sensor read whose latency is the context, limited to 20 ms.
    let read = async_rule(async |latency_ms: &mut u64| {
        Timer::after_millis(*latency_ms).await;
        true
    });
    let protected = circuit_breaker(with_timeout(read, Duration::from_millis(20)), &breaker);

    assert_eq!(run_to_end(&time, &protected, 5), (Outcome::Passed, 5));
    // The sensor hangs: two reads time out, 20 ms each, and the circuit opens.
    assert_eq!(run_to_end(&time, &protected, 1_000), (Outcome::TimedOut, 20));
    assert_eq!(run_to_end(&time, &protected, 1_000), (Outcome::TimedOut, 20));
    let opened_at = time.ticks();
    assert_eq!(opened_at, 1_045_000);
    assert_eq!(breaker.state(), CircuitState::Open);

    // Open: rejected at once, without reading, until 500 ms of embassy time have passed.
    time.advance_ticks(500_000 - 1);
    let (outcome, took) = run_to_end(&time, &protected, 5);
    assert!(matches!(outcome, Outcome::Rejected(Rejection::Circuit(_))), "{outcome:?}");
    assert_eq!(took, 0);

    // On the tick the recovery time ends, the next read is let in as the probe; it passes
    // and closes the circuit.
    time.advance_ticks(1);
    assert_eq!(run_to_end(&time, &protected, 5), (Outcome::Passed, 5));
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(
        *transitions.lock().unwrap(),
        [
            (opened_at, CircuitState::Closed, CircuitState::Open),
            (opened_at + 500_000, CircuitState::Open, CircuitState::HalfOpen),
            (opened_at + 505_000, CircuitState::HalfOpen, CircuitState::Closed),
        ]
    );
    let stats = breaker.stats();
    assert_eq!((stats.total_failures, stats.rejected_calls, stats.times_opened), (2, 1, 1));
}

#[test]
fn a_probe_that_times_out_opens_the_circuit_for_another_recovery_timeout() {
    let time = mock_time();
    let (breaker, transitions) = breaker(1, Duration::from_millis(100));
    let read = async_rule(async |latency_ms: &mut u64| {
        Timer::after_millis(*latency_ms).await;
        true
    });
    let protected = circuit_breaker(with_timeout(read, Duration::from_millis(10)), &breaker);

    assert_eq!(run_to_end(&time, &protected, 50), (Outcome::TimedOut, 10));
    time.advance_millis(100);
    // The probe hangs too: it times out 10 ms later and the circuit opens again.
    assert_eq!(run_to_end(&time, &protected, 50), (Outcome::TimedOut, 10));
    assert_eq!(breaker.state(), CircuitState::Open);
    time.advance_ticks(100_000 - 1);
    assert!(run_to_end(&time, &protected, 1).0.is_rejected());
    time.advance_ticks(1);
    assert_eq!(run_to_end(&time, &protected, 1), (Outcome::Passed, 1));

    let ticks: Vec<_> = transitions.lock().unwrap().iter().map(|(tick, ..)| *tick).collect();
    // Opened at 10 ms; probe at 110 ms; open again at 120 ms; probe at 220 ms, closed at 221.
    assert_eq!(ticks, [10_000, 110_000, 120_000, 220_000, 221_000]);
}

#[test]
fn a_breaker_that_is_never_given_time_stays_open() {
    let time = mock_time();
    let (breaker, _) = breaker(1, Duration::MAX);
    let failing = async_rule(async |_: &mut u64| false);
    let protected = circuit_breaker(failing, &breaker);
    assert_eq!(run_to_end(&time, &protected, 0).0, Outcome::Failed);
    // A recovery time of Duration::MAX saturates to kompoz's last instant: five hundred
    // years of embassy time later it is still open.
    time.advance_millis(500 * 365 * 24 * 3_600 * 1_000);
    assert!(run_to_end(&time, &protected, 0).0.is_rejected());
    assert_eq!(breaker.state(), CircuitState::Open);
}
