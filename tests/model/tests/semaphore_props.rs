//! Driver 1: proptest sequences of operations, applied to `kompoz::limit::Semaphore` and to
//! the reference model, compared after every step (see `kompoz_model::semaphore::driver`).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use kompoz_model::semaphore::{self, Op, Tally, WaitLimit};

fn wait_limit() -> impl Strategy<Value = WaitLimit> {
    prop_oneof![5 => (0u8..30).prop_map(WaitLimit::Millis), 1 => Just(WaitLimit::Forever)]
}

/// One operation that keeps the semaphore usable.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<bool>().prop_map(|owned| Op::Acquire { owned }),
        4 => wait_limit().prop_map(|limit| Op::AcquireWithMaxWait { limit }),
        4 => any::<bool>().prop_map(|owned| Op::TryAcquire { owned }),
        8 => any::<u8>().prop_map(|waiter| Op::Poll { waiter }),
        3 => any::<u8>().prop_map(|waiter| Op::PollWithNewWaker { waiter }),
        4 => any::<u8>().prop_map(|waiter| Op::DropWaiter { waiter }),
        8 => any::<u8>().prop_map(|permit| Op::DropPermit { permit }),
        2 => (0u8..4).prop_map(|n| Op::AddPermits { n }),
        1 => Just(Op::AddTooManyPermits),
        5 => (0u8..20).prop_map(|millis| Op::Advance { millis }),
        2 => (0u16..300).prop_map(|millis| Op::SetClock { millis }),
    ]
}

/// One operation, now and then one that ends the semaphore's useful life (`close`, a
/// clock at the end of time): rarely, so that long sequences stay interesting.
fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![44 => op(), 1 => Just(Op::Close), 1 => Just(Op::AdvanceToTheEnd)]
}

fn ops(closing: bool) -> BoxedStrategy<(usize, Vec<Op>)> {
    if closing {
        (0usize..4, prop::collection::vec(any_op(), 1..120)).boxed()
    } else {
        (0usize..4, prop::collection::vec(op(), 1..120)).boxed()
    }
}

fn check(permits: usize, ops: &[Op]) -> Result<Tally, TestCaseError> {
    semaphore::run_ops(permits, ops)
        .map_err(|divergence| TestCaseError::fail(divergence.to_string()))
}

proptest! {
    #![proptest_config(Config { cases: 1500, ..Config::default() })]

    /// Long-lived semaphores: acquire, wait with and without a limit, poll, cancel,
    /// release, add permits, move the clock both ways.
    #[test]
    fn the_semaphore_matches_the_model((permits, ops) in ops(false)) {
        check(permits, &ops)?;
    }

    /// The same, with `close` and a saturating clock in the mix.
    #[test]
    fn the_semaphore_matches_the_model_through_close((permits, ops) in ops(true)) {
        check(permits, &ops)?;
    }
}

/// The random sequences do reach the transitions that matter: hand-offs to queued
/// waiters, grants passed on by a dropped waiter, expired waits, closes with a queue,
/// fired timers. (A generator that never got there would prove nothing.)
#[test]
fn the_sequences_reach_the_interesting_transitions() {
    let config = Config { cases: 300, ..Config::default() };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let total = std::cell::Cell::new(Tally::default());
    runner
        .run(&ops(true), |(permits, ops)| {
            let mut sum = total.get();
            sum += check(permits, &ops)?;
            total.set(sum);
            Ok(())
        })
        .unwrap();
    let t = total.get();
    assert!(t.handed_off > 300, "{t:?}");
    assert!(t.passed_on > 20, "{t:?}");
    assert!(t.elapsed > 80, "{t:?}");
    assert!(t.closed_in_queue > 20, "{t:?}");
    assert!(t.timers_fired > 100, "{t:?}");
}
