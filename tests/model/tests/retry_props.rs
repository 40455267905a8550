//! A retried call's whole schedule against the reference model: for random policies and
//! random outcome sequences, the attempts' start times, the delays `on_retry` hears, the
//! result and the end time match, through the plain-future face and the pipeline.

use proptest::prelude::*;
use proptest::test_runner::Config;

use kompoz_model::retry::{Answer, Attempt, Face, Script, Strategy as Backoff, run};

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => Just(Answer::Ok),
        6 => Just(Answer::Transient),
        1 => Just(Answer::Permanent),
        2 => (0u16..300).prop_map(Answer::RetryAfter),
    ]
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (prop_oneof![2 => Just(0u16), 3 => 1u16..50], answer())
        .prop_map(|(takes, answer)| Attempt { takes, answer })
}

fn backoff() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        Just(Backoff::None),
        Just(Backoff::Constant),
        Just(Backoff::Exponential),
        Just(Backoff::Decorrelated),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (
        1u32..8,
        backoff(),
        0u16..100,
        prop::option::of(0u16..400),
        prop_oneof![2 => Just(0u16), 1 => 0u16..50],
        prop::option::of(0u16..1500),
        any::<u64>(),
        prop::collection::vec(attempt(), 1..10),
    )
        .prop_map(|(max_attempts, strategy, base, cap, jitter, deadline, seed, attempts)| {
            // A cap below the base is refused when built; keep the scripts valid.
            let cap = cap.map(|c| c.max(base));
            Script { max_attempts, strategy, base, cap, jitter, deadline, seed, attempts }
        })
}

proptest! {
    #![proptest_config(Config { cases: 1000, ..Config::default() })]

    #[test]
    fn plain_retries_match_the_model(script in script()) {
        run(&script, Face::Plain).map_err(|d| TestCaseError::fail(d.to_string()))?;
    }

    #[test]
    fn pipeline_retries_match_the_model(script in script()) {
        run(&script, Face::Pipeline).map_err(|d| TestCaseError::fail(d.to_string()))?;
    }
}
