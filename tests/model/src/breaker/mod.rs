//! The circuit breaker: [`model::BreakerModel`], the operations in [`ops`], and the
//! [`driver`] that runs them against both `kompoz::breaker::CircuitBreaker` (on a
//! `ManualClock`) and the model.

pub mod driver;
pub mod model;
pub mod ops;
mod policy;

pub use driver::{run, run_ops};
pub use model::{Admission, BreakerModel, CallId, Stats, Tally, Transition};
pub use ops::{Breaks, Classifier, Config, Finish, Judged, Op, Rate, Scenario, Trip, Window};
