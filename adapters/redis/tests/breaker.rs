//! The shared breaker against a real Redis: two `Fleet`s in one process stand for two
//! processes (each has its own connections and subscriber). The multi-process test is
//! in `fleet.rs`.

mod support;

use std::time::{Duration, Instant};

use kompoz::breaker::{CallError, CircuitState};
use kompoz_redis::{Degradation, Fleet, SharedBreaker};
use support::{RedisServer, eventually};

const SOON: Duration = Duration::from_secs(5);

fn fleet(server: &RedisServer) -> Fleet {
    Fleet::builder(server.url())
        .call_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

async fn fail(breaker: &SharedBreaker) {
    let _ = breaker.call(async { Err::<(), _>("down") }).await;
}

async fn evalsha_calls(server: &RedisServer) -> u64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String =
        redis::cmd("INFO").arg("commandstats").query_async(&mut connection).await.unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// The script calls so far, once the breaker's start-up reads have landed (its reporter's
/// first tick and the subscription's first sync run in the background, late on a busy
/// machine): the count has stayed the same for half a second.
async fn settled_evalsha_calls(server: &RedisServer) -> u64 {
    let mut last = evalsha_calls(server).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = evalsha_calls(server).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_while_closed_touches_redis_zero_times() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let breaker = fleet.breaker("quiet").sync_interval(Duration::from_secs(3600)).build().unwrap();
    breaker.refresh().await;
    // (A start-up read landing during the loop below failed this test 1 run in 20 under
    // load: one script call more than before, none of them a success's.)
    let before = settled_evalsha_calls(&server).await;
    for _ in 0..10_000 {
        breaker.try_acquire().await.unwrap().success();
        assert!(breaker.call(async { Ok::<_, ()>(1) }).await.is_ok());
    }
    assert_eq!(evalsha_calls(&server).await, before, "20,000 successes, no script call");
    assert_eq!(breaker.local().stats().success_count, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_fleet_wide_and_the_opening_reaches_every_process() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let build = |fleet: &Fleet| {
        fleet
            .breaker("fleet-count")
            .failure_threshold(100)
            .fleet_failure_threshold(4)
            .recovery_timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    fail(&a).await;
    fail(&a).await;
    fail(&b).await;
    // Three of four: still closed everywhere (each local breaker saw at most two).
    assert_eq!(a.refresh().await, CircuitState::Closed);
    assert_eq!(b.refresh().await, CircuitState::Closed);
    fail(&b).await;
    let opened = Instant::now();
    let seen = eventually(SOON, || async { a.state() == CircuitState::Open }).await;
    eprintln!("the fourth failure (in b) reached a's view after {:?}", opened.elapsed());
    assert!(seen.is_some(), "a learned of the opening without a failure of its own");
    assert!(matches!(a.call(async { Ok::<_, ()>(()) }).await, Err(CallError::Rejected(_))));
    assert_eq!(a.generation(), 1);
    assert_eq!(a.local().stats().total_failures, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_face_counts_failures_fleet_wide_and_a_dropped_guard_counts_nothing() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let build = |fleet: &Fleet| {
        fleet
            .breaker("guard-face")
            .failure_threshold(100)
            .fleet_failure_threshold(2)
            .recovery_timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    // Dropped without a verdict (a cancelled call): neither a success nor a failure.
    drop(a.try_acquire().await.unwrap());
    let stats = a.local().stats();
    assert_eq!((stats.success_count, stats.total_failures, stats.abandoned_calls), (0, 0, 1));
    a.try_acquire().await.unwrap().failure();
    // The reporter answers the read after it has sent the failure: one of two, closed (the
    // dropped guard sent nothing, or this would be the second).
    assert_eq!(a.refresh().await, CircuitState::Closed);
    a.try_acquire().await.unwrap().failure();
    let seen = eventually(SOON, || async { b.state() == CircuitState::Open }).await;
    assert!(seen.is_some(), "b learned of the opening without a failure of its own");
    assert!(b.try_acquire().await.is_err());
    assert_eq!(a.local().stats().total_failures, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_opening_is_published_and_probes_are_limited_fleet_wide() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let build = |fleet: &Fleet| {
        fleet
            .breaker("probes")
            .failure_threshold(3)
            .fleet_failure_threshold(1_000)
            .recovery_timeout(Duration::from_millis(300))
            .half_open_max_calls(1)
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    for _ in 0..3 {
        fail(&a).await;
    }
    assert!(eventually(SOON, || async { b.state() == CircuitState::Open }).await.is_some());
    assert!(b.try_acquire().await.is_err());
    // After the recovery time: one probe in the whole fleet.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let probe = b.try_acquire().await.unwrap();
    assert!(probe.is_probe());
    let refused = a.try_acquire().await.unwrap_err();
    assert_eq!(refused.state, CircuitState::HalfOpen);
    assert!(b.try_acquire().await.is_err());
    // An abandoned probe frees its slot; a successful one closes the circuit everywhere.
    drop(probe);
    let guard = loop {
        match a.try_acquire().await {
            Ok(guard) if guard.is_probe() => break guard,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    guard.success();
    assert!(eventually(SOON, || async { b.state() == CircuitState::Closed }).await.is_some());
    assert!(b.call(async { Ok::<_, ()>(()) }).await.is_ok());
    assert_eq!(a.state(), CircuitState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_opens_the_circuit_again_everywhere() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let build = |fleet: &Fleet| {
        fleet
            .breaker("reopen")
            .failure_threshold(1)
            .recovery_timeout(Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    fail(&a).await;
    assert!(eventually(SOON, || async { b.state() == CircuitState::Open }).await.is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let probe = b.try_acquire().await.unwrap();
    assert!(probe.is_probe());
    let generation = b.generation();
    probe.failure();
    assert!(
        eventually(SOON, || async {
            a.generation() > generation && a.state() == CircuitState::Open
        })
        .await
        .is_some()
    );
    assert!(a.try_acquire().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_the_local_breaker_decides_or_the_breaker_fails_closed() {
    let Some(mut server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let local = fleet
        .breaker("down")
        .failure_threshold(2)
        .recovery_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let closed = fleet.breaker("down-closed").degradation(Degradation::FailClosed).build().unwrap();
    local.refresh().await;
    server.stop();
    // Closed: successes need no Redis at all.
    assert!(local.call(async { Ok::<_, ()>(()) }).await.is_ok());
    fail(&local).await;
    fail(&local).await;
    assert_eq!(local.state(), CircuitState::Open, "the local breaker opened by itself");
    // Fail closed: once the link is known down, calls are refused.
    assert!(eventually(SOON, || async { !fleet.is_reachable() }).await.is_some());
    assert!(closed.try_acquire().await.is_err());
    // Redis returns: the local opening is reported to the fleet.
    server.restart();
    assert!(fleet.wait_reachable(SOON).await);
    let other = Fleet::builder(server.url()).build().unwrap();
    let observer = other.breaker("down").build().unwrap();
    let reported = eventually(SOON, || async {
        observer.refresh().await;
        observer.generation() >= 1
    })
    .await;
    assert!(reported.is_some(), "the opening made while Redis was away reached the fleet");
}

/// Two processes' breakers on one fleet-wide circuit (one probe at a time, a long probe
/// lease), brought to half-open after a first probe failed, so that Redis has loaded every
/// script (a script it has not seen costs a client a second request).
async fn half_open_with_one_probe_slot(
    server: &RedisServer,
    name: &str,
) -> (Fleet, Fleet, SharedBreaker, SharedBreaker) {
    let (one, two) = (fleet(server), fleet(server));
    // Fail closed: while a link is down its process is refused, never admitted as a
    // local probe, so only a probe lease from Redis lets a call through.
    let build = |fleet: &Fleet| {
        fleet
            .breaker(name)
            .failure_threshold(1)
            .recovery_timeout(Duration::from_millis(100))
            .half_open_max_calls(1)
            .probe_lease(Duration::from_secs(600))
            .degradation(Degradation::FailClosed)
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    fail(&a).await;
    assert!(eventually(SOON, || async { b.state() == CircuitState::Open }).await.is_some());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let first = b.try_acquire().await.unwrap();
    assert!(first.is_probe());
    let generation = b.generation();
    first.failure();
    let reopened = || async { b.generation() > generation && b.state() == CircuitState::Open };
    assert!(eventually(SOON, reopened).await.is_some());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!((a.state(), b.state()), (CircuitState::HalfOpen, CircuitState::HalfOpen));
    (one, two, a, b)
}

/// Redis holds every client's commands for `ms` milliseconds (from when this returns).
async fn pause_redis(server: &RedisServer, ms: u64) {
    let client = redis::Client::open(server.url()).unwrap();
    let mut control = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(&mut control)
        .await
        .unwrap();
}

/// Whether `breaker` is granted the fleet's probe slot (given back at once as a success).
async fn probes(breaker: &SharedBreaker) -> bool {
    match breaker.try_acquire().await {
        Ok(guard) if guard.is_probe() => {
            guard.success();
            true
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_request_given_up_in_flight_gives_its_lease_back() {
    let Some(server) = RedisServer::start() else { return };
    let (_one, _two, a, b) = half_open_with_one_probe_slot(&server, "given-up-probe").await;
    // b's PROBE reaches a paused Redis, and b gives up before the answer (a caller's
    // timeout, a select, a dropped task). Redis then runs it: a lease for nobody.
    pause_redis(&server, 300).await;
    let given_up = tokio::time::timeout(Duration::from_millis(100), b.try_acquire()).await;
    assert!(given_up.is_err(), "Redis is paused: no answer yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The fleet's only probe slot comes back well within its lease time.
    let probed = eventually(SOON, || probes(&a)).await;
    assert!(probed.is_some(), "the lease granted to the abandoned request was given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_lease_whose_reply_was_lost_is_given_back_once_redis_is_reachable() {
    let Some(server) = RedisServer::start() else { return };
    let (one, _two, a, b) = half_open_with_one_probe_slot(&server, "lost-probe-reply").await;
    // Redis is paused for longer than a call may take: a's PROBE times out (the link is
    // marked down, and a fails closed), but Redis runs it once the pause ends and grants
    // a lease whose reply nobody reads.
    pause_redis(&server, 600).await;
    assert!(a.try_acquire().await.is_err());
    assert!(!one.is_reachable());
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Once a's link is back, that lease is given back: the slot is free for the fleet.
    assert!(one.wait_reachable(SOON).await);
    let probed = eventually(SOON, || probes(&b)).await;
    assert!(probed.is_some(), "the lease granted to the lost request was given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_the_circuit_without_dropping_the_connection_still_counts_failures() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let build = |fleet: &Fleet| {
        fleet
            .breaker("forgotten")
            .failure_threshold(100)
            .fleet_failure_threshold(2)
            .recovery_timeout(Duration::from_millis(100))
            .sync_interval(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let (a, b) = (build(&one), build(&two));
    // A first opening and closing: the fleet is at generation 2.
    fail(&a).await;
    fail(&b).await;
    assert!(eventually(SOON, || async { a.state() == CircuitState::Open }).await.is_some());
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.try_acquire().await.unwrap().success();
    assert!(eventually(SOON, || async { b.state() == CircuitState::Closed }).await.is_some());
    assert_eq!((a.generation(), b.generation()), (2, 2));
    // Redis loses the circuit's keys while every connection stays up: a failover to a
    // replica that had not caught up, an eviction, a FLUSHDB.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{kompoz:breaker:forgotten}*")
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut connection).await.unwrap();
    // Failures reach the fleet's threshold again: the fleet must open.
    fail(&a).await;
    fail(&b).await;
    let opened = eventually(SOON, || async {
        fail(&a).await;
        a.state() == CircuitState::Open && b.state() == CircuitState::Open
    })
    .await;
    assert!(opened.is_some(), "failures after Redis forgot the circuit were never counted");
}
