//! `RetryWatch` stays quiet on a service that retries correctly, through a real breaker,
//! rate limiter and retry budget, and catches each way of getting retries wrong: through
//! an open circuit, before the rate limiter admits, past the budget, past `max_attempts`,
//! past the deadline. Its budget bound holds for the real budget under any traffic and is
//! tight where the budget is.
// Safe code only and thousands of simulated calls: miri would take many minutes over it
// and could find nothing, so it runs in `cargo test` alone.
#![cfg(all(feature = "sim", not(miri)))]

use std::time::Duration;

use kompoz::breaker::{CallError, CircuitBreaker};
use kompoz::rate::{Quota, RateLimited, RateLimiter};
use kompoz::retry::{Budget, Decision, RetryBudget, RetryPolicy};
use kompoz::sim::{
    Backend, BreakerConfig, RateLimitConfig, Reply, RetriedCall, RetryBudgetConfig, RetryWatch,
    Sim, Violation,
};
use kompoz::{Clock, Instant, ManualClock, Sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A xorshift generator: the tests' randomness, fixed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Failed {
    CircuitOpen,
    RateLimited(RateLimited),
    Backend,
}

/// The right decision: never retry the breaker's refusal, retry the rate limiter's when
/// it admits, retry the backend's failures after the backoff.
fn retry_if(error: &Failed) -> Decision {
    match error {
        Failed::CircuitOpen => Decision::GiveUp,
        Failed::RateLimited(limited) => Decision::RetryAfter(limited.wait),
        Failed::Backend => Decision::Retry,
    }
}

/// How a service gets its retries wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mistake {
    None,
    /// Retries the breaker's refusals too.
    RetriesEverything,
    /// Retries the rate limiter's refusal after the backoff, not when it admits.
    IgnoresTheHint,
    /// Retries without the budget.
    NoBudget,
}

/// A service: each attempt asks the rate limiter, then goes through the breaker to the
/// backend; each fetch is retried under the policy and the budget, reported to the watch.
struct Service<'a> {
    clock: ManualClock,
    limiter: &'a RateLimiter<ManualClock>,
    breaker: &'a CircuitBreaker<ManualClock>,
    backend: &'a Backend,
    budget: &'a RetryBudget<ManualClock>,
    policy: RetryPolicy,
    watch: &'a RetryWatch,
}

impl Service<'_> {
    async fn attempt(&self, call: &RetriedCall<'_>, reply: Reply) -> Result<(), Failed> {
        call.attempt(self.clock.now());
        let answer = match self.limiter.check() {
            Err(limited) => Err(Failed::RateLimited(limited)),
            Ok(()) => match self.breaker.call(self.backend.request(reply)).await {
                Ok(()) => Ok(()),
                Err(CallError::Rejected(_)) => Err(Failed::CircuitOpen),
                Err(CallError::Inner(_)) => Err(Failed::Backend),
            },
        };
        match answer {
            Err(Failed::CircuitOpen) => call.circuit_open(),
            Err(Failed::RateLimited(limited)) => call.rate_limited(limited.earliest),
            _ => {}
        }
        answer
    }

    async fn fetch(&self, reply: Reply, mistake: Mistake) -> Result<(), Failed> {
        let call = self.watch.call();
        let retried = self.policy.retry(&self.clock, || self.attempt(&call, reply));
        match mistake {
            Mistake::None => retried.budget(self.budget).when(retry_if).await,
            Mistake::RetriesEverything => {
                let retry_open_circuits_too = |error: &Failed| match error {
                    Failed::RateLimited(limited) => Decision::RetryAfter(limited.wait),
                    _ => Decision::Retry,
                };
                retried.budget(self.budget).when(retry_open_circuits_too).await
            }
            Mistake::IgnoresTheHint => {
                retried
                    .budget(self.budget)
                    .when(|error: &Failed| *error != Failed::CircuitOpen)
                    .await
            }
            Mistake::NoBudget => retried.when(retry_if).await,
        }
    }
}

/// What a run saw.
#[derive(Debug, Default)]
struct Seen {
    calls: u64,
    retries: u64,
    circuit_refusals: u64,
    rate_refusals: u64,
}

