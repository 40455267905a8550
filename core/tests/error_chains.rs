//! The error-chain rule, checked on every error value the core's wrappers can make: an
//! error either says its source's message in its own `Display`, or returns it from
//! `source()`, never both. Reporters that walk the chain (anyhow's `{:#}`, eyre, tracing's
//! error fields, `std::error::Report`) would otherwise print every message twice.

use std::error::Error;
use std::fmt;

use kompoz::breaker::{CallError, CircuitOpen, CircuitState};
use kompoz::limit::AcquireError;
use kompoz::rate::RateLimited;
use kompoz::time::Instant;
use kompoz::{Elapsed, Rejection};
use std::time::Duration;

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

/// What anyhow's `{:#}` prints: the chain's messages joined by `": "`.
fn report(error: &(dyn Error + 'static)) -> String {
    chain(error).join(": ")
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

/// A call's own error with a cause of its own, as most real errors have.
#[derive(Debug)]
struct QueryFailed(std::io::Error);

impl fmt::Display for QueryFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the query failed")
    }
}

impl Error for QueryFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

fn query_failed() -> QueryFailed {
    QueryFailed(std::io::Error::other("connection reset by peer"))
}

fn limited() -> RateLimited {
    RateLimited { earliest: Instant::from_nanos(2_000_000_000), wait: Duration::from_secs(1) }
}

/// Every rejection the core makes.
fn rejections() -> Vec<Rejection> {
    vec![
        Rejection::Limit(AcquireError::NoPermits),
        Rejection::Limit(AcquireError::WaitElapsed),
        Rejection::Limit(AcquireError::Closed),
        Rejection::Circuit(CircuitOpen { state: CircuitState::Open }),
        Rejection::Circuit(CircuitOpen { state: CircuitState::HalfOpen }),
        Rejection::Rate(limited()),
    ]
}

/// Every `kompoz::Error` over `inner`'s kind: the call's own error, a time limit, and each
/// rejection.
fn flat_errors<E>(inner: impl Fn() -> E) -> Vec<kompoz::Error<E>> {
    let mut errors = vec![kompoz::Error::Inner(inner()), kompoz::Error::TimedOut(Elapsed::new())];
    errors.extend(rejections().into_iter().map(kompoz::Error::Rejected));
    errors
}

/// Every `CallError` over `inner`'s kind.
fn call_errors<E>(inner: impl Fn() -> E) -> Vec<CallError<E>> {
    vec![
        CallError::Inner(inner()),
        CallError::Rejected(CircuitOpen { state: CircuitState::Open }),
        CallError::Rejected(CircuitOpen { state: CircuitState::HalfOpen }),
    ]
}

/// Every error value the core's wrappers make, alone and nested in each other (a breaker's
/// call inside a pipeline, a pipeline inside a breaker's call, a pipeline inside a
/// pipeline), over a call's error that has a cause of its own.
fn every_error() -> Vec<Box<dyn Error + Send + Sync>> {
    let mut all: Vec<Box<dyn Error + Send + Sync>> = Vec::new();
    all.extend(flat_errors(query_failed).into_iter().map(|e| Box::new(e) as _));
    all.extend(call_errors(query_failed).into_iter().map(|e| Box::new(e) as _));
    for outer in 0..call_errors(query_failed).len() {
        let nested = flat_errors(|| call_errors(query_failed).swap_remove(outer));
        all.extend(nested.into_iter().map(|e| Box::new(e) as _));
    }
    for outer in 0..flat_errors(query_failed).len() {
        let nested = call_errors(|| flat_errors(query_failed).swap_remove(outer));
        all.extend(nested.into_iter().map(|e| Box::new(e) as _));
        let nested = flat_errors(|| flat_errors(query_failed).swap_remove(outer));
        all.extend(nested.into_iter().map(|e| Box::new(e) as _));
    }
    all
}

#[test]
fn no_error_of_the_core_prints_a_message_twice_in_its_chain() {
    let all = every_error();
    assert_eq!(all.len(), 8 + 3 + 3 * 8 + 8 * 3 + 8 * 8);
    for error in &all {
        assert_no_repeats(&**error);
    }
}

#[test]
fn the_calls_own_error_is_transparent_however_deeply_wrapped() {
    let expected = ["the query failed", "connection reset by peer"];
    assert_eq!(chain(&query_failed()), expected);
    assert_eq!(chain(&kompoz::Error::Inner(query_failed())), expected);
    assert_eq!(chain(&CallError::Inner(query_failed())), expected);
    let deep = kompoz::Error::Inner(CallError::Inner(kompoz::Error::Inner(query_failed())));
    assert_eq!(chain(&deep), expected);
    assert_eq!(deep.to_string(), "the query failed");
}

#[test]
fn a_refusal_says_what_refused_and_its_source_says_why() {
    for rejection in rejections() {
        let error = kompoz::Error::<QueryFailed>::Rejected(rejection);
        // The whole chain reads as the rejection's own message, once.
        assert_eq!(report(&error), rejection.to_string());
        assert!(error.to_string().starts_with("rejected by a "), "{error}");
        // The refusal's own error is in the chain, for whoever downcasts.
        let cause = error.source().expect("a rejection has its refusal as source");
        let found = match rejection {
            Rejection::Limit(refused) => cause.downcast_ref::<AcquireError>() == Some(&refused),
            Rejection::Circuit(open) => cause.downcast_ref::<CircuitOpen>() == Some(&open),
            Rejection::Rate(limited) => cause.downcast_ref::<RateLimited>() == Some(&limited),
            _ => false,
        };
        assert!(found, "{rejection:?}: the source is {cause:?}");
    }
    let timed_out = kompoz::Error::<QueryFailed>::TimedOut(Elapsed::new());
    assert_eq!(
        chain(&timed_out),
        ["the call timed out", "the time limit passed before the operation completed"]
    );
    assert!(timed_out.source().is_some_and(|cause| cause.is::<Elapsed>()));
    let open = CallError::<QueryFailed>::Rejected(CircuitOpen { state: CircuitState::Open });
    assert_eq!(
        chain(&open),
        ["rejected by a circuit breaker", "call rejected: the circuit is open"]
    );
    assert!(open.source().is_some_and(|cause| cause.is::<CircuitOpen>()));
}

#[test]
fn a_refusal_inside_wrappers_is_one_entry_and_its_cause() {
    let open = CircuitOpen { state: CircuitState::Open };
    let nested = kompoz::Error::Inner(CallError::<QueryFailed>::Rejected(open));
    assert_eq!(
        chain(&nested),
        ["rejected by a circuit breaker", "call rejected: the circuit is open"]
    );
    let shed: kompoz::Error<QueryFailed> = Rejection::Limit(AcquireError::NoPermits).into();
    let nested = CallError::Inner(kompoz::Error::Inner(shed));
    assert_eq!(chain(&nested), ["rejected by a concurrency limit", "no permit is free"]);
    assert!(nested.source().is_some_and(|cause| cause.is::<AcquireError>()));
}
