//! Host tests: the 32-bit counter wraps in the middle of a sleep, a timeout, and a long
//! interval, and the widened clock (and so kompoz) does not notice.

use std::future::{Future, pending};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use kompoz::{Clock, Elapsed, Instant, Sleep, timeout};
use kompoz_tick_clock_example::{TickCounter, Ticks};

/// Stands in for the hardware counter register.
#[derive(Debug)]
struct Counter(AtomicU32);

impl Counter {
    fn at(raw: u32) -> Counter {
        Counter(AtomicU32::new(raw))
    }
}

impl TickCounter for Counter {
    fn ticks(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Lets `n` ticks pass on the hardware counter (wrapping, as the register does), then
/// runs the tick interrupt.
fn tick<const T: usize>(ticks: &Ticks<Counter, T>, n: u32) {
    let counter = &ticks.counter().0;
    counter.store(counter.load(Ordering::SeqCst).wrapping_add(n), Ordering::SeqCst);
    ticks.on_tick();
}

#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Wakes>, Waker) {
    let wakes = Arc::new(Wakes::default());
    (wakes.clone(), Waker::from(wakes))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_wrap_in_the_middle_of_a_sleep_is_handled() {
    // 1 kHz, ten ticks before the register wraps.
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(u32::MAX - 9), 1_000);
    let clock = ticks.clock();
    let start = clock.now();
    let (wakes, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut sleep = pin!(clock.sleep(ms(50)));
    assert_eq!(sleep.deadline(), start + ms(50));

    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ticks.waiting_timers(), 1);
    tick(&ticks, 20); // the register wrapped: it reads 10 now
    assert_eq!(ticks.counter().ticks(), 10);
    assert_eq!(clock.now() - start, ms(20), "the wrap is 20 ms, not minus 49 days");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "not due: not woken");
    assert!(sleep.as_mut().poll(&mut cx).is_pending());

    tick(&ticks, 29);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "49 ms: still not due");
    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    tick(&ticks, 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "due at 50 ms: woken once");
    assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
    assert_eq!(ticks.waiting_timers(), 0, "the completed timer gave its slot back");
}

#[test]
fn a_timeout_across_a_wrap_expires_on_time_and_not_before() {
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(u32::MAX - 4), 1_000);
    let clock = ticks.clock();
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);

    let mut limited = pin!(timeout(clock, ms(30), pending::<()>()));
    assert!(limited.as_mut().poll(&mut cx).is_pending());
    tick(&ticks, 29); // wraps after 5 ticks
    assert!(limited.as_mut().poll(&mut cx).is_pending(), "expired early");
    tick(&ticks, 1);
    assert_eq!(limited.as_mut().poll(&mut cx), Poll::Ready(Err(Elapsed::new())));

    // And an inner future that finishes across the wrap, before the limit, wins.
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(u32::MAX - 4), 1_000);
    let clock = ticks.clock();
    let mut quick = pin!(timeout(clock, ms(30), async {
        clock.sleep(ms(10)).await;
        7
    }));
    assert!(quick.as_mut().poll(&mut cx).is_pending());
    tick(&ticks, 10);
    assert_eq!(quick.as_mut().poll(&mut cx), Poll::Ready(Ok(7)));
}

#[test]
fn a_long_interval_spanning_many_wraps_is_measured_exactly() {
    // 1 MHz: the register wraps every 71.6 minutes.
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(u32::MAX - 1_000), 1_000_000);
    let clock = ticks.clock();
    let start = clock.now();
    let mut previous = start;
    let mut total: u64 = 0;
    // Ten steps of almost a whole wrap period each: the longest gap between readings
    // that the widening can tell apart from no time at all.
    for _ in 0..10 {
        tick(&ticks, u32::MAX);
        total += u64::from(u32::MAX);
        let now = clock.now();
        assert!(now > previous, "time went backwards across a wrap");
        previous = now;
    }
    assert_eq!(clock.now() - start, Duration::from_micros(total));
    assert!(clock.now() - start > Duration::from_secs(11 * 3600), "over 11 hours");
}

