//! The local fallback while Redis is unreachable: kompoz's own limiters on the same quota,
//! and the cells they admitted, to charge to the fleet when Redis is back.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU32, Ordering};

use kompoz::Clock;
use kompoz::rate::{BatchError, KeyedError, KeyedRateLimiter, Quota, RateLimiter};

use super::{MAX_LOCAL_KEYS, RateError};

/// A cell count the fleet has not been told of yet, for one key.
#[derive(Clone, Copy, Debug)]
pub(super) struct Debt {
    cells: u32,
    /// After this instant (nanoseconds of the clock) the key's local state is idle: its
    /// debt would have drained, and it may be forgotten when room is needed.
    drained_by: u64,
}

/// kompoz's limiter for one quota (direct) or one per key (keyed).
///
/// The keyed one tracks a key by its 64-bit SipHash under a key drawn for this process
/// (std's `RandomState`), not by the string: a check allocates nothing, and keys cannot be
/// crafted to share a quota.
pub(super) enum Local<C> {
    Direct {
        limiter: RateLimiter<C>,
        unreported: AtomicU32,
    },
    Keyed {
        limiter: KeyedRateLimiter<u64, C>,
        hasher: RandomState,
        unreported: Mutex<HashMap<u64, Debt>>,
    },
}

impl<C: Clock> Local<C> {
    pub(super) fn direct(quota: Quota, clock: C) -> Self {
        Local::Direct { limiter: RateLimiter::new(quota, clock), unreported: AtomicU32::new(0) }
    }

    pub(super) fn keyed(quota: Quota, clock: C) -> Self {
        let limiter = KeyedRateLimiter::with_max_keys(quota, clock, MAX_LOCAL_KEYS)
            .expect("MAX_LOCAL_KEYS is not zero");
        Local::Keyed { limiter, hasher: RandomState::new(), unreported: Mutex::new(HashMap::new()) }
    }

    pub(super) fn clock(&self) -> &C {
        match self {
            Local::Direct { limiter, .. } => limiter.clock(),
            Local::Keyed { limiter, .. } => limiter.clock(),
        }
    }

    /// Decides `cells` (1 to burst) for `key` (`None` for a direct limiter) locally, and
    /// remembers them for the fleet if admitted.
    pub(super) fn check(&self, key: Option<&str>, cells: u32) -> Result<(), RateError> {
        match self {
            Local::Direct { limiter, unreported } => {
                limiter.check_n(cells).map_err(|error| match error {
                    BatchError::RateLimited(limited) => RateError::Limited(limited),
                    BatchError::ExceedsBurst(exceeds) => RateError::ExceedsBurst(exceeds),
                })?;
                let _ = unreported.fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                    Some(owed.saturating_add(cells))
                });
                Ok(())
            }
            Local::Keyed { limiter, hasher, unreported } => {
                let key = hasher.hash_one(key.unwrap_or_default());
                limiter.check_n(&key, cells).map_err(|error| match error {
                    KeyedError::RateLimited(limited) => RateError::Limited(limited),
                    KeyedError::ExceedsBurst(exceeds) => RateError::ExceedsBurst(exceeds),
                    KeyedError::TooManyKeys(full) => RateError::TooManyKeys(full),
                })?;
                let quota = limiter.quota();
                let tolerance = quota.interval().saturating_mul(quota.burst());
                let drained_by = limiter.clock().now().saturating_add(tolerance).as_nanos();
                let mut debts = unreported.lock().unwrap_or_else(PoisonError::into_inner);
                if debts.len() >= MAX_LOCAL_KEYS && !debts.contains_key(&key) {
                    let now = limiter.clock().now().as_nanos();
                    debts.retain(|_, debt| debt.drained_by > now);
                    if debts.len() >= MAX_LOCAL_KEYS {
                        // No room: this key's cells will not be charged to the fleet.
                        return Ok(());
                    }
                }
                let debt = debts.entry(key).or_insert(Debt { cells: 0, drained_by });
                debt.cells = debt.cells.saturating_add(cells);
                debt.drained_by = drained_by;
                Ok(())
            }
        }
    }

    /// Takes the cells admitted locally for `key` that the fleet has not been told of.
    pub(super) fn take_unreported(&self, key: Option<&str>) -> u32 {
        match self {
            Local::Direct { unreported, .. } => unreported.swap(0, Ordering::AcqRel),
            Local::Keyed { hasher, unreported, .. } => {
                let mut debts = unreported.lock().unwrap_or_else(PoisonError::into_inner);
                // Nothing owed, the common case once Redis is back: no hashing.
                if debts.is_empty() {
                    return 0;
                }
                debts.remove(&hasher.hash_one(key.unwrap_or_default())).map_or(0, |debt| debt.cells)
            }
        }
    }

    /// Puts back cells whose charge did not reach Redis.
    pub(super) fn put_back(&self, key: Option<&str>, cells: u32) {
        match self {
            Local::Direct { unreported, .. } => {
                let _ = unreported.fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                    Some(owed.saturating_add(cells))
                });
            }
            Local::Keyed { limiter, hasher, unreported } => {
                let quota = limiter.quota();
                let tolerance = quota.interval().saturating_mul(quota.burst());
                let drained_by = limiter.clock().now().saturating_add(tolerance).as_nanos();
                let key = hasher.hash_one(key.unwrap_or_default());
                let mut debts = unreported.lock().unwrap_or_else(PoisonError::into_inner);
                let debt = debts.entry(key).or_insert(Debt { cells: 0, drained_by });
                debt.cells = debt.cells.saturating_add(cells);
            }
        }
    }
}
