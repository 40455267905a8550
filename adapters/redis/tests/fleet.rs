//! Several OS processes share fleet-wide primitives through a real Redis.
//!
//! This binary is both the test and its workers: run without `--worker`, it starts a
//! `redis-server`, spawns copies of itself with `--worker <role> ...`, and checks what
//! they did from the logs they write (instants on the machine's monotonic clock, which
//! all processes share). The scenarios run at the same time, on separate keys, so the
//! whole test takes about ten seconds.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kompoz_redis::limit::AcquireError;
use kompoz_redis::{Degradation, Fleet};
use support::{RedisServer, eventually};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Nanoseconds on CLOCK_MONOTONIC: comparable across the processes of one machine.
fn monotonic_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if args.get(1).map(String::as_str) == Some("--worker") {
        runtime.block_on(worker(&args[2..]));
        return;
    }
    let Some(server) = RedisServer::start() else {
        println!(
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out (redis-server not found)"
        );
        return;
    };
    let started = Instant::now();
    let results = runtime.block_on(async {
        let server = &server;
        let (share, crash, breaker, rate) = tokio::join!(
            scenario("four processes share a limit of 3 for 10 s", share(server)),
            scenario("a SIGKILLed holder's permits come back within the lease time", crash(server)),
            scenario(
                "an opening reaches other processes; probes are limited fleet-wide",
                breaker(server)
            ),
            scenario("four processes share one rate quota for 5 s", rate(server)),
        );
        [share, crash, breaker, rate]
    });
    let passed = results.iter().filter(|ok| **ok).count();
    let failed = results.len() - passed;
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s",
        if failed == 0 { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    drop(server);
    if failed > 0 {
        std::process::exit(101);
    }
}

async fn scenario(
    name: &str,
    run: impl std::future::Future<Output = Result<String, String>>,
) -> bool {
    match run.await {
        Ok(report) => {
            println!("test {name} ... ok\n    {report}");
            true
        }
        Err(why) => {
            println!("test {name} ... FAILED\n    {why}");
            false
        }
    }
}

fn ensure(condition: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(why()) }
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kompoz-redis-{}-{name}.log", std::process::id()))
}

fn spawn_worker(args: &[&str]) -> tokio::process::Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .arg("--worker")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("a worker process starts")
}

const SHARE_CAPACITY: usize = 3;
const SHARE_SECONDS: u64 = 10;

/// Four processes, three tasks each, take and give back permits of a limit of 3 for ten
/// seconds, with random holds and random cancellations. Each logs the instant after its
/// permit was granted and the instant before it gives it back: every logged interval lies
/// inside the lease's life in Redis, so if the merged logs ever show four at once, Redis
/// granted four. The limit fails closed (a slow call is a rejection, never a local
/// admission), so the verdict does not depend on how the machine schedules the workers.
async fn share(server: &RedisServer) -> Result<String, String> {
    let url = server.url();
    let logs: Vec<PathBuf> = (0..4).map(|i| log_path(&format!("share-{i}"))).collect();
    let mut workers: Vec<_> = logs
        .iter()
        .map(|log| {
            spawn_worker(&[
                "share",
                &url,
                "share",
                &SHARE_SECONDS.to_string(),
                log.to_str().unwrap(),
            ])
        })
        .collect();
    let mut summaries = Vec::new();
    for worker in &mut workers {
        let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
        let summary = lines.next_line().await.map_err(|e| e.to_string())?.unwrap_or_default();
        let status = worker.wait().await.map_err(|e| e.to_string())?;
        ensure(status.success(), || format!("a worker failed: {status} ({summary})"))?;
        summaries.push(summary);
    }
    let mut events = Vec::new();
    for (process, log) in logs.iter().enumerate() {
        let text = std::fs::read_to_string(log).map_err(|e| format!("{log:?}: {e}"))?;
        let _ = std::fs::remove_file(log);
        let (mut acquired, mut released) = (0, 0);
        for line in text.lines() {
            let (kind, at) = line.split_once(' ').ok_or("a malformed log line")?;
            let at: u64 = at.parse().map_err(|_| "a malformed instant")?;
            match kind {
                "A" => acquired += 1,
                "R" => released += 1,
                _ => return Err(format!("unknown event {kind}")),
            }
            // Releases sort before acquisitions at the same instant: touching is not
            // overlapping.
            events.push((at, kind == "A", process));
        }
        ensure(acquired == released, || {
            format!("process {process}: {acquired} acquired, {released} released")
        })?;
    }
    events.sort();
    let (mut held, mut peak, mut total) = (0usize, 0usize, 0usize);
    for &(_, acquire, _) in &events {
        if acquire {
            held += 1;
            total += 1;
            peak = peak.max(held);
        } else {
            held -= 1;
        }
    }
    ensure(peak <= SHARE_CAPACITY, || {
        format!("{peak} permits held at once, capacity {SHARE_CAPACITY}")
    })?;
    ensure(peak == SHARE_CAPACITY, || {
        format!("the limit was never full (peak {peak}): the test proves little")
    })?;
    // Every permit came back: nothing held, nobody in line.
    let fleet = Fleet::builder(&url).build().map_err(|e| e.to_string())?;
    let limit = fleet.limit("share", SHARE_CAPACITY as u32).build().map_err(|e| e.to_string())?;
    let in_use = limit.in_use().await.map_err(|e| e.to_string())?;
    let waiting = limit.waiting().await.map_err(|e| e.to_string())?;
    ensure(in_use == 0 && waiting == 0, || {
        format!("left behind: {in_use} leases, {waiting} waiters")
    })?;
    Ok(format!(
        "{total} permits granted to 12 tasks in 4 processes, peak {peak} of {SHARE_CAPACITY}, all given back; per process: {}",
        summaries.join(" | ")
    ))
}

