//! A circuit breaker shared by a fleet: each process keeps kompoz's local lock-free
//! breaker for the hot path, and the decisions are shared through Redis.
//!
//! # The protocol
//!
//! The fleet's circuit lives in a hash under the hash tag `{prefix:breaker:name}`: its
//! *generation*, whether it is open, the end of the open period, and the successes of
//! the current half-open period; beside it, a windowed failure counter and the probe
//! leases. Four Lua scripts change them, atomically, on the Redis clock:
//!
//! * `REPORT` counts a process's failures (seen while the fleet was closed, in the
//!   generation the process saw) in a window of ten buckets; reaching the fleet
//!   threshold, or a process's local breaker opening by itself, opens the fleet's
//!   circuit for `recovery_timeout`: a new generation, published on the breaker's channel.
//! * `PROBE` hands out at most `half_open_max_calls` probe leases once the open period
//!   has passed (half-open); other calls are rejected.
//! * `SETTLE` takes a probe's outcome: a failure opens the circuit again, the
//!   `success_threshold`-th success closes it (each a new generation, published).
//! * `SYNC` reads the state (every `sync_interval`, and after every reconnection), or
//!   restores an opening that a restarted Redis forgot.
//!
//! Each process holds a *view* of the fleet's circuit: the last generation it saw and,
//! if open, until when (on its own clock: Redis says how long remains, so clocks need
//! not agree). Pub/sub messages, script replies and the periodic read update it; a view
//! only moves to a newer generation (or to whatever Redis says after a reconnection).
//! While the view is open the local breaker is forced open; when it closes, the local
//! breaker is reset.
//!
//! Who touches what: callers read the view (one atomic load while closed) and use the
//! local breaker; one task per breaker and process, the *reporter*, sends failures,
//! openings and probe outcomes to Redis in order; the pub/sub task and the reporter
//! update the view, under a small lock that no caller takes.
//!
//! Why it is sound: the fleet's state changes only inside the scripts, so transitions
//! are atomic and numbered; a process acts on a transition only if it is newer than what
//! it saw, so reordered messages cannot undo a later decision; outcomes are counted only
//! in the generation they were admitted in; and probe leases expire, so a crashed probe
//! never wedges the fleet in half-open. Staleness: a process learns of an opening within
//! the pub/sub delivery time, and at worst within `sync_interval` (plus a call timeout).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use kompoz::breaker::{
    BreakerBuilder, BreakerStats, CircuitBreaker, CircuitOpen, CircuitState, Verdict,
};
use kompoz::{Clock, StdClock};
use redis::{Script, ScriptInvocation};
use tokio::sync::mpsc;

use crate::Degradation;
use crate::error::ConfigError;
use crate::fleet::{Fleet, check_duration, check_name};

mod combinator;
mod guard;
#[cfg(feature = "tower")]
mod owned;
mod reporter;

pub use combinator::{SharedProtected, shared_circuit_breaker};
pub use guard::SharedGuard;
#[cfg(feature = "tower")]
pub(crate) use owned::{Admitted, LocalBreaker, OwnedSharedGuard};

use reporter::Report;

pub(crate) struct Scripts {
    pub(crate) report: Script,
    pub(crate) probe: Script,
    pub(crate) settle: Script,
    pub(crate) sync: Script,
}

pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        report: Script::new(crate::scripts::BREAKER_REPORT),
        probe: Script::new(crate::scripts::BREAKER_PROBE),
        settle: Script::new(crate::scripts::BREAKER_SETTLE),
        sync: Script::new(crate::scripts::BREAKER_SYNC),
    })
}

/// The view's word: the generation seen, shifted left by [`GENERATION_SHIFT`], this bit
/// while open (half-open from `until` on), and [`FAILS_CLOSED`]. One load, and one test of
/// [`FLAGS`], tell a closed call all it needs.
const OPEN: u64 = 1;
/// Set for the breaker's life when it fails closed: its closed path must also ask whether
/// the link is up. Clear (the default, `Local`), the closed path is the view's load and
/// the local breaker's own admission.
const FAILS_CLOSED: u64 = 2;
/// The bits that send an admission off the closed path.
const FLAGS: u64 = OPEN | FAILS_CLOSED;
const GENERATION_SHIFT: u32 = 2;

