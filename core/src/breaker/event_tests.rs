//! Unit tests of what a breaker reports: its name, its events and their order.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use super::*;
use crate::Rejection;
use crate::events::{Event, EventKind, Listener, Primitive};
use crate::time::ManualClock;

const SECOND: Duration = Duration::from_secs(1);

use CircuitState::{Closed, HalfOpen, Open};

/// Keeps every event it hears, as (name, what).
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, EventKind)>>>);

impl Listener for Recorded {
    fn on_event(&self, event: &Event<'_>) {
        assert_eq!(event.source.primitive, Primitive::Breaker);
        self.0.lock().unwrap().push((event.source.name.to_string(), event.kind));
    }
}

impl Recorded {
    fn take(&self) -> Vec<(String, EventKind)> {
        core::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn transition(from: CircuitState, to: CircuitState) -> EventKind {
    EventKind::Transition { from, to }
}

fn rejected(state: CircuitState) -> EventKind {
    EventKind::Rejected(Rejection::Circuit(CircuitOpen { state }))
}

fn named(name: &str, kind: EventKind) -> (String, EventKind) {
    (name.to_string(), kind)
}

#[test]
fn a_named_breaker_reports_each_transition_and_rejection_with_its_name() {
    let clock = ManualClock::new();
    let recorded = Recorded::default();
    let b = BreakerBuilder::new()
        .name("payments")
        .failure_threshold(2)
        .recovery_timeout(SECOND)
        .listener(recorded.clone())
        .build_with(clock.clone())
        .unwrap();
    let _ = b.try_acquire().unwrap(); // admitted and abandoned while closed
    b.try_acquire().unwrap().success();
    b.try_acquire().unwrap().failure();
    assert_eq!(recorded.take(), [], "nothing while closed, a failure below the threshold included");

    b.try_acquire().unwrap().failure();
    assert_eq!(b.try_acquire().unwrap_err().state, Open);
    assert_eq!(
        recorded.take(),
        [named("payments", transition(Closed, Open)), named("payments", rejected(Open))]
    );

    clock.advance(SECOND);
    let probe = b.try_acquire().unwrap();
    assert_eq!(b.try_acquire().unwrap_err().state, HalfOpen, "its only probe slot is taken");
    probe.success();
    b.try_acquire().unwrap().success();
    assert_eq!(
        recorded.take(),
        [
            named("payments", transition(Open, HalfOpen)),
            named("payments", rejected(HalfOpen)),
            named("payments", transition(HalfOpen, Closed)),
        ]
    );
    b.force_open();
    b.force_open(); // already open: no transition
    b.reset();
    assert_eq!(
        recorded.take(),
        [named("payments", transition(Closed, Open)), named("payments", transition(Open, Closed))]
    );
}

#[test]
fn an_unnamed_breaker_reports_with_an_empty_name_and_a_plain_one_has_no_extras() {
    let recorded = Recorded::default();
    let b =
        BreakerBuilder::new().listener(recorded.clone()).build_with(ManualClock::new()).unwrap();
    b.force_open();
    assert!(b.try_acquire().is_err());
    assert_eq!(recorded.take(), [named("", transition(Closed, Open)), named("", rejected(Open))]);
    assert_eq!(b.name(), None);
    let plain = BreakerBuilder::new().build_with(ManualClock::new()).unwrap();
    assert!(plain.cold.extras.is_none(), "nothing given, nothing boxed");
    let only_named = BreakerBuilder::new().name("db").build_with(ManualClock::new()).unwrap();
    assert_eq!(only_named.name(), Some("db"));
    assert!(format!("{only_named:?}").starts_with("CircuitBreaker { name: \"db\""));
    assert!(!format!("{plain:?}").contains("name"));
}

#[test]
fn the_event_comes_before_on_state_change_even_when_the_callback_calls_back() {
    let recorded = Recorded::default();
    let order = recorded.clone();
    let b = Arc::new_cyclic(|weak: &alloc::sync::Weak<CircuitBreaker<ManualClock>>| {
        let again = weak.clone();
        BreakerBuilder::new()
            .name("db")
            .listener(recorded.clone())
            .on_state_change(move |old, new, _| {
                order.0.lock().unwrap().push(("callback".to_string(), transition(old, new)));
                if new == Open {
                    again.upgrade().expect("alive").reset(); // a nested transition
                }
            })
            .build_with(ManualClock::new())
            .unwrap()
    });
    b.force_open();
    assert_eq!(
        recorded.take(),
        [
            named("db", transition(Closed, Open)),
            named("callback", transition(Closed, Open)),
            named("db", transition(Open, Closed)),
            named("callback", transition(Open, Closed)),
        ]
    );
    assert_eq!(b.state(), Closed);
}

#[test]
fn a_panicking_listener_leaves_the_breaker_consistent() {
    let clock = ManualClock::new();
    let b = BreakerBuilder::new()
        .failure_threshold(1)
        .recovery_timeout(SECOND)
        .listener(|event: &Event<'_>| {
            if event.kind == transition(Open, HalfOpen)
                || matches!(event.kind, EventKind::Rejected(_))
            {
                panic!("the listener failed");
            }
        })
        .build_with(clock.clone())
        .unwrap();
    b.try_acquire().unwrap().failure();
    let refused = catch_unwind(AssertUnwindSafe(|| b.try_acquire().map(drop)));
    assert!(refused.is_err(), "the listener's panic reaches the caller");
    assert_eq!((b.state(), b.stats().rejected_calls), (Open, 1), "the rejection was counted");

    clock.advance(SECOND);
    let probing = catch_unwind(AssertUnwindSafe(|| b.try_acquire().map(drop)));
    assert!(probing.is_err());
    let stats = b.stats();
    assert_eq!(stats.state, HalfOpen, "the transition was committed before the event");
    assert_eq!(stats.total_failures, 1, "the panic is not a failure");
    assert_eq!(stats.probes_in_flight, 0, "and the probe it interrupted gave its slot back");
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), Closed);
}

#[test]
fn a_map_names_its_breakers_after_their_keys_and_shares_the_template_listener() {
    let recorded = Recorded::default();
    let per_host = BreakerMap::builder(
        BreakerBuilder::new().name("unused").failure_threshold(1).listener(recorded.clone()),
    )
    .name_with(|host: &&str| format!("host:{host}"))
    .build()
    .unwrap();
    per_host.get(&"a").try_acquire().unwrap().failure();
    per_host.get(&"b").try_acquire().unwrap().failure();
    assert_eq!(
        recorded.take(),
        [named("host:a", transition(Closed, Open)), named("host:b", transition(Closed, Open))]
    );
    assert_eq!(per_host.get(&"a").name(), Some("host:a"));

    let shared = BreakerMap::builder(BreakerBuilder::new().name("fleet")).build().unwrap();
    assert_eq!(shared.get(&1_u8).name(), Some("fleet"), "without name_with: the template's");
    let plain = BreakerMap::builder(BreakerBuilder::new()).build().unwrap();
    assert_eq!(plain.get(&1_u8).name(), None);
}
