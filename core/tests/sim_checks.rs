//! The invariant checkers catch what they claim to, and stay quiet on correct code: each
//! watch is run around the real primitives in the simulation (no violation), then around
//! a deliberately broken use of them (the violation, named).
#![cfg(feature = "sim")]

use std::time::Duration;

use kompoz::breaker::CircuitState;
use kompoz::limit::Semaphore;
use kompoz::sim::{
    Backend, BackendError, BreakerConfig, BreakerWatch, LimitConfig, LimitWatch, Reply, Sim,
    Violation, breaker_idle, semaphore_idle,
};
use kompoz::{Instant, ManualClock, Sleep, timeout};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(failure_threshold: u32, recovery_ms: u64, half_open_max_calls: u32) -> BreakerConfig {
    let mut config = BreakerConfig::default();
    config.failure_threshold = failure_threshold;
    config.recovery_timeout = ms(recovery_ms);
    config.half_open_max_calls = half_open_max_calls;
    config.success_threshold = half_open_max_calls;
    config
}

#[test]
fn a_real_limit_keeps_its_watch_quiet_and_a_bypassed_one_is_caught() {
    let clock = ManualClock::new();
    let limit = LimitConfig { max_concurrent: 3, max_wait: None };
    let semaphore = limit.semaphore().unwrap();
    let other = Semaphore::new(3).unwrap();
    let watch = LimitWatch::new(limit.max_concurrent);
    let mut sim = Sim::with_clock(21, clock.clone());
    for n in 0..20 {
        let (semaphore, watch, clock) = (&semaphore, &watch, clock.clone());
        sim.spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            let _inside = watch.enter();
            clock.sleep(ms(1 + n % 4)).await;
        });
    }
    sim.run().unwrap();
    assert_eq!((watch.check(), watch.peak(), watch.inside()), (Ok(()), 3, 0));
    assert_eq!(semaphore_idle(&semaphore), Ok(()));

    // The same load through a second semaphore "for the slow path": six at once.
    for n in 0..20 {
        let (semaphore, watch, clock) =
            (if n % 2 == 0 { &semaphore } else { &other }, &watch, clock.clone());
        sim.spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            let _inside = watch.enter();
            clock.sleep(ms(5)).await;
        });
    }
    sim.run().unwrap();
    assert_eq!(watch.check(), Err(Violation::TooManyInside { inside: 4, max_concurrent: 3 }));
    assert_eq!(watch.peak(), 6);
}

#[test]
fn a_leaked_permit_is_caught_once_idle() {
    let clock = ManualClock::new();
    let semaphore = Semaphore::new(2).unwrap();
    let mut sim = Sim::with_clock(0, clock.clone());
    let leaky = sim.spawn({
        let (semaphore, clock) = (&semaphore, clock.clone());
        async move {
            // Held by hand, released by hand after the call: cancellation skips the release.
            let permit = semaphore.acquire().await.unwrap();
            core::mem::forget(permit);
            clock.sleep(ms(10)).await;
            semaphore.add_permits(1).unwrap();
        }
    });
    sim.run_until_idle().unwrap();
    sim.cancel(leaky.id());
    sim.run().unwrap();
    assert_eq!(
        semaphore_idle(&semaphore),
        Err(Violation::PermitsNotReturned { available: 1, capacity: 2, waiting: 0 })
    );
}

/// Calls a dependency through the breaker, watched; `Err` for a failed or rejected call.
async fn watched_call<'a>(
    breaker: &'a kompoz::CircuitBreaker<ManualClock>,
    watch: &'a BreakerWatch,
    backend: &'a Backend,
    clock: &'a ManualClock,
    reply: Reply,
) -> bool {
    let call = breaker.call(async {
        let _admission = watch.admitted(breaker);
        let _request = watch.at_dependency();
        match timeout(clock, ms(50), backend.request(reply)).await {
            Ok(answer) => answer,
            Err(_elapsed) => Err(BackendError),
        }
    });
    call.await.is_ok()
}

