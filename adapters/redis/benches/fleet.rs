//! Fleet-wide primitives on a loopback Redis, beside the naive alternatives, and the
//! shared breaker's closed path beside the local breaker's. Run by hand:
//!
//! ```sh
//! cargo bench -p kompoz-redis --bench fleet
//! # the breaker case alone
//! cargo bench -p kompoz-redis --bench fleet -- breaker
//! ```
//!
//! It starts its own `redis-server` (persistence off) on a free loopback port. Each case
//! runs for a fixed time; the Redis cases report operations per second and the round
//! trips per operation (Redis's own command counts); the breaker case reports medians of
//! interleaved rounds, in nanoseconds per call, and their ratio.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kompoz::breaker::CircuitBreaker;
use kompoz_redis::{Degradation, Fleet};
use redis::AsyncCommands;
use support::RedisServer;

const RUN: Duration = Duration::from_secs(2);

/// Commands clients have sent so far (from `INFO commandstats`, which also counts the
/// commands scripts run inside Redis: only those a client sends are summed, one round
/// trip each).
async fn commands(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String =
        redis::cmd("INFO").arg("commandstats").query_async(&mut connection).await.unwrap();
    info.lines()
        .filter(|line| {
            [
                "cmdstat_eval:",
                "cmdstat_evalsha:",
                "cmdstat_script:",
                "cmdstat_incrby:",
                "cmdstat_decrby:",
            ]
            .iter()
            .any(|command| line.starts_with(command))
        })
        .filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Runs `op` from `tasks` tasks for `RUN`; returns (operations per second, round trips
/// per operation).
async fn measure<F, Fut>(url: &str, tasks: usize, op: F) -> (f64, f64)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let before = commands(url).await;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (op, done) = (Arc::clone(&op), Arc::clone(&done));
            tokio::spawn(async move {
                while started.elapsed() < RUN {
                    if op().await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ops = done.load(Ordering::Relaxed);
    let trips = commands(url).await - before;
    (ops as f64 / elapsed, trips as f64 / ops.max(1) as f64)
}

const CALLS: u32 = 1_000_000;

/// This thread's CPU time, in nanoseconds: the breaker's loops are timed on it, not on the
/// wall clock, so that a round during which the thread was descheduled (the machine
/// running other work) costs what it ran, not what it waited. Both breakers' loops run on
/// the same thread, timed by the same clock.
fn cpu_time() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

// Each loop runs in a small future of its own (polled by `futures`' block_on), so that
// no case pays for the state of a large enclosing future; nanoseconds per call.
#[inline(never)]
async fn local_calls(local: &CircuitBreaker<kompoz::StdClock>) -> f64 {
    let started = cpu_time();
    for _ in 0..CALLS {
        let _ = black_box(black_box(local).call(async { Ok::<_, ()>(1) }).await);
    }
    (cpu_time() - started) as f64 / f64::from(CALLS)
}

#[inline(never)]
async fn shared_calls(shared: &kompoz_redis::SharedBreaker) -> f64 {
    let started = cpu_time();
    for _ in 0..CALLS {
        let _ = black_box(black_box(shared).call(async { Ok::<_, ()>(1) }).await);
    }
    (cpu_time() - started) as f64 / f64::from(CALLS)
}

// An `async fn` like the shared guard's loop (which must `.await` its admission), run
// the same way, so that only the admission and the verdict differ.
#[inline(never)]
async fn local_guards(local: &CircuitBreaker<kompoz::StdClock>) -> f64 {
    let started = cpu_time();
    for _ in 0..CALLS {
        black_box(local).try_acquire().unwrap().success();
    }
    (cpu_time() - started) as f64 / f64::from(CALLS)
}

#[inline(never)]
async fn shared_guards(shared: &kompoz_redis::SharedBreaker) -> f64 {
    let started = cpu_time();
    for _ in 0..CALLS {
        black_box(shared).try_acquire().await.unwrap().success();
    }
    (cpu_time() - started) as f64 / f64::from(CALLS)
}

fn main() {
    let breaker_only = std::env::args().any(|arg| arg == "breaker");
    let Some(server) = RedisServer::start() else { return };
    let url = server.url();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let fleet = Fleet::builder(&url).build().unwrap();
        if !breaker_only {
            println!("kompoz-redis on a loopback redis-server ({}), {RUN:?} per case, 2 tokio workers", url);
            println!("\n| case | tasks | kompoz-redis ops/s | round trips/op | naive ops/s | round trips/op | ratio |");
            println!("|---|---:|---:|---:|---:|---:|---:|");
            for (round, tasks) in [1usize, 16].into_iter().enumerate() {
                // Permits are plentiful: this measures the cost of taking and giving one back.
                let limit = fleet.limit(format!("bench-{round}"), 1_000).degradation(Degradation::FailClosed).build().unwrap();
                let (ours, our_trips) = measure(&url, tasks, {
                    let limit = limit.clone();
                    move || {
                        let limit = limit.clone();
                        async move {
                            match limit.try_acquire().await {
                                Ok(permit) => {
                                    permit.release().await;
                                    true
                                }
                                Err(_) => false,
                            }
                        }
                    }
                })
                .await;
                let client = redis::Client::open(url.as_str()).unwrap();
                let connection = client.get_multiplexed_async_connection().await.unwrap();
                let key = format!("naive-{round}");
                let (naive, naive_trips) = measure(&url, tasks, move || {
                    let (mut connection, key) = (connection.clone(), key.clone());
                    async move {
                        // The naive limiter: INCR to take, DECR to give back (or to undo a
                        // take beyond the capacity). No leases: a crash leaks its permits.
                        let held: i64 = connection.incr(&key, 1).await.unwrap();
                        let _: i64 = connection.decr(&key, 1).await.unwrap();
                        held <= 1_000
                    }
                })
                .await;
                println!(
                    "| fleet limit: try_acquire + release | {tasks} | {ours:.0} | {our_trips:.2} | {naive:.0} | {naive_trips:.2} | {:.2}x |",
                    ours / naive
                );
            }

            for (round, tasks) in [1usize, 16].into_iter().enumerate() {
                // A quota far above what a loopback Redis serves: every check is admitted.
                let limiter = fleet
                    .rate_limit(format!("bench-rate-{round}"), kompoz::rate::Quota::per_second(1_000_000_000).unwrap())
                    .degradation(Degradation::FailClosed)
                    .build()
                    .unwrap();
                let (ours, our_trips) = measure(&url, tasks, {
                    let limiter = limiter.clone();
                    move || {
                        let limiter = limiter.clone();
                        async move { limiter.check().await.is_ok() }
                    }
                })
                .await;
                let client = redis::Client::open(url.as_str()).unwrap();
                let connection = client.get_multiplexed_async_connection().await.unwrap();
                let key = format!("naive-rate-{round}");
                let (naive, naive_trips) = measure(&url, tasks, move || {
                    let (mut connection, key) = (connection.clone(), key.clone());
                    async move {
                        // The naive rate limiter: a fixed one-second window, INCR and EXPIRE in
                        // one pipeline (up to twice the quota across a window's edge).
                        let (count,): (i64,) = redis::pipe()
                            .incr(&key, 1)
                            .expire(&key, 1)
                            .ignore()
                            .query_async(&mut connection)
                            .await
                            .unwrap();
                        count <= 1_000_000_000
                    }
                })
                .await;
                println!(
                    "| fleet rate limit: check (GCRA script) vs INCR+EXPIRE fixed window | {tasks} | {ours:.0} | {our_trips:.2} | {naive:.0} | {naive_trips:.2} | {:.2}x |",
                    ours / naive
                );
            }
        }

        // The shared breaker's closed path beside the local breaker's, in one thread.
        let shared = fleet.breaker("bench").sync_interval(Duration::from_secs(3600)).build().unwrap();
        shared.refresh().await;
        let local = CircuitBreaker::builder().build().unwrap();
        let cases: [(&str, Vec<f64>, Vec<f64>); 2] = [
            ("closed: `call` around a ready future (the async face of both)", Vec::new(), Vec::new()),
            ("closed: try_acquire + success (shared: `.await`ed guard; both loops in a future)", Vec::new(), Vec::new()),
        ];
        let mut cases = cases;
        for _ in 0..21 {
            cases[0].1.push(futures::executor::block_on(local_calls(&local)));
            cases[0].2.push(futures::executor::block_on(shared_calls(&shared)));
            cases[1].1.push(futures::executor::block_on(local_guards(&local)));
            cases[1].2.push(futures::executor::block_on(shared_guards(&shared)));
        }
        let median = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        println!("\n| case (1 thread, CPU time, medians of 21 interleaved rounds of 1M) | local breaker ns/call | shared breaker ns/call | ratio | target |");
        println!("|---|---:|---:|---:|---|");
        for (name, local_ns, shared_ns) in &mut cases {
            let (local_ns, shared_ns) = (median(local_ns), median(shared_ns));
            let ratio = shared_ns / local_ns;
            println!(
                "| {name} | {local_ns:.1} | {shared_ns:.1} | {ratio:.2}x | <= 2.00x ({}) |",
                if ratio <= 2.0 { "met" } else { "NOT met" }
            );
        }
    });
}