/// This process's view of the fleet's circuit.
struct View {
    word: AtomicU64,
    /// The end of the open period, in nanoseconds of the breaker's clock.
    until: AtomicU64,
    /// Serialises updates (never taken by callers).
    update: Mutex<()>,
}

/// A circuit breaker shared by every process of a fleet that builds the same name on the
/// same Redis and prefix.
///
/// * **Free while closed.** Admission is one atomic load of the fleet view and the local
///   breaker's own admission; a success touches Redis zero times.
/// * **One fleet, one threshold.** Failures are counted fleet-wide, in a window
///   ([`failure_window`](SharedBreakerBuilder::failure_window)), against
///   [`fleet_failure_threshold`](SharedBreakerBuilder::fleet_failure_threshold); the local
///   breaker also opens by itself on `failure_threshold` consecutive local failures. Either
///   way the opening is published, and every process rejects within the pub/sub delivery
///   time (at worst [`sync_interval`](SharedBreakerBuilder::sync_interval)).
/// * **Probes limited fleet-wide.** Once the open period has passed, at most
///   `half_open_max_calls` probes run at once in the whole fleet (probe leases in Redis);
///   a failed probe reopens the circuit everywhere, `success_threshold` successes close it
///   everywhere.
/// * **Degrades.** While Redis is unreachable it follows its [`Degradation`]: by default
///   the local breaker alone decides (probes limited per process).
///
/// ```no_run
/// use std::time::Duration;
/// use kompoz_redis::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let payments = fleet
///     .breaker("payments")
///     .fleet_failure_threshold(20)
///     .failure_window(Duration::from_secs(10))
///     .recovery_timeout(Duration::from_secs(30))
///     .build()?;
/// let answer = payments.call(async { Ok::<_, std::io::Error>("charged") }).await;
/// assert!(answer.is_ok());
/// # Ok(()) }
/// ```
pub struct SharedBreaker<C: Clock + Send + Sync = StdClock> {
    pub(crate) shared: Arc<BreakerShared<C>>,
}

impl<C: Clock + Send + Sync> Clone for SharedBreaker<C> {
    fn clone(&self) -> Self {
        SharedBreaker { shared: Arc::clone(&self.shared) }
    }
}

pub(crate) struct BreakerShared<C: Clock + Send + Sync> {
    // The view and the local breaker first: the closed path reads only them.
    view: View,
    pub(crate) local: CircuitBreaker<C>,
    pub(crate) fleet: Arc<crate::fleet::Shared>,
    pub(crate) name: String,
    keys: [String; 3],
    pub(crate) channel: String,
    pub(crate) config: Config,
    pub(crate) reporter: mpsc::UnboundedSender<Report>,
    /// Degraded half-open (Redis unreachable, `Local`): probes in flight, successes.
    local_probes: AtomicU32,
    local_successes: AtomicU32,
    /// Set when Redis, or a message, told of a generation older than the view's: the
    /// reporter then reads Redis again and adopts what it says (see `apply`).
    pub(crate) behind: AtomicBool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) fleet_failure_threshold: u32,
    pub(crate) failure_window: Duration,
    pub(crate) recovery_timeout: Duration,
    pub(crate) half_open_max_calls: u32,
    pub(crate) success_threshold: u32,
    pub(crate) probe_lease: Duration,
    pub(crate) sync_interval: Duration,
    pub(crate) degradation: Degradation,
}

impl<C: Clock + Send + Sync> BreakerShared<C> {
    pub(crate) fn keys(&self, call: &mut ScriptInvocation<'_>) {
        for key in &self.keys {
            call.key(key.as_str());
        }
    }

    pub(crate) fn seen_generation(&self) -> u64 {
        self.view.word.load(Ordering::Acquire) >> GENERATION_SHIFT
    }

