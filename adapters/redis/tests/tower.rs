//! The fleet-wide primitives as tower layers, against a real Redis: the same contract as
//! kompoz-tower's layers (what `poll_ready` reserves, refusals from `call`, nothing held
//! by a dropped response) and the same errors, which `kompoz_tower::rejection` finds and
//! maps to HTTP statuses.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use kompoz::breaker::{CallError, CircuitState, Verdict};
use kompoz::limit::AcquireError;
use kompoz::rate::{KeyedError, Quota};
use kompoz_redis::Fleet;
use kompoz_redis::tower::{
    ConcurrencyError, FleetKeyedRateLimitLayer, FleetLimitLayer, FleetRateLimitLayer,
    RateLimitError, SharedBreakerLayer,
};
use kompoz_tower::{Rejection, rejection};
use support::{RedisServer, eventually};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const SOON: Duration = Duration::from_secs(5);

fn fleet(server: &RedisServer) -> Fleet {
    Fleet::builder(server.url())
        .call_timeout(Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

/// A service that counts the requests that reach it.
fn counted() -> (Arc<AtomicU32>, impl Service<u32, Response = u32, Error = std::io::Error> + Clone)
{
    let reached = Arc::new(AtomicU32::new(0));
    let service = service_fn({
        let reached = Arc::clone(&reached);
        move |n: u32| {
            reached.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, std::io::Error>(n) }
        }
    });
    (reached, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_layer_reserves_a_fleet_permit_in_poll_ready_and_sheds_the_rest() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let limit = one.limit("tower-limit", 1).build().unwrap();
    let elsewhere = two.limit("tower-limit", 1).build().unwrap();
    let (reached, inner) = counted();
    let mut service =
        ServiceBuilder::new().layer(FleetLimitLayer::new(limit.clone()).shed()).service(inner);

    // Ready: the fleet's only permit is reserved here, so another process finds none.
    service.ready().await.unwrap();
    assert_eq!(
        elsewhere.try_acquire().await.err(),
        Some(kompoz_redis::limit::AcquireError::NoPermits)
    );
    let response = service.call(1);
    // The response future holds the permit until the response is ready.
    let mut other = service.clone();
    let refused = other.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(matches!(refused, ConcurrencyError::Rejected(AcquireError::NoPermits)));
    let boxed: tower::BoxError = refused.into();
    assert_eq!(rejection(&*boxed), Some(Rejection::Limit(AcquireError::NoPermits)));
    assert_eq!(rejection(&*boxed).unwrap().http_status(), 503);
    assert_eq!(response.await.unwrap(), 1);
    limit.settle().await;
    assert_eq!(limit.in_use().await.unwrap(), 0, "given back when the response was ready");
    assert_eq!(reached.load(Ordering::SeqCst), 1, "the shed request never reached the service");

    // A permit reserved and never used goes back when the service is dropped.
    service.ready().await.unwrap();
    assert_eq!(limit.in_use().await.unwrap(), 1);
    drop(service);
    limit.settle().await;
    assert_eq!(limit.in_use().await.unwrap(), 0);

    // Waiting at most the limit's maximum wait, behind a permit held elsewhere.
    let patient = one.limit("tower-limit", 1).max_wait(Duration::from_millis(50)).build().unwrap();
    let held = elsewhere.acquire().await.unwrap();
    let mut waiting = FleetLimitLayer::new(patient).layer(counted().1);
    let refused = waiting.ready().await.unwrap().call(3).await.unwrap_err();
    assert!(matches!(refused, ConcurrencyError::Rejected(AcquireError::WaitElapsed)));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_layers_refuse_with_the_wait_and_reserve_nothing_in_poll_ready() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let per_minute = Quota::per_minute(1).unwrap();
    let limiter = fleet.rate_limit("tower-rate", per_minute).build().unwrap();
    let (reached, inner) = counted();
    let mut service =
        ServiceBuilder::new().layer(FleetRateLimitLayer::new(limiter).reject()).service(inner);

    // Made ready again and again without a call: nothing of the quota is spent.
    for _ in 0..3 {
        service.ready().await.unwrap();
    }
    assert_eq!(service.call(1).await.unwrap(), 1);
    let refused = service.ready().await.unwrap().call(2).await.unwrap_err();
    let RateLimitError::Rejected(KeyedError::RateLimited(limited)) = refused else {
        panic!("{refused:?}")
    };
    assert!(limited.wait > Duration::from_secs(59), "{limited:?}");
    assert_eq!(refused.retry_after(), Some(limited.wait));
    let boxed: tower::BoxError = refused.into();
    assert_eq!(rejection(&*boxed).unwrap().http_status(), 429);
    assert_eq!(reached.load(Ordering::SeqCst), 1, "the refused request never reached the service");

    // Waiting for the cell (the default), and waiting at most a while.
    let every = Quota::per_second(1).unwrap();
    let limiter = fleet.rate_limit("tower-rate-wait", every).build().unwrap();
    let mut waiting = FleetRateLimitLayer::new(limiter.clone()).layer(counted().1);
    let mut impatient =
        FleetRateLimitLayer::new(limiter).max_wait(Duration::from_millis(1)).layer(counted().1);
    assert_eq!(waiting.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert!(impatient.ready().await.unwrap().call(2).await.unwrap_err().is_rejected());
    assert_eq!(waiting.ready().await.unwrap().call(3).await.unwrap(), 3);

    // One quota per key.
    let per_client = fleet.rate_limit("tower-keyed", per_minute).build_keyed().unwrap();
    let client = |request: &(&'static str, u32)| request.0;
    let mut keyed = ServiceBuilder::new()
        .layer(FleetKeyedRateLimitLayer::new(per_client, client))
        .service(service_fn(|(_, n): (&str, u32)| async move { Ok::<_, std::io::Error>(n) }));
    assert_eq!(keyed.ready().await.unwrap().call(("alice", 1)).await.unwrap(), 1);
    assert_eq!(keyed.ready().await.unwrap().call(("bob", 2)).await.unwrap(), 2);
    let refused = keyed.ready().await.unwrap().call(("alice", 3)).await.unwrap_err();
    assert!(matches!(refused, RateLimitError::Rejected(KeyedError::RateLimited(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_layer_shares_openings_and_probes_through_redis() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let build = |fleet: &Fleet| {
        fleet
            .breaker("tower-breaker")
            .failure_threshold(2)
            .fleet_failure_threshold(1_000)
            .recovery_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    // A 5xx answer counts as a failure; the request is a status to answer with.
    let server_errors = |result: &Result<u16, std::io::Error>| match result {
        Ok(status) if *status >= 500 => Verdict::Failure,
        Ok(_) => Verdict::Success,
        Err(_) => Verdict::Failure,
    };
    let answer = || service_fn(|status: u16| async move { Ok::<_, std::io::Error>(status) });
    let mut in_a = SharedBreakerLayer::new(a.clone()).classify(server_errors).layer(answer());
    let mut in_b = SharedBreakerLayer::new(b.clone()).layer(answer());

    assert_eq!(in_a.ready().await.unwrap().call(404).await.unwrap(), 404);
    for _ in 0..2 {
        assert_eq!(in_a.ready().await.unwrap().call(503).await.unwrap(), 503);
    }
    assert_eq!(a.state(), CircuitState::Open, "two 5xx opened a's local breaker");
    // b saw nothing, and rejects once the opening reaches it.
    assert!(eventually(SOON, || async { b.state() == CircuitState::Open }).await.is_some());
    let refused = in_b.ready().await.unwrap().call(200).await.unwrap_err();
    assert!(matches!(refused, CallError::Rejected(_)));
    let boxed: tower::BoxError = refused.into();
    assert!(matches!(rejection(&*boxed), Some(Rejection::Circuit(_))));
    assert_eq!(rejection(&*boxed).unwrap().http_status(), 503);

    // After the recovery time the next request is a fleet-wide probe (a round trip, with
    // the service moved into the response future); its success closes the circuit
    // everywhere.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(in_b.ready().await.unwrap().call(200).await.unwrap(), 200);
    assert!(eventually(SOON, || async { a.state() == CircuitState::Closed }).await.is_some());
    assert_eq!(in_a.ready().await.unwrap().call(201).await.unwrap(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_response_records_nothing_and_gives_its_probe_lease_back() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let breaker = fleet
        .breaker("tower-dropped")
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(200))
        .half_open_max_calls(1)
        .build()
        .unwrap();
    let hangs = service_fn(|_: u32| std::future::pending::<Result<u32, std::io::Error>>());
    let mut service = SharedBreakerLayer::new(breaker.clone()).layer(hangs);
    let mut cx = Context::from_waker(Waker::noop());

    // Closed: admitted, polled once, dropped: neither a success nor a failure.
    {
        let mut response = pin!(service.ready().await.unwrap().call(1));
        assert!(response.as_mut().poll(&mut cx).is_pending());
    }
    let stats = breaker.local().stats();
    assert_eq!((stats.success_count, stats.total_failures, stats.abandoned_calls), (0, 0, 1));

    // Open (in the fleet too: the view has moved to generation 1), then half-open: a
    // probe dropped while its request runs frees the fleet's only probe slot at once, not
    // after its lease (10 s, longer than the test waits).
    let _ = breaker.call(async { Err::<(), _>("down") }).await;
    assert!(eventually(SOON, || async { breaker.generation() == 1 }).await.is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut probe = Box::pin(service.ready().await.unwrap().call(2));
    assert!(format!("{probe:?}").contains("probing"), "a probe lease is asked of Redis");
    // Polled until the probe lease is granted and the request runs (it never answers).
    let running = eventually(SOON, || {
        let answered = probe.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready();
        let running = format!("{probe:?}").contains("running");
        async move { !answered && running }
    });
    assert!(running.await.is_some());
    drop(probe);
    let succeeds = SharedBreakerLayer::new(breaker.clone())
        .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    let admitted = eventually(SOON, || {
        let service = succeeds.clone();
        async move { service.oneshot(3).await.is_ok() }
    });
    assert!(admitted.await.is_some(), "the dropped probe's lease came back");
    assert!(eventually(SOON, || async { breaker.state() == CircuitState::Closed }).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_stack_with_kompoz_towers_own() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let quota = fleet.rate_limit("stack", Quota::per_second(1_000).unwrap()).build().unwrap();
    let limit = fleet.limit("stack", 4).build().unwrap();
    let breaker = fleet.breaker("stack").build().unwrap();
    let mut service = ServiceBuilder::new()
        .layer(kompoz_tower::TimeoutLayer::new(kompoz_tokio::TokioClock, Duration::from_secs(5)))
        .layer(FleetRateLimitLayer::new(quota))
        .layer(SharedBreakerLayer::new(breaker.clone()))
        .layer(FleetLimitLayer::new(limit.clone()))
        .service(counted().1);
    for n in 0..20 {
        assert_eq!(service.ready().await.unwrap().call(n).await.unwrap(), n);
    }
    assert_eq!(breaker.local().stats().success_count, 20);
    limit.settle().await;
    assert_eq!(limit.in_use().await.unwrap(), 0);
}
