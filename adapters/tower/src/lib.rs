//! # kompoz-tower
//!
//! [kompoz](https://docs.rs/kompoz)'s guards as [tower](https://docs.rs/tower) layers, for
//! the services of axum, hyper, tonic and reqwest: a time limit ([`TimeoutLayer`]), a
//! concurrency limit that waits, waits at most a while, or sheds load ([`LimitLayer`]),
//! rate limits, one quota or one per key such as the client's address
//! ([`RateLimitLayer`], [`KeyedRateLimitLayer`]), a circuit breaker with a classifier over
//! the whole response ([`BreakerLayer`]), and retries under a kompoz retry policy and
//! budget ([`RetryLayer`]). A whole kompoz
//! [`Pipeline`](kompoz::pipeline::Pipeline) goes around a service as one layer, with one
//! flat error ([`PipelineLayer`], made by [`pipeline_layer!`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kompoz::breaker::CircuitBreaker;
//! use kompoz_tokio::TokioClock;
//! use kompoz_tower::{BreakerLayer, LimitLayer, TimeoutLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = Arc::new(CircuitBreaker::builder().failure_threshold(5).build()?);
//! let mut client = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(breaker.clone())) // outermost: sees timeouts as failures
//!     .layer(TimeoutLayer::new(TokioClock, Duration::from_secs(2)))
//!     .layer(LimitLayer::new(16)?.shed())
//!     .service(service_fn(|id: u32| async move { Ok::<_, std::io::Error>(id * 10) }));
//!
//! // The errors nest like the layers and convert into a `BoxError` with `?`.
//! assert_eq!(client.ready().await?.call(4).await?, 40);
//! assert_eq!(breaker.stats().success_count, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # tower's contract, as these layers keep it
//!
//! * **What `poll_ready` reserves.** [`LimitService`] reserves one permit in `poll_ready`
//!   (waiting for it as its policy says) and keeps it in that service value until the next
//!   `call` moves it into the response future. [`TimeoutService`], [`BreakerService`],
//!   [`RateLimitService`], [`RetryService`] and [`PipelineService`] reserve nothing (a rate
//!   limit takes its cell in `call`, a pipeline its guards when its response future first
//!   runs): the time limit starts with the response future, the
//!   breaker admits a request (taking a half-open probe slot) in `call`, when it is really
//!   sent, and a retry makes a clone of the inner service ready before each attempt after
//!   the first.
//! * **Nothing reserved leaks.** A permit reserved and never used by a `call` goes back
//!   when the service value is dropped. A response future dropped before it completes
//!   (a cancelled request, a client that went away) gives back its permit and its probe
//!   slot, and the breaker records no verdict for it.
//! * **Clones.** A clone of a service shares the layer's semaphore and breaker but not
//!   the reservation: each clone reserves its own permit in its own `poll_ready` (axum
//!   clones the service for every request).
//! * **Rejections come from `call`, not `poll_ready`.** A shed request, a maximum wait that
//!   passed, or an open circuit makes `poll_ready` ready anyway, and the response future
//!   answers with the rejection at once, without calling the inner service. `poll_ready`
//!   fails only with the inner service's own error. A `call` without `poll_ready` (a
//!   breach of tower's contract) is not a panic: the limit takes a free permit if there
//!   is one and rejects otherwise.
//! * **Cost.** On the happy path no layer allocates but [`PipelineLayer`] (its future is
//!   boxed; see there): the response futures are plain
//!   structs, the permit and the breaker's admission are atomics, and the timer is
//!   created only if the response is not ready at its first poll. Only a request that
//!   waits in line for a permit allocates its (pinned) place in the line.
//!
//! # Errors
//!
//! Each layer has one error type, generic over the inner service's error, so that a
//! rejection never allocates: [`TimeoutError`], [`ConcurrencyError`], [`PipelineError`]
//! (kompoz's one flat error, for the whole pipeline), and the breaker's
//! [`CallError`](kompoz::breaker::CallError). Each implements [`std::error::Error`] when the
//! inner error does, and so converts into [`tower::BoxError`](https://docs.rs/tower/0.5/tower/type.BoxError.html). Stacked layers nest their
//! errors (`CallError<TimeoutError<ConcurrencyError<E>>>`); [`rejection`] walks an error's
//! `source()` chain, boxed or not, and says which kompoz layer refused the request, if any,
//! and [`Rejection::http_status`] maps that to 503, 429 or 504. Each error is transparent
//! for the inner service's error (its message, its own source) and a refusal says what
//! refused, with the refusal's own error as its source, so a reporter that walks the
//! chain (anyhow's `{:#}`, tracing) prints each message once:
//! `rejected by a concurrency limit: no permit is free`, however many layers are stacked.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/kompoz-tower/0.1.0")]

extern crate alloc;

mod breaker;
mod limit;
mod pipeline;
mod rate;
mod rejection;
mod retry;
mod timeout;

pub use breaker::{BreakerFuture, BreakerLayer, BreakerService};
pub use limit::{
    ConcurrencyError, LimitFuture, LimitLayer, LimitService, MaxWait, Shed, WaitAtMost,
    WaitForPermit, WaitPolicy,
};
pub use pipeline::{
    Attempt, Attempts, PipelineError, PipelineFuture, PipelineLayer, PipelineService, Runner,
};
pub use rate::{
    KeyedRateLimitLayer, KeyedRateLimitService, RateLimitError, RateLimitFuture, RateLimitLayer,
    RateLimitService,
};
pub use rejection::{Rejection, rejection};
pub use retry::{RetryFuture, RetryLayer, RetryService, RetryUnlessCircuitOpen};
pub use timeout::{TimeoutError, TimeoutFuture, TimeoutLayer, TimeoutService};

/// The core crate, re-exported: its primitives are what the layers are built on.
pub use kompoz;
