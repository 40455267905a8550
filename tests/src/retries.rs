//! Retry scenarios: kompoz's `AsyncRetry` behaviour (attempts, backoff, exponential,
//! jitter, on_retry), the plain-future retry, the pipeline, a rate limit's refusal waited
//! out exactly, and `parallel_and` /
//! `parallel_or` with proof that the rules no longer needed are dropped.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kompoz::breaker::CircuitBreaker;
use kompoz::pipeline::Pipeline;
use kompoz::rate::{Quota, RateLimiter};
use kompoz::retry::RetryPolicy;
use kompoz::{
    AsyncCombinator, Clock, Error, Outcome, Rejection, Sleep, async_pipe, async_rule, parallel_and,
    parallel_or, rate_limited_on, retry_on,
};

use crate::harness::{DropFlag, Runtime};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A rule that fails until the context (a run counter) reaches `ok_at`.
fn fails_until(ok_at: u32) -> impl AsyncCombinator<u32> + Copy {
    async_pipe(async move |runs: &mut u32| {
        *runs += 1;
        if *runs >= ok_at { Ok(()) } else { Err(()) }
    })
}

/// kompoz: `AsyncRetry(rule, max_attempts=3)` passes on the third attempt, and the rule
/// saw the context as the previous attempt left it.
pub async fn retry_passes_on_a_later_attempt<R: Runtime>(rt: &R) {
    let rule = retry_on(rt.timer(), fails_until(3), RetryPolicy::default());
    assert_eq!(rule.run_owned(0).await, (true, 3));
}

/// kompoz: after `max_attempts` failures the run fails with the last outcome.
pub async fn retry_gives_up_after_max_attempts<R: Runtime>(rt: &R) {
    let policy = RetryPolicy::builder().max_attempts(4).build().unwrap();
    let rule = retry_on(rt.timer(), fails_until(100), policy);
    assert_eq!(rule.run_owned(0).await, (false, 4));
    assert_eq!(rule.run_detailed(&mut 0).await, Outcome::Failed);
}

/// kompoz: `backoff=0.02` waits 20 ms between attempts; `exponential=True` doubles it.
pub async fn retry_backoff_waits_between_attempts<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let constant = RetryPolicy::builder().max_attempts(3).backoff(ms(20)).build().unwrap();
    let start = timer.now();
    assert_eq!(retry_on(rt.timer(), fails_until(3), constant).run_owned(0).await, (true, 3));
    let waited = timer.now() - start;
    assert!(waited >= ms(40), "two waits of 20 ms: {waited:?}");
    if rt.simulated_time() {
        assert_eq!(waited, ms(40));
    }
    let doubling = RetryPolicy::builder().max_attempts(4).backoff(ms(10)).exponential(true);
    let start = timer.now();
    let rule = retry_on(rt.timer(), fails_until(4), doubling.build().unwrap());
    assert_eq!(rule.run_owned(0).await, (true, 4));
    let waited = timer.now() - start;
    assert!(waited >= ms(70), "10 + 20 + 40 ms: {waited:?}");
    if rt.simulated_time() {
        assert_eq!(waited, ms(70));
    }
}

/// kompoz: `jitter=0.01` adds up to 10 ms to each wait; with a seed, the same each run.
pub async fn retry_jitter_stays_in_bounds<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let policy = RetryPolicy::builder().max_attempts(3).backoff(ms(5)).jitter(ms(10)).seed(9);
    let policy = policy.build().unwrap();
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = delays.clone();
    let rule = retry_on(rt.timer(), fails_until(3), policy)
        .on_retry(move |_, _, delay| seen.lock().unwrap().push(delay));
    let start = timer.now();
    assert_eq!(rule.run_owned(0).await, (true, 3));
    let first: Vec<Duration> = delays.lock().unwrap().drain(..).collect();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|d| *d >= ms(5) && *d <= ms(15)), "{first:?}");
    assert!(timer.now() - start >= first.iter().sum::<Duration>());
    assert_eq!(rule.run_owned(0).await, (true, 3));
    assert_eq!(*delays.lock().unwrap(), first, "a seeded policy draws the same delays");
}

/// kompoz: `on_retry(attempt, error, delay)` is called before each retry, with the
/// number of the attempt that failed, and not after the last attempt.
pub async fn retry_calls_on_retry_before_each_retry<R: Runtime>(rt: &R) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let policy = RetryPolicy::builder().max_attempts(3).backoff(ms(1)).build().unwrap();
    let rule =
        retry_on(rt.timer(), fails_until(100), policy).on_retry(move |attempt, outcome, delay| {
            log.lock().unwrap().push((attempt, *outcome, delay))
        });
    assert_eq!(rule.run_owned(0).await, (false, 3));
    assert_eq!(*heard.lock().unwrap(), [(1, Outcome::Failed, ms(1)), (2, Outcome::Failed, ms(1))]);
}

