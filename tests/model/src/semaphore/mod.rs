//! The semaphore: [`model::SemaphoreModel`], the operations in [`ops`], and the
//! [`driver`] that runs them against both `kompoz::limit::Semaphore` and the model.

pub mod driver;
pub mod model;
pub mod ops;

pub use driver::{run, run_ops};
pub use model::{SemaphoreModel, Stats, Tally, WaiterId};
pub use ops::{Op, Scenario, WaitLimit};
