//! The conformance suite on the manual clock: deterministic, in simulated time.
kompoz_conformance::conformance_suite!(kompoz_conformance::ManualRuntime::new());