    pub(crate) fn view_until(&self) -> u64 {
        self.view.until.load(Ordering::Acquire)
    }

    pub(crate) fn view_is_closed(&self) -> bool {
        self.view.word.load(Ordering::Acquire) & OPEN == 0
    }

    /// An ordinary call admitted while the view was closed in `generation` failed, and
    /// its guard recorded it in the local breaker: the fleet hears of it (and of the
    /// local breaker opening by itself) from the reporter.
    #[inline(never)]
    pub(crate) fn report_failure(&self, generation: u64) {
        let _ = self.reporter.send(Report::Failure { generation });
        if self.view_is_closed() && self.local.state() == CircuitState::Open {
            let _ = self.reporter.send(Report::Opened { generation });
        }
    }

    /// Settles a call that the local breaker did not admit (a probe, fleet-wide or
    /// local, or a call admitted unguarded).
    pub(crate) fn settle_unguarded(&self, pass: OtherPass, generation: u64, verdict: Verdict) {
        match pass {
            OtherPass::Unguarded => {}
            OtherPass::Probe(n) => {
                let _ = self.reporter.send(Report::Settle { n, generation, verdict });
            }
            OtherPass::LocalProbe => {
                self.local_probes.fetch_sub(1, Ordering::AcqRel);
                match verdict {
                    Verdict::Success => self.settle_locally(true),
                    Verdict::Failure => self.settle_locally(false),
                    Verdict::Ignore => {}
                }
            }
        }
    }

    /// Whether the view's open period is still running: a call is rejected without
    /// asking Redis.
    pub(crate) fn open_period_rejects(&self) -> bool {
        let until = kompoz::Instant::from_nanos(self.view.until.load(Ordering::Acquire));
        self.local.clock().now() < until
    }

