//! A fleet-wide concurrency limit: permits are leases held in Redis.
//!
//! # The lease protocol
//!
//! A limit named `name` lives in five keys under one hash tag, `{prefix:limit:name}`:
//! the *holders* (lease id to expiry), the *line* of waiters (ticket to arrival number),
//! the waiters' *deadlines*, an *arrivals* counter, and the *abandoned* ids. Three Lua
//! scripts change them, each atomically on the server, each on the server's clock:
//!
//! * `ACQUIRE(id)` first forgets what has expired (leases whose holders stopped renewing,
//!   waiters who stopped polling), then grants `id` a lease if a permit is *owed* to it:
//!   if `id` is in line, when its place is below the number of free permits; if it is a
//!   newcomer, when more permits are free than there are waiters. Otherwise, when
//!   waiting, it joins the line (or stays, its deadline pushed back).
//! * `RELEASE(id)` removes the lease and publishes, on the limit's channel, the tickets
//!   now owed a permit: the head of the line. In *abandon* mode it also takes `id` out of
//!   line and remembers it for a lease time, so an `ACQUIRE(id)` still on its way is
//!   refused.
//! * `RENEW(ids)` pushes back the expiry of a process's leases and registers again those
//!   Redis does not have, whatever the capacity.
//!
//! Who touches what: the acquiring task runs `ACQUIRE` for its own id only; everything
//! else about a process's leases (renewal, release, abandonment, re-registration) is done
//! by one task per limit and process, the *keeper* (`keeper.rs`), in the order it was
//! asked. Expiry is done by whichever script runs next.
//!
//! Why it is sound:
//!
//! * At most `capacity` live leases are *granted*: a grant needs a free permit, counted
//!   in the same atomic script. Only `RENEW` adds beyond capacity, and only leases that
//!   are really held (lapsed ones, or local ones taken while Redis was unreachable), so
//!   that the count stays true and no new grant happens until it is below capacity again.
//! * A permit is never lost: a holder that crashes stops renewing and its lease expires
//!   after the lease time; a permit dropped anywhere sends its release to the keeper; an
//!   acquisition dropped mid-flight sends an abandonment, and the abandoned-id record
//!   covers an `ACQUIRE` that reaches Redis after it.
//! * A permit is never counted twice: the keeper serialises renewal and release, so a
//!   renewal never re-registers a released lease.
//! * Order: the line is ordered by arrival at Redis. A released permit is owed to the
//!   oldest live waiters; neither `try_acquire` nor a newcomer can take it from them. An
//!   owed waiter learns it from pub/sub (or its next poll), so a permit may stay idle for
//!   one notification delay. A waiter that stops polling for its time to live (its
//!   process crashed or stalled) loses its place.
//!
//! What it cannot promise: a holder that cannot renew for a whole lease time (Redis
//! unreachable, or the process stalled) loses its lease, and the fleet may admit someone
//! else meanwhile. The permit then reports [`FleetPermit::lapsed`], and its lease is
//! registered again as soon as possible.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use kompoz::Semaphore;
use redis::{Script, ScriptInvocation};
use tokio::sync::{Notify, mpsc};

use crate::Degradation;
use crate::error::{ConfigError, Unreachable};
use crate::fleet::{Fleet, check_duration, check_name};

mod acquire;
mod combinator;
mod keeper;
mod permit;

pub use acquire::AcquireError;
pub(crate) use acquire::micros;
pub use combinator::{FleetLimited, fleet_limited};
pub use permit::{Admission, FleetPermit};

use keeper::Order;

/// Default [`LimitBuilder::lease_time`].
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(10);
/// Default [`LimitBuilder::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The largest capacity of a fleet limit.
pub const MAX_CAPACITY: u32 = 1 << 30;

pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) release: Script,
    pub(crate) renew: Script,
}

pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        acquire: Script::new(crate::scripts::LIMIT_ACQUIRE),
        release: Script::new(crate::scripts::LIMIT_RELEASE),
        renew: Script::new(crate::scripts::LIMIT_RENEW),
    })
}

