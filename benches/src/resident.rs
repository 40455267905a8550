//! What a breaker really costs in memory: 100,000 of them built into a `Vec`, and the
//! growth of the process's resident memory divided by 100,000 (struct, heap blocks, the
//! allocator's own overhead and padding: everything). Breakers per key the same way: a
//! map holding 100,000 idle keys.
//!
//! A breaker that two threads have written at the same instant adds its counter cells,
//! once: 16 cells of 64 bytes (`kompoz::breaker::CELLS`), 1 KiB more. That is not a row:
//! whether two threads collide is up to the scheduler.
//!
//! Each measurement runs in a fresh process (the `compare` binary runs itself with
//! `--resident ROW`), because memory a process has freed stays resident and would be
//! reused by the next measurement.

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use kompoz::breaker::{BreakDuration, BreakerBuilder, BreakerMapBuilder, FailureRate};

/// How many are built.
pub const COUNT: usize = 100_000;

/// One row of the resident-memory table: a kind of breaker, for one contender.
#[derive(Clone, Copy, Debug)]
pub struct ResidentRow {
    /// The row's label.
    pub what: &'static str,
    /// The column it goes in.
    pub contender: &'static str,
    /// Its name on the command line (`--resident NAME`).
    pub name: &'static str,
    /// Builds `COUNT` of them and keeps them until the process exits.
    build: fn(),
}

fn keep<T>(items: Vec<T>) {
    // Still resident when measured: leaked on purpose, the process exits right after.
    std::mem::forget(black_box(items));
}

fn breakers(builder: fn() -> BreakerBuilder) {
    keep((0..COUNT).map(|_| builder().build().expect("a valid configuration")).collect::<Vec<_>>());
}

/// Every row, in table order.
pub fn rows() -> Vec<ResidentRow> {
    vec![
        ResidentRow {
            what: "breaker, consecutive failures (the default)",
            contender: "kompoz",
            name: "kompoz-default",
            build: || breakers(BreakerBuilder::new),
        },
        ResidentRow {
            what: "breaker, consecutive failures (the default)",
            contender: "failsafe",
            name: "failsafe-consecutive",
            build: || {
                keep(
                    (0..COUNT)
                        .map(|_| {
                            failsafe::Config::new()
                                .failure_policy(failsafe::failure_policy::consecutive_failures(
                                    5,
                                    failsafe::backoff::constant(Duration::from_secs(30)),
                                ))
                                .build()
                        })
                        .collect::<Vec<_>>(),
                )
            },
        },
        ResidentRow {
            what: "breaker, failure rate over the last 100 calls",
            contender: "kompoz",
            name: "kompoz-count-window",
            build: || breakers(|| BreakerBuilder::new().trip_on(FailureRate::over_calls(100))),
        },
        ResidentRow {
            what: "breaker, failure rate over the last 100 calls",
            contender: "recloser",
            name: "recloser-default",
            build: || {
                keep((0..COUNT).map(|_| recloser::Recloser::custom().build()).collect::<Vec<_>>())
            },
        },
        ResidentRow {
            what: "breaker, failure rate over the last 60 s (10 buckets)",
            contender: "kompoz",
            name: "kompoz-time-window",
            build: || {
                breakers(|| {
                    BreakerBuilder::new().trip_on(FailureRate::over_time(Duration::from_secs(60)))
                })
            },
        },
        ResidentRow {
            what: "breaker, failure rate over the last 60 s (10 buckets)",
            contender: "failsafe",
            name: "failsafe-time-window",
            build: || keep((0..COUNT).map(|_| failsafe::Config::new().build()).collect::<Vec<_>>()),
        },
        ResidentRow {
            what: "breaker, count window with slow calls",
            contender: "kompoz",
            name: "kompoz-slow-calls",
            build: || {
                breakers(|| {
                    BreakerBuilder::new().trip_on(
                        FailureRate::over_calls(100).slow_calls(Duration::from_secs(1), 0.5),
                    )
                })
            },
        },
        ResidentRow {
            what: "breaker, growing jittered breaks",
            contender: "kompoz",
            name: "kompoz-growing-breaks",
            build: || {
                breakers(|| {
                    BreakerBuilder::new().break_duration(
                        BreakDuration::exponential(Duration::from_secs(1), Duration::from_secs(60))
                            .jitter(0.2, 1),
                    )
                })
            },
        },
        ResidentRow {
            what: "breaker map: an idle key (u64 keys)",
            contender: "kompoz",
            name: "kompoz-map-key",
            build: || {
                let map = BreakerMapBuilder::<u64>::new(BreakerBuilder::new())
                    .build()
                    .expect("a valid map");
                for key in 0..COUNT as u64 {
                    black_box(map.get(&key));
                }
                std::mem::forget(map);
            },
        },
    ]
}

/// Resident memory of this process, in bytes (Linux's `/proc/self/statm`).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// In the child process: builds row `name` and prints bytes per item.
pub fn measure_here(name: &str) -> Result<f64, String> {
    let row = rows().into_iter().find(|r| r.name == name).ok_or(format!("no row {name:?}"))?;
    // Warm up the allocator, the clock and the thread tokens first.
    (row.build)();
    let before = resident().ok_or("no /proc/self/statm")?;
    (row.build)();
    let after = resident().ok_or("no /proc/self/statm")?;
    Ok(after.saturating_sub(before) as f64 / COUNT as f64)
}

/// Runs every row in a child process (`exe --resident NAME`); `(row, bytes per item)`.
pub fn measure_all(exe: &std::path::Path) -> Vec<(ResidentRow, Option<f64>)> {
    rows()
        .into_iter()
        .map(|row| {
            let bytes = Command::new(exe)
                .args(["--resident", row.name])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok());
            (row, bytes)
        })
        .collect()
}