    /// What the fleet decides for a call while the view is open: rejected until the open
    /// period has passed; then a probe lease from Redis (one round trip), or, if Redis is
    /// unreachable, what the degradation mode says.
    pub(crate) async fn decide_open(&self) -> Result<OpenDecision, CircuitOpen> {
        if self.open_period_rejects() {
            return Err(CircuitOpen { state: CircuitState::Open });
        }
        let half_open = Err(CircuitOpen { state: CircuitState::HalfOpen });
        let link = &self.fleet.link;
        if link.is_up() {
            let (n, id) = self.fleet.new_id();
            let mut call = scripts().probe.prepare_invoke();
            self.keys(&mut call);
            call.arg("")
                .arg(id.as_str())
                .arg(self.config.half_open_max_calls)
                .arg(crate::limit::micros(self.config.probe_lease));
            // Until the reply is read, Redis may have granted `id` a lease that nobody
            // holds: if this future is dropped meanwhile (a caller's timeout, a select)
            // or the reply is lost, the lease is given back (`SETTLE` as abandoned)
            // instead of taking one of the fleet's probe slots for a whole lease time.
            let mut in_flight = ProbeInFlight { breaker: self, n, armed: true };
            let reply = link.eval::<(i64, u64, u64)>(&call).await;
            in_flight.armed = reply.is_err();
            drop(in_flight);
            match reply {
                Ok((1, generation, _)) => return Ok(OpenDecision::Probe { n, generation }),
                Ok((verdict, generation, remaining)) => {
                    let open = verdict != 0;
                    self.apply(generation, open, Duration::from_micros(remaining), false);
                    if !open {
                        // The fleet closed meanwhile: an ordinary call.
                        return Ok(OpenDecision::Closed { generation: self.seen_generation() });
                    }
                    let state =
                        if verdict == -1 { CircuitState::Open } else { CircuitState::HalfOpen };
                    return Err(CircuitOpen { state });
                }
                Err(_) => {}
            }
        }
        match self.config.degradation {
            Degradation::Local => {
                let taken =
                    self.local_probes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.config.half_open_max_calls).then_some(n + 1)
                    });
                if taken.is_ok() { Ok(OpenDecision::LocalProbe) } else { half_open }
            }
            Degradation::FailOpen => Ok(OpenDecision::Unguarded),
            Degradation::FailClosed => half_open,
        }
    }

    /// Moves the view to what Redis said, if it is newer (or, with `resync`, whatever it
    /// is: Redis may have restarted and counted from zero again).
    pub(crate) fn apply(&self, generation: u64, open: bool, remaining: Duration, resync: bool) {
        let _update = self.view.update.lock().unwrap_or_else(PoisonError::into_inner);
        let word = self.view.word.load(Ordering::Acquire);
        let (seen, was_open) = (word >> GENERATION_SHIFT, word & OPEN != 0);
        let same = generation == seen && was_open == open;
        if generation < seen && !resync {
            // A late message, or a Redis that lost the circuit (a failover to a replica
            // that was behind, an eviction, a FLUSHDB) and now counts from an older
            // generation: until this process adopts it, Redis ignores every report the
            // process sends. The reporter reads Redis again to tell which.
            self.behind.store(true, Ordering::Release);
        }
        if same || (generation < seen && !resync) || (generation == seen && !resync) {
            return;
        }
        let next = generation << GENERATION_SHIFT | word & FAILS_CLOSED;
        if open {
            let until = self.local.clock().now().saturating_add(remaining);
            self.view.until.store(until.as_nanos(), Ordering::Release);
            self.local_probes.store(0, Ordering::Release);
            self.local_successes.store(0, Ordering::Release);
            self.view.word.store(next | OPEN, Ordering::Release);
            self.local.force_open();
        } else {
            self.view.word.store(next, Ordering::Release);
            self.local.reset();
        }
    }

    /// Degraded half-open: the view opens again for a recovery time, or closes.
    fn settle_locally(&self, success: bool) {
        let _update = self.view.update.lock().unwrap_or_else(PoisonError::into_inner);
        let word = self.view.word.load(Ordering::Acquire);
        if word & OPEN == 0 {
            return;
        }
        if !success {
            let until = self.local.clock().now().saturating_add(self.config.recovery_timeout);
            self.view.until.store(until.as_nanos(), Ordering::Release);
            self.local_successes.store(0, Ordering::Release);
        } else if self.local_successes.fetch_add(1, Ordering::AcqRel) + 1
            >= self.config.success_threshold
        {
            self.view.word.store(word & !OPEN, Ordering::Release);
            self.local.reset();
        }
    }
}

/// What the fleet decided for a call while the view was open.
pub(crate) enum OpenDecision {
    /// The fleet had closed meanwhile (seen in `generation`): an ordinary call, for the
    /// local breaker to admit.
    Closed { generation: u64 },
    /// A fleet-wide probe, holding the probe lease `n` of `generation`.
    Probe { n: u64, generation: u64 },
    /// A probe admitted locally while Redis was unreachable (`Degradation::Local`).
    LocalProbe,
    /// Admitted without a probe lease while Redis was unreachable (`FailOpen`).
    Unguarded,
}

/// A call the local breaker did not admit, as its guard keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OtherPass {
    Probe(u64),
    LocalProbe,
    Unguarded,
}

impl Fleet {
    /// A builder for the shared circuit breaker `name`, with kompoz's parameters and
    /// defaults plus the fleet's own.
    pub fn breaker(&self, name: impl Into<String>) -> SharedBreakerBuilder {
        SharedBreakerBuilder {
            fleet: self.clone(),
            name: name.into(),
            failure_threshold: 5,
            fleet_failure_threshold: None,
            failure_window: Duration::from_secs(10),
            recovery_timeout: kompoz::breaker::DEFAULT_RECOVERY_TIMEOUT,
            half_open_max_calls: 1,
            success_threshold: None,
            probe_lease: Duration::from_secs(10),
            sync_interval: Duration::from_secs(1),
            degradation: Degradation::Local,
            on_state_change: None,
        }
    }
}

type Listener = Box<dyn Fn(CircuitState, CircuitState, &BreakerStats) + Send + Sync>;