/// A concurrency limit shared by every process of a fleet: at most `capacity` permits
/// are held at once, across all the processes that use the same Redis, prefix and name.
///
/// * **Leases.** A permit is a lease in Redis, renewed by this process every third of
///   the [lease time](LimitBuilder::lease_time) while it is held: the permits of a
///   process that crashed come back after the lease time.
/// * **Fair.** Waiters form one line in Redis, in order of arrival; a released permit is
///   owed to the oldest live waiter, which is woken by pub/sub (polling is the fallback).
///   Neither [`try_acquire`](FleetLimit::try_acquire) nor a newcomer barges ahead.
/// * **Cancellation-safe, in any process.** Dropping an acquisition at any point, or a
///   permit, loses nothing: what Redis granted or queued is given back.
/// * **Degrades.** While Redis is unreachable, the limit follows its
///   [`Degradation`]: by default a local semaphore of
///   [`local_limit`](LimitBuilder::local_limit) permits, registered with Redis when it
///   returns.
/// * **Cheap.** `try_acquire` is one round trip, a release one (sent by a background
///   task), renewal one per lease third for all of a process's permits.
///
/// See the module documentation for the protocol and why it is sound.
///
/// ```no_run
/// use std::time::Duration;
/// use kompoz_redis::Fleet;
/// use kompoz_redis::limit::{AcquireError, Admission};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let search = fleet
///     .limit("search-backend", 3)
///     .lease_time(Duration::from_secs(5))
///     .max_wait(Duration::from_secs(1))
///     .build()?;
/// match search.acquire().await {
///     Ok(permit) => {
///         assert_eq!(permit.admission(), Admission::Fleet);
///         // ... call the backend; at most 3 calls run at once in the whole fleet ...
///     }
///     Err(AcquireError::WaitElapsed) => { /* shed the request */ }
///     Err(other) => return Err(other.into()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FleetLimit {
    pub(crate) shared: Arc<LimitShared>,
    keeper: mpsc::UnboundedSender<Order>,
}

pub(crate) struct LimitShared {
    pub(crate) fleet: Arc<crate::fleet::Shared>,
    pub(crate) name: String,
    pub(crate) capacity: u32,
    pub(crate) lease_time: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) waiter_ttl: Duration,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) degradation: Degradation,
    /// The local fallback (in [`Degradation::Local`]): taken before every acquisition.
    pub(crate) local: Option<Arc<Semaphore>>,
    keys: [String; 5],
    pub(crate) channel: String,
    /// This process's waiters, by id: pub/sub wakes the ones owed a permit.
    pub(crate) waiters: Mutex<HashMap<u64, Arc<Notify>>>,
}

impl LimitShared {
    pub(crate) fn keys(&self, call: &mut ScriptInvocation<'_>) {
        for key in &self.keys {
            call.key(key.as_str());
        }
    }

    /// Wakes the local waiters named in a wake-up message (all of them for `None`).
    fn wake(&self, payload: Option<&str>) {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        match payload {
            None => waiters.values().for_each(|waiter| waiter.notify_one()),
            Some(payload) => {
                let ours = payload.split(' ').filter_map(|id| {
                    let (instance, n) = id.rsplit_once(':')?;
                    (instance == self.fleet.instance).then(|| n.parse::<u64>().ok())?
                });
                for n in ours {
                    if let Some(waiter) = waiters.get(&n) {
                        waiter.notify_one();
                    }
                }
            }
        }
    }
}

impl Fleet {
    /// A builder for the fleet-wide concurrency limit `name` of `capacity` permits.
    /// Every process that builds the same name on the same Redis and prefix shares it;
    /// they must agree on the capacity.
    pub fn limit(&self, name: impl Into<String>, capacity: u32) -> LimitBuilder {
        LimitBuilder {
            fleet: self.clone(),
            name: name.into(),
            capacity,
            lease_time: DEFAULT_LEASE_TIME,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_wait: None,
            degradation: Degradation::Local,
            local_limit: None,
        }
    }
}

