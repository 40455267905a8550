//! Timeouts on embassy time (the mock driver, 1 MHz: a tick is a microsecond): each fires
//! on exactly the tick of its deadline, the driver wakes the task then and not before,
//! and nothing panics at the ends of either time range.

mod support;

use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use embassy_time::Timer;
use kompoz_embassy::{
    AsyncCombinator, Clock, Elapsed, EmbassyClock, Instant, Outcome, Sleep, async_rule, timeout,
    timeout_at, with_timeout,
};
use support::{Task, mock_time};

#[test]
fn a_timeout_fires_on_the_tick_of_its_deadline_and_not_before() {
    let time = mock_time();
    time.advance_ticks(1_234);
    let task = Task::new();
    let mut limited = pin!(timeout(Duration::from_micros(2_500), core::future::pending::<()>()));
    assert!(task.poll(limited.as_mut()).is_pending());

    time.advance_ticks(2_499);
    assert_eq!(task.take_wakes(), 0, "woken a tick early");
    assert!(task.poll(limited.as_mut()).is_pending());

    time.advance_ticks(1);
    assert_eq!(task.take_wakes(), 1, "the driver wakes the task on the deadline's tick");
    assert_eq!(task.poll(limited.as_mut()), Poll::Ready(Err(Elapsed::new())));
    assert_eq!(time.ticks(), 1_234 + 2_500);
}

#[test]
fn a_deadline_between_ticks_fires_on_the_first_tick_after_it() {
    let time = mock_time();
    let task = Task::new();
    // 2.5005 ms: between ticks 2500 and 2501.
    let mut limited = pin!(timeout(Duration::from_nanos(2_500_500), core::future::pending::<()>()));
    assert!(task.poll(limited.as_mut()).is_pending());
    time.advance_ticks(2_500);
    assert!(task.poll(limited.as_mut()).is_pending(), "tick 2500 reads 2.5 ms, before it");
    assert!(EmbassyClock.now() < Instant::from_nanos(2_500_500));
    time.advance_ticks(1);
    assert!(EmbassyClock.now() >= Instant::from_nanos(2_500_500));
    assert_eq!(task.poll(limited.as_mut()), Poll::Ready(Err(Elapsed::new())));
}

#[test]
fn timeout_at_fires_at_the_embassy_instant_of_its_deadline() {
    let time = mock_time();
    let task = Task::new();
    let at = embassy_time::Instant::from_millis(40);
    let mut limited = pin!(timeout_at(EmbassyClock::from_embassy(at), Timer::after_millis(60)));
    assert!(task.poll(limited.as_mut()).is_pending());
    time.advance_ticks(at.as_ticks() - 1);
    assert!(task.poll(limited.as_mut()).is_pending());
    time.advance_ticks(1);
    assert_eq!(task.poll(limited.as_mut()), Poll::Ready(Err(Elapsed::new())));
}

#[test]
fn a_future_that_finishes_first_wins_and_the_timer_is_dropped() {
    let time = mock_time();
    let task = Task::new();
    let mut limited = pin!(timeout(Duration::from_millis(10), async {
        Timer::after_millis(4).await;
        "read"
    }));
    assert!(task.poll(limited.as_mut()).is_pending());
    time.advance_ticks(3_999);
    assert!(task.poll(limited.as_mut()).is_pending());
    time.advance_ticks(1);
    assert_eq!(task.poll(limited.as_mut()), Poll::Ready(Ok("read")));
}

#[test]
fn with_timeout_cancels_a_slow_rule_at_its_deadline_and_lets_a_fast_one_pass() {
    let time = mock_time();
    let task = Task::new();
    let read = async_rule(async |latency_ms: &mut u64| {
        Timer::after_millis(*latency_ms).await;
        true
    });
    let guarded = with_timeout(read, Duration::from_millis(10)).on_timeout(|ms: &mut u64| *ms = 0);

    let mut fast = 9;
    let mut run = pin!(guarded.run_detailed(&mut fast));
    assert!(task.poll(run.as_mut()).is_pending());
    time.advance_millis(9);
    assert_eq!(task.poll(run.as_mut()), Poll::Ready(Outcome::Passed));

    let start = time.ticks();
    let mut slow = 11;
    {
        let mut run = pin!(guarded.run_detailed(&mut slow));
        assert!(task.poll(run.as_mut()).is_pending());
        time.advance_ticks(9_999);
        assert!(task.poll(run.as_mut()).is_pending());
        time.advance_ticks(1);
        assert_eq!(task.poll(run.as_mut()), Poll::Ready(Outcome::TimedOut));
    }
    assert_eq!(time.ticks() - start, 10_000);
    assert_eq!(slow, 0, "the timeout handler ran on the context");
}

