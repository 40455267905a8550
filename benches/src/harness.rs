//! How operations are timed: runners for one thread, for several threads hammering shared
//! state, and for async operations inside a tokio runtime.
//!
//! Every runner raises [`MEASURING`] exactly while its measured loop runs (and lowers it
//! before returning), so a counting allocator can attribute heap allocations to the
//! operations and not to setup, thread spawns or task spawns.

use std::future::Future;
use std::hint::black_box;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Raised while a runner's measured loop runs; see the module docs.
pub static MEASURING: AtomicBool = AtomicBool::new(false);

/// Performs `n` operations and returns a [`Sample`]: the time they took, measured inside
/// the runner so that setup stays outside the measurement.
///
/// For runners on several threads, `n` is the number of operations *per thread* and the
/// time is the wall time from the first thread's start to the last one's end: the cost of
/// one operation as each thread sees it while the others hammer the same state.
pub type Runner = Box<dyn FnMut(u64) -> Sample>;

/// What one call of a [`Runner`] measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The time for `n` operations (per thread, on several threads).
    pub elapsed: Duration,
    /// Operations performed in all: `n` times the number of threads.
    pub ops: u64,
    /// The longest time any measuring thread spent runnable but waiting for a CPU during
    /// the sample (Linux's `/proc/thread-self/schedstat`), if known: a sample with much
    /// waiting measured the machine's other load rather than the operation.
    pub waited: Option<Duration>,
}

/// Time this thread has spent runnable but waiting for a CPU, from
/// `/proc/thread-self/schedstat` (its second field, in nanoseconds). The kernel accounts
/// a wait when the thread gets a CPU back, so a reading taken by the thread itself covers
/// every wait before it. Reads into a stack buffer: no heap allocation.
fn run_delay() -> Option<Duration> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
    let mut buf = [0u8; 128];
    let len = file.read(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..len]).ok()?;
    let nanos = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The waiting between two [`run_delay`] readings.
fn waited(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    Some(after?.saturating_sub(before?))
}

/// What a contender stands for in a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// kompoz itself: the row the targets are about.
    Kompoz,
    /// A crate users would pick instead of kompoz.
    Peer,
    /// The same work without any resilience primitive (a bare call), to subtract.
    Baseline,
}

/// One contender of a case: a name (a column of the table), a role and a runner.
pub struct Contender {
    /// The column it is reported under, e.g. `"tokio"`.
    pub name: &'static str,
    /// kompoz, a peer or the baseline.
    pub role: Role,
    /// Performs the operations.
    pub run: Runner,
}

impl Contender {
    /// A contender from its parts.
    pub fn new(name: &'static str, role: Role, run: Runner) -> Contender {
        Contender { name, role, run }
    }
}

impl std::fmt::Debug for Contender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender").field("name", &self.name).field("role", &self.role).finish()
    }
}

/// Raises [`MEASURING`], runs `body`, lowers it again and returns `body`'s time.
#[inline(always)]
fn measured(body: impl FnOnce()) -> Duration {
    MEASURING.store(true, Ordering::SeqCst);
    let start = Instant::now();
    body();
    let elapsed = start.elapsed();
    MEASURING.store(false, Ordering::SeqCst);
    elapsed
}

/// A runner that calls `op` `n` times on the current thread.
pub fn single(mut op: impl FnMut() + 'static) -> Runner {
    Box::new(move |n| {
        let before = run_delay();
        let elapsed = measured(|| {
            for _ in 0..n {
                op();
            }
        });
        Sample { elapsed, ops: n, waited: waited(before, run_delay()) }
    })
}

/// A runner that calls `op` `n` times on each of `threads` threads at once.
///
/// The threads are started once, with the runner, and released together by a barrier for
/// each sample: neither thread start-up nor per-thread first-use costs of a contender
/// (registering with an epoch collector, growing a parking-lot table) land in a sample.
pub fn on_threads(threads: usize, op: impl Fn() + Send + Sync + 'static) -> Runner {
    let pool = Pool::start(threads, op, false);
    Box::new(move |n| pool.run(n))
}

