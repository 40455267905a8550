//! The error-chain rule, checked on every error value the layers can make, nested in each
//! other up to four layers deep and boxed into `tower::BoxError`: an error either says its
//! source's message in its own `Display`, or returns it from `source()`, never both (so
//! anyhow's `{:#}`, eyre, tracing's error fields and `std::error::Report` print each
//! message once). And [`rejection`] still finds the refusal through every layer.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use kompoz::breaker::{CallError, CircuitOpen, CircuitState};
use kompoz::limit::AcquireError;
use kompoz::rate::{ExceedsBurst, KeyedError, RateLimited, TooManyKeys};
use kompoz::{Elapsed, Instant};
use kompoz_tower::{
    ConcurrencyError, PipelineError, RateLimitError, Rejection, TimeoutError, rejection,
};
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

/// The inner service's own error, with a cause of its own, as most real errors have.
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

const QUERY_CHAIN: [&str; 2] = ["the query failed", "connection reset by peer"];

fn limited() -> RateLimited {
    RateLimited { earliest: Instant::from_nanos(2_000_000_000), wait: Duration::from_secs(1) }
}

/// An error a stack can return, boxed, with the rejection `rejection` must find in it.
type Case = (Option<Rejection>, BoxError);

/// Each layer's error wrapping `make()`'s as its inner service's error.
fn one_layer<E: Error + Send + Sync + 'static>(
    make: &dyn Fn() -> E,
    expected: Option<Rejection>,
    out: &mut Vec<Case>,
) {
    out.push((expected, TimeoutError::Inner(make()).into()));
    out.push((expected, ConcurrencyError::Inner(make()).into()));
    out.push((expected, RateLimitError::Inner(make()).into()));
    out.push((expected, CallError::Inner(make()).into()));
    out.push((expected, PipelineError(kompoz::Error::Inner(make())).into()));
}

/// `make()`'s error under every pair of layers.
fn two_layers<E: Error + Send + Sync + 'static>(
    make: &dyn Fn() -> E,
    expected: Option<Rejection>,
    out: &mut Vec<Case>,
) {
    one_layer(&|| TimeoutError::Inner(make()), expected, out);
    one_layer(&|| ConcurrencyError::Inner(make()), expected, out);
    one_layer(&|| RateLimitError::Inner(make()), expected, out);
    one_layer(&|| CallError::Inner(make()), expected, out);
    one_layer(&|| PipelineError(kompoz::Error::Inner(make())), expected, out);
}

/// `make()`'s error alone and under one, two or three layers, in every order.
fn up_to_three_layers<E: Error + Send + Sync + 'static>(
    make: &dyn Fn() -> E,
    expected: Option<Rejection>,
    out: &mut Vec<Case>,
) {
    out.push((expected, make().into()));
    one_layer(make, expected, out);
    two_layers(make, expected, out);
    two_layers(&|| TimeoutError::Inner(make()), expected, out);
    two_layers(&|| ConcurrencyError::Inner(make()), expected, out);
    two_layers(&|| RateLimitError::Inner(make()), expected, out);
    two_layers(&|| CallError::Inner(make()), expected, out);
    two_layers(&|| PipelineError(kompoz::Error::Inner(make())), expected, out);
}

