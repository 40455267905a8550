//! The fleet-wide primitives as [tower](https://docs.rs/tower) layers (feature `tower`),
//! for the services of axum, hyper, tonic and reqwest: [`FleetLimitLayer`],
//! [`FleetRateLimitLayer`], [`FleetKeyedRateLimitLayer`] and [`SharedBreakerLayer`].
//!
//! They are used as [kompoz-tower](https://docs.rs/kompoz-tower)'s layers for the local
//! primitives are, and fail with the same errors: [`ConcurrencyError`] for the limit,
//! [`RateLimitError`] for the rate limits (with the wait, for a `Retry-After`), and
//! kompoz's [`CallError`](kompoz::breaker::CallError) for the breaker; so
//! [`kompoz_tower::rejection`] finds their refusals in a boxed error, and
//! [`Rejection::http_status`](kompoz_tower::Rejection::http_status) maps them to 503 and
//! 429, whether the stack mixes local and fleet-wide layers or not.
//!
//! What differs from the local layers is what a round trip to Redis forces:
//!
//! * [`FleetLimitLayer`] reserves the permit in `poll_ready`, as kompoz-tower's
//!   `LimitLayer` does; the acquisition, a round trip, runs in a boxed future there.
//! * [`FleetRateLimitLayer`] reserves nothing in `poll_ready` (a service made ready and
//!   never called spends no cell), like kompoz-tower's `RateLimitLayer`; since the check is
//!   a round trip, `call` moves the service it made ready into the response future
//!   (leaving a clone, which the caller makes ready again), and the response future calls
//!   it once the cell is granted. So the inner service must be `Clone`, and a refused
//!   request never reaches it.
//! * [`SharedBreakerLayer`] admits in `call`, as kompoz-tower's `BreakerLayer` does:
//!   while the fleet's circuit is closed, without a round trip or an allocation. Only
//!   when a probe lease must be asked for does the response future wait for Redis before
//!   calling the service it was given, moved in as for the rate limit.
//!
//! ```no_run
//! use std::time::Duration;
//! use kompoz::rate::Quota;
//! use kompoz_redis::Fleet;
//! use kompoz_redis::tower::{FleetLimitLayer, FleetRateLimitLayer, SharedBreakerLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
//! let quota = fleet.rate_limit("partner", Quota::per_second(50)?).build()?;
//! let limit = fleet.limit("partner", 20).max_wait(Duration::from_millis(200)).build()?;
//! let breaker = fleet.breaker("partner").build()?;
//! let mut partner = ServiceBuilder::new()
//!     .layer(FleetRateLimitLayer::new(quota).reject())
//!     .layer(SharedBreakerLayer::new(breaker))
//!     .layer(FleetLimitLayer::new(limit))
//!     .service(service_fn(|id: u32| async move { Ok::<_, std::io::Error>(id) }));
//! assert_eq!(partner.ready().await?.call(7).await?, 7);
//! # Ok(()) }
//! ```

mod breaker;
mod limit;
mod rate;

pub use breaker::{SharedBreakerFuture, SharedBreakerLayer, SharedBreakerService};
pub use kompoz_tower::{ConcurrencyError, RateLimitError};
pub use limit::{FleetLimitFuture, FleetLimitLayer, FleetLimitService};
pub use rate::{
    FleetKeyedRateLimitLayer, FleetKeyedRateLimitService, FleetRateLimitFuture,
    FleetRateLimitLayer, FleetRateLimitService,
};
