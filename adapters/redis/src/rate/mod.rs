//! A fleet-wide rate limit: GCRA in a Lua script, one key per limit (and per user key for
//! keyed limits), with exactly the arithmetic of kompoz's local limiter.
//!
//! Each check is one round trip: the script reads the theoretical arrival time (TAT),
//! decides on the Redis clock, and stores the new TAT, atomically. The arithmetic, in
//! unsigned 64-bit nanoseconds, is `base = max(tat, now)`, `own = base + n x T`; admitted
//! if `own <= now + tau` (`tau = burst x T`), else refused until `own - tau`; see
//! `rate/gcra.lua` and the reference check in `tests/rate_scripts.rs`.
//!
//! **Local reservation** ([`RateBuilder::reserve`]): with `reserve(k)`, a check that goes
//! to Redis takes up to `k` cells at once if they conform, and the process spends the
//! spare ones locally, without round trips, within `k x T` of taking them. Fewer round
//! trips for some precision: cells are counted when reserved, so over any window `W` the
//! fleet admits at most `burst + k + W / T` cells per process that reserves, and unspent
//! reserved cells are lost (admitting less than the quota, never more than that bound).
//!
//! **While Redis is unreachable** ([`Degradation::Local`], the default), each process
//! runs the same arithmetic locally on its own clock (per key for a keyed limit), and
//! when Redis is back the cells it admitted are charged to the fleet's TAT (at most a
//! full burst), before the next check.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;

use crate::Degradation;
use crate::error::ConfigError;
use crate::fleet::{Fleet, check_name};
use crate::limit::Admission;

/// The largest [`RateBuilder::reserve`].
pub const MAX_RESERVE: u32 = 1_000;
/// At most this many keys are tracked locally while Redis is unreachable (idle ones are
/// forgotten first).
pub const MAX_LOCAL_KEYS: usize = 100_000;

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(crate::scripts::RATE_GCRA))
}

/// Why a fleet rate limit refused a request. Cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateError {
    /// The cells do not conform yet: retry after `wait` (measured from the decision).
    Limited {
        /// How long until the same request would conform, if nothing else happened.
        wait: Duration,
    },
    /// More cells at once than the burst: they never conform.
    ExceedsBurst {
        /// The cells asked for.
        cells: u32,
        /// The limit's burst.
        burst: u32,
    },
    /// Redis is unreachable and the limit fails closed.
    Unavailable,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::Limited { wait } => write!(f, "rate limited: retry after {wait:?}"),
            RateError::ExceedsBurst { cells, burst } => {
                write!(f, "{cells} cells asked for at once, more than the burst of {burst}")
            }
            RateError::Unavailable => {
                f.write_str("Redis is unreachable and the rate limit fails closed")
            }
        }
    }
}

impl std::error::Error for RateError {}

/// An admission by a fleet rate limit: how it was decided, and when, for the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Admitted {
    /// [`Admission::Fleet`]: counted in Redis (now, or when reserved); `Local`: by the
    /// local fallback while Redis was unreachable; `Open`: failing open.
    pub admission: Admission,
    /// For a fleet admission, the instant Redis decided it (nanoseconds since the Unix
    /// epoch on the Redis clock; for a reserved cell, when it was reserved).
    pub decided_at: Option<u64>,
}

/// One cell every `interval`, `burst` at once: kompoz's `Quota`, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Quota {
    interval: u64,
    burst: u32,
}

impl Quota {
    fn tolerance(&self) -> u64 {
        self.interval * u64::from(self.burst)
    }

    /// The GCRA decision for `cells` at `now` on `tat` (the arithmetic of `gcra.lua`).
    fn decide(&self, tat: u64, now: u64, cells: u32) -> Result<u64, u64> {
        let own = u128::from(tat.max(now)) + u128::from(cells) * u128::from(self.interval);
        if own > u128::from(u64::MAX) {
            return Err(u64::MAX);
        }
        let tolerance = u128::from(self.tolerance());
        if own <= u128::from(now) + tolerance {
            Ok(own as u64)
        } else {
            Err((own - tolerance) as u64)
        }
    }
}

/// A key's state while Redis is unreachable, and what to charge the fleet when it is back.
#[derive(Clone, Copy, Debug, Default)]
struct Local {
    tat: u64,
    unreported: u32,
}

/// Cells reserved from Redis, to spend locally.
#[derive(Debug)]
struct Pool {
    cells: u32,
    until: Instant,
    /// When Redis counted the cells.
    decided_at: u64,
}

