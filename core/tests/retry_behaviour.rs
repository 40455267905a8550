//! Retry, budget and hedging on the manual clock: exact attempt times, deadlines,
//! cancellation, budgets, hedges, and which rejections are retried.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::CircuitBreaker;
use kompoz::pipeline::Pipeline;
use kompoz::retry::{Decision, Hedge, RetryBudget, RetryPolicy};
use kompoz::{Clock, Error, Instant, ManualClock, RetryAfter, Sleep};

const MS: Duration = Duration::from_millis(1);

fn at(clock: &ManualClock) -> Duration {
    clock.now() - Instant::ZERO
}

/// Runs `future` to completion, moving the clock to the next timer whenever it waits.
fn drive<F: Future>(clock: &ManualClock, future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let next = clock.next_deadline().expect("waiting with no timer");
        clock.advance(next - clock.now());
    }
}

/// A factory whose attempts fail (after `takes` of manual time) until attempt `ok_at`,
/// recording the instant each attempt started.
fn flaky(
    clock: &ManualClock,
    ok_at: u32,
    takes: Duration,
    starts: Rc<RefCell<Vec<Duration>>>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<u32, String>>>> {
    let clock = clock.clone();
    let n = Rc::new(Cell::new(0));
    move || {
        n.set(n.get() + 1);
        let k = n.get();
        starts.borrow_mut().push(at(&clock));
        let timer = clock.clone();
        Box::pin(async move {
            if takes > Duration::ZERO {
                timer.sleep(takes).await;
            }
            if k >= ok_at { Ok(k) } else { Err(format!("attempt {k} failed")) }
        })
    }
}

fn starts_of(policy: RetryPolicy, ok_at: u32) -> (Result<u32, String>, Vec<Duration>) {
    let clock = ManualClock::new();
    let starts = Rc::new(RefCell::new(Vec::new()));
    let result = drive(&clock, policy.retry(&clock, flaky(&clock, ok_at, MS, starts.clone())));
    (result, starts.take())
}

#[test]
fn no_backoff_retries_at_once_and_gives_up_after_max_attempts() {
    let (result, starts) = starts_of(RetryPolicy::default(), 10);
    assert_eq!(result, Err("attempt 3 failed".into()), "kompoz: 3 attempts, the last error");
    assert_eq!(starts, [Duration::ZERO, MS, MS * 2]);
}

#[test]
fn constant_backoff_waits_the_same_each_time() {
    let policy = RetryPolicy::builder().max_attempts(4).backoff(MS * 100).build().unwrap();
    let (result, starts) = starts_of(policy, 4);
    assert_eq!(result, Ok(4));
    assert_eq!(starts, [Duration::ZERO, MS * 101, MS * 202, MS * 303]);
}

#[test]
fn exponential_backoff_doubles_up_to_its_cap() {
    let policy = RetryPolicy::builder()
        .max_attempts(6)
        .backoff(MS * 10)
        .exponential(true)
        .max_backoff(MS * 50)
        .build()
        .unwrap();
    let (result, starts) = starts_of(policy, 100);
    assert_eq!(result, Err("attempt 6 failed".into()));
    // Each attempt takes 1 ms; the waits are 10, 20, 40, 50, 50.
    assert_eq!(starts, [Duration::ZERO, MS * 11, MS * 32, MS * 73, MS * 124, MS * 175]);
}

#[test]
fn seeded_decorrelated_jitter_gives_the_exact_same_sequence_every_run() {
    let policy = RetryPolicy::builder()
        .max_attempts(6)
        .backoff(MS * 10)
        .decorrelated_jitter(true)
        .max_backoff(MS * 1000)
        .seed(2024)
        .build()
        .unwrap();
    let (_, first) = starts_of(policy, 100);
    let (_, second) = starts_of(policy, 100);
    assert_eq!(first, second);
    // The waits, recomputed from the documented rule with the same seed.
    let mut rng = fastrand::Rng::with_seed(2024);
    let mut previous = MS * 10;
    let mut expected = vec![Duration::ZERO];
    for _ in 0..5 {
        let high = (previous * 3).as_nanos() as u64;
        let wait = Duration::from_nanos(rng.u64((MS * 10).as_nanos() as u64..=high)).min(MS * 1000);
        expected.push(*expected.last().unwrap() + MS + wait);
        previous = wait;
    }
    assert_eq!(first, expected);
}

#[test]
fn unseeded_jitter_stays_inside_its_bounds() {
    let policy =
        RetryPolicy::builder().max_attempts(8).backoff(MS * 20).jitter(MS * 5).build().unwrap();
    for _ in 0..20 {
        let (_, starts) = starts_of(policy, 100);
        for pair in starts.windows(2) {
            let wait = pair[1] - pair[0] - MS;
            assert!(wait >= MS * 20 && wait <= MS * 25, "{wait:?}");
        }
    }
}

#[test]
fn the_deadline_stops_retries_instead_of_waiting_past_it() {
    let clock = ManualClock::new();
    let starts = Rc::new(RefCell::new(Vec::new()));
    let policy = RetryPolicy::builder()
        .max_attempts(100)
        .backoff(MS * 100)
        .deadline(MS * 250)
        .build()
        .unwrap();
    let result = drive(&clock, policy.retry(&clock, flaky(&clock, 100, MS, starts.clone())));
    assert_eq!(result, Err("attempt 3 failed".into()));
    assert_eq!(starts.take(), [Duration::ZERO, MS * 101, MS * 202]);
    assert_eq!(at(&clock), MS * 203, "gave up when attempt 3 failed: 303 ms > 250 ms");
    assert_eq!(clock.pending_timers(), 0);
}

#[test]
fn a_retry_cancelled_during_its_backoff_leaves_nothing_running() {
    let clock = ManualClock::new();
    let starts = Rc::new(RefCell::new(Vec::new()));
    let policy = RetryPolicy::builder().backoff(Duration::from_secs(60)).build().unwrap();
    let retried = policy.retry(&clock, flaky(&clock, 100, Duration::ZERO, starts.clone()));
    {
        let mut retried = pin!(retried);
        assert!(retried.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(clock.pending_timers(), 1, "waiting out the backoff");
    }
    assert_eq!(clock.pending_timers(), 0, "the backoff's timer went with the retry");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(starts.take().len(), 1, "no attempt started after the cancellation");
}

#[test]
fn on_retry_hears_attempt_error_and_delay_as_kompoz_does() {
    let clock = ManualClock::new();
    let heard = RefCell::new(Vec::new());
    let starts = Rc::new(RefCell::new(Vec::new()));
    let policy = RetryPolicy::builder().backoff(MS * 10).exponential(true).build().unwrap();
    let retried = policy
        .retry(&clock, flaky(&clock, 100, Duration::ZERO, starts))
        .on_retry(|attempt, error, delay| heard.borrow_mut().push((attempt, error.clone(), delay)));
    assert!(drive(&clock, retried).is_err());
    assert_eq!(
        heard.take(),
        [
            (1, "attempt 1 failed".to_string(), MS * 10),
            (2, "attempt 2 failed".to_string(), MS * 20),
        ]
    );
}

#[test]
fn the_budget_refuses_retries_past_its_percentage_and_recovers() {
    let clock = ManualClock::new();
    let budget = RetryBudget::builder()
        .retry_percent(50)
        .min_per_second(0)
        .window(Duration::from_secs(10))
        .build_with(clock.clone())
        .unwrap();
    let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    let calls = Cell::new(0);
    let failing = || {
        calls.set(calls.get() + 1);
        async { Err::<(), ()>(()) }
    };
    // Four failing calls: each deposits half a retry, so two retries in all.
    for _ in 0..4 {
        assert!(drive(&clock, policy.retry(&clock, &failing).budget(&budget)).is_err());
    }
    assert_eq!(calls.get(), 4 + 2, "only two of the four calls were retried");
    // The window slides past them: recovered (new calls earn new retries).
    clock.advance(Duration::from_secs(10));
    calls.set(0);
    for _ in 0..2 {
        assert!(drive(&clock, policy.retry(&clock, &failing).budget(&budget)).is_err());
    }
    assert_eq!(calls.get(), 2 + 1);
}

#[derive(Debug, PartialEq)]
enum Api {
    Busy { retry_after: Duration },
    Down,
}

impl RetryAfter for Api {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Api::Busy { retry_after } => Some(*retry_after),
            Api::Down => None,
        }
    }
}