#[test]
fn a_sleep_spanning_several_wraps_completes_at_its_exact_tick() {
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(123), 1_000_000);
    let clock = ticks.clock();
    let (wakes, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    // Three hours at 1 MHz: two and a half wrap periods.
    let three_hours: u64 = 3 * 3600 * 1_000_000;
    let mut sleep = pin!(clock.sleep(Duration::from_micros(three_hours)));
    assert!(sleep.as_mut().poll(&mut cx).is_pending());

    let mut left = three_hours - 1;
    while left > 0 {
        let step = left.min(1 << 31);
        tick(&ticks, u32::try_from(step).unwrap());
        left -= step;
        assert!(sleep.as_mut().poll(&mut cx).is_pending(), "{left} µs early");
    }
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    tick(&ticks, 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
}

#[test]
fn a_task_parked_on_a_sleep_is_woken_by_the_tick_interrupt_across_a_wrap() {
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(u32::MAX - 2), 1_000);
    let clock = ticks.clock();
    let done = AtomicBool::new(false);
    let (give_up, gave_up) = futures::channel::oneshot::channel::<()>();
    std::thread::scope(|scope| {
        // The "interrupt": one tick per iteration, with a real pause so the executor parks.
        // It gives up after 2,000 ticks, so a broken clock fails the test instead of
        // hanging it.
        scope.spawn(|| {
            for _ in 0..2_000 {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
                tick(&ticks, 1);
            }
            let _ = give_up.send(());
        });
        let start = clock.now();
        let sleeper = pin!(timeout(clock, ms(100), async {
            clock.sleep(ms(8)).await;
            clock.now()
        }));
        let outcome = futures::executor::block_on(futures::future::select(sleeper, gave_up));
        done.store(true, Ordering::SeqCst);
        let result = match outcome {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(_) => panic!("2,000 ticks passed and nothing woke"),
        };
        let woke_at = result.expect("the 8 ms sleep beats the 100 ms limit");
        assert!(woke_at - start >= ms(8));
    });
}

#[test]
fn slots_are_reused_and_a_full_table_falls_back_to_polling() {
    let ticks: Ticks<Counter, 1> = Ticks::new(Counter::at(0), 1_000);
    let clock = ticks.clock();
    let (first_wakes, first_waker) = counting_waker();
    let (second_wakes, second_waker) = counting_waker();
    let mut first = Box::pin(clock.sleep(ms(5)));
    let mut second = Box::pin(clock.sleep(ms(5)));
    assert!(first.as_mut().poll(&mut Context::from_waker(&first_waker)).is_pending());
    assert!(second.as_mut().poll(&mut Context::from_waker(&second_waker)).is_pending());
    assert_eq!(ticks.waiting_timers(), 1);
    assert_eq!(second_wakes.0.load(Ordering::SeqCst), 1, "no slot: it asks to be polled again");

    drop(first);
    assert_eq!(ticks.waiting_timers(), 0, "a dropped timer frees its slot");
    assert!(second.as_mut().poll(&mut Context::from_waker(&second_waker)).is_pending());
    assert_eq!(ticks.waiting_timers(), 1, "the free slot is taken");
    tick(&ticks, 5);
    assert_eq!(second_wakes.0.load(Ordering::SeqCst), 2);
    assert_eq!(first_wakes.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.as_mut().poll(&mut Context::from_waker(&second_waker)), Poll::Ready(()));
}

#[test]
fn the_epoch_is_the_counter_zero() {
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(1_500), 1_000);
    assert_eq!(ticks.clock().now(), Instant::from_nanos(1_500_000_000));
    assert_eq!(ticks.ticks64(), 1_500);
}

#[test]
fn a_breaker_opened_just_before_a_wrap_recovers_exactly_one_timeout_later() {
    use kompoz::breaker::{BreakerBuilder, CircuitOpen, CircuitState};

    // 1 kHz, five ticks before the register wraps; a 30 ms recovery timeout. A clock that
    // did not widen the counter would put the deadline ~49.7 days ahead after the wrap
    // (stuck open), or compare wrapped values (open for ever, or recovered at once).
    let ticks: Ticks<Counter> = Ticks::new(Counter::at(u32::MAX - 4), 1_000);
    let clock = ticks.clock();
    let breaker = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(ms(30))
        .build_with(clock)
        .unwrap();
    let opened_at = clock.now();
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(breaker.stats().last_failure_time, Some(opened_at));

    // Every tick up to one short of the timeout, the wrap (after the fifth) included: still
    // open.
    let open = CircuitOpen { state: CircuitState::Open };
    for elapsed in 0..30 {
        assert_eq!(breaker.try_acquire().unwrap_err(), open, "recovered early, at {elapsed} ms");
        tick(&ticks, 1);
    }
    assert_eq!(ticks.counter().ticks(), 25, "the register wrapped on the way");
    assert_eq!(breaker.stats().rejected_calls, 30);

    // Exactly 30 ms after it opened, across the wrap: the first probe is let in.
    let probe = breaker.try_acquire().expect("still open one recovery timeout later");
    assert_eq!(clock.now() - opened_at, ms(30));
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    probe.success();
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.stats().last_success_time, Some(opened_at + ms(30)));
}