/// Configures a [`SharedBreaker`]; made by [`Fleet::breaker`].
///
/// | parameter | default | meaning |
/// | --- | --- | --- |
/// | `failure_threshold` | 5 | consecutive failures in one process that open the fleet's circuit |
/// | `fleet_failure_threshold` | `failure_threshold` | failures in the whole fleet within `failure_window` that open it |
/// | `failure_window` | 10 s | the window of the fleet's failure count |
/// | `recovery_timeout` | 30 s | how long the circuit stays open |
/// | `half_open_max_calls` | 1 | probes at once in the whole fleet |
/// | `success_threshold` | `half_open_max_calls` | successful probes that close it |
/// | `probe_lease` | 10 s | a probe that has not finished by then frees its slot |
/// | `sync_interval` | 1 s | how often the state is read, in case pub/sub missed a message |
/// | `degradation` | `Local` | what happens while Redis is unreachable |
///
/// ```
/// use kompoz_redis::{ConfigError, Fleet};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ConfigError> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let refused = fleet.breaker("api").fleet_failure_threshold(0).build().unwrap_err();
/// assert_eq!(refused, ConfigError::Zero { field: "fleet_failure_threshold" });
/// # Ok(()) }
/// ```
pub struct SharedBreakerBuilder {
    fleet: Fleet,
    name: String,
    failure_threshold: u32,
    fleet_failure_threshold: Option<u32>,
    failure_window: Duration,
    recovery_timeout: Duration,
    half_open_max_calls: u32,
    success_threshold: Option<u32>,
    probe_lease: Duration,
    sync_interval: Duration,
    degradation: Degradation,
    on_state_change: Option<Listener>,
}

impl SharedBreakerBuilder {
    /// Consecutive failures in one process that open its local breaker, and with it the
    /// fleet's circuit (default 5).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Failures in the whole fleet within the [`failure_window`](Self::failure_window)
    /// that open the fleet's circuit (default: `failure_threshold`).
    pub fn fleet_failure_threshold(mut self, failures: u32) -> Self {
        self.fleet_failure_threshold = Some(failures);
        self
    }

    /// The window over which the fleet's failures are counted (default 10 s; counted in
    /// ten buckets, so failures leave the count a tenth of the window at a time).
    pub fn failure_window(mut self, window: Duration) -> Self {
        self.failure_window = window;
        self
    }

    /// How long the circuit stays open before probes are let in (default 30 s).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// Probes let in at once in the whole fleet while half-open (default 1).
    pub fn half_open_max_calls(mut self, probes: u32) -> Self {
        self.half_open_max_calls = probes;
        self
    }

