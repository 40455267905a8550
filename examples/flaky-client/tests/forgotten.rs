//! The outage property with probes the breaker forgets: a probe that hangs past
//! `half_open_max_wait` is presumed hung, and the breaker lets one more probe reach the
//! down backend in the same recovery cycle. The property allows exactly that one, and no
//! more.

use std::time::Duration;

use kompoz::retry::RetryPolicyBuilder;
use kompoz::sim::{BreakerConfig, LimitConfig, Op, Reply, TimeoutConfig};
use kompoz_example_flaky_client::{Failure, OutageWatch, Scenario, Variant, run};

/// A breaker that opens on one failure, probes after a second, one probe at a time,
/// presumes a probe hung after five seconds; no time limit, no retries.
fn scenario(ops: Vec<Op>) -> Scenario {
    let mut breaker = BreakerConfig::default();
    breaker.failure_threshold = 1;
    breaker.recovery_timeout = Duration::from_secs(1);
    breaker.half_open_max_wait = Duration::from_secs(5);
    Scenario {
        seed: 1,
        breaker,
        limit: LimitConfig { max_concurrent: 4, max_wait: None },
        timeout: TimeoutConfig { time_limit: Duration::MAX },
        retry: RetryPolicyBuilder::new().max_attempts(1).build().unwrap(),
        budget: None,
        rate: None,
        ops,
    }
}

/// Down; a failure opens the circuit; a second later a probe goes out and hangs.
fn hung_probe() -> Vec<Op> {
    vec![
        Op::BackendDown,
        Op::Call(Reply::Fail { after: Duration::ZERO }),
        Op::Advance(Duration::from_secs(1)),
        Op::Call(Reply::Hang),
    ]
}

#[test]
fn a_probe_presumed_hung_lets_one_more_request_through_and_the_property_allows_it() {
    let mut ops = hung_probe();
    // Five seconds later the hung probe is forgotten: the next call probes again.
    ops.extend([Op::Advance(Duration::from_secs(5)), Op::Call(Reply::Hang)]);
    let summary = run(&scenario(ops), Variant::Correct).unwrap();

    assert_eq!(summary.times_opened, 1, "one recovery cycle");
    assert_eq!(summary.forgotten_probes, 1);
    // The failure while closed, then two probes in the one cycle: half_open_max_calls (1)
    // plus the forgotten probe.
    assert_eq!(summary.requests, 3);
    assert_eq!(summary.rejected, 0);
}

#[test]
fn before_half_open_max_wait_the_hung_probe_still_holds_its_slot() {
    let mut ops = hung_probe();
    ops.extend([Op::Advance(Duration::from_millis(4_999)), Op::Call(Reply::Hang)]);
    let summary = run(&scenario(ops), Variant::Correct).unwrap();

    assert_eq!((summary.forgotten_probes, summary.requests, summary.rejected), (0, 2, 1));
}

#[test]
fn a_cancelled_forgotten_probe_counts_once_not_as_abandoned_too() {
    let mut ops = hung_probe();
    // The hung probe is forgotten by the next admission, then cancelled: it allowed one
    // more request (the second probe), not two.
    ops.extend([
        Op::Advance(Duration::from_secs(5)),
        Op::Call(Reply::Hang),
        Op::Cancel { call: 1 },
    ]);
    let summary = run(&scenario(ops), Variant::Correct).unwrap();

    assert_eq!((summary.forgotten_probes, summary.requests), (1, 3));
}

#[test]
fn a_third_request_in_the_cycle_is_still_a_violation() {
    use kompoz::ManualClock;
    use kompoz::sim::BreakerWatch;
    use kompoz_example_flaky_client::AdmittedAs;

    // The watch on its own: one probe forgotten allows one request beyond
    // half_open_max_calls, and the next is reported.
    let clock = ManualClock::new();
    let config = scenario(Vec::new()).breaker;
    let breaker = config.build_with(clock.clone()).unwrap();
    let watch = BreakerWatch::new(config.half_open_max_calls);
    let outage = OutageWatch::new(config.half_open_max_calls);
    breaker.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(1));

    let hung = breaker.try_acquire().unwrap();
    let hung_admission = watch.admitted(&breaker);
    let hung_end = outage.admitted(&hung_admission, &breaker);
    outage.request(Some(AdmittedAs::of(&hung_admission)), &breaker, true);
    clock.advance(Duration::from_secs(5));

    let next = breaker.try_acquire().unwrap();
    let admission = watch.admitted(&breaker);
    let end = outage.admitted(&admission, &breaker);
    let as_probe = Some(AdmittedAs::of(&admission));
    outage.request(as_probe, &breaker, true);
    assert_eq!(outage.check(), Ok(()), "one probe forgotten, one more request");
    assert_eq!(outage.forgotten_probes(), 1);
    // A second request on the same probe (as a client that sends twice would).
    outage.request(as_probe, &breaker, true);
    let violation = outage.check().unwrap_err();
    assert_eq!((violation.sent, violation.forgotten, violation.abandoned), (3, 1, 0));
    assert!(watch.check().is_ok(), "the breaker itself kept its bound");
    drop((end, admission, next, hung_end, hung_admission, hung));
    let _: Option<Failure> = None;
}