#[test]
fn a_breaker_through_an_outage_keeps_its_watch_quiet() {
    let clock = ManualClock::new();
    let config = config(2, 100, 2);
    let breaker = config.build_with(clock.clone()).unwrap();
    let watch = BreakerWatch::new(config.half_open_max_calls);
    let backend = Backend::new(clock.clone());
    backend.set_down(true);
    let mut sim = Sim::with_clock(5, clock.clone());
    // Bursts of four callers every 30 ms for a second and a half; while the backend is
    // down half of them hang and the others fail.
    for burst in 0..50u64 {
        for n in 0..4u64 {
            let hang = backend.is_down() && n % 2 == 0;
            let reply = if hang { Reply::Hang } else { Reply::Succeed { after: ms(n) } };
            let (breaker, watch, backend, clock) = (&breaker, &watch, &backend, &clock);
            sim.spawn(watched_call(breaker, watch, backend, clock, reply));
        }
        if burst == 30 {
            backend.set_down(false);
        }
        sim.run_for(ms(30)).unwrap();
        assert_eq!(watch.check(), Ok(()), "after burst {burst}");
    }
    sim.run().unwrap();
    assert_eq!(watch.check(), Ok(()));
    assert_eq!(breaker_idle(&breaker), Ok(()));
    let stats = breaker.stats();
    assert!(stats.times_opened >= 3, "it opened and probed again: {stats:?}");
    assert_eq!(stats.state, CircuitState::Closed, "and recovered");
    assert_eq!((watch.admitted_in_flight(), watch.probes_in_flight()), (0, 0));
}

#[test]
fn a_request_around_an_open_breaker_is_caught() {
    let clock = ManualClock::new();
    let config = config(1, 1_000, 1);
    let breaker = config.build_with(clock.clone()).unwrap();
    let watch = BreakerWatch::new(1);
    let backend = Backend::new(clock.clone());
    let mut sim = Sim::with_clock(5, clock.clone());
    let failing = watched_call(&breaker, &watch, &backend, &clock, Reply::Fail { after: ms(1) });
    assert!(!sim.block_on(failing).unwrap());
    assert_eq!(breaker.state(), CircuitState::Open);
    // "Rejected? Try the backend directly, just this once."
    let around = async {
        let rejected = !watched_call(&breaker, &watch, &backend, &clock, Reply::Hang).await;
        if rejected && breaker.state() == CircuitState::Open {
            let _request = watch.at_dependency();
            let _ = backend.request(Reply::Succeed { after: ms(1) }).await;
        }
    };
    sim.block_on(around).unwrap();
    assert_eq!(watch.check(), Err(Violation::BypassedTheBreaker { at_dependency: 1, admitted: 0 }));
}

#[test]
fn a_wrapper_that_ignores_the_breakers_answer_is_caught() {
    let clock = ManualClock::new();
    let config = config(1, 100, 1);
    let breaker = config.build_with(clock.clone()).unwrap();
    let watch = BreakerWatch::new(1);
    breaker.force_open();
    // Admitted by a broken gate that never asked the breaker.
    clock.advance(ms(7));
    let admission = watch.admitted(&breaker);
    assert!(!admission.is_probe());
    assert_eq!(watch.check(), Err(Violation::AdmittedWhileOpen { at: Instant::ZERO + ms(7) }));
}

#[test]
fn more_probes_than_the_breaker_allows_are_caught() {
    let clock = ManualClock::new();
    let config = config(1, 100, 1);
    let breaker = config.build_with(clock.clone()).unwrap();
    let _ = futures::executor::block_on(breaker.call(async { Err::<(), _>("down") }));
    clock.advance(ms(100));
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    let watch = BreakerWatch::new(1);
    let first = watch.admitted(&breaker);
    assert_eq!((first.is_probe(), first.times_opened(), watch.check()), (true, 1, Ok(())));
    // A second "probe" let in by a gate of the service's own, beside the breaker's.
    let _second = watch.admitted(&breaker);
    assert_eq!(
        watch.check(),
        Err(Violation::TooManyProbes {
            in_flight: 2,
            half_open_max_calls: 1,
            at: Instant::ZERO + ms(100)
        })
    );
    // A probe slot held when the simulation should be idle.
    assert_eq!(breaker_idle(&breaker), Err(Violation::ProbeSlotsNotReturned { in_flight: 1 }));
    drop(probe);
    assert_eq!(breaker_idle(&breaker), Ok(()));
}