struct RateShared {
    fleet: Arc<crate::fleet::Shared>,
    name: String,
    key: String,
    quota: Quota,
    reserve: u32,
    degradation: Degradation,
    /// The local fallback's clock: nanoseconds since this limiter was built.
    epoch: Instant,
    local: Mutex<HashMap<String, Local>>,
    pools: Mutex<HashMap<String, Pool>>,
}

impl Fleet {
    /// A builder for the fleet-wide rate limit `name`: `cells` per `period`, with a burst
    /// of `cells` unless told otherwise. Every process must use the same quota.
    pub fn rate_limit(&self, name: impl Into<String>, cells: u32, period: Duration) -> RateBuilder {
        RateBuilder {
            fleet: self.clone(),
            name: name.into(),
            cells,
            period,
            burst: None,
            reserve: 1,
            degradation: Degradation::Local,
        }
    }
}

/// Configures a [`FleetRateLimiter`] or a [`FleetKeyedRateLimiter`]; made by
/// [`Fleet::rate_limit`].
///
/// The interval is `period / cells` nanoseconds, **rounded up**, as kompoz's local
/// `Quota` rounds it (3 per second is one cell every 333,333,334 ns), so the fleet never
/// admits faster than asked.
///
/// ```
/// use std::time::Duration;
/// use kompoz_redis::{ConfigError, Fleet};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ConfigError> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let api = fleet.rate_limit("api", 100, Duration::from_secs(1)).burst(20).build()?;
/// assert_eq!(api.interval(), Duration::from_millis(10));
/// let refused = fleet.rate_limit("api", 0, Duration::from_secs(1)).build().unwrap_err();
/// assert_eq!(refused, ConfigError::Zero { field: "cells" });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RateBuilder {
    fleet: Fleet,
    name: String,
    cells: u32,
    period: Duration,
    burst: Option<u32>,
    reserve: u32,
    degradation: Degradation,
}

impl RateBuilder {
    /// The most cells admitted at once after a quiet spell (default: `cells`).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Reserve up to `k` cells per round trip and spend the spare ones locally (default 1:
    /// no reservation); see the [module documentation](self) for what it costs in
    /// precision. At most [`MAX_RESERVE`].
    pub fn reserve(mut self, k: u32) -> Self {
        self.reserve = k;
        self
    }

    /// What to do while Redis is unreachable (default [`Degradation::Local`]).
    pub fn degradation(mut self, degradation: Degradation) -> Self {
        self.degradation = degradation;
        self
    }

    fn shared(self) -> Result<Arc<RateShared>, ConfigError> {
        check_name("name", &self.name)?;
        if self.cells == 0 {
            return Err(ConfigError::Zero { field: "cells" });
        }
        if self.period.is_zero() {
            return Err(ConfigError::Zero { field: "period" });
        }
        let burst = self.burst.unwrap_or(self.cells);
        if burst == 0 {
            return Err(ConfigError::Zero { field: "burst" });
        }
        if self.reserve == 0 {
            return Err(ConfigError::Zero { field: "reserve" });
        }
        if self.reserve > MAX_RESERVE {
            return Err(ConfigError::TooLarge {
                field: "reserve",
                value: self.reserve.into(),
                max: MAX_RESERVE.into(),
            });
        }
        let period = self.period.as_nanos();
        let interval = period.div_ceil(u128::from(self.cells));
        let too_large =
            |field, value: u128| ConfigError::TooLarge { field, value, max: u64::MAX.into() };
        let interval = u64::try_from(interval).map_err(|_| too_large("period", period))?;
        if u64::from(burst).checked_mul(interval).is_none() {
            return Err(too_large("burst x interval", u128::from(burst) * u128::from(interval)));
        }
        let fleet = Arc::clone(&self.fleet.shared);
        let key = format!("{}:rate:{}", fleet.prefix, self.name);
        Ok(Arc::new(RateShared {
            fleet,
            name: self.name,
            key,
            quota: Quota { interval, burst },
            reserve: self.reserve,
            degradation: self.degradation,
            epoch: Instant::now(),
            local: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
        }))
    }

    /// Builds a limiter with one quota for the whole fleet.
    pub fn build(self) -> Result<FleetRateLimiter, ConfigError> {
        Ok(FleetRateLimiter { shared: self.shared()? })
    }

