//! Driver 1: proptest sequences of operations, applied to `kompoz::rate::RateLimiter` and
//! `KeyedRateLimiter` and to the reference model, compared after every step (see
//! `kompoz_model::rate::driver`).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use kompoz_model::rate::{self, Op, Scenario, Tally};

/// One operation, weighted so that bursts run out, lines form, and keys fill up.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Check),
        3 => any::<u8>().prop_map(|cells| Op::CheckN { cells }),
        6 => (prop::option::of(any::<u8>()), prop::option::weighted(0.4, 0u8..60))
            .prop_map(|(cells, max_wait_millis)| Op::Wait { cells, max_wait_millis }),
        8 => any::<u8>().prop_map(|waiter| Op::Poll { waiter }),
        3 => any::<u8>().prop_map(|waiter| Op::Cancel { waiter }),
        1 => Just(Op::Reset),
        6 => (any::<u8>(), 0u8..3).prop_map(|(key, cells)| Op::KeyedCheck { key, cells }),
        1 => Just(Op::RetainRecent),
        1 => Just(Op::KeyedReset),
        6 => (0u8..25).prop_map(|millis| Op::Advance { millis }),
        2 => (0u16..400).prop_map(|millis| Op::SetClock { millis }),
    ]
}

/// Now and then the end of time, rarely, so that long sequences stay interesting.
fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![60 => op(), 1 => Just(Op::AdvanceToTheEnd)]
}

fn scenarios() -> impl Strategy<Value = Scenario> {
    (0u8..20, 0u8..4, prop::collection::vec(any_op(), 1..150))
        .prop_map(|(interval_millis, burst, ops)| Scenario { interval_millis, burst, ops })
}

fn check(scenario: &Scenario) -> Result<Tally, TestCaseError> {
    rate::run(scenario).map_err(|divergence| TestCaseError::fail(divergence.to_string()))
}

proptest! {
    #![proptest_config(Config { cases: 1500, ..Config::default() })]

    /// Checks, batches, waits with and without a maximum, polls, cancellations, resets,
    /// keyed checks against a full limiter, and a clock moving both ways.
    #[test]
    fn the_rate_limiters_match_the_model(scenario in scenarios()) {
        check(&scenario)?;
    }
}

/// The random sequences do reach the transitions that matter.
#[test]
fn the_sequences_reach_the_interesting_transitions() {
    let config = Config { cases: 300, ..Config::default() };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let total = std::cell::Cell::new(Tally::default());
    runner
        .run(&scenarios(), |scenario| {
            let mut sum = total.get();
            sum += check(&scenario)?;
            total.set(sum);
            Ok(())
        })
        .unwrap();
    let t = total.get();
    assert!(t.refused_checks > 300, "{t:?}");
    assert!(t.admitted_from_line > 150, "{t:?}");
    assert!(t.gave_up > 30, "{t:?}");
    assert!(t.cancelled_heads > 30, "{t:?}");
    assert!(t.keys_refused > 10, "{t:?}");
}