/// A retry around a breaker stops at the breaker's rejection instead of hammering it.
pub async fn retry_stops_at_an_open_circuit<R: Runtime>(rt: &R) {
    let breaker = CircuitBreaker::builder().failure_threshold(1).build_with(rt.timer()).unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let failing = async_rule(async move |_: &mut ()| {
        counted.fetch_add(1, Ordering::SeqCst);
        false
    });
    let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
    let rule = retry_on(rt.timer(), kompoz::circuit_breaker(failing, &breaker), policy);
    let outcome = rule.run_detailed(&mut ()).await;
    assert!(matches!(outcome, Outcome::Rejected(Rejection::Circuit(_))));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// The plain-future retry and the pipeline on this runtime's timer: a timeout inside the
/// retry bounds each attempt, and the last error comes back flat.
pub async fn pipeline_retries_timed_out_attempts<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let attempts = AtomicU32::new(0);
    let pipeline = Pipeline::<u32, String, _>::with_timer(rt.timer())
        .retry(RetryPolicy::builder().max_attempts(3).backoff(ms(5)).build().unwrap())
        .timeout(ms(20));
    let start = timer.now();
    let result = pipeline
        .call(|| {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let timer = timer.clone();
            async move {
                // The first two attempts hang; the third answers at once.
                if n < 3 {
                    timer.sleep(Duration::from_secs(60)).await;
                }
                Ok(n)
            }
        })
        .await;
    assert_eq!(result, Ok(3));
    assert!(timer.now() - start >= ms(50), "two 20 ms limits and two 5 ms waits");
    let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    let plain = policy.retry(rt.timer(), || async { Err::<(), _>("down") }).await;
    assert_eq!(plain, Err("down"));
    let failing = pipeline.call(|| async { Err::<u32, _>("boom".to_string()) }).await;
    assert_eq!(failing, Err(Error::Inner("boom".to_string())));
}

/// A rate limit's refusal inside a retry, through the pipeline and the combinator: the
/// retry waits exactly the time the refusal names (on simulated time; never less in real
/// time), not its 5 s backoff, and the call then gets its cell.
pub async fn retry_waits_out_a_rate_refusal<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    // One cell every 200 ms.
    let quota = Quota::per_second(5).and_then(|q| q.with_burst(1)).expect("a valid quota");
    let limiter = RateLimiter::new(quota, rt.timer());
    let policy = RetryPolicy::builder().max_attempts(3).backoff(Duration::from_secs(5));
    let policy = policy.build().unwrap();
    let pipeline =
        Pipeline::<u32, (), _>::with_timer(rt.timer()).retry(policy).rate_limit(&limiter).reject();
    let start = timer.now();
    assert_eq!(pipeline.call(|| async { Ok(1) }).await, Ok(1));
    assert_eq!(pipeline.call(|| async { Ok(2) }).await, Ok(2));
    let waited = timer.now() - start;
    assert!(waited >= ms(200) && waited < Duration::from_secs(5), "{waited:?}");
    let rule = rate_limited_on(async_rule(async |n: &mut u32| *n > 0), &limiter).reject();
    let retried = retry_on(rt.timer(), rule, policy);
    assert_eq!(retried.run_owned(3).await, (true, 3));
    let waited = timer.now() - start;
    assert!(waited >= ms(400) && waited < Duration::from_secs(5), "{waited:?}");
    if rt.simulated_time() {
        assert_eq!(waited, ms(400), "each refusal waited out exactly");
        assert_eq!(limiter.stats().rejected, 2);
    }
    assert_eq!(limiter.stats().admitted, 3);
}

/// kompoz: `parallel_and` passes when all pass; with `fail_fast` the first failure ends
/// the run and the slow rules still running are dropped.
pub async fn parallel_and_fails_fast_and_drops_the_rest<R: Runtime>(rt: &R) {
    let pass = async_rule(async |n: &mut i32| *n > 0);
    assert_eq!(parallel_and((pass, pass, pass)).unwrap().run_owned(5).await, (true, 5));
    let flag = DropFlag::new();
    let (probe, timer) = (flag.clone(), rt.timer());
    let slow = async_rule(async move |_: &mut i32| {
        let _guard = probe.guard();
        timer.sleep(Duration::from_secs(60)).await;
        true
    });
    let (timer, quick_fail) = (rt.timer(), rt.timer());
    let fail_soon = async_rule(async move |_: &mut i32| {
        quick_fail.sleep(ms(5)).await;
        false
    });
    let start = timer.now();
    let rule = parallel_and((&slow, fail_soon)).unwrap().fail_fast(true);
    assert_eq!(rule.run_owned(1).await, (false, 1));
    assert!(timer.now() - start < Duration::from_secs(60), "did not wait for the slow rule");
    assert!(flag.is_raised(), "the slow rule was dropped (cancelled)");
}

/// kompoz: `parallel_or` passes at the first success and drops the rest; without
/// `cancel_on_success` every rule runs to its end.
pub async fn parallel_or_cancels_on_success<R: Runtime>(rt: &R) {
    let flag = DropFlag::new();
    let (probe, timer) = (flag.clone(), rt.timer());
    let slow = async_rule(async move |_: &mut u8| {
        let _guard = probe.guard();
        timer.sleep(Duration::from_secs(60)).await;
        false
    });
    let quick = rt.timer();
    let fast = async_rule(async move |_: &mut u8| {
        quick.sleep(ms(5)).await;
        true
    });
    let start = rt.timer().now();
    assert_eq!(parallel_or((&slow, fast)).unwrap().run_owned(7).await, (true, 7));
    assert!(rt.timer().now() - start < Duration::from_secs(60));
    assert!(flag.is_raised(), "the slow rule was dropped");
    let finished = Arc::new(AtomicU32::new(0));
    let (count, timer) = (finished.clone(), rt.timer());
    let both_finish = async_rule(async move |n: &mut u8| {
        timer.sleep(ms(u64::from(*n))).await;
        count.fetch_add(1, Ordering::SeqCst);
        true
    });
    let patient =
        parallel_or(vec![both_finish.clone(), both_finish]).unwrap().cancel_on_success(false);
    assert_eq!(patient.run_owned(3).await, (true, 3));
    assert_eq!(finished.load(Ordering::SeqCst), 2, "every rule ran to its end");
}
