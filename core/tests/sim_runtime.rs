//! The simulation runtime's own proofs: one seed gives one run, time jumps straight to
//! the next timer, deadlocks and livelocks are errors rather than hangs, and cancelling a
//! task drops it where it stands, releasing what it held.
#![cfg(feature = "sim")]

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use kompoz::breaker::{BreakerBuilder, CircuitState};
use kompoz::limit::Semaphore;
use kompoz::sim::{JoinError, Sim, SimError, SimEvent, TaskId};
use kompoz::{Clock, Instant, ManualClock, Sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(millis: u64) -> Instant {
    Instant::ZERO + ms(millis)
}

/// A busy little system: workers share two permits, sleep, yield and log what they do.
/// Returns the event log, the fingerprint and the order in which the workers logged.
fn busy_run(seed: u64) -> (Vec<SimEvent>, u64, Vec<(u64, Instant)>) {
    let clock = ManualClock::new();
    let semaphore = Semaphore::new(2).unwrap();
    let log = RefCell::new(Vec::new());
    let mut sim = Sim::with_clock(seed, clock.clone());
    sim.record_events(true);
    for worker in 0..8u64 {
        let (clock, semaphore, log) = (clock.clone(), &semaphore, &log);
        sim.spawn(async move {
            for round in 0..3 {
                let _permit = semaphore.acquire().await.unwrap();
                log.borrow_mut().push((worker, clock.now()));
                clock.sleep(ms(1 + (worker * 7 + round) % 5)).await;
                yield_now().await;
            }
        });
    }
    sim.run().unwrap();
    assert_eq!(semaphore.available_permits(), 2);
    let (events, fingerprint) = (sim.events().to_vec(), sim.fingerprint());
    drop(sim);
    (events, fingerprint, log.into_inner())
}

/// Pending once, waking itself: lets the scheduler pick another task.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[test]
fn two_runs_with_one_seed_record_identical_event_logs() {
    for seed in [0, 1, 42, u64::MAX] {
        let (events, fingerprint, order) = busy_run(seed);
        let (again, fingerprint_again, order_again) = busy_run(seed);
        assert!(events.len() > 50, "a busy run: {} events", events.len());
        assert_eq!(events, again, "seed {seed}");
        assert_eq!(fingerprint, fingerprint_again);
        assert_eq!(order, order_again);
    }
}

#[test]
fn different_seeds_explore_different_interleavings() {
    let runs: Vec<_> = (0..8).map(busy_run).collect();
    let distinct_orders =
        runs.iter().map(|(_, _, order)| order).collect::<std::collections::BTreeSet<_>>().len();
    let distinct_fingerprints =
        runs.iter().map(|(_, f, _)| *f).collect::<std::collections::BTreeSet<_>>().len();
    // Deterministic, so exact: every one of the 8 seeds gives its own run.
    assert_eq!((distinct_orders, distinct_fingerprints), (8, 8));
}

#[test]
fn the_fingerprint_tells_runs_apart_without_recording_events() {
    let run = |seed, workers| {
        let mut sim = Sim::new(seed);
        for n in 0..workers {
            let clock = sim.clock().clone();
            sim.spawn(async move { clock.sleep(ms(n)).await });
        }
        sim.run().unwrap();
        assert!(sim.events().is_empty(), "recording is off by default");
        sim.fingerprint()
    };
    assert_eq!(run(3, 5), run(3, 5));
    assert_ne!(run(3, 5), run(3, 6));
    assert_ne!(run(3, 5), run(4, 5));
}

#[test]
fn time_jumps_to_each_next_timer_and_nowhere_else() {
    let clock = ManualClock::new();
    let woke_at = RefCell::new(Vec::new());
    let mut sim = Sim::with_clock(9, clock.clone());
    sim.record_events(true);
    for delay in [5_000, 2, 2, 90_000] {
        let (clock, woke_at) = (clock.clone(), &woke_at);
        sim.spawn(async move {
            clock.sleep(ms(delay)).await;
            woke_at.borrow_mut().push(clock.now());
        });
    }
    sim.run().unwrap();
    let jumps: Vec<_> = sim
        .events()
        .iter()
        .filter_map(|event| match event {
            SimEvent::TimeJumped { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(jumps, [(at(0), at(2)), (at(2), at(5_000)), (at(5_000), at(90_000))]);
    assert_eq!(*woke_at.borrow(), [at(2), at(2), at(5_000), at(90_000)]);
    assert_eq!(clock.now(), at(90_000));
}

#[test]
fn run_until_stops_at_the_deadline_and_leaves_later_timers_waiting() {
    let clock = ManualClock::new();
    let mut sim = Sim::with_clock(1, clock.clone());
    let early = sim.spawn({
        let clock = clock.clone();
        async move { clock.sleep(ms(10)).await }
    });
    let late = sim.spawn({
        let clock = clock.clone();
        async move { clock.sleep(ms(100)).await }
    });
    sim.run_until(at(50)).unwrap();
    assert_eq!(clock.now(), at(50));
    assert!(early.is_finished());
    assert!(!late.is_finished());
    assert_eq!((sim.task_count(), clock.pending_timers()), (1, 1));
    sim.run_for(ms(50)).unwrap();
    assert!(late.is_finished());
    assert_eq!(clock.now(), at(100));
    // A deadline already passed moves nothing.
    sim.run_until(at(20)).unwrap();
    assert_eq!(clock.now(), at(100));
}

#[test]
fn a_cycle_of_tasks_waiting_for_each_other_is_reported_as_a_deadlock() {
    let clock = ManualClock::new();
    let (left, right) = (Semaphore::new(1).unwrap(), Semaphore::new(1).unwrap());
    let mut sim = Sim::with_clock(5, clock.clone());
    // Each takes one permit, sleeps, then waits for the other's: the classic deadlock.
    let a = sim.spawn({
        let (clock, left, right) = (clock.clone(), &left, &right);
        async move {
            let _l = left.acquire().await;
            clock.sleep(ms(1)).await;
            let _r = right.acquire().await;
        }
    });
    let b = sim.spawn({
        let (clock, left, right) = (clock.clone(), &left, &right);
        async move {
            let _r = right.acquire().await;
            clock.sleep(ms(1)).await;
            let _l = left.acquire().await;
        }
    });
    assert_eq!(sim.run(), Err(SimError::Deadlock { blocked: 2, at: at(1) }));
    assert_eq!(a.take_output(), Err(JoinError::Running));
    // Breaking the cycle by cancelling one side lets the other finish.
    assert!(sim.cancel(a.id()));
    sim.run().unwrap();
    assert!(b.is_finished());
    assert_eq!(a.take_output(), Err(JoinError::Cancelled));
    assert_eq!((left.available_permits(), right.available_permits()), (1, 1));
}

#[test]
fn block_on_reports_a_future_that_can_never_finish() {
    let mut sim = Sim::new(0);
    let never = std::future::pending::<()>();
    assert_eq!(sim.block_on(never), Err(SimError::Deadlock { blocked: 1, at: Instant::ZERO }));
    let clock = sim.clock().clone();
    let answer = sim.block_on(async move {
        clock.sleep(Duration::from_secs(3)).await;
        clock.now()
    });
    assert_eq!(answer, Ok(at(3_000)));
}

#[test]
fn a_task_that_wakes_itself_forever_is_a_livelock_not_a_hang() {
    let mut sim = Sim::new(0);
    sim.set_poll_limit(1_000);
    sim.spawn(poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    }));
    assert_eq!(sim.run(), Err(SimError::Livelock { polls: 1_000, at: Instant::ZERO }));
    assert_eq!(sim.run_until_idle(), Err(SimError::Livelock { polls: 1_000, at: Instant::ZERO }));
}

#[test]
fn cancelling_a_task_drops_it_where_it_waits_and_releases_what_it_held() {
    let clock = ManualClock::new();
    let semaphore = Semaphore::new(1).unwrap();
    let mut sim = Sim::with_clock(3, clock.clone());
    sim.record_events(true);
    let holder = sim.spawn({
        let (clock, semaphore) = (clock.clone(), &semaphore);
        async move {
            let _permit = semaphore.acquire().await.unwrap();
            clock.sleep(Duration::from_secs(60)).await;
        }
    });
    sim.run_until_idle().unwrap();
    let queued = sim.spawn({
        let semaphore = &semaphore;
        async move { semaphore.acquire().await.map(drop) }
    });
    sim.run_until_idle().unwrap();
    assert_eq!((semaphore.available_permits(), clock.pending_timers()), (0, 1));
    assert!(!queued.is_finished());

    assert!(sim.cancel(holder.id()));
    assert!(!sim.cancel(holder.id()), "cancelled once");
    assert_eq!(clock.pending_timers(), 0, "its timer unregistered with it");
    assert!(holder.is_cancelled());
    sim.run().unwrap();
    assert_eq!(queued.take_output(), Ok(Ok(())), "its permit went to the next in line");
    assert_eq!(semaphore.available_permits(), 1);
    assert!(sim.events().contains(&SimEvent::Cancelled { task: holder.id(), at: at(0) }));
}

#[test]
fn a_task_awaiting_a_cancelled_task_learns_it_was_cancelled() {
    let mut sim = Sim::new(11);
    let clock = sim.clock().clone();
    let victim = sim.spawn(async move { clock.sleep(ms(5)).await });
    let victim_id = victim.id();
    let watcher = sim.spawn(victim);
    sim.run_until_idle().unwrap();
    sim.cancel(victim_id);
    sim.run().unwrap();
    assert_eq!(watcher.take_output(), Ok(Err(JoinError::Cancelled)));
}

#[test]
fn a_cancelled_half_open_probe_gives_its_slot_back() {
    let clock = ManualClock::new();
    let breaker = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(ms(100))
        .build_with(clock.clone())
        .unwrap();
    let mut sim = Sim::with_clock(2, clock.clone());
    let fail = sim.spawn({
        let breaker = &breaker;
        breaker.call(async { Err::<(), _>("down") })
    });
    sim.run_until(at(100)).unwrap();
    assert!(fail.is_finished());
    let probe = sim.spawn({
        let (breaker, clock) = (&breaker, clock.clone());
        breaker.call(async move {
            clock.sleep(Duration::from_secs(10)).await;
            Ok::<_, &str>(())
        })
    });
    sim.run_until_idle().unwrap();
    assert_eq!((breaker.state(), breaker.stats().probes_in_flight), (CircuitState::HalfOpen, 1));
    sim.cancel(probe.id());
    assert_eq!(breaker.stats().probes_in_flight, 0);
    let next = sim.spawn({
        let breaker = &breaker;
        breaker.call(async { Ok::<_, &str>(()) })
    });
    sim.run().unwrap();
    assert_eq!(next.take_output(), Ok(Ok(())));
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn dropping_the_simulation_cancels_its_tasks_and_orphans() {
    let clock = ManualClock::new();
    let semaphore = Semaphore::new(1).unwrap();
    let (held, orphan);
    {
        let mut sim = Sim::with_clock(0, clock.clone());
        held = sim.spawn({
            let (clock, semaphore) = (clock.clone(), &semaphore);
            async move {
                let _permit = semaphore.acquire().await;
                clock.sleep(ms(1)).await;
            }
        });
        sim.run_until_idle().unwrap();
        // Spawned from outside through a spawner, never adopted.
        orphan = sim.spawner().spawn(async { 1 });
        assert_eq!(sim.task_count(), 2);
    }
    assert_eq!(held.take_output(), Err(JoinError::Cancelled));
    assert_eq!(orphan.take_output(), Err(JoinError::Cancelled));
    assert_eq!((semaphore.available_permits(), clock.pending_timers()), (1, 0));
}

#[test]
fn a_stale_waker_woken_after_its_task_finished_changes_nothing() {
    let mut sim = Sim::new(4);
    let kept = Rc::new(RefCell::new(None));
    let stash = kept.clone();
    let done = sim.spawn(poll_fn(move |cx| {
        *stash.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(5)
    }));
    sim.run().unwrap();
    let fingerprint = sim.fingerprint();
    kept.borrow_mut().take().unwrap().wake();
    sim.run().unwrap();
    assert_eq!(done.take_output(), Ok(5));
    assert_eq!(sim.fingerprint(), fingerprint, "no task was polled");
}

#[test]
fn errors_and_events_say_what_happened() {
    let deadlock = SimError::Deadlock { blocked: 2, at: at(1_500) };
    assert_eq!(
        deadlock.to_string(),
        "deadlock at Instant(1.5s): 2 task(s) wait and no timer is pending"
    );
    assert!(SimError::Livelock { polls: 9, at: at(0) }.to_string().starts_with("livelock at"));
    assert_eq!(JoinError::Cancelled.to_string(), "the task was cancelled before it finished");
    let polled = SimEvent::Polled { task: first_task(), at: at(2), finished: true };
    assert_eq!(polled.to_string(), "Instant(2ms): task 0 polled, finished");
    assert_eq!(first_task().get(), 0);
    let sim = Sim::new(77);
    assert!(format!("{sim:?}").contains("seed: 77"));
}

fn first_task() -> TaskId {
    Sim::new(0).spawn(async {}).id()
}

#[test]
fn a_future_may_borrow_from_the_caller() {
    let clock = ManualClock::new();
    let total = RefCell::new(0);
    let mut sim = Sim::with_clock(8, clock.clone());
    for n in 1..=4 {
        let (total, clock) = (&total, clock.clone());
        sim.spawn(async move {
            clock.sleep(ms(n)).await;
            *total.borrow_mut() += n;
        });
    }
    sim.run().unwrap();
    drop(sim);
    assert_eq!(total.into_inner(), 10);
}

#[test]
fn a_panicking_task_reaches_the_caller_of_run_and_leaves_the_simulation_usable() {
    let clock = ManualClock::new();
    let semaphore = Semaphore::new(1).unwrap();
    let mut sim = Sim::with_clock(6, clock.clone());
    let bad = sim.spawn({
        let (clock, semaphore) = (clock.clone(), &semaphore);
        async move {
            let _permit = semaphore.acquire().await.unwrap();
            clock.sleep(ms(5)).await;
            panic!("the service under test panicked");
        }
    });
    let good = sim.spawn({
        let (clock, semaphore) = (clock.clone(), &semaphore);
        async move {
            clock.sleep(ms(1)).await;
            semaphore.acquire().await.map(drop)
        }
    });
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    assert!(caught.is_err(), "the panic reached the caller");
    // The panicking task is still there, holding its permit; cancelling it releases it.
    assert!(sim.cancel(bad.id()));
    sim.run().unwrap();
    assert_eq!(good.take_output(), Ok(Ok(())));
    assert_eq!(semaphore.available_permits(), 1);
}
