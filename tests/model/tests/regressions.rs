//! Named regression sequences: hand-picked races, and any sequence a fuzzer or proptest
//! ever found, kept as a test of its own.

use kompoz_model::semaphore::{Op, WaitLimit, run_ops};

fn passes(permits: usize, ops: &[Op]) {
    if let Err(divergence) = run_ops(permits, ops) {
        panic!("{divergence}");
    }
}

/// A waiter dropped after the permit was handed to it passes the permit to the next one.
#[test]
fn a_granted_waiter_dropped_before_its_poll_passes_the_permit_on() {
    passes(
        0,
        &[
            Op::Acquire { owned: false },
            Op::Acquire { owned: true },
            Op::AddPermits { n: 1 },
            Op::DropWaiter { waiter: 0 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// A maximum wait that expires while its waiter is queued gives up the place; the next
/// waiter is served.
#[test]
fn an_expired_wait_leaves_the_queue() {
    passes(
        1,
        &[
            Op::TryAcquire { owned: false },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(5) },
            Op::Acquire { owned: false },
            Op::Advance { millis: 5 },
            Op::Poll { waiter: 0 },
            Op::DropPermit { permit: 0 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// Granted, then the timer fires before the next poll: the permit wins (the acquisition
/// is polled first), and the task was woken twice.
#[test]
fn a_grant_and_an_expiry_at_once_the_grant_wins() {
    passes(
        1,
        &[
            Op::TryAcquire { owned: true },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(3) },
            Op::DropPermit { permit: 0 },
            Op::Advance { millis: 3 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// A clock stepped back after a timer fired does not un-fire it; one registered after
/// the step counts from the new time.
#[test]
fn a_clock_stepped_back_neither_unfires_nor_confuses_timers() {
    passes(
        0,
        &[
            Op::SetClock { millis: 100 },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(10) },
            Op::Advance { millis: 10 },
            Op::SetClock { millis: 0 },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(10) },
            Op::Advance { millis: 9 },
            Op::Poll { waiter: 1 },
            Op::Poll { waiter: 0 },
            Op::Advance { millis: 1 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// Close while a grant is outstanding: the granted waiter still gets its permit; the
/// queued one fails; nothing leaks.
#[test]
fn close_keeps_an_outstanding_grant() {
    passes(
        0,
        &[
            Op::Acquire { owned: true },
            Op::AcquireWithMaxWait { limit: WaitLimit::Forever },
            Op::AddPermits { n: 1 },
            Op::Close,
            Op::Poll { waiter: 1 },
            Op::Poll { waiter: 0 },
            Op::TryAcquire { owned: false },
            Op::AddPermits { n: 2 },
            Op::AddTooManyPermits,
        ],
    );
}

/// At the end of time a maximum wait, even "forever", expires at once.
#[test]
fn at_the_end_of_time_every_wait_expires_at_once() {
    passes(
        0,
        &[
            Op::AdvanceToTheEnd,
            Op::AcquireWithMaxWait { limit: WaitLimit::Forever },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(0) },
            Op::Acquire { owned: false },
        ],
    );
}

/// The circuit breaker's named sequences, run against `kompoz::breaker::CircuitBreaker`
/// and its model (`kompoz_model::breaker`).
mod breaker {
    use std::time::Duration;

    use kompoz::breaker::BreakerBuilder;
    use kompoz::{Instant, ManualClock};
    use kompoz_model::breaker::{Classifier, Config, Finish, Judged, Op, Tally, run_ops};

    fn config(failures: u32, probes: u32, successes: Option<u32>, recovery_ms: u64) -> Config {
        Config::consecutive(failures, probes, successes, Duration::from_millis(recovery_ms))
    }

    /// Runs `ops`, comparing with the model at every step; returns what the run reached
    /// (counting the end of the run, which drops the guards and calls still kept).
    fn passes(config: Config, ops: &[Op]) -> Tally {
        run_ops(config, ops).unwrap_or_else(|divergence| panic!("{divergence}"))
    }

    const FAIL: Op = Op::Finish { guard: 0, how: Finish::Failure };
    const SUCCEED: Op = Op::Finish { guard: 0, how: Finish::Success };

    /// Found by proptest: with the clock set back, `last_success_time` keeps the latest
    /// *reading* (the largest stamp), not the stamp of the last success. The breaker's
    /// docs say "when the latest success was recorded"; on a clock that never steps back
    /// (the `Clock` contract) the two agree.
    #[test]
    fn a_clock_set_back_leaves_the_last_success_stamp_at_the_latest_reading() {
        let t = passes(
            config(1, 1, None, 10),
            &[
                Op::SetClock { millis: 156 },
                Op::TryAcquire,
                SUCCEED,
                Op::SetClock { millis: 0 },
                Op::TryAcquire,
                Op::Finish { guard: 0, how: Finish::Record(Judged::Success) },
            ],
        );
        assert_eq!(t.clock_set_back, 1);
        let clock = ManualClock::starting_at(Instant::from_nanos(156_000_000));
        let b = BreakerBuilder::new().build_with(clock.clone()).unwrap();
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        clock.set(Instant::ZERO);
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        let stats = b.stats();
        assert_eq!(stats.last_success_time, Some(Instant::from_nanos(156_000_000)));
        assert_eq!(stats.last_failure_time, Some(Instant::from_nanos(156_000_000)));
    }

    /// Found by proptest: a success or failure recorded when the clock reads
    /// `Instant::MAX` (a `ManualClock` advanced by `Duration::MAX` saturates there) was
    /// reported one nanosecond early, because the core stored stamps as `nanos + 1`
    /// (saturating) so that 0 could mean "never". Fixed: stamps are plain, and "never" is
    /// a count of zero.
    #[test]
    fn a_stamp_at_the_end_of_time_is_reported_exactly() {
        let clock = ManualClock::new();
        let b = BreakerBuilder::new().build_with(clock.clone()).unwrap();
        clock.advance(Duration::MAX);
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        let stats = b.stats();
        assert_eq!(stats.last_success_time, Some(Instant::MAX));
        assert_eq!(stats.last_failure_time, Some(Instant::MAX));
    }

    /// A slow call let in while closed fails after the circuit opened and recovered: a
    /// late outcome, counted, but not taken for a failed probe.
    #[test]
    fn a_late_failure_is_not_a_failed_probe() {
        let t = passes(
            config(1, 1, Some(1), 10),
            &[
                Op::Call { classify: None, ready: None },
                Op::TryAcquire,
                FAIL,
                Op::Advance { millis: 10 },
                Op::TryAcquire,
                Op::Complete { call: 0, result: Err(7) },
                SUCCEED,
            ],
        );
        assert_eq!((t.late_outcomes, t.failed_probes, t.closing_probes), (1, 0, 1), "{t:?}");
    }

    /// A probe that fails while a second one runs reopens the circuit; the second, a
    /// stray of the earlier half-open period, holds its slot until it ends, so the next
    /// period's probe limit counts it; it ends late and changes nothing else.
    #[test]
    fn a_stray_probe_holds_its_slot_into_the_next_half_open_period() {
        let t = passes(
            config(1, 2, Some(2), 5),
            &[
                Op::TryAcquire,
                FAIL,
                Op::Advance { millis: 5 },
                Op::TryAcquire,
                Op::Call { classify: None, ready: None },
                FAIL,
                Op::Advance { millis: 5 },
                Op::TryAcquire,
                Op::TryAcquire,
                Op::Complete { call: 0, result: Ok(1) },
                Op::TryAcquire,
                SUCCEED,
                SUCCEED,
            ],
        );
        let seen = (t.failed_probes, t.strays_in_the_way, t.stray_probes, t.closing_probes);
        assert_eq!(seen, (1, 1, 1, 1), "{t:?}");
    }

    /// Issue 9, item 4: a leaked probe, a reset, a new opening: the breaker recovers (the
    /// reset forgot the probe); and a probe leaked without a reset expires after
    /// `half_open_max_wait`.
    #[test]
    fn a_leaked_probe_never_wedges_recovery() {
        let t = passes(
            config(1, 1, None, 10),
            &[
                Op::TryAcquire,
                FAIL,
                Op::Advance { millis: 10 },
                Op::TryAcquire,
                Op::Finish { guard: 0, how: Finish::Forget },
                Op::Reset,
                Op::TryAcquire,
                FAIL,
                Op::Advance { millis: 10 },
                Op::TryAcquire,
                Op::Finish { guard: 0, how: Finish::Forget },
                Op::Advance { millis: 39 },
                Op::TryAcquire,
                Op::Advance { millis: 1 },
                Op::TryAcquire,
                SUCCEED,
            ],
        );
        let seen = (t.leaked_guards, t.expired_probes, t.closing_probes);
        assert_eq!(seen, (2, 1, 1), "{t:?}");
    }

    /// The first probe is let in exactly at the recovery deadline, not a nanosecond
    /// before; a clock set back while open delays it.
    #[test]
    fn recovery_is_exact_and_a_clock_set_back_delays_it() {
        let t = passes(
            config(1, 1, None, 20),
            &[
                Op::SetClock { millis: 100 },
                Op::TryAcquire,
                FAIL,
                Op::SetClock { millis: 50 },
                Op::Advance { millis: 69 },
                Op::TryAcquire,
                Op::Advance { millis: 1 },
                Op::TryAcquire,
                Op::Finish { guard: 0, how: Finish::Drop },
                Op::TryAcquire,
            ],
        );
        let seen = (t.clock_set_back, t.exact_recoveries, t.abandoned_probes, t.open_to_half_open);
        assert_eq!(seen, (1, 1, 2, 1), "{t:?}");
    }

    /// A probe call cancelled (its future dropped) or ignored by the classifier gives its
    /// slot back; neither counts as a failure; `force_open` then holds the circuit open
    /// past any timeout until `reset`.
    #[test]
    fn abandoned_probes_free_their_slots_and_force_open_holds_until_reset() {
        let ignore_errors = Classifier { ok: Judged::Success, err: Judged::Ignore };
        let t = passes(
            config(1, 1, None, 0),
            &[
                Op::TryAcquire,
                FAIL,
                Op::Call { classify: None, ready: None },
                Op::Poll { call: 0 },
                Op::DropCall { call: 0 },
                Op::Call { classify: Some(ignore_errors), ready: Some(Err(3)) },
                Op::DropUnpolled,
                Op::ForceOpen,
                Op::AdvanceToTheEnd,
                Op::TryAcquire,
                Op::ForceOpen,
                Op::Reset,
                Op::TryAcquire,
                FAIL,
                Op::TryAcquire,
            ],
        );
        assert_eq!((t.abandoned_probes, t.forced_opens, t.closed_to_open), (3, 1, 2), "{t:?}");
    }
}

/// Found by the `breaker_ops` fuzz target (the input is kept in `artifacts/`): a time
/// window whose owner thread kept its successes of bucket 0 off the lock, then, the clock
/// set back from 176 ms to 0, counted a new success in bucket 0 again, behind the window's
/// latest bucket (17): the success fell outside the window (`window_calls` 1, the model 2).
/// The owner's fast path now also checks the window's latest bucket.
#[test]
fn fuzz_an_owner_success_after_the_clock_was_set_back_counts_in_the_latest_bucket() {
    use arbitrary::{Arbitrary, Unstructured};
    let bytes = include_bytes!("artifacts/breaker_ops-time-window-owner-after-clock-set-back");
    let scenario = kompoz_model::breaker::Scenario::arbitrary_take_rest(Unstructured::new(bytes))
        .expect("the fuzzer's input decodes");
    if let Err(divergence) = kompoz_model::breaker::run(&scenario) {
        panic!("{divergence}");
    }
}
