//! The project's own demo, run in the simulation: its stack keeps every invariant over
//! many interleavings and with callers giving up at random moments.

use kompoz::breaker::CircuitState;
use kompoz_example_flaky_client::demo::{CLIENTS, DemoScenario, GiveUp, run_demo};

#[test]
fn the_demo_tells_its_story_under_every_seed() {
    for seed in 0..40 {
        let summary = run_demo(&DemoScenario { seed, give_ups: Vec::new() })
            .unwrap_or_else(|failure| panic!("seed {seed}: {failure}"));
        // As in the demo: the breaker opens in the outage, refuses calls, and recovers.
        assert!(summary.times_opened >= 1, "seed {seed}: {summary:?}");
        assert!(summary.circuit_rejected > 100, "seed {seed}: {summary:?}");
        assert!(summary.ok > 500 && summary.timed_out > 10, "seed {seed}: {summary:?}");
        assert_eq!(summary.final_state, Some(CircuitState::Closed), "seed {seed}");
        assert!(summary.peak_at_dependency <= 4);
    }
}

#[test]
fn the_demo_keeps_its_invariants_when_callers_give_up() {
    let mut state = 0x1234_5678_9abc_def1_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut abandoned = 0;
    for seed in 0..40 {
        let give_ups = (0..next() % 300)
            .map(|_| GiveUp {
                at_millis: (next() % 10_000) as u16,
                client: (next() % CLIENTS) as u8,
            })
            .collect();
        let scenario = DemoScenario { seed, give_ups };
        let summary =
            run_demo(&scenario).unwrap_or_else(|failure| panic!("{failure}\n{scenario:?}"));
        abandoned += summary.abandoned;
    }
    assert!(abandoned > 1_000, "{abandoned} calls abandoned");
}