/// Sixty callers over three simulated seconds against a backend that is down from 0.5 s
/// to 1.5 s, through the service making `mistake`; returns the watch's verdict.
fn run(seed: u64, mistake: Mistake) -> (Result<(), Violation>, Seen) {
    let clock = ManualClock::new();
    let mut breaker = BreakerConfig::default();
    breaker.failure_threshold = 3;
    breaker.recovery_timeout = ms(100);
    let breaker = breaker.build_with(clock.clone()).unwrap();
    let rate = RateLimitConfig::every(ms(40), 2, None).unwrap();
    let limiter = rate.limiter_with(clock.clone());
    let budget_config =
        RetryBudgetConfig { retry_percent: 20, min_per_second: 2, window: ms(1_000) };
    let budget = budget_config.build_with(clock.clone()).unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(ms(4))
        .exponential(true)
        .jitter(ms(2))
        .deadline(ms(150))
        .seed(seed)
        .build()
        .unwrap();
    let watch = RetryWatch::new(&policy).with_budget(&budget_config);
    let backend = Backend::new(clock.clone());
    let service = Service {
        clock: clock.clone(),
        limiter: &limiter,
        breaker: &breaker,
        backend: &backend,
        budget: &budget,
        policy,
        watch: &watch,
    };

    let mut random = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut sim = Sim::with_clock(seed, clock.clone());
    let mut verdict = Ok(());
    for _ in 0..60 {
        let at = Instant::ZERO + ms(random.below(3_000));
        let after = ms(1 + random.below(30));
        let reply =
            if random.below(10) < 4 { Reply::Fail { after } } else { Reply::Succeed { after } };
        let (service, clock) = (&service, clock.clone());
        sim.spawn(async move {
            clock.sleep_until(at).await;
            let _ = service.fetch(reply, mistake).await;
        });
    }
    let (down, up) = (Instant::ZERO + ms(500), Instant::ZERO + ms(1_500));
    sim.run_until(down).unwrap();
    backend.set_down(true);
    sim.run_until(up).unwrap();
    backend.set_down(false);
    while sim.task_count() > 0 {
        sim.run_for(ms(10)).unwrap();
        verdict = verdict.and(watch.check());
    }
    let seen = Seen {
        calls: watch.calls(),
        retries: watch.retries(),
        circuit_refusals: breaker.stats().rejected_calls,
        rate_refusals: limiter.stats().rejected,
    };
    (verdict.and(watch.check()), seen)
}

#[test]
fn a_service_that_retries_correctly_keeps_the_retry_watch_quiet() {
    let mut seen = Seen::default();
    for seed in 1..=40 {
        let (verdict, run) = run(seed, Mistake::None);
        assert_eq!(verdict, Ok(()), "seed {seed}: {run:?}");
        assert_eq!(run.calls, 60);
        seen.calls += run.calls;
        seen.retries += run.retries;
        seen.circuit_refusals += run.circuit_refusals;
        seen.rate_refusals += run.rate_refusals;
    }
    // The runs reach each rule: retries, refusals of the breaker and of the limiter.
    assert!(seen.retries > 400, "{seen:?}");
    assert!(seen.circuit_refusals > 100 && seen.rate_refusals > 100, "{seen:?}");
}

#[test]
fn each_way_of_getting_retries_wrong_is_caught() {
    let caught = |mistake, expected: fn(&Violation) -> bool| {
        (1..=20)
            .filter(|&seed| match run(seed, mistake).0 {
                Ok(()) => false,
                Err(violation) => {
                    assert!(expected(&violation), "{mistake:?}, seed {seed}: {violation}");
                    true
                }
            })
            .count()
    };
    let open =
        caught(Mistake::RetriesEverything, |v| matches!(v, Violation::RetriedOpenCircuit { .. }));
    let soon = caught(Mistake::IgnoresTheHint, |v| matches!(v, Violation::RetriedTooSoon { .. }));
    let budget = caught(Mistake::NoBudget, |v| matches!(v, Violation::RetryBudgetExceeded { .. }));
    assert_eq!((open, soon, budget), (20, 20, 20), "caught under this many of 20 seeds");
}

#[test]
fn attempts_past_max_attempts_or_the_deadline_are_caught_and_the_edges_are_not() {
    let policy = RetryPolicy::builder().max_attempts(3).deadline(ms(100)).build().unwrap();
    let watch = RetryWatch::new(&policy);
    let at = |n| Instant::ZERO + ms(n);
    let call = watch.call();
    for n in [0, 50, 100] {
        call.attempt(at(n)); // the third exactly at the deadline: allowed
    }
    assert_eq!((watch.check(), call.attempts()), (Ok(()), 3));
    call.attempt(at(100));
    assert_eq!(watch.check(), Err(Violation::TooManyAttempts { attempts: 4, max_attempts: 3 }));

    let watch = RetryWatch::new(&policy);
    let call = watch.call();
    call.attempt(at(7));
    call.attempt(at(107) + Duration::from_nanos(1));
    assert_eq!(
        watch.check(),
        Err(Violation::AttemptPastDeadline {
            attempt: 2,
            elapsed: ms(100) + Duration::from_nanos(1),
            deadline: ms(100),
        })
    );
}