    /// Successful probes that close the circuit (default: `half_open_max_calls`).
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = Some(successes);
        self
    }

    /// How long a probe keeps its slot (default 10 s): a probe whose process crashed, or
    /// that runs longer, frees it then.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.probe_lease = lease;
        self
    }

    /// How often the fleet's state is read, in case a pub/sub message was missed
    /// (default 1 s): the worst-case staleness of an opening, plus a call timeout.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// What to do while Redis is unreachable (default [`Degradation::Local`]).
    pub fn degradation(mut self, degradation: Degradation) -> Self {
        self.degradation = degradation;
        self
    }

    /// The local breaker's `on_state_change`: called after each transition of this
    /// process's breaker, including those that mirror the fleet's.
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(CircuitState, CircuitState, &BreakerStats) + Send + Sync + 'static,
    {
        self.on_state_change = Some(Box::new(callback));
        self
    }

    /// Builds the breaker on [`StdClock`].
    pub fn build(self) -> Result<SharedBreaker<StdClock>, ConfigError> {
        self.build_with(StdClock)
    }

    /// Builds the breaker, measuring time on `clock`.
    pub fn build_with<C: Clock + Send + Sync + 'static>(
        self,
        clock: C,
    ) -> Result<SharedBreaker<C>, ConfigError> {
        check_name("name", &self.name)?;
        let nonzero = |field: &'static str, value: u32| {
            if value == 0 { Err(ConfigError::Zero { field }) } else { Ok(value) }
        };
        let fleet_failure_threshold = nonzero(
            "fleet_failure_threshold",
            self.fleet_failure_threshold.unwrap_or(self.failure_threshold),
        )?;
        check_duration("failure_window", self.failure_window)?;
        check_duration("recovery_timeout", self.recovery_timeout)?;
        check_duration("probe_lease", self.probe_lease)?;
        check_duration("sync_interval", self.sync_interval)?;
        let mut local = BreakerBuilder::new()
            .failure_threshold(self.failure_threshold)
            .recovery_timeout(self.recovery_timeout)
            .half_open_max_calls(self.half_open_max_calls);
        if let Some(successes) = self.success_threshold {
            local = local.success_threshold(successes);
        }
        if let Some(listener) = self.on_state_change {
            local = local.on_state_change(listener);
        }
        let local = local.build_with(clock).map_err(|error| match error {
            kompoz::breaker::BreakerError::Zero { field } => ConfigError::Zero { field },
            kompoz::breaker::BreakerError::TooLarge { field, value, max } => {
                ConfigError::TooLarge { field, value: value.into(), max: max.into() }
            }
            _ => ConfigError::Zero { field: "breaker" },
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let fleet = Arc::clone(&self.fleet.shared);
        let tag = format!("{{{}:breaker:{}}}", fleet.prefix, self.name);
        let keys = ["state", "failures", "probes"].map(|part| format!("{tag}:{part}"));
        let channel = format!("{}:breaker:{}:changed", fleet.prefix, self.name);
        let config = Config {
            fleet_failure_threshold,
            failure_window: self.failure_window,
            recovery_timeout: self.recovery_timeout,
            half_open_max_calls: self.half_open_max_calls,
            success_threshold: self.success_threshold.unwrap_or(self.half_open_max_calls),
            probe_lease: self.probe_lease,
            sync_interval: self.sync_interval,
            degradation: self.degradation,
        };
        let (reporter, orders) = mpsc::unbounded_channel();
        let fails_closed =
            if config.degradation == Degradation::FailClosed { FAILS_CLOSED } else { 0 };
        let shared = Arc::new(BreakerShared {
            local,
            view: View {
                word: AtomicU64::new(fails_closed),
                until: AtomicU64::new(0),
                update: Mutex::new(()),
            },
            fleet,
            name: self.name,
            keys,
            channel: channel.clone(),
            config,
            reporter,
            local_probes: AtomicU32::new(0),
            local_successes: AtomicU32::new(0),
            behind: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&shared);
        shared.fleet.notifier.register(
            channel,
            Arc::new(move |payload| {
                if let Some(breaker) = weak.upgrade() {
                    reporter::on_message(&breaker, payload);
                }
            }),
        );
        runtime.spawn(reporter::run(Arc::downgrade(&shared), orders));
        let _ = shared.reporter.send(Report::Sync);
        Ok(SharedBreaker { shared })
    }
}

impl fmt::Debug for SharedBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerBuilder")
            .field("name", &self.name)
            .field("failure_threshold", &self.failure_threshold)
            .field("fleet_failure_threshold", &self.fleet_failure_threshold)
            .field("failure_window", &self.failure_window)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("success_threshold", &self.success_threshold)
            .field("probe_lease", &self.probe_lease)
            .field("sync_interval", &self.sync_interval)
            .field("degradation", &self.degradation)
            .finish_non_exhaustive()
    }
}