/// Configures a [`FleetLimit`]; made by [`Fleet::limit`], validated by
/// [`build`](LimitBuilder::build).
///
/// | parameter | default | meaning |
/// | --- | --- | --- |
/// | `capacity` | (required) | permits held at once in the whole fleet, 1 to 2^30 |
/// | `lease_time` | 10 s | how long a permit of a crashed process stays taken; renewed every third |
/// | `poll_interval` | 250 ms | how often a waiter looks again without a wake-up |
/// | `max_wait` | none | the longest [`acquire`](FleetLimit::acquire) waits |
/// | `degradation` | `Local` | what happens while Redis is unreachable |
/// | `local_limit` | `capacity` | the local semaphore's size in `Local` mode |
///
/// With the default `local_limit`, each process admits up to the whole fleet's capacity
/// while Redis is unreachable; set it to `capacity / processes` to keep a fleet-wide
/// bound then too (at the cost of capping each process so while Redis is up).
///
/// ```
/// use std::time::Duration;
/// use kompoz_redis::{ConfigError, Fleet};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ConfigError> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let refused = fleet.limit("api", 0).build().unwrap_err();
/// assert_eq!(refused, ConfigError::Zero { field: "capacity" });
/// let refused = fleet.limit("api", 5).lease_time(Duration::from_millis(100)).build().unwrap_err();
/// assert!(matches!(refused, ConfigError::LeaseTooShort { .. }));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LimitBuilder {
    fleet: Fleet,
    name: String,
    capacity: u32,
    lease_time: Duration,
    poll_interval: Duration,
    max_wait: Option<Duration>,
    degradation: Degradation,
    local_limit: Option<u32>,
}

impl LimitBuilder {
    /// How long a lease lasts without renewal (default 10 s): the permits of a crashed
    /// process come back after at most this long. Held permits are renewed every third
    /// of it. At least four times the fleet's `call_timeout`.
    pub fn lease_time(mut self, lease_time: Duration) -> Self {
        self.lease_time = lease_time;
        self
    }

    /// How often a waiter asks Redis again without a wake-up (default 250 ms). A waiter
    /// that has not asked for `3 x poll_interval + 2 x call_timeout` loses its place in
    /// line (its process is taken for dead).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The longest [`acquire`](FleetLimit::acquire) waits before it fails with
    /// [`AcquireError::WaitElapsed`] (default: no limit).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// What to do while Redis is unreachable (default [`Degradation::Local`]).
    pub fn degradation(mut self, degradation: Degradation) -> Self {
        self.degradation = degradation;
        self
    }

    /// The size of the local semaphore used in [`Degradation::Local`] (default: the
    /// capacity). Every acquisition takes a local permit first, so while Redis is up
    /// it also caps this process; while Redis is unreachable it is the only limit.
    pub fn local_limit(mut self, permits: u32) -> Self {
        self.local_limit = Some(permits);
        self
    }