const CRASH_LEASE: Duration = Duration::from_secs(1);
const CRASH_MARGIN: Duration = Duration::from_secs(1);

/// A process holds two of three permits and is killed with SIGKILL: its permits come back
/// within the lease time plus a margin (the lease is renewed every third of it; the
/// margin covers this test's polling and a loaded machine), and the permit this process
/// holds is not lost meanwhile.
async fn crash(server: &RedisServer) -> Result<String, String> {
    let url = server.url();
    let fleet = Fleet::builder(&url)
        .call_timeout(Duration::from_millis(200))
        .build()
        .map_err(|e| e.to_string())?;
    let limit =
        fleet.limit("crash", 3).lease_time(CRASH_LEASE).build().map_err(|e| e.to_string())?;
    let mine = limit.acquire().await.map_err(|e| e.to_string())?;
    let mut holder = spawn_worker(&["hold", &url, "crash", "2"]);
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let said = lines.next_line().await.map_err(|e| e.to_string())?;
    ensure(said.as_deref() == Some("held"), || format!("the holder said {said:?}"))?;
    ensure(limit.in_use().await.map_err(|e| e.to_string())? == 3, || "3 leases held".into())?;
    // Let a renewal or two happen, so that the lease is not simply the first grant's.
    tokio::time::sleep(CRASH_LEASE / 2).await;
    holder.start_kill().map_err(|e| e.to_string())?;
    holder.wait().await.map_err(|e| e.to_string())?;
    let killed = Instant::now();
    let taken = Arc::new(Mutex::new(Vec::new()));
    let back = eventually(CRASH_LEASE + CRASH_MARGIN + Duration::from_secs(3), || {
        let (limit, taken) = (limit.clone(), Arc::clone(&taken));
        async move {
            if let Ok(permit) = limit.try_acquire().await {
                taken.lock().unwrap().push(permit);
            }
            taken.lock().unwrap().len() == 2
        }
    })
    .await;
    let recovered = killed.elapsed();
    let taken = std::mem::take(&mut *taken.lock().unwrap());
    ensure(back.is_some(), || format!("the permits did not come back within {recovered:?}"))?;
    ensure(recovered <= CRASH_LEASE + CRASH_MARGIN, || {
        format!(
            "recovered after {recovered:?}, beyond lease {CRASH_LEASE:?} + margin {CRASH_MARGIN:?}"
        )
    })?;
    // Nothing else was lost: this process's permit still counts.
    ensure(limit.try_acquire().await.err() == Some(AcquireError::NoPermits), || {
        "a fourth permit".into()
    })?;
    ensure(!mine.lapsed(), || "the survivor's lease lapsed".into())?;
    drop((mine, taken));
    limit.settle().await;
    let in_use = limit.in_use().await.map_err(|e| e.to_string())?;
    ensure(in_use == 0, || format!("{in_use} leases left"))?;
    Ok(format!(
        "permits of the killed process back {recovered:?} after SIGKILL (lease {CRASH_LEASE:?}, renewed every third)"
    ))
}

