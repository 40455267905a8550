//! The fleet limit through its Rust API, against a real Redis: several `Fleet`s in one
//! process stand for several processes (each has its own connections). The
//! multi-process tests are in `fleet.rs`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kompoz::{AsyncCombinator, Outcome, Rejection, async_rule};
use kompoz_redis::limit::{AcquireError, Admission, fleet_limited};
use kompoz_redis::{Degradation, Fleet};
use support::{RedisServer, eventually};

const SOON: Duration = Duration::from_secs(5);

fn fleet(server: &RedisServer) -> Fleet {
    Fleet::builder(server.url())
        .call_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_acquire_takes_free_permits_and_refuses_beyond_capacity() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let a = one.limit("try", 2).build().unwrap();
    let b = two.limit("try", 2).build().unwrap();
    let first = a.try_acquire().await.unwrap();
    let second = b.try_acquire().await.unwrap();
    assert_eq!((first.admission(), second.admission()), (Admission::Fleet, Admission::Fleet));
    assert_eq!(a.try_acquire().await.unwrap_err(), AcquireError::NoPermits);
    assert_eq!(b.try_acquire().await.unwrap_err(), AcquireError::NoPermits);
    assert_eq!(a.in_use().await.unwrap(), 2);
    second.release().await;
    assert_eq!(a.in_use().await.unwrap(), 1);
    let third = a.try_acquire().await.unwrap();
    drop((first, third));
    assert!(eventually(SOON, || async { a.in_use().await.unwrap() == 0 }).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_permit_goes_to_the_oldest_waiter_woken_by_pub_sub() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two, three) = (fleet(&server), fleet(&server), fleet(&server));
    // Polling every minute: only pub/sub can wake the waiters within the test's bounds.
    let build = |fleet: &Fleet| {
        fleet.limit("fifo", 1).poll_interval(Duration::from_secs(60)).build().unwrap()
    };
    let (holder, first, second) = (build(&one), build(&two), build(&three));
    let held = holder.acquire().await.unwrap();
    let (order, mut served) = tokio::sync::mpsc::unbounded_channel();
    let wait = |limit: kompoz_redis::FleetLimit, name: &'static str| {
        let order = order.clone();
        tokio::spawn(async move {
            let permit = limit.acquire().await.unwrap();
            order.send((name, Instant::now())).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(permit);
        })
    };
    let a = wait(first.clone(), "first");
    assert!(eventually(SOON, || async { holder.waiting().await.unwrap() == 1 }).await.is_some());
    let b = wait(second.clone(), "second");
    assert!(eventually(SOON, || async { holder.waiting().await.unwrap() == 2 }).await.is_some());
    // A newcomer cannot barge ahead of the line.
    assert_eq!(holder.try_acquire().await.unwrap_err(), AcquireError::NoPermits);
    let released = Instant::now();
    drop(held);
    let (name, at) = served.recv().await.unwrap();
    assert_eq!(name, "first");
    let (name, _) = served.recv().await.unwrap();
    assert_eq!(name, "second");
    a.await.unwrap();
    b.await.unwrap();
    let wake = at - released;
    eprintln!("release to the oldest waiter's grant, through pub/sub: {wake:?}");
    assert!(wake < SOON, "woken by pub/sub, not by the 60 s poll: {wake:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_waiter_gives_its_place_back() {
    let Some(server) = RedisServer::start() else { return };
    // The holder is another process: the waiter's local semaphore (1 permit, the
    // capacity) must be free for it to join the fleet's line.
    let (one, two) = (fleet(&server), fleet(&server));
    let held = one.limit("cancel", 1).build().unwrap().acquire().await.unwrap();
    let limit = two.limit("cancel", 1).build().unwrap();
    let waiter = tokio::spawn({
        let limit = limit.clone();
        async move { limit.acquire().await.map(drop) }
    });
    assert!(eventually(SOON, || async { limit.waiting().await.unwrap() == 1 }).await.is_some());
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert!(eventually(SOON, || async { limit.waiting().await.unwrap() == 0 }).await.is_some());
    drop(held);
    assert!(eventually(SOON, || async { limit.in_use().await.unwrap() == 0 }).await.is_some());
    assert!(limit.try_acquire().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquisitions_dropped_at_any_point_leave_nothing_behind() {
    let Some(server) = RedisServer::start() else { return };
    let (one, two) = (fleet(&server), fleet(&server));
    let limits = [one.limit("drops", 2).build().unwrap(), two.limit("drops", 2).build().unwrap()];
    let mut tasks = Vec::new();
    for task in 0..8 {
        let limit = limits[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut granted = 0;
            for _ in 0..40 {
                // Cancelled after a random delay: before sending, while in flight, while
                // in line, or after the grant.
                let patience = Duration::from_micros(fastrand::u64(0..10_000));
                if let Ok(Ok(permit)) = tokio::time::timeout(patience, limit.acquire()).await {
                    granted += 1;
                    if fastrand::bool() {
                        tokio::task::yield_now().await;
                    }
                    drop(permit);
                }
            }
            granted
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap();
    }
    eprintln!("{granted} of 320 acquisitions completed before their cancellation");
    let settled = eventually(Duration::from_secs(10), || async {
        limits[0].in_use().await.unwrap() == 0 && limits[0].waiting().await.unwrap() == 0
    })
    .await;
    assert!(settled.is_some(), "every lease and place in line came back");
    let (a, b) = (limits[0].try_acquire().await.unwrap(), limits[1].try_acquire().await.unwrap());
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_wait_turns_a_long_line_into_a_rejection() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limit = fleet.limit("patience", 1).max_wait(Duration::from_millis(100)).build().unwrap();
    let _held = limit.acquire().await.unwrap();
    assert_eq!(limit.acquire().await.unwrap_err(), AcquireError::WaitElapsed);
    assert_eq!(
        limit.acquire_with_max_wait(Duration::ZERO).await.unwrap_err(),
        AcquireError::WaitElapsed
    );
    assert!(eventually(SOON, || async { limit.waiting().await.unwrap() == 0 }).await.is_some());
    // The combinator face: rejected, told apart from a failure, the rule not run.
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let rule = async_rule(async move |_: &mut ()| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        true
    });
    let limited = fleet_limited(rule, limit.clone());
    assert_eq!(
        limited.run_detailed(&mut ()).await,
        Outcome::Rejected(Rejection::Limit(kompoz::limit::AcquireError::WaitElapsed))
    );
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maximum_wait_beyond_the_end_of_time_waits_and_never_panics() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    // No local semaphore in front: the waiter queues in Redis's line.
    let limit = fleet.limit("forever", 1).degradation(Degradation::FailClosed).build().unwrap();
    // Free: granted at once, whatever the maximum wait.
    let held = limit.acquire_with_max_wait(Duration::MAX).await.unwrap();
    let waiter = tokio::spawn({
        let limit = limit.clone();
        async move { limit.acquire_with_max_wait(Duration::MAX).await.map(|p| p.admission()) }
    });
    assert!(eventually(SOON, || async { limit.waiting().await.unwrap() == 1 }).await.is_some());
    held.release().await;
    assert_eq!(waiter.await.expect("the waiting task did not panic"), Ok(Admission::Fleet));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_permit_is_renewed_and_outlives_its_lease_time() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let limit = fleet.limit("renew", 1).lease_time(Duration::from_millis(900)).build().unwrap();
    let permit = limit.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(limit.in_use().await.unwrap(), 1, "renewed every 300 ms");
    assert!(!permit.lapsed());
    assert_eq!(limit.try_acquire().await.unwrap_err(), AcquireError::NoPermits);
    permit.release().await;
    assert_eq!(limit.in_use().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_permit_is_renewed_while_other_permits_come_and_go_without_pause() {
    let Some(server) = RedisServer::start() else { return };
    // Generous call timeouts: 32 busy tasks load a loaded machine, and a call that timed
    // out would take the link down (a lapse for another reason).
    let fleet = Fleet::builder(server.url())
        .call_timeout(Duration::from_millis(300))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    let limit = fleet.limit("busy", 100).lease_time(Duration::from_millis(1_200)).build().unwrap();
    let permit = limit.acquire().await.unwrap();
    let id = permit.lease_id().unwrap().to_string();
    // A busy service: permits taken and given back all the time by many tasks, so the
    // keeper has orders waiting whenever it looks. It must still renew the permit held
    // all along. (Before the fix, the lease lapsed in 3 runs of 4 here: with fewer tasks
    // the keeper finds no order often enough to renew.)
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn: Vec<_> = (0..64)
        .map(|_| {
            let (limit, stop) = (limit.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    drop(limit.try_acquire().await);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    // More than two lease times later, the held lease is still in Redis, alive.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let (seconds, micros): (u64, u64) =
        redis::cmd("TIME").query_async(&mut connection).await.unwrap();
    let expiry: Option<f64> = redis::cmd("ZSCORE")
        .arg("{kompoz:limit:busy}:holders")
        .arg(&id)
        .query_async(&mut connection)
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in churn {
        task.await.unwrap();
    }
    let now = (seconds * 1_000_000 + micros) as f64;
    assert!(expiry.is_some_and(|expiry| expiry > now), "the held lease lapsed: {expiry:?}");
    assert!(!permit.lapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_each_mode_degrades_and_local_permits_are_registered_on_return() {
    let Some(mut server) = RedisServer::start() else { return };
    let fleet = fleet(&server);
    let local = fleet.limit("down", 3).local_limit(2).build().unwrap();
    let closed =
        fleet.limit("down-closed", 3).degradation(Degradation::FailClosed).build().unwrap();
    let open = fleet.limit("down-open", 3).degradation(Degradation::FailOpen).build().unwrap();
    let before = local.acquire().await.unwrap();
    assert_eq!(before.admission(), Admission::Fleet);

    server.stop();
    let started = Instant::now();
    let during = local.acquire().await.unwrap();
    assert_eq!(during.admission(), Admission::Local);
    // The local semaphore (2) still counts the permit taken before Redis went away.
    assert_eq!(local.try_acquire().await.unwrap_err(), AcquireError::NoPermits);
    assert_eq!(closed.acquire().await.unwrap_err(), AcquireError::Unavailable);
    assert_eq!(open.acquire().await.unwrap().admission(), Admission::Open);
    let degraded_in = started.elapsed();
    eprintln!("four calls with Redis down answered in {degraded_in:?}");
    assert!(degraded_in < SOON, "never a hang: at most one call timeout each");
    assert!(!fleet.is_reachable());

    server.restart();
    assert!(fleet.wait_reachable(SOON).await);
    // Redis lost everything; the keeper registered both permits again (the fleet one,
    // now reported lapsed, and the local one).
    let resynced = eventually(SOON, || async { local.in_use().await.unwrap_or(0) == 2 }).await;
    assert!(resynced.is_some(), "held permits registered again after the restart");
    assert!(before.lapsed());
    assert!(!during.lapsed());
    // Back to normal: the next permit is granted by Redis, counted with the other two.
    let after = local.try_acquire().await;
    assert_eq!(after.unwrap_err(), AcquireError::NoPermits, "the local limit is still full");
    drop(during);
    let after = local.acquire().await.unwrap();
    assert_eq!(after.admission(), Admission::Fleet);
    drop((before, after));
    assert!(eventually(SOON, || async { local.in_use().await.unwrap() == 0 }).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_built_while_redis_is_down_starts_degraded_and_recovers() {
    let Some(mut server) = RedisServer::start() else { return };
    server.stop();
    let fleet = fleet(&server);
    let limit = fleet.limit("late", 1).build().unwrap();
    let early = limit.acquire().await.unwrap();
    assert_eq!(early.admission(), Admission::Local);
    server.restart();
    assert!(fleet.wait_reachable(SOON).await);
    assert!(eventually(SOON, || async { limit.in_use().await.unwrap_or(0) == 1 }).await.is_some());
    drop(early);
    assert!(eventually(SOON, || async { limit.in_use().await.unwrap() == 0 }).await.is_some());
    assert_eq!(limit.acquire().await.unwrap().admission(), Admission::Fleet);
}

#[tokio::test(flavor = "current_thread")]
async fn configurations_are_checked_when_built() {
    use kompoz_redis::ConfigError;
    let fleet = Fleet::builder("redis://127.0.0.1:1/").build().unwrap();
    assert_eq!(fleet.limit("x", 0).build().unwrap_err(), ConfigError::Zero { field: "capacity" });
    assert_eq!(
        fleet.limit("x", 1).local_limit(0).build().unwrap_err(),
        ConfigError::Zero { field: "local_limit" }
    );
    assert_eq!(
        fleet.limit("a b", 1).build().unwrap_err(),
        ConfigError::InvalidName { field: "name", value: "a b".into() }
    );
    assert!(matches!(
        fleet.limit("{x}", 1).build().unwrap_err(),
        ConfigError::InvalidName { field: "name", .. }
    ));
    assert!(matches!(
        fleet.limit("x", u32::MAX).build().unwrap_err(),
        ConfigError::TooLarge { field: "capacity", .. }
    ));
    assert_eq!(
        fleet.limit("x", 1).lease_time(Duration::from_millis(999)).build().unwrap_err(),
        ConfigError::LeaseTooShort {
            lease_time: Duration::from_millis(999),
            call_timeout: Duration::from_millis(250)
        }
    );
    assert_eq!(
        fleet.limit("x", 1).poll_interval(Duration::ZERO).build().unwrap_err(),
        ConfigError::Zero { field: "poll_interval" }
    );
    assert!(matches!(
        Fleet::builder("not a url").build().unwrap_err(),
        ConfigError::InvalidUrl { .. }
    ));
    assert!(matches!(
        Fleet::builder("redis://127.0.0.1:1").prefix("").build().unwrap_err(),
        ConfigError::InvalidName { field: "prefix", .. }
    ));
    let outside = std::thread::spawn(|| Fleet::builder("redis://127.0.0.1:1").build().map(drop));
    assert_eq!(outside.join().unwrap().unwrap_err(), ConfigError::NoRuntime);
    for error in [ConfigError::Zero { field: "capacity" }, ConfigError::NoRuntime] {
        assert!(!error.to_string().is_empty());
    }
}