/// Runs `op` on one thread ([`single`]), or on `threads` threads at once, pinned to
/// distinct CPUs ([`on_pinned_threads`]).
pub fn single_or_pinned(threads: usize, op: impl Fn() + Send + Sync + 'static) -> Runner {
    if threads == 1 { single(op) } else { on_pinned_threads(threads, op) }
}

/// [`on_threads`] with thread `i` pinned to CPU `i` (modulo the CPUs this process may use),
/// so that a row of two threads measures two CPUs working at once and not one CPU taking
/// turns; samples in which a thread waited for its CPU are set aside as with every runner.
/// Where pinning is not possible (not Linux, or refused), the threads run unpinned.
pub fn on_pinned_threads(threads: usize, op: impl Fn() + Send + Sync + 'static) -> Runner {
    let pool = Pool::start(threads, op, true);
    Box::new(move |n| pool.run(n))
}

/// `threads` threads each make `n / threads` of the `n` operations: the sample's time per
/// operation is the cost of a call to the whole machine (wall time over all calls), which
/// is what stays flat as threads are added if nothing contends.
pub fn per_call_on_threads(threads: usize, op: impl Fn() + Send + Sync + 'static) -> Runner {
    let pool = Pool::start(threads, op, false);
    Box::new(move |n| {
        let each = (n / threads as u64).max(1);
        let sample = pool.run(each);
        Sample { elapsed: sample.elapsed, ops: each * threads as u64, waited: sample.waited }
    })
}

/// Pins the calling thread to the `index`-th CPU it may run on; whether that worked.
#[cfg(target_os = "linux")]
fn pin_to(index: usize) -> bool {
    // SAFETY: `set` is a zeroed `cpu_set_t` owned by this frame; the CPU_* macros only
    // index into it (CPU_SET and CPU_ISSET bound the index by the set's size), and
    // sched_getaffinity/sched_setaffinity are given its exact size. pid 0 is this thread.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
            return false;
        }
        let cpus: Vec<usize> =
            (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &allowed)).collect();
        if cpus.is_empty() {
            return false;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[index % cpus.len()], &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_index: usize) -> bool {
    false
}

/// What the pool's threads share.
struct PoolShared<F> {
    op: F,
    /// The operations per thread of the current sample.
    n: AtomicU64,
    /// Set when the runner is dropped: the threads return.
    stop: AtomicBool,
    /// The threads and the runner's thread: once to start a sample, once to end it.
    start: Barrier,
    end: Barrier,
    /// Each thread's start, end and time spent waiting for a CPU in the current sample
    /// (written before the `end` barrier).
    spans: Mutex<Vec<Option<Span>>>,
}

/// One pool thread's part of a sample.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: Instant,
    end: Instant,
    waited: Option<Duration>,
}

/// Persistent threads running samples of one operation; stopped and joined on drop.
struct Pool<F> {
    shared: Arc<PoolShared<F>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<F: Fn() + Send + Sync + 'static> Pool<F> {
    fn start(threads: usize, op: F, pinned: bool) -> Pool<F> {
        let shared = Arc::new(PoolShared {
            op,
            n: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            start: Barrier::new(threads + 1),
            end: Barrier::new(threads + 1),
            spans: Mutex::new(vec![None; threads]),
        });
        let threads = (0..threads)
            .map(|index| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    if pinned {
                        // Unpinned if it fails: the row still runs, on whatever CPUs.
                        let _ = pin_to(index);
                    }
                    loop {
                        shared.start.wait();
                        if shared.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let n = shared.n.load(Ordering::SeqCst);
                        let before = run_delay();
                        let start = Instant::now();
                        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            for _ in 0..n {
                                (shared.op)();
                            }
                        }));
                        let end = Instant::now();
                        let waited = waited(before, run_delay());
                        // A panic leaves the span empty: `run` then fails the sample (the
                        // panic hook has already printed the message).
                        lock(&shared.spans)[index] = ran.ok().map(|()| Span { start, end, waited });
                        shared.end.wait();
                    }
                })
            })
            .collect();
        Pool { shared, threads }
    }

    fn run(&self, n: u64) -> Sample {
        let shared = &self.shared;
        shared.n.store(n, Ordering::SeqCst);
        MEASURING.store(true, Ordering::SeqCst);
        shared.start.wait();
        shared.end.wait();
        MEASURING.store(false, Ordering::SeqCst);
        let mut spans = lock(&shared.spans);
        let spans: Vec<Span> =
            spans.iter_mut().map(|span| span.take().expect("an operation panicked")).collect();
        let first = spans.iter().map(|s| s.start).min().expect("at least one thread");
        let last = spans.iter().map(|s| s.end).max().expect("at least one thread");
        let waited = spans.iter().map(|s| s.waited).collect::<Option<Vec<_>>>();
        Sample {
            elapsed: last - first,
            ops: n * spans.len() as u64,
            waited: waited.and_then(|w| w.into_iter().max()),
        }
    }
}

