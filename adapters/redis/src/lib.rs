//! # kompoz-redis
//!
//! Fleet-wide versions of [kompoz](https://docs.rs/kompoz)'s primitives, on Redis: for a
//! service that runs as many processes, on many machines, that must share one limit.
//!
//! * [`FleetLimit`]: a concurrency limit whose permits are leases in
//!   Redis, renewed while held, recovered after a crash, handed to waiters in order of
//!   arrival (woken by pub/sub).
//! * [`FleetRateLimiter`] and [`FleetKeyedRateLimiter`]: GCRA in a Lua script, with
//!   exactly the arithmetic of kompoz's local limiter, one round trip per check (or a
//!   local reservation of `k` cells per round trip).
//! * [`SharedBreaker`]: a circuit breaker whose openings, failure
//!   count and half-open probes are shared by the fleet, with each process's local
//!   lock-free breaker on the hot path (a success touches Redis zero times).
//!
//! Every primitive is built from a [`Fleet`], one per process: the connection (with a
//! timeout on every call, and reconnection with backoff) and the pub/sub subscriber they
//! share. While Redis is unreachable each primitive follows its [`Degradation`]: fall
//! back to a local primitive (the default), fail closed or fail open.
//!
//! The Lua scripts that run inside Redis are in [`scripts`]; the protocol and why it is
//! sound are told in each primitive's module documentation.
//!
//! ```no_run
//! use std::time::Duration;
//! use kompoz_redis::{Degradation, Fleet};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
//! let database = fleet
//!     .limit("database", 20)
//!     .max_wait(Duration::from_millis(500))
//!     .degradation(Degradation::Local)
//!     .local_limit(5)
//!     .build()?;
//! let rows = database.run(async { 42 }).await?;
//! # let _ = rows;
//! # Ok(()) }
//! ```
#![doc(html_root_url = "https://docs.rs/kompoz-redis/0.1.0")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
mod degrade;
mod error;
mod fleet;
pub mod limit;
mod link;
mod notify;
pub mod pipeline;
pub mod rate;
pub mod scripts;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use breaker::SharedBreaker;
pub use degrade::Degradation;
pub use error::{ConfigError, Unreachable};
pub use fleet::{DEFAULT_CALL_TIMEOUT, Fleet, FleetBuilder};
pub use limit::{FleetLimit, FleetPermit};
pub use rate::{FleetKeyedRateLimiter, FleetRateLimiter};
