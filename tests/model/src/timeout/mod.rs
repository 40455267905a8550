//! Timeouts on the manual clock: [`model::TimeoutModel`], the operations in [`ops`], and
//! the [`driver`] that runs them against `kompoz::timeout`/`timeout_at` on a
//! `ManualClock` and against the model.

pub mod driver;
pub mod model;
pub mod ops;

pub use driver::{run, run_ops};
pub use model::TimeoutModel;
pub use ops::{Inner, Op, Scenario};