    /// Validates the configuration, builds the limit and starts its keeper.
    pub fn build(self) -> Result<FleetLimit, ConfigError> {
        check_name("name", &self.name)?;
        let count = |field: &'static str, value: u32| match value {
            0 => Err(ConfigError::Zero { field }),
            value if value > MAX_CAPACITY => {
                Err(ConfigError::TooLarge { field, value: value.into(), max: MAX_CAPACITY.into() })
            }
            value => Ok(value),
        };
        let capacity = count("capacity", self.capacity)?;
        let local_limit = count("local_limit", self.local_limit.unwrap_or(capacity))?;
        check_duration("lease_time", self.lease_time)?;
        check_duration("poll_interval", self.poll_interval)?;
        if let Some(max_wait) = self.max_wait
            && max_wait > crate::fleet::MAX_SCRIPT_SPAN
        {
            return Err(ConfigError::TooLarge {
                field: "max_wait",
                value: max_wait.as_micros(),
                max: crate::fleet::MAX_SCRIPT_SPAN.as_micros(),
            });
        }
        let call_timeout = self.fleet.call_timeout();
        if self.lease_time < call_timeout.saturating_mul(4) {
            return Err(ConfigError::LeaseTooShort { lease_time: self.lease_time, call_timeout });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let fleet = Arc::clone(&self.fleet.shared);
        let tag = format!("{{{}:limit:{}}}", fleet.prefix, self.name);
        let keys = ["holders", "line", "waiters", "arrivals", "abandoned"]
            .map(|part| format!("{tag}:{part}"));
        let channel = format!("{}:limit:{}:owed", fleet.prefix, self.name);
        let local = match self.degradation {
            Degradation::Local => {
                Some(Arc::new(Semaphore::new(local_limit as usize).map_err(|_| {
                    ConfigError::TooLarge {
                        field: "local_limit",
                        value: local_limit.into(),
                        max: MAX_CAPACITY.into(),
                    }
                })?))
            }
            Degradation::FailClosed | Degradation::FailOpen => None,
        };
        let shared = Arc::new(LimitShared {
            fleet,
            name: self.name,
            capacity,
            lease_time: self.lease_time,
            poll_interval: self.poll_interval,
            waiter_ttl: self.poll_interval.saturating_mul(3) + call_timeout.saturating_mul(2),
            max_wait: self.max_wait,
            degradation: self.degradation,
            local,
            keys,
            channel: channel.clone(),
            waiters: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&shared);
        shared.fleet.notifier.register(
            channel,
            Arc::new(move |payload| {
                if let Some(limit) = weak.upgrade() {
                    limit.wake(payload);
                }
            }),
        );
        let (keeper, orders) = mpsc::unbounded_channel();
        runtime.spawn(keeper::keep(Arc::clone(&shared), orders));
        Ok(FleetLimit { shared, keeper })
    }
}

impl FleetLimit {
    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Permits held at once in the whole fleet, at most.
    pub fn capacity(&self) -> u32 {
        self.shared.capacity
    }

    /// How long a lease lasts without renewal.
    pub fn lease_time(&self) -> Duration {
        self.shared.lease_time
    }

    /// What the limit does while Redis is unreachable.
    pub fn degradation(&self) -> Degradation {
        self.shared.degradation
    }

    /// The local semaphore of [`Degradation::Local`] (for its stats), if any.
    pub fn local(&self) -> Option<&Semaphore> {
        self.shared.local.as_deref()
    }

    /// Waits until every release and abandonment this process ordered so far has reached
    /// Redis (or, while Redis is unreachable, been put aside for when it returns). Call it
    /// before the process exits, so that its permits come back at once rather than after
    /// the lease time.
    pub async fn settle(&self) {
        let (done, told) = tokio::sync::oneshot::channel();
        if self.keeper.send(Order::Settle { done }).is_ok() {
            let _ = told.await;
        }
    }

    /// Leases held in the whole fleet right now, as Redis counts them (one round trip;
    /// expired leases are not counted).
    pub async fn in_use(&self) -> Result<u64, Unreachable> {
        self.count(0).await
    }

    /// Waiters in the fleet-wide line right now, as Redis counts them (one round trip).
    pub async fn waiting(&self) -> Result<u64, Unreachable> {
        self.count(1).await
    }

    async fn count(&self, key: usize) -> Result<u64, Unreachable> {
        // ZCOUNT of live members: leases alive strictly after now.
        let script = counting_script();
        let mut call = script.prepare_invoke();
        self.shared.keys(&mut call);
        call.arg(key + 1);
        self.shared.fleet.link.eval(&call).await
    }
}

fn counting_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(concat!(
            include_str!("prelude.lua"),
            "local now = clock('')\n",
            "local after = string.format('(%.17g', now)\n",
            "if ARGV[1] == '1' then return redis.call('ZCOUNT', KEYS[1], after, '+inf') end\n",
            "return redis.call('ZCOUNT', KEYS[3], after, '+inf')\n",
        ))
    })
}

impl fmt::Debug for FleetLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLimit")
            .field("name", &self.shared.name)
            .field("capacity", &self.shared.capacity)
            .field("lease_time", &self.shared.lease_time)
            .field("poll_interval", &self.shared.poll_interval)
            .field("max_wait", &self.shared.max_wait)
            .field("degradation", &self.shared.degradation)
            .finish_non_exhaustive()
    }
}
