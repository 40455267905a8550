//! Rate limiting: [`model::RateModel`] (the GCRA arithmetic written plainly, the line of
//! waiters, the manual clock's timers, and a keyed limiter with a maximum of keys), the
//! operations in [`ops`], and the [`driver`] that runs them against
//! `kompoz::rate::RateLimiter` and `KeyedRateLimiter` and the model.
//!
//! [`model::gcra`] is the reference of the arithmetic, in 128-bit integers: the Redis
//! script's results can be checked against it too.

pub mod driver;
pub mod model;
pub mod ops;

pub use driver::{run, run_ops};
pub use model::{Decision, RateModel, Stats, Tally, gcra};
pub use ops::{Config, Op, Scenario};