impl<C: Clock + Send + Sync> SharedBreaker<C> {
    /// Asks to make a call. While the fleet's circuit is closed this is the local
    /// breaker's admission and touches Redis zero times (the returned future is ready at
    /// its first poll); once its open period has passed, it asks Redis for a probe lease
    /// (one round trip). Fails with [`CircuitOpen`]. Admission happens when the future is
    /// first polled.
    #[inline]
    pub fn try_acquire(&self) -> TryAcquire<'_, C> {
        TryAcquire { breaker: self, probing: None, done: false }
    }

    /// Admission without waiting: `None` if the view is open (the fleet decides, with a
    /// round trip). The closed path: one load of the view, one test, and the local
    /// breaker's own admission.
    #[inline(always)]
    fn admit(&self) -> Option<Admission<'_, C>> {
        let shared = &*self.shared;
        let word = shared.view.word.load(Ordering::Acquire);
        if word & FLAGS != 0 {
            return self.admit_flagged(word);
        }
        Some(
            shared
                .local
                .try_acquire()
                .map(|guard| SharedGuard::local(shared, guard, word >> GENERATION_SHIFT)),
        )
    }

    /// Admission when the view is open, or the breaker fails closed.
    #[cold]
    #[inline(never)]
    fn admit_flagged(&self, word: u64) -> Option<Admission<'_, C>> {
        let shared = &*self.shared;
        if word & OPEN != 0 {
            // Rejected at once until the open period has passed: no round trip, and no
            // allocation for a rejection.
            return shared
                .open_period_rejects()
                .then_some(Err(CircuitOpen { state: CircuitState::Open }));
        }
        if !shared.fleet.link.is_up() {
            return Some(Err(CircuitOpen { state: CircuitState::Open }));
        }
        Some(
            shared
                .local
                .try_acquire()
                .map(|guard| SharedGuard::local(shared, guard, word >> GENERATION_SHIFT)),
        )
    }

    /// The round trip for a probe lease, while the view is open: boxed, so that the
    /// closed path's futures stay small. It answers with the fleet's decision, a few
    /// words, not with a guard: the guard is made by [`decided`](Self::decided), inlined
    /// beside the closed path's, so that both answers stay in registers (a guard that
    /// came back from the boxed future through memory would share its stack slot with
    /// the closed path's, which would then write it there too).
    #[cold]
    #[inline(never)]
    fn probing(&self) -> Probing<'_> {
        Box::pin(self.shared.decide_open())
    }

    /// The admission for the fleet's decision while the view was open.
    #[inline(always)]
    fn decided(&self, decision: Result<OpenDecision, CircuitOpen>) -> Admission<'_, C> {
        let shared = &*self.shared;
        Ok(match decision? {
            OpenDecision::Closed { generation } => {
                let guard = shared.local.try_acquire()?;
                SharedGuard::local(shared, guard, generation)
            }
            OpenDecision::Probe { n, generation } => SharedGuard::probe(shared, n, generation),
            OpenDecision::LocalProbe => SharedGuard::local_probe(shared),
            OpenDecision::Unguarded => SharedGuard::unguarded(shared),
        })
    }

    /// Runs `future` through the breaker: `Err` counts as a failure, `Ok` as a success;
    /// a future dropped before it completes counts as neither.
    ///
    /// While the fleet's circuit is closed this is the local breaker's `call` and one
    /// load of the fleet view: a success touches Redis zero times, a failure is sent to
    /// the fleet by a background task.
    pub async fn call<F, T, E>(&self, future: F) -> Result<T, kompoz::breaker::CallError<E>>
    where
        F: std::future::IntoFuture<Output = Result<T, E>>,
    {
        use kompoz::breaker::CallError;
        let shared = &*self.shared;
        let word = shared.view.word.load(Ordering::Acquire);
        if word & FLAGS == 0 {
            // The closed path is the local breaker's own `call` (which records the
            // outcome, and nothing if the call is dropped), and a failure's report to
            // the fleet. Holding the local guard here instead costs three times the
            // local call's time: the guard comes out of the admission's `Result` in
            // byte-sized pieces, and this future's state keeps it that way, to be read
            // back whole (a store-forwarding stall).
            let result = shared.local.call(future).await;
            if let Err(CallError::Inner(_)) = &result {
                shared.report_failure(word >> GENERATION_SHIFT);
            }
            return result;
        }
        let admission = match self.admit_flagged(word) {
            Some(admission) => admission,
            None => self.decided(self.probing().await),
        };
        let guard = admission.map_err(CallError::Rejected)?;
        let result = future.await;
        guard.record(kompoz::breaker::Verdict::from(result.is_ok()));
        result.map_err(CallError::Inner)
    }

    /// The state as this process sees it: the fleet's (open, or half-open once its open
    /// period has passed) if it is not closed, else the local breaker's.
    pub fn state(&self) -> CircuitState {
        let shared = &*self.shared;
        if shared.view_is_closed() {
            return shared.local.state();
        }
        let until = kompoz::Instant::from_nanos(shared.view.until.load(Ordering::Acquire));
        if shared.local.clock().now() < until { CircuitState::Open } else { CircuitState::HalfOpen }
    }

    /// The generation of the fleet's circuit this process has seen last.
    pub fn generation(&self) -> u64 {
        self.shared.seen_generation()
    }

    /// This process's local breaker (its stats count this process's calls).
    pub fn local(&self) -> &CircuitBreaker<C> {
        &self.shared.local
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Reads the fleet's state from Redis now and updates this process's view (one round
    /// trip); returns the state as this process then sees it.
    pub async fn refresh(&self) -> CircuitState {
        let (done, told) = tokio::sync::oneshot::channel();
        if self.shared.reporter.send(Report::Read(Some(done))).is_ok() {
            let _ = told.await;
        }
        self.state()
    }
}

/// A `PROBE` request on its way: dropped armed, it gives back the lease Redis may have
/// granted (through the reporter, in order after anything this process sent before).
struct ProbeInFlight<'a, C: Clock + Send + Sync> {
    breaker: &'a BreakerShared<C>,
    n: u64,
    armed: bool,
}