const BREAKER_RECOVERY: Duration = Duration::from_millis(1_500);
const BREAKER_PROBES: usize = 2;
const STALENESS_BOUND: Duration = Duration::from_millis(1_500);

fn shared_breaker(fleet: &Fleet) -> kompoz_redis::SharedBreaker {
    fleet
        .breaker("shared")
        .failure_threshold(3)
        .recovery_timeout(BREAKER_RECOVERY)
        .half_open_max_calls(BREAKER_PROBES as u32)
        .build()
        .unwrap()
}

/// This process (A) fails three calls and opens its breaker; two other processes (B, C),
/// which saw no failure, watch their view and note when they start rejecting. Once the
/// open period has passed, B and C try to probe from three tasks each for a second,
/// holding each probe a few milliseconds: the merged probe intervals never exceed
/// `half_open_max_calls` at once.
async fn breaker(server: &RedisServer) -> Result<String, String> {
    let url = server.url();
    let logs: Vec<PathBuf> = (0..2).map(|i| log_path(&format!("probes-{i}"))).collect();
    let mut observers: Vec<_> =
        logs.iter().map(|log| spawn_worker(&["observe", &url, log.to_str().unwrap()])).collect();
    let mut outputs = Vec::new();
    for observer in &mut observers {
        let mut lines = BufReader::new(observer.stdout.take().unwrap()).lines();
        let ready = lines.next_line().await.map_err(|e| e.to_string())?;
        ensure(ready.as_deref() == Some("ready"), || format!("an observer said {ready:?}"))?;
        outputs.push(lines);
    }
    let fleet = Fleet::builder(&url).build().map_err(|e| e.to_string())?;
    let breaker = shared_breaker(&fleet);
    for _ in 0..2 {
        let _ = breaker.call(async { Err::<(), _>("down") }).await;
    }
    let tripped = monotonic_nanos();
    let _ = breaker.call(async { Err::<(), _>("down") }).await;
    let mut staleness = Vec::new();
    for lines in &mut outputs {
        let said = lines.next_line().await.map_err(|e| e.to_string())?.unwrap_or_default();
        let seen: u64 = said
            .strip_prefix("open ")
            .and_then(|t| t.parse().ok())
            .ok_or(format!("an observer said {said:?}"))?;
        staleness.push(Duration::from_nanos(seen.saturating_sub(tripped)));
    }
    for observer in &mut observers {
        let status = observer.wait().await.map_err(|e| e.to_string())?;
        ensure(status.success(), || format!("an observer failed: {status}"))?;
    }
    let worst = *staleness.iter().max().unwrap();
    ensure(worst <= STALENESS_BOUND, || format!("an observer saw the opening after {worst:?}"))?;
    let mut events = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log).map_err(|e| format!("{log:?}: {e}"))?;
        let _ = std::fs::remove_file(log);
        for line in text.lines() {
            let (kind, at) = line.split_once(' ').ok_or("a malformed log line")?;
            events.push((at.parse::<u64>().map_err(|_| "a malformed instant")?, kind == "P"));
        }
    }
    events.sort();
    let (mut running, mut peak, mut probes) = (0usize, 0usize, 0usize);
    for &(_, start) in &events {
        if start {
            running += 1;
            probes += 1;
            peak = peak.max(running);
        } else {
            running -= 1;
        }
    }
    ensure(peak <= BREAKER_PROBES, || {
        format!("{peak} probes at once in the fleet, limit {BREAKER_PROBES}")
    })?;
    ensure(probes >= 10, || format!("only {probes} probes: the test proves little"))?;
    Ok(format!(
        "staleness (A's tripping failure to B's and C's first rejection): {staleness:?}, bound {STALENESS_BOUND:?}; \
         {probes} probes from 6 tasks in 2 processes, at most {peak} at once (limit {BREAKER_PROBES})"
    ))
}

