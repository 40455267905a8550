//! [`RateShared`]: what a fleet rate limiter's handles share, and the check itself:
//! spare reserved cells first, then the script in Redis, then the degradation mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use kompoz::rate::{ExceedsBurst, Quota, RateLimited};
use kompoz::{Clock, Rejection};
use redis::Script;

use super::local::Local;
use super::{Admitted, RateBuilder, RateError};
use crate::Degradation;
use crate::limit::Admission;

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(crate::scripts::RATE_GCRA))
}

/// Cells reserved from Redis, to spend locally.
#[derive(Debug)]
struct Pool {
    cells: u32,
    /// Until when they may be spent (nanoseconds of the limiter's clock).
    until: u64,
    /// When Redis counted them (nanoseconds on the Redis clock).
    decided_at: u64,
}

pub(super) struct RateShared<C> {
    pub(super) fleet: Arc<crate::fleet::Shared>,
    pub(super) name: String,
    key: String,
    pub(super) quota: Quota,
    /// `T` in nanoseconds (the quota's interval, a whole number of nanoseconds).
    interval: u64,
    pub(super) reserve: u32,
    pub(super) degradation: Degradation,
    pub(super) local: Local<C>,
    pools: Mutex<HashMap<String, Pool>>,
}

impl<C: Clock> RateShared<C> {
    pub(super) fn new(builder: RateBuilder, key: String, local: Local<C>) -> Arc<Self> {
        let interval = u64::try_from(builder.quota.interval().as_nanos())
            .expect("a quota's interval is a 64-bit count of nanoseconds");
        Arc::new(RateShared {
            fleet: Arc::clone(&builder.fleet.shared),
            name: builder.name,
            key,
            quota: builder.quota,
            interval,
            reserve: builder.reserve,
            degradation: builder.degradation,
            local,
            pools: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn clock(&self) -> &C {
        self.local.clock()
    }

    /// Asks for `cells` of `user_key`'s quota (`None`: the limit's one quota).
    pub(super) async fn check(
        &self,
        user_key: Option<&str>,
        cells: u32,
    ) -> Result<Admitted, RateError> {
        let burst = self.quota.burst();
        if cells > burst {
            return Err(RateError::ExceedsBurst(ExceedsBurst { cells, burst }));
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
        if self.fleet.link.is_up() {
            let key = match user_key {
                Some(user_key) => format!("{}:{user_key}", self.key),
                None => self.key.clone(),
            };
            let unreported = self.local.take_unreported(user_key);
            if unreported > 0 && self.call(&key, unreported, "charge", 0).await.is_err() {
                self.local.put_back(user_key, unreported);
            }
            let more = if cells == 1 { self.reserve - 1 } else { 0 };
            match self.call(&key, cells, "take", more).await {
                Ok((0, earliest, now)) => {
                    let wait = Duration::from_nanos(earliest.saturating_sub(now));
                    return Err(RateError::Limited(self.limited_for(wait)));
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
                .local
                .check(user_key, cells)
                .map(|()| Admitted { admission: Admission::Local, decided_at: None }),
            Degradation::FailOpen => Ok(Admitted { admission: Admission::Open, decided_at: None }),
            Degradation::FailClosed => Err(RateError::Unavailable),
        }
    }

    /// A refusal `wait` long from now, on the limiter's clock. The wait came from Redis,
    /// measured from its decision, so the instant is, if anything, late: never too soon.
    fn limited_for(&self, wait: Duration) -> RateLimited {
        RateLimited { earliest: self.clock().now().saturating_add(wait), wait }
    }

    /// The wait a refusal carries: Redis's, or, for a limit that fails closed while Redis
    /// is unreachable, until the link may be back (the fleet's first reconnection delay).
    /// A request that can never conform (more cells than the burst) waits forever.
    fn limited(&self, error: RateError) -> RateLimited {
        match error {
            RateError::Limited(limited) => limited,
            RateError::Unavailable | RateError::TooManyKeys(_) => {
                self.limited_for(self.fleet.reconnect_delay)
            }
            RateError::ExceedsBurst(_) => {
                RateLimited { earliest: kompoz::Instant::MAX, wait: Duration::MAX }
            }
        }
    }

    /// A refusal as a guard's rejection, for the pipeline and the combinator (which ask
    /// for one cell of a direct limit: refused only for the rate, or failing closed).
    pub(super) fn rejection(&self, error: RateError) -> Rejection {
        Rejection::Rate(self.limited(error))
    }

    /// A refusal as kompoz's keyed error, for the tower layers.
    #[cfg(feature = "tower")]
    pub(super) fn keyed_error(&self, error: RateError) -> kompoz::rate::KeyedError {
        use kompoz::rate::KeyedError;
        match error {
            RateError::ExceedsBurst(exceeds) => KeyedError::ExceedsBurst(exceeds),
            RateError::TooManyKeys(full) => KeyedError::TooManyKeys(full),
            other => KeyedError::RateLimited(self.limited(other)),
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
        let interval = u128::from(self.interval);
        let mut call = script().key(key);
        call.arg("")
            .arg(self.interval.to_string())
            .arg((interval * u128::from(self.quota.burst())).to_string())
            .arg((interval * u128::from(cells)).to_string())
            .arg(mode)
            .arg(cells)
            .arg(more);
        let (admitted, instant, now): (u32, String, String) =
            self.fleet.link.eval(&call).await.map_err(drop)?;
        Ok((admitted, instant.parse().map_err(drop)?, now.parse().map_err(drop)?))
    }

    fn spend_reserved(&self, slot: &str, cells: u32) -> Option<u64> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let pool = pools.get_mut(slot)?;
        if pool.cells >= cells && self.clock().now().as_nanos() < pool.until {
            pool.cells -= cells;
            return Some(pool.decided_at);
        }
        pools.remove(slot);
        None
    }

    fn refill(&self, slot: &str, cells: u32, decided_at: u64) {
        let now = self.clock().now().as_nanos();
        let until = now.saturating_add(self.interval.saturating_mul(u64::from(self.reserve)));
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if pools.len() >= super::MAX_LOCAL_KEYS {
            pools.retain(|_, pool| pool.until > now);
        }
        pools.insert(slot.to_string(), Pool { cells, until, decided_at });
    }
}
