use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;
use std::sync::Mutex;

use super::*;
use crate::breaker::CircuitOpen;
use crate::limit::AcquireError;

/// Keeps every event it hears, as (kind, name, what).
#[derive(Default)]
struct Recorded(Mutex<Vec<(Primitive, String, EventKind)>>);

impl Listener for Recorded {
    fn on_event(&self, event: &Event<'_>) {
        let mut events = self.0.lock().unwrap();
        events.push((event.source.primitive, event.source.name.to_string(), event.kind));
    }
}

fn event(primitive: Primitive, name: &str, kind: EventKind) -> Event<'_> {
    Event { source: Source { primitive, name }, kind }
}

#[test]
fn emit_tells_the_listener_and_tolerates_none() {
    let recorded = Recorded::default();
    let opened = EventKind::Transition { from: CircuitState::Closed, to: CircuitState::Open };
    emit(Some(&recorded), &event(Primitive::Breaker, "db", opened));
    emit(None, &event(Primitive::Breaker, "db", opened));
    assert_eq!(*recorded.0.lock().unwrap(), [(Primitive::Breaker, "db".to_string(), opened)]);
}

#[test]
fn a_pair_of_listeners_tells_both_in_order() {
    let order = Mutex::new(Vec::new());
    let first = |_: &Event<'_>| order.lock().unwrap().push(1);
    let second = |_: &Event<'_>| order.lock().unwrap().push(2);
    (first, second).on_event(&event(Primitive::Limit, "", EventKind::WaitStarted));
    assert_eq!(*order.lock().unwrap(), [1, 2]);
}

#[test]
fn every_rejection_has_a_one_word_cause() {
    let open = |state| Rejection::Circuit(CircuitOpen { state });
    assert_eq!(cause(&open(CircuitState::Open)), "open");
    assert_eq!(cause(&open(CircuitState::HalfOpen)), "half_open");
    assert_eq!(cause(&Rejection::Limit(AcquireError::NoPermits)), "no_permits");
    assert_eq!(cause(&Rejection::Limit(AcquireError::WaitElapsed)), "wait_elapsed");
    assert_eq!(cause(&Rejection::Limit(AcquireError::Closed)), "closed");
}

#[test]
fn enabled_only_with_a_listener_unless_an_integration_is_compiled_in() {
    let integrations = cfg!(any(feature = "tracing", feature = "metrics"));
    assert_eq!(enabled(None), integrations);
    assert!(enabled(Some(&NoListener)));
    assert_eq!(Primitive::Limit.to_string(), "limit");
    let _ = Duration::ZERO;
}

#[cfg(feature = "tracing")]
mod tracing_events {
    use super::*;
    use ::tracing::field::{Field, Visit};
    use ::tracing::span::{Attributes, Id, Record};
    use ::tracing::{Level, Metadata, Subscriber};
    use std::sync::Arc;

    /// A subscriber that keeps each event's level and its `name` and `cause` fields.
    #[derive(Default)]
    struct Kept(Arc<Mutex<Vec<(Level, String, String)>>>);

