//! Driver 1: proptest sequences of operations, applied to `kompoz::breaker::CircuitBreaker`
//! and to the reference model, compared after every step (see
//! `kompoz_model::breaker::driver`).

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

use kompoz_model::breaker::{
    self, Breaks, Classifier, Config, Finish, Judged, Op, Rate, Tally, Trip, Window,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// kompoz's rule, or a failure rate over a small window of calls or of time.
fn trip() -> impl Strategy<Value = Trip> {
    let ratio = prop_oneof![Just(0.25), Just(0.5), Just(0.75), Just(1.0)];
    let slow = prop::option::of((1u64..=20).prop_map(|n| (ms(n), 0.5)));
    let rate = (1u32..=8, 1u32..=8, ratio, slow, any::<bool>()).prop_map(
        |(size, minimum, threshold, slow, by_time)| {
            let window = if by_time {
                Window::Time { span: ms(10) * size, buckets: size }
            } else {
                Window::Calls(size)
            };
            let minimum_calls = if by_time { minimum } else { minimum.min(size) };
            Trip::Rate(Rate { window, minimum_calls, threshold, slow })
        },
    );
    prop_oneof![(1u32..=3).prop_map(Trip::Consecutive), rate]
}

/// Fixed breaks, or growing ones (up to four times the first), jittered or not.
fn breaks() -> impl Strategy<Value = Breaks> {
    (0u64..=50, 0u8..3, any::<u64>()).prop_map(|(first, kind, seed)| match kind {
        0 => Breaks { initial: ms(first), max: ms(first), jitter: None },
        1 => Breaks { initial: ms(first + 1), max: ms(first + 1) * 4, jitter: None },
        _ => Breaks { initial: ms(first + 1), max: ms(first + 1) * 4, jitter: Some((0.5, seed)) },
    })
}

/// Small thresholds and timeouts, so that every state is reached.
fn config() -> impl Strategy<Value = Config> {
    (trip(), 1u32..=3, prop::option::of(1u32..=3), breaks(), prop_oneof![1u64..=100, 1u64..=2000])
        .prop_map(|(trip, probes, successes, breaks, max_wait)| Config {
            trip,
            half_open_max_calls: probes,
            success_threshold: successes,
            breaks,
            half_open_max_wait: ms(max_wait),
        })
}

fn judged() -> impl Strategy<Value = Judged> {
    prop_oneof![3 => Just(Judged::Success), 3 => Just(Judged::Failure), 1 => Just(Judged::Ignore)]
}

fn finish() -> impl Strategy<Value = Finish> {
    prop_oneof![
        3 => Just(Finish::Success),
        4 => Just(Finish::Failure),
        2 => judged().prop_map(Finish::Record),
        2 => Just(Finish::Drop),
        1 => Just(Finish::Forget),
    ]
}

fn result() -> impl Strategy<Value = Result<u8, u8>> {
    prop_oneof![any::<u8>().prop_map(Ok), any::<u8>().prop_map(Err)]
}

fn classifier() -> impl Strategy<Value = Classifier> {
    (judged(), judged()).prop_map(|(ok, err)| Classifier { ok, err })
}

/// One operation that keeps the breaker's clock in a useful range.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::TryAcquire),
        10 => (any::<u8>(), finish()).prop_map(|(guard, how)| Op::Finish { guard, how }),
        3 => (any::<u8>(), finish(), 0u8..30)
            .prop_map(|(guard, how, millis)| Op::FinishLater { guard, how, millis }),
        5 => (prop::option::of(classifier()), prop::option::of(result()))
            .prop_map(|(classify, ready)| Op::Call { classify, ready }),
        4 => (any::<u8>(), result()).prop_map(|(call, result)| Op::Complete { call, result }),
        1 => any::<u8>().prop_map(|call| Op::Poll { call }),
        2 => any::<u8>().prop_map(|call| Op::DropCall { call }),
        1 => Just(Op::DropUnpolled),
        1 => Just(Op::Reset),
        1 => Just(Op::ForceOpen),
        6 => (0u8..30).prop_map(|millis| Op::Advance { millis }),
        1 => (0u16..300).prop_map(|millis| Op::SetClock { millis }),
    ]
}

/// Now and then the clock jumps to the end of time (and a later `SetClock` brings it
/// back).
fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![50 => op(), 1 => Just(Op::AdvanceToTheEnd)]
}

fn ops(to_the_end: bool) -> BoxedStrategy<(Config, Vec<Op>)> {
    if to_the_end {
        (config(), prop::collection::vec(any_op(), 1..150)).boxed()
    } else {
        (config(), prop::collection::vec(op(), 1..150)).boxed()
    }
}

fn check(config: Config, ops: &[Op]) -> Result<Tally, TestCaseError> {
    breaker::run_ops(config, ops).map_err(|divergence| TestCaseError::fail(divergence.to_string()))
}

proptest! {
    #![proptest_config(RunnerConfig { cases: 1000, ..RunnerConfig::default() })]

    /// Admit through guards and call futures, succeed, fail, ignore, cancel, reset, force
    /// open, move the clock both ways.
    #[test]
    fn the_breaker_matches_the_model((config, ops) in ops(false)) {
        check(config, &ops)?;
    }

    /// The same, with a clock that now and then saturates at the end of time.
    #[test]
    fn the_breaker_matches_the_model_at_the_end_of_time((config, ops) in ops(true)) {
        check(config, &ops)?;
    }
}

/// The random sequences do reach the transitions that matter: a failure streak opening
/// the circuit, recovery into half-open (exactly at the deadline, too), failed and closing
/// probes, late outcomes, abandoned probes, stray probes of an earlier period (finishing,
/// and holding a slot a new probe wanted), leaked probes expiring into a new period, `force_open`, a clock set back, successes
/// left unstamped while the clock stood still, windows tripping, slow calls, breaks grown
/// past the first. (A generator that never got there would prove nothing.)
#[test]
fn the_sequences_reach_the_interesting_transitions() {
    let config = RunnerConfig { cases: 300, ..RunnerConfig::default() };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let total = std::cell::Cell::new(Tally::default());
    runner
        .run(&ops(true), |(config, ops)| {
            let mut sum = total.get();
            sum += check(config, &ops)?;
            total.set(sum);
            Ok(())
        })
        .unwrap();
    let t = total.get();
    assert!(t.closed_to_open > 100, "{t:?}");
    assert!(t.open_to_half_open > 150, "{t:?}");
    assert!(t.exact_recoveries > 50, "{t:?}");
    assert!(t.failed_probes > 50, "{t:?}");
    assert!(t.closing_probes > 20, "{t:?}");
    assert!(t.late_outcomes > 500, "{t:?}");
    assert!(t.abandoned_probes > 30, "{t:?}");
    assert!(t.stray_probes > 60, "{t:?}");
    assert!(t.expired_probes > 20, "{t:?}");
    assert!(t.strays_in_the_way > 3, "{t:?}");
    assert!(t.leaked_guards > 100, "{t:?}");
    assert!(t.unstamped_successes > 100, "{t:?}");
    assert!(t.window_trips > 50, "{t:?}");
    assert!(t.slow_calls > 40, "{t:?}");
    assert!(t.grown_breaks > 30, "{t:?}");
    assert!(t.forced_opens > 150, "{t:?}");
    assert!(t.clock_set_back > 150, "{t:?}");
}
