//! Driver 1 for timeouts: proptest sequences on `kompoz::timeout`/`timeout_at` over a
//! `ManualClock`, compared with the reference model after every step. It reaches what the
//! semaphore's sequences do not: absolute deadlines, inner futures that are manual sleeps
//! (two timers per task) or gates, timeouts made long before their first poll.

use proptest::prelude::*;
use proptest::test_runner::Config;

use kompoz_model::timeout::{Inner, Op, run_ops};

fn inner() -> impl Strategy<Value = Inner> {
    prop_oneof![
        1 => Just(Inner::Ready),
        2 => Just(Inner::Never),
        3 => (0u8..40).prop_map(Inner::Sleep),
        3 => Just(Inner::Gate),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..40, any::<bool>(), inner(), any::<bool>())
            .prop_map(|(limit, at, inner, poll)| Op::Start { limit, at, inner, poll }),
        8 => any::<u8>().prop_map(|timeout| Op::Poll { timeout }),
        2 => any::<u8>().prop_map(|timeout| Op::Drop { timeout }),
        3 => any::<u8>().prop_map(|timeout| Op::Open { timeout }),
        5 => (0u8..15).prop_map(|millis| Op::Advance { millis }),
        2 => (0u16..200).prop_map(|millis| Op::SetClock { millis }),
        1 => Just(Op::AdvanceToTheEnd),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 1000, ..Config::default() })]

    #[test]
    fn timeouts_match_the_model(ops in prop::collection::vec(op(), 1..100)) {
        run_ops(&ops).map_err(|d| TestCaseError::fail(d.to_string()))?;
    }
}