#[test]
fn a_zero_timeout_completes_after_one_yield_without_time_passing() {
    let _time = mock_time();
    let task = Task::new();
    let mut limited = pin!(timeout(Duration::ZERO, core::future::pending::<()>()));
    // embassy timers yield to the executor once, and the driver wakes the task at once.
    assert!(task.poll(limited.as_mut()).is_pending());
    assert_eq!(task.take_wakes(), 1);
    assert_eq!(task.poll(limited.as_mut()), Poll::Ready(Err(Elapsed::new())));
}

#[test]
fn the_timer_is_embassys_own_and_costs_what_it_costs() {
    assert_eq!(core::mem::size_of::<EmbassyClock>(), 0);
    assert_eq!(
        core::mem::size_of::<<EmbassyClock as Sleep>::Timer>(),
        core::mem::size_of::<embassy_time::Timer>()
    );
    let timer: embassy_time::Timer = EmbassyClock.sleep(Duration::from_millis(1));
    drop(timer);
}

// The ends of time. At 1 MHz embassy's range (u64::MAX ticks, 584,942 years) outlasts
// kompoz's (u64::MAX ns, 584 years), so kompoz's end is a real embassy tick.

/// The embassy tick at which kompoz's clock reaches `Instant::MAX`: ⌈u64::MAX / 1000⌉.
const KOMPOZ_END_TICK: u64 = 18_446_744_073_709_552;

#[test]
fn duration_max_saturates_to_the_end_of_kompoz_time_without_overflow() {
    let time = mock_time();
    let task = Task::new();
    let mut never = pin!(timeout(Duration::MAX, core::future::pending::<()>()));
    assert!(task.poll(never.as_mut()).is_pending());
    assert_eq!(EmbassyClock::to_embassy(Instant::MAX).as_ticks(), KOMPOZ_END_TICK);
    // 584 years later, one tick before kompoz's last instant: still waiting.
    time.advance_ticks(KOMPOZ_END_TICK - 1);
    assert_eq!(task.take_wakes(), 0);
    assert!(task.poll(never.as_mut()).is_pending());
    assert!(EmbassyClock.now() < Instant::MAX);
    // The clock saturates on the next tick, and the deadline is reached with it.
    time.advance_ticks(1);
    assert_eq!(EmbassyClock.now(), Instant::MAX);
    assert_eq!(task.poll(never.as_mut()), Poll::Ready(Err(Elapsed::new())));
}

#[test]
fn an_instant_max_deadline_waits_for_the_end_of_kompoz_time() {
    let time = mock_time();
    let task = Task::new();
    let mut never = pin!(timeout_at(Instant::MAX, core::future::pending::<()>()));
    assert!(task.poll(never.as_mut()).is_pending());
    time.advance_millis(365 * 24 * 3_600 * 1_000); // a year
    assert!(task.poll(never.as_mut()).is_pending());
    assert_eq!(task.take_wakes(), 0);
}

#[test]
fn at_embassys_last_tick_the_clock_reads_max_and_timers_still_work() {
    let time = mock_time();
    time.advance_ticks(u64::MAX);
    assert_eq!(embassy_time::Instant::now(), embassy_time::Instant::MAX);
    assert_eq!(EmbassyClock.now(), Instant::MAX);
    assert_eq!(EmbassyClock::from_embassy(embassy_time::Instant::MAX), Instant::MAX);

    // Every deadline now lies in kompoz's past: timers complete after their one yield,
    // where `embassy_time::Timer::after` would overflow and panic.
    let task = Task::new();
    for duration in [Duration::ZERO, Duration::from_millis(1), Duration::MAX] {
        let mut limited = pin!(timeout(duration, core::future::pending::<()>()));
        assert!(task.poll(limited.as_mut()).is_pending());
        assert_eq!(task.poll(limited.as_mut()), Poll::Ready(Err(Elapsed::new())));
        let mut timer = pin!(EmbassyClock.sleep(duration));
        assert!(task.poll(timer.as_mut()).is_pending());
        assert_eq!(task.poll(timer.as_mut()), Poll::Ready(()));
    }
    let mut at_max = pin!(EmbassyClock.sleep_until(Instant::MAX));
    assert!(task.poll(at_max.as_mut()).is_pending());
    assert_eq!(task.poll(at_max.as_mut()), Poll::Ready(()));
}