    struct Fields(String, String);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "name" => self.0 = value.to_string(),
                "cause" => self.1 = value.to_string(),
                _ => {}
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn core::fmt::Debug) {}
    }

    impl Subscriber for Kept {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &::tracing::Event<'_>) {
            let mut fields = Fields(String::new(), String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push((*event.metadata().level(), fields.0, fields.1));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// The levels of the events a retried call (3 attempts, all failing) reports.
    fn kept_retries() -> Vec<Level> {
        use crate::retry::RetryPolicy;
        let kept = Kept::default();
        let events = kept.0.clone();
        let clock = crate::ManualClock::new();
        let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
        ::tracing::subscriber::with_default(kept, || {
            let retried = policy.retry(&clock, || async { Err::<(), _>("refused") });
            assert_eq!(futures::executor::block_on(retried), Err("refused"));
        });
        let events = events.lock().unwrap();
        events.iter().map(|event| event.0).collect()
    }

    #[test]
    fn a_semaphore_reports_refusals_waits_and_closes() {
        use alloc::boxed::Box;
        use core::future::Future;
        let kept = Kept::default();
        let events = kept.0.clone();
        ::tracing::subscriber::with_default(kept, || {
            let semaphore = crate::Semaphore::new(1).unwrap();
            let held = semaphore.try_acquire().unwrap(); // free: nothing reported
            assert!(semaphore.try_acquire().is_err()); // refused
            let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
            let mut waiting = core::pin::pin!(semaphore.acquire());
            assert!(waiting.as_mut().poll(&mut cx).is_pending()); // queued
            drop(held);
            let granted = waiting.as_mut().poll(&mut cx); // granted after a wait
            assert!(matches!(granted, core::task::Poll::Ready(Ok(_))));
            let mut second = Box::pin(semaphore.acquire());
            assert!(second.as_mut().poll(&mut cx).is_pending()); // queued
            semaphore.close(); // refused by the close
            assert!(second.as_mut().poll(&mut cx).is_ready());
        });
        let events = events.lock().unwrap();
        let seen: Vec<_> = events.iter().map(|e| (e.0, e.2.as_str())).collect();
        assert_eq!(
            seen,
            [
                (Level::DEBUG, "no_permits"),
                (Level::TRACE, ""),
                (Level::TRACE, ""),
                (Level::TRACE, ""),
                (Level::DEBUG, "closed"),
            ]
        );
    }

    #[test]
    fn a_rate_limiter_reports_its_refusals() {
        use crate::rate::{KeyedRateLimiter, Quota, RateLimiter};
        let kept = Kept::default();
        let events = kept.0.clone();
        ::tracing::subscriber::with_default(kept, || {
            let clock = crate::ManualClock::new();
            let direct =
                RateLimiter::new(Quota::per_second(1).unwrap(), clock.clone()).with_name("api");
            assert!(direct.check().is_ok()); // admitted: nothing reported
            assert!(direct.check().is_err());
            let keyed =
                KeyedRateLimiter::new(Quota::per_second(1).unwrap(), clock).with_name("clients");
            assert!(keyed.check(&7).is_ok());
            assert!(keyed.check(&7).is_err());
        });
        let events = events.lock().unwrap();
        let seen: Vec<_> = events.iter().map(|e| (e.0, e.1.as_str(), e.2.as_str())).collect();
        assert_eq!(
            seen,
            [(Level::DEBUG, "api", "rate_limited"), (Level::DEBUG, "clients", "rate_limited")]
        );
    }

    #[test]
    fn a_named_breaker_traces_its_transitions_and_rejections_with_its_name() {
        let kept = Kept::default();
        let events = kept.0.clone();
        ::tracing::subscriber::with_default(kept, || {
            let breaker = crate::breaker::BreakerBuilder::new()
                .name("payments")
                .failure_threshold(1)
                .build_with(crate::ManualClock::new())
                .unwrap();
            breaker.try_acquire().unwrap().success(); // nothing per successful call
            breaker.try_acquire().unwrap().failure();
            assert!(breaker.try_acquire().is_err());
            breaker.reset();
        });
        let events = events.lock().unwrap();
        let seen: Vec<_> = events.iter().map(|e| (e.0, e.1.as_str(), e.2.as_str())).collect();
        assert_eq!(
            seen,
            [
                (Level::WARN, "payments", ""),
                (Level::DEBUG, "payments", "open"),
                (Level::INFO, "payments", ""),
            ]
        );
    }

    #[test]
    fn events_are_traced_at_levels_that_say_how_much_they_matter() {
        let kept = Kept::default();
        let events = kept.0.clone();
        ::tracing::subscriber::with_default(kept, || {
            let to = |from, to| EventKind::Transition { from, to };
            emit(
                None,
                &event(Primitive::Breaker, "db", to(CircuitState::Closed, CircuitState::Open)),
            );
            emit(
                None,
                &event(Primitive::Breaker, "db", to(CircuitState::Open, CircuitState::HalfOpen)),
            );
            let shed = EventKind::Rejected(Rejection::Limit(AcquireError::NoPermits));
            emit(None, &event(Primitive::Limit, "pool", shed));
            emit(None, &event(Primitive::Limit, "pool", EventKind::PermitReleased));
        });
        // A real retry reports each retry at DEBUG, from the retry's own step.
        let retries = kept_retries();
        let events = events.lock().unwrap();
        let levels: Vec<_> = events.iter().map(|e| (e.0, e.1.as_str(), e.2.as_str())).collect();
        assert_eq!(retries, [Level::DEBUG, Level::DEBUG]);
        assert_eq!(
            levels,
            [
                (Level::WARN, "db", ""),
                (Level::INFO, "db", ""),
                (Level::DEBUG, "pool", "no_permits"),
            ],
            "a released permit is not traced"
        );
    }
}

#[cfg(feature = "metrics")]
mod metrics_events {
    use super::*;
    use ::metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };
    use std::sync::Arc;

    /// A recorder that keeps every counter's and gauge's last value by its rendered key.
    #[derive(Clone, Default)]
    struct Values(Arc<Mutex<Vec<(String, f64)>>>);

    struct Cell(String, Values, bool);

    impl Cell {
        fn set(&self, value: impl Fn(f64) -> f64) {
            let mut values = (self.1).0.lock().unwrap();
            match values.iter_mut().find(|(key, _)| *key == self.0) {
                Some((_, old)) => *old = value(*old),
                None => values.push((self.0.clone(), value(0.0))),
            }
        }
    }

    impl CounterFn for Cell {
        fn increment(&self, by: u64) {
            self.set(|old| old + by as f64);
        }
        fn absolute(&self, value: u64) {
            self.set(|_| value as f64);
        }
    }

    impl GaugeFn for Cell {
        fn increment(&self, by: f64) {
            self.set(|old| old + by);
        }
        fn decrement(&self, by: f64) {
            self.set(|old| old - by);
        }
        fn set(&self, value: f64) {
            Cell::set(self, |_| value);
        }
    }

    impl HistogramFn for Cell {
        fn record(&self, value: f64) {
            let _ = self.2;
            self.set(|old| old + value);
        }
    }

    fn render(key: &Key) -> String {
        let mut labels: Vec<String> =
            key.labels().map(|l| alloc::format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        alloc::format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Values {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Cell(render(key), self.clone(), false)))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Cell(render(key), self.clone(), false)))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Cell(render(key), self.clone(), true)))
        }
    }

    impl Values {
        fn get(&self, key: &str) -> Option<f64> {
            self.0.lock().unwrap().iter().find(|(k, _)| k == key).map(|(_, v)| *v)
        }
    }

    #[test]
    fn events_and_stats_become_prometheus_style_metrics() {
        let values = Values::default();
        let name = "metrics-unit-test";
        ::metrics::with_local_recorder(&values, || {
            crate::events::metrics::enable();
            crate::events::metrics::forget_handles();
            let opened =
                EventKind::Transition { from: CircuitState::Closed, to: CircuitState::Open };
            for _ in 0..2 {
                emit(None, &event(Primitive::Breaker, name, opened));
            }
            let open = Rejection::Circuit(CircuitOpen { state: CircuitState::Open });
            emit(None, &event(Primitive::Breaker, name, EventKind::Rejected(open)));
            let waited = EventKind::PermitAcquired { waited: Some(Duration::from_millis(250)) };
            emit(None, &event(Primitive::Limit, name, waited));
            let breaker = crate::CircuitBreaker::builder().build().unwrap();
            breaker.try_acquire().unwrap().success();
            crate::events::metrics::record_breaker_stats(name, &breaker.stats());
            let pool = crate::Semaphore::new(3).unwrap();
            let _held = pool.try_acquire().unwrap();
            crate::events::metrics::record_limit_stats(name, &pool.stats());
        });
        // A named breaker and a named rate limiter report on their own, under their names.
        let named = "metrics-unit-test-breaker";
        let clock = crate::ManualClock::new();
        ::metrics::with_local_recorder(&values, || {
            let breaker = crate::breaker::BreakerBuilder::new()
                .name(named)
                .failure_threshold(1)
                .recovery_timeout(Duration::from_secs(1))
                .build_with(clock.clone())
                .unwrap();
            breaker.try_acquire().unwrap().success(); // closed success: nothing
            breaker.try_acquire().unwrap().failure(); // closed -> open
            assert!(breaker.try_acquire().is_err()); // rejected
            clock.advance(Duration::from_secs(1));
            breaker.try_acquire().unwrap().success(); // open -> half-open -> closed
            let limiter = crate::rate::RateLimiter::new(
                crate::rate::Quota::per_second(1).unwrap(),
                clock.clone(),
            )
            .with_name(named);
            assert!(limiter.check().is_ok());
            assert!(limiter.check().is_err());
        });
        let transitions = |from: &str, to: &str| {
            values.get(&alloc::format!(
                "kompoz_breaker_transitions_total{{from={from},name={named},to={to}}}"
            ))
        };
        assert_eq!(transitions("closed", "open"), Some(1.0));
        assert_eq!(transitions("open", "half_open"), Some(1.0));
        assert_eq!(transitions("half_open", "closed"), Some(1.0));
        assert_eq!(values.get(&alloc::format!("kompoz_breaker_state{{name={named}}}")), Some(0.0));
        assert_eq!(
            values.get(&alloc::format!(
                "kompoz_rejections_total{{cause=open,name={named},primitive=breaker}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            values.get(&alloc::format!(
                "kompoz_rejections_total{{cause=rate_limited,name={named},primitive=rate_limiter}}"
            )),
            Some(1.0)
        );

        let key = |rest: &str| rest.replace("NAME", name);
        assert_eq!(
            values.get(&key("kompoz_breaker_transitions_total{from=closed,name=NAME,to=open}")),
            Some(2.0)
        );
        assert_eq!(values.get(&key("kompoz_breaker_state{name=NAME}")), Some(0.0));
        assert_eq!(
            values.get(&key("kompoz_rejections_total{cause=open,name=NAME,primitive=breaker}")),
            Some(1.0)
        );
        assert_eq!(values.get(&key("kompoz_limit_wait_seconds{name=NAME}")), Some(0.25));
        assert_eq!(
            values.get(&key("kompoz_breaker_calls_total{name=NAME,outcome=success}")),
            Some(1.0)
        );
        assert_eq!(values.get(&key("kompoz_limit_permits_in_use{name=NAME}")), Some(1.0));
        assert_eq!(values.get(&key("kompoz_limit_permits{name=NAME}")), Some(3.0));
        assert!(crate::events::metrics::cached(name) > 0, "handles are kept");
    }
}
