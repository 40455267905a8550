//! A worked example of fuzzing your own service with kompoz's simulation kit
//! ([`kompoz::sim`]), written the way a user of kompoz would write it.
//!
//! * [`client`] is the service: a client of a flaky backend that retries each fetch under a
//!   policy and guards each attempt with `breaker(timeout(limit(call)))`, instrumented
//!   with the kit's watches at its edges.
//! * [`harness`] turns a fuzzer's [`Scenario`] (configurations and a list of
//!   [`Op`](kompoz::sim::Op)s) into a deterministic simulation of many concurrent calls,
//!   and checks kompoz's invariants and a property of the service's own after every step.
//! * `fuzz/fuzz_targets/flaky_client.rs` is the whole fuzz target: one call to
//!   [`harness::run`].
//!
//! [`Variant`] keeps two deliberately broken versions of the client beside the correct
//! one, to show the harness catches real mistakes: one that calls the backend anyway when
//! the breaker refuses, one that leaks a permit when a call is cancelled.

pub mod client;
pub mod demo;
pub mod harness;
mod outage;

pub use client::{Client, FetchError, Variant};
pub use harness::{Failure, Scenario, Summary, run};
pub use outage::{AdmittedAs, OutageViolation, OutageWatch, ProbeEnd};