    /// Builds a limiter with one quota per key (client, account, tenant), each shared by
    /// the fleet.
    pub fn build_keyed(self) -> Result<FleetKeyedRateLimiter, ConfigError> {
        Ok(FleetKeyedRateLimiter { shared: self.shared()? })
    }
}

impl RateShared {
    async fn check(&self, user_key: Option<&str>, cells: u32) -> Result<Admitted, RateError> {
        let burst = self.quota.burst;
        if cells > burst {
            return Err(RateError::ExceedsBurst { cells, burst });
        }
        let fleet = |decided_at| Admitted { admission: Admission::Fleet, decided_at };
        if cells == 0 {
            return Ok(fleet(None));
        }
        let slot = user_key.unwrap_or("");
        if self.reserve > 1
            && let Some(decided_at) = self.spend_reserved(slot, cells)
        {
            return Ok(fleet(Some(decided_at)));
        }
        let link = &self.fleet.link;
        if link.is_up() {
            let key = match user_key {
                Some(user_key) => format!("{}:{user_key}", self.key),
                None => self.key.clone(),
            };
            let unreported = self.take_unreported(slot);
            if unreported > 0 && self.call(&key, unreported, "charge", 0).await.is_err() {
                self.put_back_unreported(slot, unreported);
            }
            let more = if cells == 1 { self.reserve - 1 } else { 0 };
            match self.call(&key, cells, "take", more).await {
                Ok((0, earliest, now)) => {
                    return Err(RateError::Limited {
                        wait: Duration::from_nanos(earliest.saturating_sub(now)),
                    });
                }
                Ok((admitted, _, now)) => {
                    if admitted > cells {
                        self.refill(slot, admitted - cells, now);
                    }
                    return Ok(fleet(Some(now)));
                }
                Err(()) => {}
            }
        }
        match self.degradation {
            Degradation::Local => self
                .check_locally(slot, cells)
                .map(|()| Admitted { admission: Admission::Local, decided_at: None }),
            Degradation::FailOpen => Ok(Admitted { admission: Admission::Open, decided_at: None }),
            Degradation::FailClosed => Err(RateError::Unavailable),
        }
    }

    /// Runs the script: (cells admitted, TAT or earliest, now), in nanoseconds.
    async fn call(
        &self,
        key: &str,
        cells: u32,
        mode: &str,
        more: u32,
    ) -> Result<(u32, u64, u64), ()> {
        let quota = &self.quota;
        let mut call = script().key(key);
        call.arg("")
            .arg(quota.interval.to_string())
            .arg(quota.tolerance().to_string())
            .arg((u128::from(quota.interval) * u128::from(cells)).to_string())
            .arg(mode)
            .arg(cells)
            .arg(more);
        let (admitted, instant, now): (u32, String, String) =
            self.fleet.link.eval(&call).await.map_err(drop)?;
        Ok((admitted, instant.parse().map_err(drop)?, now.parse().map_err(drop)?))
    }

    fn spend_reserved(&self, slot: &str, cells: u32) -> Option<u64> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        match pools.get_mut(slot) {
            Some(pool) if pool.cells >= cells && Instant::now() < pool.until => {
                pool.cells -= cells;
                Some(pool.decided_at)
            }
            Some(_) => {
                pools.remove(slot);
                None
            }
            None => None,
        }
    }

    fn refill(&self, slot: &str, cells: u32, decided_at: u64) {
        let hold =
            Duration::from_nanos(self.quota.interval.saturating_mul(u64::from(self.reserve)));
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if pools.len() >= MAX_LOCAL_KEYS {
            let now = Instant::now();
            pools.retain(|_, pool| pool.until > now);
        }
        pools.insert(slot.to_string(), Pool { cells, until: Instant::now() + hold, decided_at });
    }

    fn take_unreported(&self, slot: &str) -> u32 {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        local.get_mut(slot).map_or(0, |state| std::mem::take(&mut state.unreported))
    }

    fn put_back_unreported(&self, slot: &str, cells: u32) {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let state = local.entry(slot.to_string()).or_default();
        state.unreported = state.unreported.saturating_add(cells);
    }

    /// The same arithmetic on this process's clock, while Redis is unreachable.
    fn check_locally(&self, slot: &str, cells: u32) -> Result<(), RateError> {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if local.len() >= MAX_LOCAL_KEYS && !local.contains_key(slot) {
            // Forget idle keys: an idle key decides exactly as a fresh one.
            local.retain(|_, state| state.tat > now || state.unreported > 0);
        }
        let state = local.entry(slot.to_string()).or_default();
        match self.quota.decide(state.tat, now, cells) {
            Ok(tat) => {
                state.tat = tat;
                state.unreported = state.unreported.saturating_add(cells);
                Ok(())
            }
            Err(earliest) => {
                Err(RateError::Limited { wait: Duration::from_nanos(earliest.saturating_sub(now)) })
            }
        }
    }
}