#[test]
fn a_retry_after_hint_is_waited_exactly_instead_of_the_backoff() {
    let clock = ManualClock::new();
    let starts = RefCell::new(Vec::new());
    let n = Cell::new(0);
    let call = || {
        n.set(n.get() + 1);
        starts.borrow_mut().push(at(&clock));
        let k = n.get();
        async move { if k == 1 { Err(Api::Busy { retry_after: MS * 1234 }) } else { Ok(k) } }
    };
    let pipeline = Pipeline::<u32, Api, _>::with_timer(clock.clone())
        .retry(RetryPolicy::builder().backoff(MS * 10).build().unwrap())
        .retry_if(|error| Decision::from_hint(error.retry_after()));
    assert_eq!(drive(&clock, pipeline.call(call)), Ok(2));
    assert_eq!(starts.take(), [Duration::ZERO, MS * 1234]);
}

#[test]
fn a_circuit_breaker_rejection_is_never_retried() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder().failure_threshold(1).build_with(clock.clone()).unwrap();
    let calls = Cell::new(0);
    let pipeline = Pipeline::<(), Api, _>::with_timer(clock.clone())
        .retry(RetryPolicy::builder().max_attempts(5).backoff(MS).build().unwrap())
        .breaker(&breaker);
    let down = || {
        calls.set(calls.get() + 1);
        async { Err(Api::Down) }
    };
    let result = drive(&clock, pipeline.call(down));
    assert!(matches!(result, Err(Error::Rejected(kompoz::Rejection::Circuit(_)))));
    assert_eq!(calls.get(), 1, "the first failure opened the circuit; the retry stopped there");
    assert_eq!(at(&clock), MS, "one backoff, then the rejection ended it");
}

