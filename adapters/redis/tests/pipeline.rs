//! The fleet-wide primitives as layers of kompoz's pipeline, against a real Redis.

mod support;

use std::time::Duration;

use kompoz::pipeline::Pipeline;
use kompoz::{Error, Rejection};
use kompoz_redis::Fleet;
use kompoz_redis::pipeline::{FleetLimitLayer, SharedBreakerLayer};
use kompoz_tokio::TokioClock;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_layers_guard_a_pipeline_and_reject_into_its_flat_error() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = Fleet::builder(server.url()).build().unwrap();
    let limit = fleet.limit("pipeline", 1).max_wait(Duration::from_millis(50)).build().unwrap();
    let breaker = fleet.breaker("pipeline").failure_threshold(2).build().unwrap();
    let pipeline = Pipeline::<u32, &str, _>::with_timer(TokioClock)
        .timeout(Duration::from_secs(5))
        .layer(SharedBreakerLayer::new(breaker.clone()))
        .layer(FleetLimitLayer::new(limit.clone()));
    assert_eq!(pipeline.call(|| async { Ok(7) }).await, Ok(7));

    // The only permit is held elsewhere: the limit layer rejects, and the breaker does not
    // count an inner guard's rejection as a failure.
    let held = limit.acquire().await.unwrap();
    let rejected = pipeline.call(|| async { Ok(7) }).await;
    assert!(matches!(rejected, Err(Error::Rejected(Rejection::Limit(_)))), "{rejected:?}");
    drop(held);
    limit.settle().await;

    // Two failures open the shared breaker: then the breaker layer rejects.
    for _ in 0..2 {
        assert_eq!(pipeline.call(|| async { Err("down") }).await, Err(Error::Inner("down")));
    }
    let rejected = pipeline.call(|| async { Ok(7) }).await;
    assert!(matches!(rejected, Err(Error::Rejected(Rejection::Circuit(_)))), "{rejected:?}");
    assert_eq!(breaker.local().stats().total_failures, 2);
}