#[test]
fn the_real_retry_keeps_to_max_attempts_and_the_deadline_exactly() {
    // Every attempt fails at once; the retry stops at max_attempts, or at the deadline.
    for (attempts, backoff, deadline, expected) in [
        (4, 10, None, 4),
        (10, 30, Some(90), 4), // attempts at 0, 30, 60, 90: the last exactly at the deadline
        (10, 30, Some(89), 3),
        (1, 0, Some(0), 1),
    ] {
        let clock = ManualClock::new();
        let mut builder = RetryPolicy::builder().max_attempts(attempts).backoff(ms(backoff));
        if let Some(deadline) = deadline {
            builder = builder.deadline(ms(deadline));
        }
        let policy = builder.build().unwrap();
        let watch = RetryWatch::new(&policy);
        let call = watch.call();
        let mut sim = Sim::with_clock(1, clock.clone());
        let answer = sim
            .block_on(policy.retry(&clock, || {
                call.attempt(clock.now());
                async { Err::<(), _>("down") }
            }))
            .unwrap();
        assert_eq!((answer, call.attempts()), (Err("down"), expected));
        assert_eq!(watch.check(), Ok(()));
    }
}

#[test]
fn a_retry_exactly_when_the_rate_limiter_admits_is_fine_and_a_nanosecond_early_is_not() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::new(Quota::every(ms(10)).unwrap(), clock.clone());
    let watch = RetryWatch::new(&RetryPolicy::builder().max_attempts(3).build().unwrap());
    limiter.check().unwrap();
    let call = watch.call();
    call.attempt(clock.now());
    let refused = limiter.check().unwrap_err();
    call.rate_limited(refused.earliest);
    clock.advance(refused.wait);
    call.attempt(clock.now());
    assert!(limiter.check().is_ok());
    assert_eq!(watch.check(), Ok(()));

    let refused = limiter.check().unwrap_err();
    call.rate_limited(refused.earliest);
    clock.advance(refused.wait - Duration::from_nanos(1));
    call.attempt(clock.now());
    assert_eq!(
        watch.check(),
        Err(Violation::RetriedTooSoon { attempt: 3, at: clock.now(), earliest: refused.earliest })
    );
}

/// Budgets from tight to generous, windows from 10 ns to an hour.
fn budgets() -> Vec<RetryBudgetConfig> {
    let mut budgets = Vec::new();
    for retry_percent in [0, 1, 20, 50, 100, 333, 10_000] {
        for min_per_second in [0, 1, 10, 1_000] {
            for window in [
                Duration::from_nanos(10),
                Duration::from_nanos(12_345),
                ms(1),
                ms(250),
                ms(10_000),
                Duration::from_secs(3_600),
            ] {
                budgets.push(RetryBudgetConfig { retry_percent, min_per_second, window });
            }
        }
    }
    budgets
}

/// Drives a real budget directly: calls and greedy retries at random moments (steps of a
/// few slots to several windows), all reported to a watch of the same configuration.
/// `extra` more retries than the budget grants are made at each step (a client that
/// retries around its budget). Returns the watch's verdict, retries and calls.
fn traffic(config: &RetryBudgetConfig, seed: u64, extra: u64) -> (Result<(), Violation>, u64) {
    let clock = ManualClock::new();
    let budget = config.build_with(clock.clone()).unwrap();
    let policy = RetryPolicy::builder().max_attempts(u32::MAX).build().unwrap();
    let watch = RetryWatch::new(&policy).with_budget(config);
    let mut random = Xorshift(seed);
    let mut calls = Vec::new();
    let slot = (config.window / 10).max(Duration::from_nanos(1));
    let mut granted = 0;
    for _ in 0..300 {
        let step = match random.below(6) {
            0 => Duration::ZERO,
            1 => slot / 3,
            2 => slot,
            3 => slot * (1 + random.below(30) as u32),
            4 => config.window.saturating_mul(1 + random.below(3) as u32),
            _ => Duration::from_nanos(random.below(1_000_000)),
        };
        clock.advance(step);
        for _ in 0..random.below(20) {
            budget.deposit();
            calls.push(watch.call());
            calls.last().unwrap().attempt(clock.now());
        }
        if calls.is_empty() {
            continue;
        }
        let wanted = random.below(40);
        let mut made = 0;
        while made < wanted && budget.try_withdraw() {
            let call = &calls[random.below(calls.len() as u64) as usize];
            call.attempt(clock.now());
            made += 1;
            granted += 1;
        }
        for _ in 0..extra {
            calls[0].attempt(clock.now());
        }
        if watch.check().is_err() {
            break;
        }
    }
    (watch.check(), granted)
}

