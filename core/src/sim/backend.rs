//! [`Backend`]: a simulated dependency that answers each request as its [`Reply`] says.

use core::fmt;
use core::future::pending;

use super::Reply;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::time::{ManualClock, Sleep};

/// A simulated dependency on the simulation's clock: each request answers (or hangs) as
/// its [`Reply`] says, and the backend can be taken down and brought back up. It counts
/// what it saw, so a fuzz target can check what reached it.
///
/// * While **up**, a request answers as its reply says.
/// * While **down** (from [`set_down`](Backend::set_down)`(true)`), a request that would
///   have succeeded fails after the same latency; failures and hangs stay as they are. A
///   request's fate is sealed when it arrives.
/// * A request dropped before it answers (its caller was cancelled or timed out) is
///   counted as [`cancelled`](BackendStats::cancelled).
///
/// ```
/// use core::time::Duration;
/// use kompoz::sim::{Backend, BackendError, Reply, Sim};
/// use kompoz::ManualClock;
///
/// let clock = ManualClock::new();
/// let backend = Backend::new(clock.clone());
/// let mut sim = Sim::with_clock(1, clock.clone());
/// let ok = sim.block_on(backend.request(Reply::Succeed { after: Duration::from_millis(20) }))?;
/// assert_eq!(ok, Ok(()));
/// backend.set_down(true);
/// let down = sim.block_on(backend.request(Reply::Succeed { after: Duration::from_millis(20) }))?;
/// assert_eq!(down, Err(BackendError));
/// assert_eq!((backend.stats().requests, backend.stats().failed), (2, 1));
/// # Ok::<(), kompoz::sim::SimError>(())
/// ```
pub struct Backend {
    clock: ManualClock,
    down: AtomicBool,
    requests: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// The error answer of a [`Backend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendError;

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the backend answered with an error")
    }
}

impl core::error::Error for BackendError {}

/// What a [`Backend`] saw, from [`Backend::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BackendStats {
    /// Requests that arrived.
    pub requests: u64,
    /// Requests answered well.
    pub succeeded: u64,
    /// Requests answered with an error.
    pub failed: u64,
    /// Requests dropped before they were answered.
    pub cancelled: u64,
    /// Requests being served now.
    pub in_flight: usize,
    /// The most requests served at once.
    pub peak_in_flight: usize,
}

impl Backend {
    /// A backend that is up, on `clock` (the simulation's).
    pub fn new(clock: ManualClock) -> Backend {
        Backend {
            clock,
            down: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        }
    }

    /// Takes the backend down (`true`) or brings it back up (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Whether the backend is down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Serves one request.
    pub async fn request(&self, reply: Reply) -> Result<(), BackendError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let serving = Serving::new(self);
        let answer = match (reply, self.is_down()) {
            (Reply::Hang, _) => pending::<Result<(), BackendError>>().await,
            (Reply::Succeed { after }, false) => {
                self.clock.sleep(after).await;
                Ok(())
            }
            (Reply::Succeed { after } | Reply::Fail { after }, _) => {
                self.clock.sleep(after).await;
                Err(BackendError)
            }
        };
        serving.answered(answer.is_ok());
        answer
    }

    /// What the backend saw so far.
    pub fn stats(&self) -> BackendStats {
        BackendStats {
            requests: self.requests.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            peak_in_flight: self.peak_in_flight.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("down", &self.is_down())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// One request being served: counted in flight until answered or dropped.
struct Serving<'a> {
    backend: &'a Backend,
    answered: bool,
}

impl<'a> Serving<'a> {
    fn new(backend: &'a Backend) -> Serving<'a> {
        let now = backend.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        backend.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        Serving { backend, answered: false }
    }

    fn answered(mut self, ok: bool) {
        self.answered = true;
        let counter = if ok { &self.backend.succeeded } else { &self.backend.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.answered {
            self.backend.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}
