//! The fleet rate limit through its Rust API, against a real Redis. The four-process test
//! is in `fleet.rs`.

mod support;

use std::time::Duration;

use kompoz_redis::rate::RateError;
use kompoz_redis::{ConfigError, Degradation, Fleet};
use support::RedisServer;

fn fleet(server: &RedisServer) -> Fleet {
    Fleet::builder(server.url())
        .call_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

async fn script_calls(server: &RedisServer) -> u64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String =
        redis::cmd("INFO").arg("commandstats").query_async(&mut connection).await.unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_then_one_cell_per_interval_across_processes() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    // 10 per second, a burst of 4: one cell every 100 ms.
    let a = one.rate_limit("burst", 10, Duration::from_secs(1)).burst(4).build().unwrap();
    let b = two.rate_limit("burst", 10, Duration::from_secs(1)).burst(4).build().unwrap();
    assert_eq!(a.interval(), Duration::from_millis(100));
    a.check().await.unwrap();
    b.check_n(2).await.unwrap();
    a.check().await.unwrap();
    // The burst is spent fleet-wide: the next cell waits about one interval.
    let Err(RateError::Limited { wait }) = b.check().await else {
        panic!("the fifth cell conformed")
    };
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
    assert_eq!(b.check_n(5).await, Err(RateError::ExceedsBurst { cells: 5, burst: 4 }));
    // After the reported wait, it conforms (Redis's clock and ours run at the same rate).
    tokio::time::sleep(wait).await;
    b.check().await.unwrap();
    assert!(matches!(a.check().await, Err(RateError::Limited { .. })));
    assert!(a.until_ready(Duration::from_secs(1)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_ready_with_a_wait_beyond_the_end_of_time_never_panics() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limit = fleet.rate_limit("no-deadline", 10, Duration::from_secs(1)).build().unwrap();
    assert_eq!(limit.until_ready(Duration::MAX).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_limits_keep_one_quota_per_key() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limiter = fleet.rate_limit("accounts", 1, Duration::from_secs(60)).build_keyed().unwrap();
    limiter.check("alice").await.unwrap();
    limiter.check("bob").await.unwrap();
    let Err(RateError::Limited { wait }) = limiter.check("alice").await else {
        panic!("alice again")
    };
    assert!(wait > Duration::from_secs(59), "{wait:?}");
    assert!(matches!(limiter.check("bob").await, Err(RateError::Limited { .. })));
    limiter.check("carol").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_takes_several_cells_per_round_trip() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limiter = fleet
        .rate_limit("reserved", 1_000, Duration::from_secs(1))
        .burst(500)
        .reserve(10)
        .build()
        .unwrap();
    // Load the script first (the first call of a script costs a second round trip).
    fleet.rate_limit("warm-up", 1, Duration::from_secs(1)).build().unwrap().check().await.unwrap();
    let before = script_calls(&server).await;
    for _ in 0..100 {
        limiter.check().await.unwrap();
    }
    let trips = script_calls(&server).await - before;
    assert_eq!(trips, 10, "100 cells in rounds of 10 reserved at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_each_mode_degrades_and_local_cells_are_charged_on_return() {
    let Some(mut server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let build = |degradation| {
        fleet
            .rate_limit("down", 10, Duration::from_secs(1))
            .degradation(degradation)
            .build()
            .unwrap()
    };
    let (local, closed, open) =
        (build(Degradation::Local), build(Degradation::FailClosed), build(Degradation::FailOpen));
    local.check().await.unwrap();
    server.stop();
    // Local: the same quota on this process's clock; 9 more of the burst of 10 (the
    // first cell went to Redis, not to the local count).
    for _ in 0..10 {
        local.check().await.unwrap();
    }
    assert!(matches!(local.check().await, Err(RateError::Limited { .. })));
    assert_eq!(closed.check().await, Err(RateError::Unavailable));
    for _ in 0..50 {
        open.check().await.unwrap();
    }
    server.restart();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    // The restarted Redis knows nothing; the ten cells admitted locally are charged
    // first (a full burst), so the next cell does not conform.
    let Err(RateError::Limited { wait }) = local.check().await else {
        panic!("the charge was lost")
    };
    assert!(wait <= Duration::from_millis(100), "{wait:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn quotas_are_checked_when_built() {
    let fleet = Fleet::builder("redis://127.0.0.1:1/").build().unwrap();
    let second = Duration::from_secs(1);
    assert_eq!(
        fleet.rate_limit("r", 0, second).build().unwrap_err(),
        ConfigError::Zero { field: "cells" }
    );
    assert_eq!(
        fleet.rate_limit("r", 1, Duration::ZERO).build().unwrap_err(),
        ConfigError::Zero { field: "period" }
    );
    assert_eq!(
        fleet.rate_limit("r", 1, second).burst(0).build().unwrap_err(),
        ConfigError::Zero { field: "burst" }
    );
    assert!(matches!(
        fleet.rate_limit("r", 1, Duration::from_secs(1 << 40)).build().unwrap_err(),
        ConfigError::TooLarge { field: "period", .. }
    ));
    assert!(matches!(
        fleet.rate_limit("r", 1, second).reserve(1_001).build().unwrap_err(),
        ConfigError::TooLarge { field: "reserve", .. }
    ));
    assert!(matches!(
        fleet.rate_limit("r", 1, Duration::from_secs(1 << 30)).burst(u32::MAX).build().unwrap_err(),
        ConfigError::TooLarge { field: "burst x interval", .. }
    ));
    // Rounded up, as kompoz's local Quota: never faster than asked.
    let third = fleet.rate_limit("r", 3, second).build().unwrap();
    assert_eq!(third.interval(), Duration::from_nanos(333_333_334));
}
