//! Retry on the manual clock: the reference model ([`model::expected`]), a scripted
//! call in [`Script`], the fuzzer's decoding of one ([`ops::Case`]), and the [`driver`]
//! that runs the script through `RetryPolicy::retry` and through the pipeline's retry
//! layer, comparing attempt times, delays and the result with the model.

pub mod driver;
pub mod model;
pub mod ops;

pub use driver::{Face, run};
pub use model::{Answer, Attempt, Run, Script, Strategy, expected};
pub use ops::Case;