async fn observe_worker(url: &str, log: &Path) {
    let fleet = Fleet::builder(url).build().unwrap();
    let breaker = shared_breaker(&fleet);
    breaker.refresh().await;
    println!("ready");
    while breaker.state() == kompoz::breaker::CircuitState::Closed {
        std::thread::sleep(Duration::from_micros(100));
    }
    let seen = monotonic_nanos();
    assert!(breaker.try_acquire().await.is_err(), "rejects once it sees the opening");
    println!("open {seen}");
    tokio::time::sleep(BREAKER_RECOVERY).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (breaker, events) = (breaker.clone(), Arc::clone(&events));
            tokio::spawn(async move {
                while tokio::time::Instant::now() < until {
                    match breaker.try_acquire().await {
                        Ok(guard) if guard.is_probe() => {
                            events.lock().unwrap().push(('P', monotonic_nanos()));
                            tokio::time::sleep(Duration::from_micros(fastrand::u64(2_000..6_000)))
                                .await;
                            events.lock().unwrap().push(('E', monotonic_nanos()));
                            drop(guard); // abandoned: the slot comes back, the circuit stays half-open
                        }
                        Ok(guard) => panic!("an ordinary call admitted while half-open: {guard:?}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let text: String =
        events.lock().unwrap().iter().map(|(kind, at)| format!("{kind} {at}\n")).collect();
    std::fs::write(log, text).unwrap();
}

const RATE_PER_SECOND: u32 = 200;
const RATE_BURST: u32 = 20;
const RATE_SECONDS: u64 = 5;

/// Four processes, two tasks each, ask for cells of one quota (200 a second, burst 20) as
/// fast as they are let for five seconds. Each logs the instant Redis decided each
/// admission (on the Redis clock, which the script returns), so the windows are exact:
/// for every pair of admissions, the admissions between them are at most `burst +
/// elapsed / interval`. And not much less: over the run, at least 80% of what the quota
/// allows was admitted.
async fn rate(server: &RedisServer) -> Result<String, String> {
    let url = server.url();
    let logs: Vec<PathBuf> = (0..4).map(|i| log_path(&format!("rate-{i}"))).collect();
    let mut workers: Vec<_> =
        logs.iter().map(|log| spawn_worker(&["rate", &url, log.to_str().unwrap()])).collect();
    for worker in &mut workers {
        let status = worker.wait().await.map_err(|e| e.to_string())?;
        ensure(status.success(), || format!("a rate worker failed: {status}"))?;
    }
    let mut instants = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log).map_err(|e| format!("{log:?}: {e}"))?;
        let _ = std::fs::remove_file(log);
        for line in text.lines() {
            instants.push(line.parse::<u64>().map_err(|_| "a malformed instant")?);
        }
    }
    instants.sort_unstable();
    let interval = 1_000_000_000 / u64::from(RATE_PER_SECOND);
    // Every window that starts and ends on an admission: the tightest ones.
    let mut worst = 0.0f64;
    for (i, &start) in instants.iter().enumerate() {
        for (j, &end) in instants.iter().enumerate().skip(i) {
            let admitted = (j - i + 1) as u64;
            let allowed = u64::from(RATE_BURST) + (end - start) / interval;
            ensure(admitted <= allowed, || {
                format!(
                    "{admitted} admitted in {:?}, the quota allows {allowed}",
                    Duration::from_nanos(end - start)
                )
            })?;
            if end - start >= 1_000_000_000 {
                worst = worst.max(admitted as f64 / allowed as f64);
                break;
            }
        }
    }
    let (first, last) = (instants[0], *instants.last().unwrap());
    let allowed = u64::from(RATE_BURST) + (last - first) / interval;
    let admitted = instants.len() as u64;
    ensure(admitted * 10 >= allowed * 8, || {
        format!("only {admitted} admitted of {allowed} allowed")
    })?;
    Ok(format!(
        "{admitted} cells admitted to 8 tasks in 4 processes over {:?} (the quota allows {allowed}); no window over the bound",
        Duration::from_nanos(last - first)
    ))
}

async fn rate_worker(url: &str, log: &Path) {
    let fleet = Fleet::builder(url).call_timeout(Duration::from_secs(2)).build().unwrap();
    let limiter = fleet
        .rate_limit(
            "quota",
            kompoz::rate::Quota::per_second(RATE_PER_SECOND)
                .and_then(|quota| quota.with_burst(RATE_BURST))
                .unwrap(),
        )
        .degradation(Degradation::FailClosed)
        .build()
        .unwrap();
    let decided = Arc::new(Mutex::new(Vec::new()));
    let until = tokio::time::Instant::now() + Duration::from_secs(RATE_SECONDS);
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (limiter, decided) = (limiter.clone(), Arc::clone(&decided));
            tokio::spawn(async move {
                while tokio::time::Instant::now() < until {
                    match limiter.check_detailed(1).await {
                        Ok(admitted) => decided.lock().unwrap().extend(admitted.decided_at),
                        Err(kompoz_redis::rate::RateError::Limited(limited)) => {
                            tokio::time::sleep(limited.wait).await
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let text: String = decided.lock().unwrap().iter().map(|at| format!("{at}\n")).collect();
    std::fs::write(log, text).unwrap();
}

/// The worker processes' roles.
async fn worker(args: &[String]) {
    match args.first().map(String::as_str) {
        Some("share") => {
            share_worker(&args[1], &args[2], args[3].parse().unwrap(), Path::new(&args[4])).await
        }
        Some("hold") => hold_worker(&args[1], &args[2], args[3].parse().unwrap()).await,
        Some("observe") => observe_worker(&args[1], Path::new(&args[2])).await,
        Some("rate") => rate_worker(&args[1], Path::new(&args[2])).await,
        other => panic!("unknown worker role {other:?}"),
    }
}

async fn share_worker(url: &str, name: &str, seconds: u64, log: &Path) {
    let fleet = Fleet::builder(url).call_timeout(Duration::from_secs(2)).build().unwrap();
    let limit = fleet
        .limit(name, SHARE_CAPACITY as u32)
        .degradation(Degradation::FailClosed)
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let counts = Arc::new(Mutex::new(BTreeMap::<&'static str, u32>::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (limit, events, counts) = (limit.clone(), Arc::clone(&events), Arc::clone(&counts));
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    let outcome = if fastrand::u8(0..4) == 0 {
                        // Cancelled at a random point.
                        let patience = Duration::from_micros(fastrand::u64(0..20_000));
                        match tokio::time::timeout(patience, limit.acquire()).await {
                            Ok(result) => result,
                            Err(_) => {
                                *counts.lock().unwrap().entry("cancelled").or_default() += 1;
                                continue;
                            }
                        }
                    } else {
                        limit.acquire_with_max_wait(Duration::from_secs(1)).await
                    };
                    let key = match outcome {
                        Ok(permit) => {
                            events.lock().unwrap().push(('A', monotonic_nanos()));
                            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..15_000)))
                                .await;
                            events.lock().unwrap().push(('R', monotonic_nanos()));
                            drop(permit);
                            "granted"
                        }
                        Err(AcquireError::WaitElapsed) => "waited too long",
                        Err(_) => "unavailable",
                    };
                    *counts.lock().unwrap().entry(key).or_default() += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    limit.settle().await;
    let text: String =
        events.lock().unwrap().iter().map(|(kind, at)| format!("{kind} {at}\n")).collect();
    std::fs::write(log, text).unwrap();
    println!("{:?}", counts.lock().unwrap());
}

async fn hold_worker(url: &str, name: &str, count: usize) {
    let fleet = Fleet::builder(url).call_timeout(Duration::from_millis(200)).build().unwrap();
    let limit = fleet.limit(name, 3).lease_time(CRASH_LEASE).build().unwrap();
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(limit.acquire().await.unwrap());
    }
    println!("held");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(held);
}
