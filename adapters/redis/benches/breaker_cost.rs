//! The shared breaker's closed path beside the local breaker's, in instructions, for
//! callgrind: runs exactly `N` calls of one case and nothing else of note. Run by hand:
//!
//! ```sh
//! RUSTFLAGS="--cfg rustix_use_libc" CARGO_TARGET_DIR=target/cg \
//!     cargo bench -p kompoz-redis --bench breaker_cost --no-run
//! # instructions per call: run twice with different N and divide the difference in
//! # instructions by the difference in N (the set-up cancels out)
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/cg/release/deps/breaker_cost-* shared-call 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/cg/release/deps/breaker_cost-* shared-call 200000
//! ```
//!
//! The cases: `local-call` and `shared-call` (`call` around a ready future, the async face
//! of both), `local-guard` and `shared-guard` (`try_acquire` then `success`; the shared
//! breaker's admission is `.await`ed). The shared breaker is closed, on a real
//! `redis-server` the harness starts (its closed path does not touch it).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Duration;

use kompoz::StdClock;
use kompoz::breaker::CircuitBreaker;
use kompoz_redis::{Fleet, SharedBreaker};
use support::RedisServer;

#[inline(never)]
async fn local_calls(local: &CircuitBreaker<StdClock>, n: u64) {
    for _ in 0..n {
        let _ = black_box(black_box(local).call(async { Ok::<_, ()>(1) }).await);
    }
}

#[inline(never)]
async fn shared_calls(shared: &SharedBreaker, n: u64) {
    for _ in 0..n {
        let _ = black_box(black_box(shared).call(async { Ok::<_, ()>(1) }).await);
    }
}

#[inline(never)]
async fn local_guards(local: &CircuitBreaker<StdClock>, n: u64) {
    for _ in 0..n {
        black_box(local).try_acquire().unwrap().success();
    }
}

#[inline(never)]
async fn shared_guards(shared: &SharedBreaker, n: u64) {
    for _ in 0..n {
        black_box(shared).try_acquire().await.unwrap().success();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let [case, n] = args.as_slice() else {
        eprintln!("usage: breaker_cost <local-call|shared-call|local-guard|shared-guard> <calls>");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("the number of calls must be a whole number, not {n:?}");
        return ExitCode::from(2);
    };
    let Some(server) = RedisServer::start() else { return ExitCode::FAILURE };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let shared = runtime.block_on(async {
        let fleet = Fleet::builder(server.url()).build().unwrap();
        let shared =
            fleet.breaker("cost").sync_interval(Duration::from_secs(3_600)).build().unwrap();
        shared.refresh().await;
        shared
    });
    let local = CircuitBreaker::builder().build().unwrap();
    match case.as_str() {
        "local-call" => futures::executor::block_on(local_calls(&local, n)),
        "shared-call" => futures::executor::block_on(shared_calls(&shared, n)),
        "local-guard" => futures::executor::block_on(local_guards(&local, n)),
        "shared-guard" => futures::executor::block_on(shared_guards(&shared, n)),
        other => {
            eprintln!("no case {other:?}");
            return ExitCode::from(2);
        }
    }
    println!("{case}: {n} calls");
    ExitCode::SUCCESS
}