#[test]
fn the_backend_serves_as_told_and_counts_what_it_saw() {
    let clock = ManualClock::new();
    let backend = Backend::new(clock.clone());
    let mut sim = Sim::with_clock(3, clock.clone());
    let ok = sim.spawn(backend.request(Reply::Succeed { after: ms(10) }));
    let fail = sim.spawn(backend.request(Reply::Fail { after: ms(20) }));
    let hang = sim.spawn(backend.request(Reply::Hang));
    sim.run_until_idle().unwrap();
    assert_eq!(backend.stats().in_flight, 3);
    sim.run_for(ms(20)).unwrap();
    assert_eq!((ok.take_output(), fail.take_output()), (Ok(Ok(())), Ok(Err(BackendError))));
    assert!(!hang.is_finished());
    assert_eq!(
        sim.run(),
        Err(kompoz::sim::SimError::Deadlock { blocked: 1, at: Instant::ZERO + ms(20) })
    );
    sim.cancel(hang.id());
    backend.set_down(true);
    assert!(backend.is_down());
    let down = sim.block_on(backend.request(Reply::Succeed { after: ms(5) })).unwrap();
    assert_eq!(down, Err(BackendError));
    let stats = backend.stats();
    assert_eq!(
        (
            stats.requests,
            stats.succeeded,
            stats.failed,
            stats.cancelled,
            stats.in_flight,
            stats.peak_in_flight
        ),
        (4, 1, 2, 1, 0, 3)
    );
    assert!(format!("{backend:?}").contains("down: true"));
}

#[test]
fn probes_the_breaker_forgot_do_not_count_against_the_next_ones() {
    // Found by the flaky client's scenarios: a probe still running when the breaker is
    // reset no longer holds a slot (as the breaker documents), so a new probe beside it is
    // within the rule; a second probe the breaker still counts is not.
    let clock = ManualClock::new();
    let breaker = config(1, 100, 1).build_with(clock.clone()).unwrap();
    let watch = BreakerWatch::new(1);
    let fail_and_wait = || {
        let _ = futures::executor::block_on(breaker.call(async { Err::<(), _>("down") }));
        clock.advance(ms(100));
    };
    fail_and_wait();
    let old_probe = breaker.try_acquire().unwrap();
    let old = watch.admitted(&breaker);
    assert!(old.is_probe());
    breaker.reset();
    fail_and_wait();
    let new_probe = breaker.try_acquire().unwrap();
    let new = watch.admitted(&breaker);
    assert!(new.is_probe());
    assert_eq!((watch.probes_in_flight(), watch.check()), (2, Ok(())));
    // The forgotten probe ends: it frees nothing, in the breaker or in the watch.
    drop(old);
    drop(old_probe);
    assert_eq!((watch.probes_in_flight(), breaker.stats().probes_in_flight), (1, 1));
    // One more "probe" beside the counted one is caught.
    let _extra = watch.admitted(&breaker);
    assert!(matches!(watch.check(), Err(Violation::TooManyProbes { in_flight: 2, .. })));
    drop(new);
    drop(new_probe);
}

#[test]
fn violations_say_what_broke() {
    let cases = [
        (
            Violation::TooManyInside { inside: 4, max_concurrent: 3 },
            "4 calls inside a concurrency limit of max_concurrent = 3",
        ),
        (
            Violation::AdmittedWhileOpen { at: Instant::ZERO + ms(5) },
            "a call was let through an open circuit at Instant(5ms)",
        ),
        (
            Violation::PermitsNotReturned { available: 1, capacity: 2, waiting: 0 },
            "idle, yet only 1 of 2 permits are free (0 waiting): a permit leaked",
        ),
        (
            Violation::ProbeSlotsNotReturned { in_flight: 1 },
            "idle, yet the breaker counts 1 probes in flight",
        ),
    ];
    for (violation, message) in cases {
        assert_eq!(violation.to_string(), message);
    }
    let bypass = Violation::BypassedTheBreaker { at_dependency: 1, admitted: 0 }.to_string();
    assert!(bypass.ends_with("a request went around it"), "{bypass}");
    let probes =
        Violation::TooManyProbes { in_flight: 2, half_open_max_calls: 1, at: Instant::ZERO };
    assert!(probes.to_string().contains("above half_open_max_calls = 1"));
    assert_eq!(
        LimitConfig { max_concurrent: 0, max_wait: None }.semaphore().unwrap_err(),
        kompoz::limit::LimitError::ZeroPermits
    );
}
