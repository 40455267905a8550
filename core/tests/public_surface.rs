//! The small parts of the public surface that the behaviour tests do not reach: messages,
//! accessors, `Debug` output and the ways a breaker or a semaphore can be held.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use kompoz::breaker::{BreakerError, CallError, CircuitBreaker, CircuitOpen, CircuitState};
use kompoz::limit::{FixedRegistry, Registry, Semaphore};
use kompoz::{
    AsyncCombinator, ManualClock, Outcome, Rejection, async_rule, circuit_breaker, limited,
    limited_on, with_timeout, with_timeout_on,
};

#[test]
fn breaker_messages_name_the_state_and_the_cause() {
    assert_eq!(CircuitState::HalfOpen.to_string(), "half-open");
    assert_eq!(CircuitState::Closed.to_string(), "closed");
    let half_open = CircuitOpen { state: CircuitState::HalfOpen };
    assert_eq!(
        half_open.to_string(),
        "call rejected: the circuit is half-open and its probe slots are taken"
    );
    let inner: CallError<std::io::Error> = CallError::Inner(std::io::Error::other("refused"));
    assert_eq!(inner.to_string(), "refused");
    // Transparent: the I/O error is this entry of the chain, and it has no source.
    assert!(inner.source().is_none() && !inner.is_rejected());
    assert_eq!(inner.into_inner().map(|e| e.to_string()), Some("refused".to_string()));
    let rejected: CallError<std::io::Error> = CallError::Rejected(half_open);
    assert_eq!(rejected.to_string(), "rejected by a circuit breaker");
    assert!(rejected.source().unwrap().to_string().contains("half-open"));
    assert!(rejected.into_inner().is_none());
    let error: &dyn Error = &BreakerError::Zero { field: "success_threshold" };
    assert_eq!(error.to_string(), "success_threshold must be at least 1, got 0");
    let rejection = Rejection::Circuit(CircuitOpen { state: CircuitState::Open });
    assert_eq!(
        rejection.to_string(),
        "rejected by a circuit breaker: call rejected: the circuit is open"
    );
}

#[test]
fn a_breaker_can_be_owned_borrowed_boxed_or_shared() {
    let rule = async_rule(async |n: &mut i32| *n > 0);
    let shared = Arc::new(CircuitBreaker::builder().failure_threshold(1).build().unwrap());
    let by_arc = circuit_breaker(rule, shared.clone());
    let by_box = circuit_breaker(rule, Box::new(CircuitBreaker::builder().build().unwrap()));
    assert!(block_on(by_arc.run(&mut 1)));
    assert!(block_on(by_box.run(&mut 1)));
    assert!(!block_on(by_arc.run(&mut -1)));
    assert_eq!(shared.state(), CircuitState::Open, "the Arc'd breaker is the shared one");
    assert!(block_on(by_arc.inner().run(&mut 1)), "the inner rule runs unguarded");
    assert!(format!("{by_arc:?}").contains("Protected") && format!("{by_arc:?}").contains("Open"));
    by_arc.reset();
    assert_eq!(by_arc.stats().state, CircuitState::Closed);
    assert_eq!(shared.recovery_timeout(), Duration::from_secs(30));
    let _clock: &kompoz::StdClock = shared.clock();
}

#[test]
fn with_timeout_exposes_its_parts_and_the_std_timer_works() {
    let rule = async_rule(async |n: &mut i32| *n > 0);
    let guarded = with_timeout(rule, Duration::from_millis(200));
    assert_eq!(guarded.duration(), Duration::from_millis(200));
    assert!(block_on(guarded.inner().run(&mut 1)));
    assert_eq!(block_on(guarded.run_detailed(&mut 1)), Outcome::Passed);
    assert!(format!("{guarded:?}").contains("200ms"));
    let on_manual = with_timeout_on(ManualClock::new(), rule, Duration::from_secs(1));
    assert!(format!("{on_manual:?}").starts_with("WithTimeout"));
}

#[test]
fn limits_can_use_any_semaphore_handle_and_show_their_state() {
    let rule = async_rule(async |_: &mut ()| true);
    let shared = Arc::new(Semaphore::new(2).unwrap());
    let by_arc = limited_on(rule, shared.clone());
    let by_ref = limited_on(rule, &*shared);
    assert!(block_on(by_arc.run(&mut ())) && block_on(by_ref.run(&mut ())));
    assert_eq!(shared.stats().total_acquired, 2);
    assert!(block_on(by_ref.inner().run(&mut ())));
    let owned = limited(rule, 3).unwrap();
    assert!(format!("{owned:?}").contains("capacity: 3"));
    assert!(format!("{:?}", shared.try_acquire().unwrap()).starts_with("Permit"));
    assert!(format!("{:?}", shared.acquire()).contains("queued: false"));
}

#[test]
fn registries_report_their_contents() {
    let registry = Registry::default();
    assert!(registry.is_empty());
    registry.get_or_create("db", 4).unwrap();
    assert_eq!(format!("{registry:?}"), r#"{"db": 4}"#);
    let fixed: FixedRegistry<2> = FixedRegistry::default();
    fixed.get_or_create("spi", 1).unwrap();
    assert_eq!(format!("{fixed:?}"), r#"{"spi": 1}"#);
    assert!(fixed.get("spi").is_some() && fixed.get("i2c").is_none());
}
