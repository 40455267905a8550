//! # kompoz-benches
//!
//! kompoz beside the crates its users would pick instead, measured the same way in the
//! same process. Two front ends share every measured operation defined here:
//!
//! * the `compare` binary (`cargo run --release -p kompoz-benches --bin compare`) runs
//!   every [`Case`] with all its contenders interleaved, round after round, and prints one
//!   table of medians, ratios and targets, plus allocations per operation and sizes;
//! * the criterion benchmarks (`cargo bench -p kompoz-benches`) run the same contenders
//!   one at a time, for criterion's statistics and history.
//!
//! A contender is one small function returning a [`Contender`]: a name, a role and a
//! [`Runner`] that performs `n` operations and returns how long they took. To add a
//! contender to a case, write such a function and list it in the case's constructor (see
//! [`cases`]).

pub mod cases;
pub mod harness;
pub mod memory;
pub mod report;
pub mod resident;

pub use cases::{Case, Metric, Target, all_cases};
pub use harness::{Contender, MEASURING, Role, Runner, Sample};
