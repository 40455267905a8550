//! Timeout scenarios: kompoz's own cases, plus what kompoz gets wrong.

use std::time::Duration;

use futures::future::join;
use kompoz::{AsyncCombinator, Clock, Outcome, Sleep, async_rule, timeout, with_timeout_on};

use crate::harness::{CountingTimer, DropFlag, Runtime};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// kompoz: an inner that takes 10 ms under a 1 s limit gives `(true, 42)`.
pub async fn fast_inner_passes<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let rule = async_rule(async move |n: &mut i32| {
        timer.sleep(ms(10)).await;
        *n > 0
    });
    let guarded = with_timeout_on(rt.timer(), rule, ms(1000));
    assert_eq!(guarded.run_owned(42).await, (true, 42));
}

/// kompoz: an inner that takes 1 s under a 50 ms limit gives `(false, 42)`, and the run
/// reports that it timed out.
pub async fn slow_inner_times_out<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let rule = async_rule(async move |n: &mut i32| {
        timer.sleep(ms(1000)).await;
        *n > 0
    });
    let guarded = with_timeout_on(rt.timer(), rule, ms(50));
    let start = rt.timer().now();
    assert_eq!(guarded.run_owned(42).await, (false, 42));
    assert!(rt.timer().now() - start < ms(1000), "the limit, not the inner, ended the run");
    assert_eq!(guarded.run_detailed(&mut 42).await, Outcome::TimedOut);
}

/// kompoz: an `on_timeout` handler that doubles 21 gives `(false, 42)`.
pub async fn on_timeout_handler_changes_the_context<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let rule = async_rule(async move |_: &mut i32| {
        timer.sleep(ms(1000)).await;
        true
    });
    let guarded = with_timeout_on(rt.timer(), rule, ms(50)).on_timeout(|n: &mut i32| *n *= 2);
    assert_eq!(guarded.run_owned(21).await, (false, 42));
}

/// At expiry the inner run is dropped (cancelled) before the handler runs, not later.
pub async fn inner_is_dropped_at_expiry<R: Runtime>(rt: &R) {
    let flag = DropFlag::new();
    let timer = rt.timer();
    let probe = flag.clone();
    let rule = async_rule(async move |_: &mut (bool, bool)| {
        let _guard = probe.guard();
        timer.sleep(ms(1000)).await;
        true
    });
    let seen = flag.clone();
    let guarded = with_timeout_on(rt.timer(), rule, ms(20))
        .on_timeout(move |ctx: &mut (bool, bool)| *ctx = (true, seen.is_raised()));
    let (ok, (handler_ran, dropped_before_handler)) = guarded.run_owned((false, false)).await;
    assert!(!ok);
    assert!(handler_ran);
    assert!(dropped_before_handler, "the inner run was dropped when the limit passed");
}

/// A ready inner costs no timer; a pending one costs exactly one.
pub async fn ready_inner_creates_no_timer<R: Runtime>(rt: &R) {
    let counting = CountingTimer::new(rt.timer());
    let ready = async_rule(async |n: &mut i32| *n > 0);
    let guarded = with_timeout_on(counting.clone(), ready, ms(50));
    for _ in 0..3 {
        assert_eq!(guarded.run_owned(42).await, (true, 42));
    }
    assert_eq!(timeout(counting.clone(), ms(50), async { 7 }).await, Ok(7));
    assert_eq!(counting.made(), 0);

    let timer = rt.timer();
    let pending_once = async_rule(async move |_: &mut i32| {
        timer.sleep(ms(1)).await;
        true
    });
    let guarded = with_timeout_on(counting.clone(), pending_once, ms(1000));
    assert_eq!(guarded.run_owned(42).await, (true, 42));
    assert_eq!(counting.made(), 1);
}

/// Two concurrent runs of one combinator, one fast and one slow, each get their own
/// verdict (kompoz shares one `timed_out` flag between them).
pub async fn concurrent_runs_get_their_own_verdicts<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let takes_ctx_ms = async_rule(async move |n: &mut u64| {
        timer.sleep(ms(*n)).await;
        true
    });
    let guarded = with_timeout_on(rt.timer(), takes_ctx_ms, ms(200));
    let (fast, slow) = join(guarded.run_detailed(&mut 10), guarded.run_detailed(&mut 5_000)).await;
    assert_eq!((fast, slow), (Outcome::Passed, Outcome::TimedOut));
    let (slow, fast) = join(guarded.run_owned(5_000), guarded.run_owned(10)).await;
    assert_eq!((slow, fast), ((false, 5_000), (true, 10)));
}

/// Nested limits: whichever is shorter decides, and the outer still gets the context.
pub async fn nested_limits_the_shorter_wins<R: Runtime>(rt: &R) {
    let timer = rt.timer();
    let slow = async_rule(async move |_: &mut i32| {
        timer.sleep(ms(1000)).await;
        true
    });
    let inner = with_timeout_on(rt.timer(), slow, ms(30)).on_timeout(|n: &mut i32| *n = 1);
    let outer = with_timeout_on(rt.timer(), &inner, ms(500)).on_timeout(|n: &mut i32| *n = 2);
    assert_eq!(outer.run_owned(0).await, (false, 1));
    let outer = with_timeout_on(rt.timer(), &inner, ms(10)).on_timeout(|n: &mut i32| *n = 2);
    assert_eq!(outer.run_owned(0).await, (false, 2));
}

/// With simulated time, an hour-long limit passes at no real cost.
pub async fn simulated_time_costs_no_real_time<R: Runtime>(rt: &R) {
    if !rt.simulated_time() {
        return;
    }
    let real_start = std::time::Instant::now();
    let timer = rt.timer();
    let hour_long = async_rule(async move |_: &mut ()| {
        timer.sleep(Duration::from_secs(7_200)).await;
        true
    });
    let guarded = with_timeout_on(rt.timer(), hour_long, Duration::from_secs(3_600));
    let start = rt.timer().now();
    assert_eq!(guarded.run_detailed(&mut ()).await, Outcome::TimedOut);
    assert_eq!(rt.timer().now() - start, Duration::from_secs(3_600));
    assert!(real_start.elapsed() < Duration::from_secs(5), "no real hour was spent");
}