/// A rate limit shared by every process of a fleet: at most `burst + W / T` cells over any
/// window `W` of the Redis clock, whichever process asks. One round trip per check (fewer
/// with [`reserve`](RateBuilder::reserve)).
///
/// ```no_run
/// use std::time::Duration;
/// use kompoz_redis::Fleet;
/// use kompoz_redis::rate::RateError;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let partner_api = fleet.rate_limit("partner-api", 50, Duration::from_secs(1)).build()?;
/// match partner_api.check().await {
///     Ok(()) => { /* call the partner */ }
///     Err(RateError::Limited { wait }) => println!("retry after {wait:?}"),
///     Err(other) => return Err(other.into()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FleetRateLimiter {
    shared: Arc<RateShared>,
}

impl FleetRateLimiter {
    /// Asks for one cell.
    pub async fn check(&self) -> Result<(), RateError> {
        self.shared.check(None, 1).await.map(drop)
    }

    /// Asks for `cells` at once: all or nothing.
    pub async fn check_n(&self, cells: u32) -> Result<(), RateError> {
        self.shared.check(None, cells).await.map(drop)
    }

    /// Asks for `cells` at once, and tells how they were admitted: fleet-wide (and when,
    /// on the Redis clock) or by a degradation mode.
    pub async fn check_detailed(&self, cells: u32) -> Result<Admitted, RateError> {
        self.shared.check(None, cells).await
    }

    /// Waits until one cell conforms (sleeping the wait Redis reports, then asking
    /// again), at most `max_wait`; then fails with the last refusal.
    pub async fn until_ready(&self, max_wait: Duration) -> Result<(), RateError> {
        // A wait too long to be an instant (`Duration::MAX`) has no deadline.
        let deadline = Instant::now().checked_add(max_wait);
        loop {
            match self.check().await {
                Err(RateError::Limited { wait })
                    if deadline.is_none_or(|deadline| {
                        Instant::now().checked_add(wait).is_some_and(|ready| ready <= deadline)
                    }) =>
                {
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// The interval: the time one cell costs.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.shared.quota.interval)
    }

    /// The burst.
    pub fn burst(&self) -> u32 {
        self.shared.quota.burst
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}

/// A rate limit per key (client, account, tenant), each key's quota shared by every
/// process of a fleet; one Redis key per user key, expiring once idle.
///
/// ```no_run
/// use std::time::Duration;
/// use kompoz_redis::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let per_account = fleet.rate_limit("per-account", 10, Duration::from_secs(1)).build_keyed()?;
/// assert!(per_account.check("account-42").await.is_ok());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FleetKeyedRateLimiter {
    shared: Arc<RateShared>,
}

impl FleetKeyedRateLimiter {
    /// Asks for one cell of `key`'s quota.
    pub async fn check(&self, key: &str) -> Result<(), RateError> {
        self.shared.check(Some(key), 1).await.map(drop)
    }

    /// Asks for `cells` of `key`'s quota at once: all or nothing.
    pub async fn check_n(&self, key: &str, cells: u32) -> Result<(), RateError> {
        self.shared.check(Some(key), cells).await.map(drop)
    }

    /// Asks for `cells` of `key`'s quota, and tells how they were admitted.
    pub async fn check_detailed(&self, key: &str, cells: u32) -> Result<Admitted, RateError> {
        self.shared.check(Some(key), cells).await
    }

    /// The interval: the time one cell costs.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.shared.quota.interval)
    }
}

impl fmt::Debug for FleetRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.shared, "FleetRateLimiter", f)
    }
}

impl fmt::Debug for FleetKeyedRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.shared, "FleetKeyedRateLimiter", f)
    }
}

fn debug(shared: &RateShared, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(name)
        .field("name", &shared.name)
        .field("interval", &Duration::from_nanos(shared.quota.interval))
        .field("burst", &shared.quota.burst)
        .field("reserve", &shared.reserve)
        .field("degradation", &shared.degradation)
        .finish_non_exhaustive()
}
