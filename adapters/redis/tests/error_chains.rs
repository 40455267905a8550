//! The error-chain rule, checked on every error value kompoz-redis can make: an error either
//! says its source's message in its own `Display`, or returns it from `source()`, never
//! both (so anyhow's `{:#}`, eyre, tracing's error fields and `std::error::Report` print
//! each message once). kompoz-redis's errors say everything in their own message and have
//! no source; its tower layers fail with kompoz-tower's errors, whose refusals
//! `kompoz_tower::rejection` still finds. No Redis server is needed: the values are made
//! directly.

use std::error::Error;
use std::time::Duration;

use kompoz::Elapsed;
use kompoz::breaker::{CallError, CircuitOpen, CircuitState};
use kompoz::rate::{ExceedsBurst, KeyedError, RateLimited, TooManyKeys};
use kompoz_redis::limit::AcquireError;
use kompoz_redis::rate::RateError;
use kompoz_redis::tower::{ConcurrencyError, RateLimitError};
use kompoz_redis::{ConfigError, Unreachable};
use kompoz_tower::{Rejection, TimeoutError, rejection};
use tower::BoxError;

/// The messages of `error` and of its `source()` chain, from the outside in.
fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut links = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        links.push(error.to_string());
        next = error.source();
    }
    links
}

/// No entry of the chain says the message of an entry further down (so none is printed
/// twice), and no entry is empty (an empty message says nothing, and is in every other).
fn assert_no_repeats(error: &(dyn Error + 'static)) {
    let links = chain(error);
    for (at, outer) in links.iter().enumerate() {
        assert!(!outer.is_empty(), "entry {at} of {links:?} is empty");
        for inner in &links[at + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "{outer:?} repeats {inner:?}, which is further down its chain {links:?}"
            );
        }
    }
}

fn limited() -> RateLimited {
    RateLimited { earliest: kompoz::Instant::from_nanos(5_000_000), wait: Duration::from_millis(5) }
}

/// What Redis (or the connection) returns: an I/O error (which `redis` wraps as its own
/// message *and* its source), and an error of Redis's own.
fn redis_errors() -> Vec<redis::RedisError> {
    vec![
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer").into(),
        (redis::ErrorKind::Io, "the connection was dropped", "after 3 retries".to_string()).into(),
    ]
}

/// Every error value of kompoz-redis's own types.
fn own_errors() -> Vec<Box<dyn Error + Send + Sync>> {
    let mut all: Vec<Box<dyn Error + Send + Sync>> = vec![
        Box::new(ConfigError::Zero { field: "capacity" }),
        Box::new(ConfigError::TooLarge { field: "capacity", value: 1 << 60, max: 1 << 53 }),
        Box::new(ConfigError::LeaseTooShort {
            lease_time: Duration::from_secs(1),
            call_timeout: Duration::from_secs(1),
        }),
        Box::new(ConfigError::InvalidName { field: "name", value: "a b".into() }),
        Box::new(ConfigError::InvalidUrl { reason: "relative URL without a base".into() }),
        Box::new(ConfigError::NoRuntime),
        Box::new(Unreachable::Down),
        Box::new(Unreachable::TimedOut(Duration::from_millis(250))),
        Box::new(AcquireError::NoPermits),
        Box::new(AcquireError::WaitElapsed),
        Box::new(AcquireError::Unavailable),
        Box::new(RateError::Limited(limited())),
        Box::new(RateError::ExceedsBurst(ExceedsBurst { cells: 9, burst: 4 })),
        Box::new(RateError::TooManyKeys(TooManyKeys { max_keys: 1024 })),
        Box::new(RateError::Unavailable),
    ];
    all.extend(redis_errors().into_iter().map(|e| Box::new(Unreachable::Redis(e)) as _));
    all
}

#[test]
fn no_error_of_kompoz_redis_prints_a_message_twice_in_its_chain() {
    let all = own_errors();
    assert_eq!(all.len(), 17);
    for error in &all {
        assert_no_repeats(&**error);
    }
}

#[test]
fn a_failed_redis_call_says_redis_s_message_once_and_ends_the_chain() {
    for redis in redis_errors() {
        let said = redis.to_string();
        let failed = Unreachable::Redis(redis);
        assert_eq!(chain(&failed), [format!("Redis call failed: {said}")]);
    }
    let reset = Unreachable::Redis(redis_errors().swap_remove(0));
    assert_eq!(reset.to_string(), "Redis call failed: connection reset by peer");
}

/// The fleet-wide layers' errors, alone, under a kompoz-tower layer and boxed, with the
/// rejection `rejection` must find in each.
fn layer_errors() -> Vec<(Option<Rejection>, BoxError)> {
    let mut all: Vec<(Option<Rejection>, BoxError)> = Vec::new();
    let failed = || std::io::Error::other("the service failed");
    for fleet in [AcquireError::NoPermits, AcquireError::WaitElapsed, AcquireError::Unavailable] {
        // As the fleet limit's layer refuses: kompoz's `AcquireError`, from the fleet's.
        let refused = kompoz::limit::AcquireError::from(fleet);
        let expected = Some(Rejection::Limit(refused));
        all.push((expected, ConcurrencyError::<std::io::Error>::Rejected(refused).into()));
        let nested = CallError::Inner(ConcurrencyError::<std::io::Error>::Rejected(refused));
        all.push((expected, nested.into()));
    }
    for refused in [
        KeyedError::RateLimited(limited()),
        KeyedError::ExceedsBurst(ExceedsBurst { cells: 9, burst: 4 }),
        KeyedError::TooManyKeys(TooManyKeys { max_keys: 1024 }),
    ] {
        let expected = Some(Rejection::Rate(refused));
        all.push((expected, RateLimitError::<std::io::Error>::Rejected(refused).into()));
        let nested = TimeoutError::Inner(RateLimitError::<std::io::Error>::Rejected(refused));
        all.push((expected, nested.into()));
    }
    for state in [CircuitState::Open, CircuitState::HalfOpen] {
        let open = CircuitOpen { state };
        let expected = Some(Rejection::Circuit(open));
        all.push((expected, CallError::<std::io::Error>::Rejected(open).into()));
        let nested = RateLimitError::Inner(CallError::<std::io::Error>::Rejected(open));
        all.push((expected, nested.into()));
    }
    let elapsed = Some(Rejection::TimedOut(Elapsed::new()));
    let nested = CallError::Inner(TimeoutError::<std::io::Error>::Elapsed(Elapsed::new()));
    all.push((elapsed, nested.into()));
    let stack = CallError::Inner(RateLimitError::Inner(ConcurrencyError::Inner(failed())));
    all.push((None, stack.into()));
    all
}

#[test]
fn the_fleet_layers_errors_print_each_message_once_and_rejection_finds_their_refusals() {
    let all = layer_errors();
    assert_eq!(all.len(), 6 + 6 + 4 + 2);
    for (expected, error) in &all {
        assert_no_repeats(&**error);
        assert_eq!(rejection(&**error), *expected, "{:?}", chain(&**error));
    }
    let (_, failed) = all.last().expect("the service's own error is last");
    assert_eq!(chain(&**failed), ["the service failed"]);
}
