//! The fleet rate limit through its Rust API, against a real Redis: checks, keys,
//! reservations, the degradation modes (the local fallback on a manual clock), and the
//! faces it shares with kompoz's local limiter (the pipeline layer, the combinator). The
//! four-process test is in `fleet.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kompoz::pipeline::Pipeline;
use kompoz::rate::{ExceedsBurst, Quota, RateLimited};
use kompoz::retry::RetryPolicy;
use kompoz::{
    AsyncCombinator, Clock, Error, ManualClock, Outcome, Rejection, RetryAfter, async_rule,
};
use kompoz_redis::pipeline::FleetRateLayer;
use kompoz_redis::rate::{RateError, fleet_rate_limited};
use kompoz_redis::{ConfigError, Degradation, Fleet};
use kompoz_tokio::TokioClock;
use support::RedisServer;

fn fleet(server: &RedisServer) -> Fleet {
    Fleet::builder(server.url())
        .call_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

fn quota(per_second: u32, burst: u32) -> Quota {
    Quota::per_second(per_second).unwrap().with_burst(burst).unwrap()
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
    let a = one.rate_limit("burst", quota(10, 4)).build().unwrap();
    let b = two.rate_limit("burst", quota(10, 4)).build().unwrap();
    assert_eq!(a.quota().interval(), Duration::from_millis(100));
    a.check().await.unwrap();
    b.check_n(2).await.unwrap();
    a.check().await.unwrap();
    // The burst is spent fleet-wide: the next cell waits about one interval, and the
    // refusal is kompoz's own, with the instant on the limiter's clock.
    let before = b.clock().now();
    let Err(RateError::Limited(limited)) = b.check().await else {
        panic!("the fifth cell conformed")
    };
    let wait = limited.wait;
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
    assert!(limited.earliest >= before + wait && limited.earliest <= b.clock().now() + wait);
    assert_eq!(RateError::Limited(limited).retry_after(), Some(wait));
    assert_eq!(
        b.check_n(5).await,
        Err(RateError::ExceedsBurst(ExceedsBurst { cells: 5, burst: 4 }))
    );
    // After the reported wait, it conforms (Redis's clock and ours run at the same rate).
    tokio::time::sleep(wait).await;
    b.check().await.unwrap();
    assert!(matches!(a.check().await, Err(RateError::Limited(_))));
    assert!(a.until_ready(Duration::from_secs(1)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_ready_with_a_wait_beyond_the_end_of_time_never_panics() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limit = fleet.rate_limit("no-deadline", quota(10, 10)).build().unwrap();
    assert_eq!(limit.until_ready(Duration::MAX).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_limits_keep_one_quota_per_key() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let per_minute = Quota::per_minute(1).unwrap();
    let limiter = fleet.rate_limit("accounts", per_minute).build_keyed().unwrap();
    limiter.check("alice").await.unwrap();
    limiter.check("bob").await.unwrap();
    let Err(RateError::Limited(limited)) = limiter.check("alice").await else {
        panic!("alice again")
    };
    assert!(limited.wait > Duration::from_secs(59), "{limited:?}");
    assert!(matches!(limiter.check("bob").await, Err(RateError::Limited(_))));
    limiter.check("carol").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_takes_several_cells_per_round_trip() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limiter = fleet.rate_limit("reserved", quota(1_000, 500)).reserve(10).build().unwrap();
    // Load the script first (the first call of a script costs a second round trip).
    fleet.rate_limit("warm-up", quota(1, 1)).build().unwrap().check().await.unwrap();
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
    // The local fallback decides on this clock: only the test moves it.
    let clock = ManualClock::new();
    let build = |degradation| {
        fleet
            .rate_limit("down", quota(10, 10))
            .degradation(degradation)
            .build_with(clock.clone())
            .unwrap()
    };
    let (local, closed, open) =
        (build(Degradation::Local), build(Degradation::FailClosed), build(Degradation::FailOpen));
    local.check().await.unwrap();
    server.stop();
    // Local: kompoz's own limiter on the same quota, with its full burst of 10 (the first
    // cell went to Redis, not to the local count), then one cell per 100 ms of the clock.
    for _ in 0..10 {
        local.check().await.unwrap();
    }
    let refused = RateLimited {
        earliest: clock.now() + Duration::from_millis(100),
        wait: Duration::from_millis(100),
    };
    assert_eq!(local.check().await, Err(RateError::Limited(refused)));
    clock.advance(Duration::from_millis(100));
    local.check().await.unwrap();
    assert_eq!(
        local.check_detailed(1).await.unwrap_err(),
        RateError::Limited(refused_after(&clock))
    );
    assert_eq!(closed.check().await, Err(RateError::Unavailable));
    for _ in 0..50 {
        open.check().await.unwrap();
    }
    server.restart();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    // The restarted Redis knows nothing; the eleven cells admitted locally are charged
    // first (a full burst at most), so the next cell does not conform.
    let Err(RateError::Limited(limited)) = local.check().await else {
        panic!("the charge was lost")
    };
    assert!(limited.wait <= Duration::from_millis(100), "{limited:?}");
}

/// The refusal of a one-cell check right after an admission that spent the last cell.
fn refused_after(clock: &ManualClock) -> RateLimited {
    let wait = Duration::from_millis(100);
    RateLimited { earliest: clock.now() + wait, wait }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_limit_falls_back_to_kompoz_keyed_limiter() {
    let Some(mut server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let clock = ManualClock::new();
    let limiter =
        fleet.rate_limit("keyed-down", quota(1, 2)).build_keyed_with(clock.clone()).unwrap();
    server.stop();
    for key in ["a", "b"] {
        limiter.check_n(key, 2).await.unwrap();
        let refused = limiter.check(key).await.unwrap_err();
        assert_eq!(
            refused,
            RateError::Limited(RateLimited {
                earliest: clock.now() + Duration::from_secs(1),
                wait: Duration::from_secs(1)
            })
        );
    }
    assert_eq!(
        limiter.check_n("c", 3).await,
        Err(RateError::ExceedsBurst(ExceedsBurst { cells: 3, burst: 2 }))
    );
    server.restart();
    assert!(fleet.wait_reachable(Duration::from_secs(5)).await);
    // "a" spent its burst locally: charged on its next check, which Redis refuses.
    assert!(matches!(limiter.check("a").await, Err(RateError::Limited(_))));
    // A key never seen is fresh.
    limiter.check_n("d", 2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_layer_rejects_with_the_wait_and_a_retry_waits_exactly_that() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    // One cell a minute: the second call is refused, with the wait.
    let per_minute = fleet.rate_limit("layer", Quota::per_minute(1).unwrap()).build().unwrap();
    let shedding = Pipeline::<u32, &str, _>::with_timer(TokioClock)
        .layer(FleetRateLayer::new(per_minute).reject());
    assert_eq!(shedding.call(|| async { Ok(1) }).await, Ok(1));
    let rejected = shedding.call(|| async { Ok(2) }).await;
    let Err(Error::Rejected(Rejection::Rate(limited))) = rejected else {
        panic!("the second call in a minute was let through: {rejected:?}")
    };
    assert!(limited.wait > Duration::from_secs(59), "{limited:?}");
    assert_eq!(Rejection::Rate(limited).retry_after(), Some(limited.wait));

    // One cell a second: a retry outside the layer waits the wait the rejection carries,
    // then the cell conforms.
    let limiter = fleet.rate_limit("layer-retried", Quota::per_second(1).unwrap()).build().unwrap();
    limiter.check().await.unwrap();
    // A retry outside it waits the wait the rejection carries, then the cell conforms.
    let delays = Arc::new(Mutex::new(Vec::new()));
    let retrying = Pipeline::<u32, &str, _>::with_timer(TokioClock)
        .retry(RetryPolicy::builder().max_attempts(3).build().unwrap())
        .on_retry({
            let delays = Arc::clone(&delays);
            move |_, error: &Error<&str>, delay| {
                let Error::Rejected(Rejection::Rate(limited)) = error else {
                    panic!("retried {error:?}")
                };
                assert_eq!(delay, limited.wait, "the retry waits exactly the rate limit's wait");
                delays.lock().unwrap().push(delay);
            }
        })
        .layer(FleetRateLayer::new(limiter.clone()).reject());
    assert_eq!(retrying.call(|| async { Ok(3) }).await, Ok(3));
    assert_eq!(delays.lock().unwrap().len(), 1, "one refusal, then admitted after its wait");

    // Waiting (the default) and waiting at most a while.
    let waiting = Pipeline::<u32, &str, _>::with_timer(TokioClock)
        .layer(FleetRateLayer::new(limiter.clone()));
    assert_eq!(waiting.call(|| async { Ok(4) }).await, Ok(4));
    let impatient = Pipeline::<u32, &str, _>::with_timer(TokioClock)
        .layer(FleetRateLayer::new(limiter).max_wait(Duration::from_millis(1)));
    assert!(matches!(
        impatient.call(|| async { Ok(5) }).await,
        Err(Error::Rejected(Rejection::Rate(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combinator_runs_rules_at_the_fleet_rate_and_fails_closed_as_rate_limited() {
    let Some(mut server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let rule = async_rule(async |n: &mut u32| *n > 0);
    let per_minute = Quota::per_minute(1).unwrap();
    let limited =
        fleet_rate_limited(rule, fleet.rate_limit("combinator", per_minute).build().unwrap())
            .reject();
    assert_eq!(limited.run_owned(1).await, (true, 1));
    let Outcome::Rejected(Rejection::Rate(refused)) = limited.run_detailed(&mut 2).await else {
        panic!("the second run in a minute ran")
    };
    assert!(refused.wait > Duration::from_secs(59), "{refused:?}");

    // Failing closed while Redis is down: rate limited for the first reconnection delay.
    let clock = ManualClock::new();
    let closed = fleet
        .rate_limit("combinator-closed", per_minute)
        .degradation(Degradation::FailClosed)
        .build_with(clock.clone())
        .unwrap();
    let closed = fleet_rate_limited(rule, closed);
    server.stop();
    let wait = Duration::from_millis(20);
    assert_eq!(
        closed.run_detailed(&mut 1).await,
        Outcome::Rejected(Rejection::Rate(RateLimited { earliest: clock.now() + wait, wait }))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn names_and_reservations_are_checked_when_built() {
    let fleet = Fleet::builder("redis://127.0.0.1:1/").build().unwrap();
    let per_second = Quota::per_second(1).unwrap();
    assert_eq!(
        fleet.rate_limit("r", per_second).reserve(0).build().unwrap_err(),
        ConfigError::Zero { field: "reserve" }
    );
    assert_eq!(
        fleet.rate_limit("r", per_second).reserve(1_001).build_keyed().unwrap_err(),
        ConfigError::TooLarge { field: "reserve", value: 1_001, max: 1_000 }
    );
    assert_eq!(
        fleet.rate_limit("a b", per_second).build().unwrap_err(),
        ConfigError::InvalidName { field: "name", value: "a b".into() }
    );
    // The quota is kompoz's, validated when it was made, and rounded up as it rounds.
    let third = fleet.rate_limit("r", Quota::per_second(3).unwrap()).build().unwrap();
    assert_eq!(third.quota().interval(), Duration::from_nanos(333_333_334));
}