impl<F> Drop for Pool<F> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.start.wait();
        for thread in self.threads.drain(..) {
            // A thread that panicked has already reported it; nothing more to do here.
            let _ = thread.join();
        }
    }
}

/// Locks `mutex`, ignoring poisoning (a panicking operation has already failed the run).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A runner that awaits `make()` `n` times inside `runtime` (on its `block_on` thread),
/// checking that every output is `Ok`.
pub fn in_runtime<F, T, E>(
    runtime: tokio::runtime::Runtime,
    mut make: impl FnMut() -> F + 'static,
) -> Runner
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    Box::new(move |n| {
        let before = run_delay();
        let elapsed = runtime.block_on(async {
            MEASURING.store(true, Ordering::SeqCst);
            let start = Instant::now();
            for _ in 0..n {
                black_box(make().await.expect("the operation failed"));
            }
            let elapsed = start.elapsed();
            MEASURING.store(false, Ordering::SeqCst);
            elapsed
        });
        Sample { elapsed, ops: n, waited: waited(before, run_delay()) }
    })
}

/// Polls `future` once with a no-op waker and returns its output. Panics if it is pending:
/// every future measured this way must be ready at once (an uncontended permit, a closed
/// breaker around a ready future), and a pending one means the case is broken.
#[inline(always)]
pub fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the measured future was not ready at once"),
    }
}

/// Tests that run runners share `MEASURING`: one at a time, in every test module of the
/// crate (the cases' test runs every contender, which raises it too).
#[cfg(test)]
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_runs_n_times_and_lowers_the_flag() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let mut run = single(|| {
            assert!(MEASURING.load(Ordering::SeqCst));
            CALLS.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(run(37).ops, 37);
        assert_eq!(CALLS.load(Ordering::Relaxed), 37);
        assert!(!MEASURING.load(Ordering::SeqCst));
    }

    #[test]
    fn on_threads_runs_n_times_per_thread() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let mut run = on_threads(3, || {
            CALLS.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(run(100).ops, 300);
        assert_eq!(CALLS.load(Ordering::Relaxed), 300);
        assert!(!MEASURING.load(Ordering::SeqCst));
    }

    #[test]
    fn pinned_threads_run_n_times_each_on_the_cpu_they_were_given() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let mut run = on_pinned_threads(2, || {
            CALLS.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(run(50).ops, 100);
        assert_eq!(CALLS.load(Ordering::Relaxed), 100);
        #[cfg(target_os = "linux")]
        std::thread::spawn(|| {
            if pin_to(0) {
                // SAFETY: a zeroed set filled by the kernel, of its exact size.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                let size = std::mem::size_of::<libc::cpu_set_t>();
                // SAFETY: as above; pid 0 is this thread.
                assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0);
                // SAFETY: counts the bits of the set just read.
                assert_eq!(unsafe { libc::CPU_COUNT(&set) }, 1, "pinned to one CPU");
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn per_call_runners_share_the_operations_out() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let mut run = per_call_on_threads(4, || {
            CALLS.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(run(400).ops, 400);
        assert_eq!(CALLS.load(Ordering::Relaxed), 400);
    }

    #[test]
    fn run_delay_only_grows() {
        if let Some(before) = run_delay() {
            std::thread::yield_now();
            assert!(run_delay().expect("readable twice") >= before);
        }
    }

    #[test]
    #[should_panic(expected = "not ready")]
    fn poll_ready_refuses_a_pending_future() {
        poll_ready(std::future::pending::<()>());
    }
}
