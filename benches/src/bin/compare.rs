//! `compare`: kompoz beside its peers, every case interleaved in one process, one table.
//!
//! ```sh
//! cargo run --release -p kompoz-benches --bin compare [-- --rounds N --sample-ms MS]
//! ```
//!
//! For each case, every contender is calibrated (a sample of about `--sample-ms`) and
//! warmed up; then `--rounds` rounds each take one sample of every contender, starting
//! with a different contender each round, and the table reports each contender's median
//! nanoseconds per operation. A counting global allocator counts heap allocations while a
//! runner's measured loop runs (see `kompoz_benches::MEASURING`), which gives allocations
//! per operation for every contender.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kompoz_benches::cases::{Case, Metric};
use kompoz_benches::memory::{HeapRow, SizeRow, heap_rows, size_rows};
use kompoz_benches::report::{self, Evaluation, Measured, Verdict};
use kompoz_benches::{MEASURING, Role, Runner, all_cases};

/// Heap allocations (alloc, alloc_zeroed, realloc) made while `MEASURING` was raised.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes those allocations asked for (for a realloc, the growth).
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocations made during measured loops.
struct Counting;

impl Counting {
    #[inline(always)]
    fn count(&self, bytes: usize) {
        if MEASURING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so each
// inherits `System`'s guarantees; counting touches only an atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count(new_size.saturating_sub(layout.size()));
        // SAFETY: forwarded as is; `ptr` came from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The table's contender columns, in order.
const COLUMNS: [&str; 12] = [
    "bare",
    "kompoz",
    "tokio",
    "async-lock",
    "maitake-sync",
    "failsafe",
    "recloser",
    "backon",
    "tower",
    "tower-resilience",
    "kompoz parts",
    "governor",
];

/// Command-line options.
#[derive(Clone, Copy, Debug)]
struct Options {
    /// Samples per contender (one per round).
    rounds: usize,
    /// Target length of one sample.
    sample: Duration,
    /// Only the cases whose id contains this text (all if `None`).
    only: Option<&'static str>,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options { rounds: 51, sample: Duration::from_millis(5), only: None };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> u64 {
                args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                    eprintln!("{name} needs a positive whole number");
                    std::process::exit(2)
                })
            };
            match arg.as_str() {
                "--rounds" => options.rounds = value("--rounds").max(1) as usize,
                "--sample-ms" => options.sample = Duration::from_millis(value("--sample-ms")),
                "--only" => {
                    let text = args.next().unwrap_or_else(|| {
                        eprintln!("--only needs the text of a case id");
                        std::process::exit(2)
                    });
                    options.only = Some(Box::leak(text.into_boxed_str()));
                }
                "-h" | "--help" => {
                    println!(
                        "usage: compare [--rounds N (51)] [--sample-ms MS (5)] [--only TEXT \\
                         (the cases whose id contains TEXT)]"
                    );
                    std::process::exit(0)
                }
                other => {
                    eprintln!("unknown argument {other:?}; try --help");
                    std::process::exit(2)
                }
            }
        }
        options
    }
}