impl<C: Clock + Send + Sync> Drop for ProbeInFlight<'_, C> {
    fn drop(&mut self) {
        if self.armed {
            // `SETTLE` gives an abandoned lease back whatever the generation.
            let (n, generation) = (self.n, self.breaker.seen_generation());
            let verdict = kompoz::breaker::Verdict::Ignore;
            let _ = self.breaker.reporter.send(Report::Settle { n, generation, verdict });
        }
    }
}

/// The future of [`SharedBreaker::try_acquire`]: ready at its first poll while the
/// fleet's circuit is closed (no allocation, no Redis); a boxed round trip for a probe
/// lease otherwise.
#[must_use = "futures do nothing unless polled"]
pub struct TryAcquire<'a, C: Clock + Send + Sync> {
    breaker: &'a SharedBreaker<C>,
    /// The round trip for a probe lease, once the view was found open.
    probing: Option<Probing<'a>>,
    /// The admission was handed out.
    done: bool,
}

type Admission<'a, C> = Result<SharedGuard<'a, C>, CircuitOpen>;
type Probing<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<OpenDecision, CircuitOpen>> + Send + 'a>,
>;

impl<'a, C: Clock + Send + Sync> std::future::Future for TryAcquire<'a, C> {
    type Output = Admission<'a, C>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // Every field is `Unpin` (the probing future is boxed).
        let this = self.get_mut();
        if this.probing.is_none() && !this.done {
            // The admission is made here, straight into the poll's answer.
            match this.breaker.admit() {
                Some(admission) => {
                    this.done = true;
                    return std::task::Poll::Ready(admission);
                }
                None => this.probing = Some(this.breaker.probing()),
            }
        }
        match &mut this.probing {
            Some(future) => {
                let decision = std::task::ready!(future.as_mut().poll(cx));
                this.probing = None;
                this.done = true;
                std::task::Poll::Ready(this.breaker.decided(decision))
            }
            // Polled after it completed: it has nothing more to give.
            None => std::task::Poll::Pending,
        }
    }
}

impl<C: Clock + Send + Sync> fmt::Debug for TryAcquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match (&self.probing, self.done) {
            (Some(_), _) => "probing",
            (None, true) => "done",
            (None, false) => "fresh",
        };
        f.debug_struct("TryAcquire").field("stage", &stage).finish()
    }
}

impl<C: Clock + Send + Sync> fmt::Debug for SharedBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .field("generation", &self.generation())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