#[test]
fn a_hedge_starts_at_its_delay_and_the_loser_is_dropped() {
    let clock = ManualClock::new();
    let hedge = Hedge::builder().delay(MS * 30).max_hedges(2).build().unwrap();
    let dropped = Rc::new(Cell::new(0));
    let starts = RefCell::new(Vec::new());
    let n = Cell::new(0);
    struct Flag(Rc<Cell<u32>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let call = || {
        n.set(n.get() + 1);
        starts.borrow_mut().push(at(&clock));
        let (k, timer, flag) = (n.get(), clock.clone(), Flag(dropped.clone()));
        async move {
            let _flag = flag;
            // The first attempt hangs for 100 ms; the others answer in 10 ms.
            timer.sleep(if k == 1 { MS * 100 } else { MS * 10 }).await;
            Ok::<u32, ()>(k)
        }
    };
    let result = drive(&clock, hedge.run(&clock, &kompoz::retry::NoBudget, call));
    assert_eq!(result, Ok(2), "the first hedge, started at 30 ms, won at 40 ms");
    assert_eq!(starts.take(), [Duration::ZERO, MS * 30]);
    assert_eq!(at(&clock), MS * 40);
    assert_eq!(dropped.get(), 2, "the winner finished and the loser was dropped");
    assert_eq!(clock.pending_timers(), 0, "the loser's timer is gone too");
}

#[test]
fn hedges_spend_the_budget() {
    let clock = ManualClock::new();
    let budget = RetryBudget::builder()
        .retry_percent(0)
        .min_per_second(0)
        .build_with(clock.clone())
        .unwrap();
    let hedge = Hedge::builder().delay(MS).max_hedges(3).build().unwrap();
    let n = Cell::new(0);
    let call = || {
        n.set(n.get() + 1);
        let timer = clock.clone();
        async move {
            timer.sleep(MS * 10).await;
            Ok::<_, ()>(())
        }
    };
    assert_eq!(drive(&clock, hedge.run(&clock, &budget, call)), Ok(()));
    assert_eq!(n.get(), 1, "an empty budget starts no hedge");
}
