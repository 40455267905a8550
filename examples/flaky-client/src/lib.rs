//! A worked example of fuzzing your own service with kompoz's simulation kit
//! ([`kompoz::sim`]), written the way a user of kompoz would write it.
//!
//! * [`client`] is the service: a client of a flaky backend that retries each fetch under a
//!   policy and a budget and guards each attempt with `breaker(timeout(limit(rate(call))))`
//!   (a client-side quota on requests to the backend), instrumented with the kit's
//!   watches at its edges.
//! * [`harness`] turns a fuzzer's [`Scenario`] (configurations and a list of
//!   [`Op`](kompoz::sim::Op)s) into a deterministic simulation of many concurrent calls,
//!   and checks kompoz's invariants and a property of the service's own after every step.
//! * `fuzz/fuzz_targets/flaky_client.rs` is the whole fuzz target: one call to
//!   [`harness::run`].
//!
//! [`Variant`] keeps four deliberately broken versions of the client beside the correct
//! one, to show the harness catches real mistakes: one that calls the backend anyway when
//! the breaker refuses, one that leaks a permit when a call is cancelled, one whose
//! retries skip the rate limiter, and one that retries the breaker's refusals.

pub mod client;
pub mod demo;
pub mod harness;
mod outage;

pub use client::{Client, FetchError, SharedBudget, Variant};
pub use harness::{Failure, Scenario, Summary, run};
pub use outage::{AdmittedAs, OutageViolation, OutageWatch, ProbeEnd};