/// A case's results.
struct CaseResult {
    label: &'static str,
    metric: Metric,
    target: kompoz_benches::Target,
    measured: Vec<Measured>,
    /// Allocations per operation, by contender.
    allocations: Vec<(&'static str, Role, f64)>,
    /// Samples used for each contender's median, and whether it had to fall back to all.
    samples: Vec<(&'static str, report::Robust, bool)>,
    evaluation: Evaluation,
}

/// Picks the operations per sample so that one sample takes about `sample`, and warms up.
///
/// The estimate of the time per operation is the best of three runs of at least 256
/// operations (and at least an eighth of a sample): a run disturbed by other load, or a
/// tiny one dominated by waking threads, must not shrink every later sample.
fn calibrate(run: &mut Runner, sample: Duration, min_ops: u64) -> u64 {
    let min_ops = min_ops.max(1);
    let mut n = min_ops;
    let mut warm = Duration::ZERO;
    loop {
        let s = run(n);
        warm += s.elapsed;
        if (s.elapsed >= sample / 8 && n >= 256) || n >= 1 << 40 {
            break;
        }
        n *= 4;
    }
    let best = (0..3)
        .map(|_| {
            let s = run(n);
            warm += s.elapsed;
            s.elapsed.as_secs_f64() / n as f64
        })
        .fold(f64::INFINITY, f64::min);
    let n = ((sample.as_secs_f64() / best.max(1e-12)) as u64).max(min_ops);
    // Warm up for at least three samples' worth (caches, branch predictors, CPU clocks).
    while warm < sample * 3 {
        warm += run(n).elapsed;
    }
    n
}

fn measure(case: &Case, options: Options) -> CaseResult {
    let mut contenders = (case.contenders)();
    let ops: Vec<u64> = contenders
        .iter_mut()
        .map(|c| calibrate(&mut c.run, options.sample, case.min_ops))
        .collect();
    let count = contenders.len();
    let mut ns_per_op = vec![Vec::with_capacity(options.rounds); count];
    let mut allocated = vec![(0u64, 0u64); count];
    for round in 0..options.rounds {
        for k in 0..count {
            // A different contender goes first each round.
            let i = (round + k) % count;
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            let sample = (contenders[i].run)(ops[i]);
            let after = ALLOCATIONS.load(Ordering::SeqCst);
            let undisturbed = sample.waited.is_none_or(|waited| {
                waited.as_secs_f64() <= sample.elapsed.as_secs_f64() * report::MAX_WAITED_SHARE
            });
            ns_per_op[i].push((sample.elapsed.as_nanos() as f64 / ops[i] as f64, undisturbed));
            allocated[i].0 += after - before;
            allocated[i].1 += sample.ops;
        }
    }
    let samples: Vec<(&'static str, report::Robust, bool)> = contenders
        .iter()
        .zip(&ns_per_op)
        .map(|(c, samples)| {
            let (robust, fell_back) = report::robust_median(samples);
            (c.name, robust, fell_back)
        })
        .collect();
    let measured: Vec<Measured> = contenders
        .iter()
        .zip(&samples)
        .map(|(c, s)| Measured { name: c.name, role: c.role, ns_per_op: s.1.value })
        .collect();
    let allocations = contenders
        .iter()
        .zip(&allocated)
        .map(|(c, &(allocs, ops))| (c.name, c.role, allocs as f64 / ops as f64))
        .collect();
    let evaluation = report::evaluate(case.metric, case.target, case.kompoz_missing, &measured);
    CaseResult {
        label: case.label,
        metric: case.metric,
        target: case.target,
        measured,
        allocations,
        samples,
        evaluation,
    }
}

fn main() {
    // A child process measuring one row of the resident-memory table (see resident.rs).
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name] = args.as_slice() {
        if flag == "--resident" {
            match kompoz_benches::resident::measure_here(name) {
                Ok(bytes) => println!("{bytes:.1}"),
                Err(why) => {
                    eprintln!("{why}");
                    std::process::exit(1)
                }
            }
            return;
        }
    }
    let options = Options::parse();
    let started = Instant::now();
    let load_at_start = load_average();
    let cpu_at_start = CpuTimes::read();
    let mut results = Vec::new();
    for case in all_cases() {
        if options.only.is_some_and(|only| !case.id.contains(only)) {
            continue;
        }
        eprint!("measuring {} ...", case.id);
        let case_started = Instant::now();
        results.push(measure(&case, options));
        eprintln!(" {:.1} s", case_started.elapsed().as_secs_f64());
    }
    let cpu_during_run = CpuTimes::read().zip(cpu_at_start).map(|(end, start)| end.since(start));
    let sizes = size_rows();
    let heap = heap_rows();
    let mut out = String::new();
    header(&mut out, options, &load_at_start);
    main_table(&mut out, &results);
    sample_notes(&mut out, &results);
    allocation_table(&mut out, &results);
    size_table(&mut out, &sizes);
    heap_table(&mut out, &heap);
    resident_table(&mut out);
    let _ = writeln!(
        out,
        "\nRun took {:.1} s; load average at the end: {}.",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    if let Some((ours, others)) = cpu_during_run {
        let _ = writeln!(
            out,
            "While measuring, this process used {:.0}% of the machine's CPU time and other \
             processes {:.0}%. Two-thread rows need both cores: with others busy they measure \
             time-sharing as much as contention.",
            ours * 100.0,
            others * 100.0
        );
    }
    print!("{out}");
}

fn header(out: &mut String, options: Options, load: &str) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let logical = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let available = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = command_output("rustc", &["-V"]).unwrap_or_else(|| "rustc unknown".into());
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let _ = writeln!(out, "## kompoz beside its peers\n");
    let _ = writeln!(out, "- machine: {model}, {logical} logical CPUs ({available} available)");
    let _ = writeln!(out, "- date: {} UTC; {rustc}", utc_now());
    let _ = writeln!(
        out,
        "- kompoz commit: {}{}",
        commit.as_deref().unwrap_or("unknown"),
        if dirty { " + uncommitted changes" } else { "" }
    );
    let _ = writeln!(out, "- load average at the start: {load}");
    let _ = writeln!(
        out,
        "- method: {} interleaved rounds per case, one ~{} ms sample of every contender per \
         round; medians in ns per operation",
        options.rounds,
        options.sample.as_millis()
    );
    let _ = writeln!(out, "- command: `cargo run --release -p kompoz-benches --bin compare`\n");
}

fn main_table(out: &mut String, results: &[CaseResult]) {
    let _ =
        writeln!(out, "| case | {} | kompoz vs best peer | target | met |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|{}---|---|---|", "---:|".repeat(COLUMNS.len()));
    for r in results {
        let baseline = r.measured.iter().find(|m| m.role == Role::Baseline).map(|m| m.ns_per_op);
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|&column| match r.measured.iter().find(|m| m.name == column) {
                None if column == "kompoz"
                    && matches!(r.evaluation.verdict, Verdict::NoKompoz(_)) =>
                {
                    "(none)".into()
                }
                None => String::new(),
                Some(m) => {
                    let busy = r.samples.iter().any(|s| s.0 == column && s.2);
                    let mark = if busy { "*" } else { "" };
                    match (r.metric, m.role, baseline) {
                        (Metric::OverheadOverBaseline, Role::Kompoz | Role::Peer, Some(base)) => {
                            format!("{:.1} ({:+.1}){mark}", m.ns_per_op, m.ns_per_op - base)
                        }
                        _ => format!("{:.1}{mark}", m.ns_per_op),
                    }
                }
            })
            .collect();
        let vs_best = match r.evaluation.vs_best {
            Some((ratio, peer)) => match r.metric {
                Metric::Throughput => format!("throughput {ratio:.2}x ({peer})"),
                Metric::OverheadOverBaseline => format!("overhead {ratio:.2}x ({peer})"),
                Metric::NsPerOp => format!("{ratio:.2}x ({peer})"),
            },
            None => String::new(),
        };
        let met = match &r.evaluation.verdict {
            Verdict::Met(ratio) => format!("yes ({ratio:.2}x)"),
            Verdict::Missed(ratio) => format!("**NO** ({ratio:.2}x)"),
            Verdict::NoKompoz(why) => format!("pending: {why}"),
            Verdict::Undefined(why) => format!("n/a: {why}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {vs_best} | {} | {met} |",
            r.label,
            cells.join(" | "),
            report::describe(r.metric, r.target)
        );
    }
    let offenders: Vec<&str> = results
        .iter()
        .filter(|r| r.allocations.iter().any(|&(_, role, a)| role == Role::Kompoz && a > 0.0))
        .map(|r| r.label)
        .collect();
    let kompoz_cases = results
        .iter()
        .filter(|r| r.allocations.iter().any(|&(_, role, _)| role == Role::Kompoz))
        .count();
    let met = if offenders.is_empty() {
        format!("yes (0 in all {kompoz_cases} kompoz cases)")
    } else {
        format!("**NO**: {}", offenders.join("; "))
    };
    let _ = writeln!(
        out,
        "| heap allocations per operation, every kompoz case |{} | 0 | {met} |",
        " |".repeat(COLUMNS.len() + 1)
    );
}

fn sample_notes(out: &mut String, results: &[CaseResult]) {
    let _ = writeln!(
        out,
        "\nMedians are over the samples in which no measuring thread waited for a CPU for more \
         than {:.0}% of the sample (Linux schedstat; the contended case's tokio workers are not \
         tracked). Samples set aside:",
        report::MAX_WAITED_SHARE * 100.0
    );
    let mut any = false;
    for r in results {
        let aside: Vec<String> = r
            .samples
            .iter()
            .filter(|s| s.1.used < s.1.of || s.2)
            .map(|(name, robust, fell_back)| {
                if *fell_back {
                    format!("{name} * (too few undisturbed: median of all {})", robust.of)
                } else {
                    format!("{name} {} of {}", robust.of - robust.used, robust.of)
                }
            })
            .collect();
        if !aside.is_empty() {
            any = true;
            let _ = writeln!(out, "- {}: {}", r.label, aside.join(", "));
        }
    }
    if !any {
        let _ = writeln!(out, "- none");
    }
}

fn allocation_table(out: &mut String, results: &[CaseResult]) {
    let _ =
        writeln!(out, "\nHeap allocations per operation (counted only inside measured loops):\n");
    let _ = writeln!(out, "| case | {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(COLUMNS.len()));
    for r in results {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|&column| match r.allocations.iter().find(|a| a.0 == column) {
                None => String::new(),
                Some(&(_, _, 0.0)) => "0".into(),
                Some(&(_, _, per_op)) if per_op < 0.01 => format!("{per_op:.1e}"),
                Some(&(_, _, per_op)) => format!("{per_op:.3}"),
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", r.label, cells.join(" | "));
    }
}

fn size_table(out: &mut String, rows: &[SizeRow]) {
    let _ = writeln!(
        out,
        "\n`size_of` in bytes (handles only: the shared state behind an `Arc` is not counted):\n"
    );
    let _ = writeln!(out, "| value | {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(COLUMNS.len()));
    for row in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|&column| {
                row.sizes.iter().find(|s| s.0 == column).map_or(String::new(), |s| s.1.to_string())
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", row.what, cells.join(" | "));
    }
}

fn heap_table(out: &mut String, rows: &[HeapRow]) {
    let _ = writeln!(out, "\nHeap allocated to build one (allocations / bytes):\n");
    let _ = writeln!(out, "| built | {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(COLUMNS.len()));
    for row in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|&column| match row.builders.iter().find(|b| b.0 == column) {
                None => String::new(),
                Some(&(_, build)) => {
                    let (allocations, bytes) = (
                        ALLOCATIONS.load(Ordering::SeqCst),
                        ALLOCATED_BYTES.load(Ordering::SeqCst),
                    );
                    MEASURING.store(true, Ordering::SeqCst);
                    build();
                    MEASURING.store(false, Ordering::SeqCst);
                    format!(
                        "{} / {} B",
                        ALLOCATIONS.load(Ordering::SeqCst) - allocations,
                        ALLOCATED_BYTES.load(Ordering::SeqCst) - bytes
                    )
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", row.what, cells.join(" | "));
    }
}

fn resident_table(out: &mut String) {
    let Ok(exe) = std::env::current_exe() else { return };
    let rows = kompoz_benches::resident::measure_all(&exe);
    let _ = writeln!(
        out,
        "\nResident memory per breaker: {} built into a `Vec`, growth of the process's \
         resident memory divided by {} (struct, heap, allocator overhead; each row in a fresh \
         process):\n",
        kompoz_benches::resident::COUNT,
        kompoz_benches::resident::COUNT
    );
    let _ = writeln!(out, "| breaker | {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(COLUMNS.len()));
    let mut labels: Vec<&str> = rows.iter().map(|(row, _)| row.what).collect();
    labels.dedup();
    for label in labels {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|&column| {
                match rows.iter().find(|(row, _)| row.what == label && row.contender == column) {
                    Some((_, Some(bytes))) => format!("{bytes:.0} B"),
                    Some((_, None)) => "(failed)".into(),
                    None => String::new(),
                }
            })
            .collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
}

/// Runs a command and returns its trimmed standard output, if it ran and succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output =
        Command::new(program).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// CPU time counters of the machine and of this process, in clock ticks.
#[derive(Clone, Copy, Debug)]
struct CpuTimes {
    /// All CPUs, all states (idle included).
    total: u64,
    /// All CPUs, idle and waiting for I/O.
    idle: u64,
    /// This process, user and system.
    ours: u64,
}

impl CpuTimes {
    /// Reads /proc/stat and /proc/self/stat, if they exist.
    fn read() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may contain spaces): state is field 3, and
        // utime and stime are fields 14 and 15.
        let after_name: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        let ours =
            after_name.get(11)?.parse::<u64>().ok()? + after_name.get(12)?.parse::<u64>().ok()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4)?;
        Some(CpuTimes { total, idle, ours })
    }

    /// The shares of the machine's CPU time since `start` used by this process and by
    /// every other process.
    fn since(self, start: CpuTimes) -> (f64, f64) {
        let total = self.total.saturating_sub(start.total).max(1) as f64;
        let busy = (self.total - self.idle).saturating_sub(start.total - start.idle) as f64;
        let ours = self.ours.saturating_sub(start.ours) as f64;
        (ours / total, (busy - ours).max(0.0) / total)
    }
}

/// The 1-, 5- and 15-minute load averages, from /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The current UTC date and time, `YYYY-MM-DD HH:MM`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3_600, rest % 3_600 / 60)
}