#[test]
fn the_budget_bound_holds_for_a_real_budget_under_any_traffic() {
    let mut granted = 0;
    for (n, config) in budgets().iter().enumerate() {
        for seed in 1..=3 {
            let (verdict, retries) = traffic(config, (n as u64) << 8 | seed, 0);
            assert_eq!(verdict, Ok(()), "{config:?}, seed {seed}");
            granted += retries;
        }
    }
    assert!(granted > 100_000, "the budgets let {granted} retries through");
}

#[test]
fn a_client_that_retries_around_its_budget_is_caught() {
    let budgets = budgets();
    let caught = budgets
        .iter()
        .filter(|config| {
            matches!(traffic(config, 7, 3).0, Err(Violation::RetryBudgetExceeded { .. }))
        })
        .count();
    // Not the budgets whose floor alone allows millions of retries a window.
    assert!(caught * 10 >= budgets.len() * 6, "caught {caught} of {}", budgets.len());
}

#[test]
fn the_budget_bound_is_exact_where_the_budget_is() {
    // 20 % of 100 calls at once: twenty retries, and the watch allows exactly twenty.
    let config = RetryBudgetConfig { retry_percent: 20, min_per_second: 0, window: ms(10_000) };
    let clock = ManualClock::new();
    let budget = config.build_with(clock.clone()).unwrap();
    let watch = RetryWatch::new(&RetryPolicy::builder().max_attempts(100).build().unwrap())
        .with_budget(&config);
    let call = watch.call();
    call.attempt(clock.now());
    for _ in 0..100 {
        budget.deposit();
    }
    let calls: Vec<_> = (0..99).map(|_| watch.call()).collect();
    for call in &calls {
        call.attempt(clock.now());
    }
    while budget.try_withdraw() {
        call.attempt(clock.now());
    }
    assert_eq!((watch.retries(), watch.check()), (20, Ok(())));
    call.attempt(clock.now());
    assert_eq!(
        watch.check(),
        Err(Violation::RetryBudgetExceeded { retries: 21, calls: 100, allowed: 20 })
    );

    // A floor of one retry a second over a 10 s window: ten per window, window after
    // window, and the watch's count of windows keeps up.
    let config = RetryBudgetConfig { retry_percent: 0, min_per_second: 1, window: ms(10_000) };
    let clock = ManualClock::new();
    let budget = config.build_with(clock.clone()).unwrap();
    let watch = RetryWatch::new(&RetryPolicy::builder().max_attempts(u32::MAX).build().unwrap())
        .with_budget(&config);
    let call = watch.call();
    call.attempt(clock.now());
    for _ in 0..4 {
        while budget.try_withdraw() {
            call.attempt(clock.now());
        }
        clock.advance(ms(10_000));
    }
    assert_eq!((watch.retries(), watch.check()), (40, Ok(())));
}

#[test]
fn retry_violations_say_what_broke() {
    let at = Instant::ZERO + ms(5);
    for (violation, message) in [
        (
            Violation::TooManyAttempts { attempts: 4, max_attempts: 3 },
            "a retried call made 4 attempts, above max_attempts = 3",
        ),
        (
            Violation::AttemptPastDeadline { attempt: 2, elapsed: ms(101), deadline: ms(100) },
            "attempt 2 started 101ms after the first, past the deadline of 100ms",
        ),
        (
            Violation::RetriedOpenCircuit { attempt: 2, at },
            "attempt 2 started at Instant(5ms) although the circuit breaker refused the \
             previous one: a retry through an open circuit",
        ),
        (
            Violation::RetriedTooSoon { attempt: 3, at, earliest: at + ms(1) },
            "attempt 3 started at Instant(5ms), before Instant(6ms), when the rate limiter \
             that refused the previous one said it would admit",
        ),
        (
            Violation::RetryBudgetExceeded { retries: 21, calls: 100, allowed: 20 },
            "21 retries for 100 calls, where the retry budget lets at most 20 through",
        ),
    ] {
        assert_eq!(violation.to_string(), message);
    }
}