/// Every error value the layers can make, wrapped by every stack of up to three more
/// layers: the inner service's own error, and each layer's every refusal.
fn every_error() -> Vec<Case> {
    let mut all = Vec::new();
    up_to_three_layers(&query_failed, None, &mut all);

    let elapsed = Some(Rejection::TimedOut(Elapsed::new()));
    up_to_three_layers(&|| TimeoutError::<QueryFailed>::Elapsed(Elapsed::new()), elapsed, &mut all);
    for refused in [AcquireError::NoPermits, AcquireError::WaitElapsed, AcquireError::Closed] {
        let expected = Some(Rejection::Limit(refused));
        up_to_three_layers(
            &|| ConcurrencyError::<QueryFailed>::Rejected(refused),
            expected,
            &mut all,
        );
    }
    for refused in [
        KeyedError::RateLimited(limited()),
        KeyedError::ExceedsBurst(ExceedsBurst { cells: 5, burst: 2 }),
        KeyedError::TooManyKeys(TooManyKeys { max_keys: 64 }),
    ] {
        let expected = Some(Rejection::Rate(refused));
        up_to_three_layers(
            &|| RateLimitError::<QueryFailed>::Rejected(refused),
            expected,
            &mut all,
        );
    }
    for state in [CircuitState::Open, CircuitState::HalfOpen] {
        let open = CircuitOpen { state };
        let expected = Some(Rejection::Circuit(open));
        up_to_three_layers(&|| CallError::<QueryFailed>::Rejected(open), expected, &mut all);
    }

    let pipeline_refusals: [(Result<kompoz::Rejection, Elapsed>, Rejection); 4] = [
        (Err(Elapsed::new()), Rejection::TimedOut(Elapsed::new())),
        (
            Ok(kompoz::Rejection::Limit(AcquireError::WaitElapsed)),
            Rejection::Limit(AcquireError::WaitElapsed),
        ),
        (
            Ok(kompoz::Rejection::Circuit(CircuitOpen { state: CircuitState::HalfOpen })),
            Rejection::Circuit(CircuitOpen { state: CircuitState::HalfOpen }),
        ),
        (
            Ok(kompoz::Rejection::Rate(limited())),
            Rejection::Rate(KeyedError::RateLimited(limited())),
        ),
    ];
    for (refused, expected) in pipeline_refusals {
        let make = || {
            PipelineError::<QueryFailed>(match refused {
                Ok(rejected) => rejected.into(),
                Err(elapsed) => elapsed.into(),
            })
        };
        up_to_three_layers(&make, Some(expected), &mut all);
    }
    all
}

#[test]
fn no_error_of_a_layer_prints_a_message_twice_boxed_however_deeply_nested() {
    let all = every_error();
    // Alone and under 5 + 25 + 125 stacks of layers, each of the 1 + 1 + 3 + 3 + 2 + 4
    // errors: the service's own, and every refusal of each layer.
    assert_eq!(all.len(), 156 * 14);
    for (_, error) in &all {
        assert_no_repeats(&**error);
    }
}

#[test]
fn rejection_finds_every_refusal_through_every_stack_of_layers() {
    for (expected, error) in &every_error() {
        assert_eq!(rejection(&**error), *expected, "{:?}", chain(&**error));
    }
}

#[test]
fn a_refusal_says_in_plain_words_what_refused_and_the_services_error_is_its_own() {
    for (expected, error) in &every_error() {
        let said = error.to_string();
        match expected {
            None => assert_eq!(chain(&**error), QUERY_CHAIN),
            Some(Rejection::TimedOut(_)) => {
                assert!(said.ends_with("timed out"), "{said}");
            }
            Some(Rejection::Limit(_)) => assert_eq!(said, "rejected by a concurrency limit"),
            Some(Rejection::Circuit(_)) => assert_eq!(said, "rejected by a circuit breaker"),
            Some(Rejection::Rate(_)) => assert_eq!(said, "rejected by a rate limit"),
            Some(other) => panic!("a rejection this test does not know: {other:?}"),
        }
    }
}

#[test]
fn a_refusal_under_layers_reads_as_what_refused_then_why() {
    let shed: CallError<TimeoutError<ConcurrencyError<QueryFailed>>> =
        CallError::Inner(TimeoutError::Inner(ConcurrencyError::Rejected(AcquireError::NoPermits)));
    assert_eq!(chain(&shed), ["rejected by a concurrency limit", "no permit is free"]);
    let timed_out: BoxError =
        CallError::Inner(TimeoutError::<QueryFailed>::Elapsed(Elapsed::new())).into();
    assert_eq!(
        chain(&*timed_out),
        ["the request timed out", "the time limit passed before the operation completed"]
    );
    let open: PipelineError<QueryFailed> =
        kompoz::Error::Rejected(kompoz::Rejection::Circuit(CircuitOpen {
            state: CircuitState::Open,
        }))
        .into();
    assert_eq!(
        chain(&open),
        ["rejected by a circuit breaker", "call rejected: the circuit is open"]
    );
    let rated: BoxError =
        RateLimitError::<QueryFailed>::Rejected(KeyedError::RateLimited(limited())).into();
    assert_eq!(chain(&*rated), ["rejected by a rate limit", "rate limited: retry after 1s"]);
}

#[test]
fn the_rejections_found_are_errors_without_a_chain_of_their_own() {
    for found in [
        Rejection::TimedOut(Elapsed::new()),
        Rejection::Limit(AcquireError::Closed),
        Rejection::Circuit(CircuitOpen { state: CircuitState::Open }),
        Rejection::Rate(KeyedError::RateLimited(limited())),
    ] {
        assert_no_repeats(&found);
        assert_eq!(rejection(&found), Some(found));
    }
}
