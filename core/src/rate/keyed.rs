//! [`KeyedRateLimiter`]: one GCRA state per key, in a sharded map.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use core::cell::Cell;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use super::machine::{Decision, Gcra};
use super::tally::Tally;
use super::{ExceedsBurst, KeyedError, Name, Quota, QuotaError, RateLimited, TooManyKeys};
use crate::keyed::{DEFAULT_SHARDS, ShardedMap};
use crate::sync::{AtomicU64, Ordering};
use crate::time::{Clock, Instant};

/// The hasher a [`KeyedRateLimiter`] uses unless given another: `hashbrown`'s default
/// (foldhash, seeded per process; fast, and minimally resistant to crafted keys). Give
/// [`KeyedRateLimiter::with_hasher`] `std`'s `RandomState` for SipHash.
pub type DefaultHasher = hashbrown::DefaultHashBuilder;

/// A rate limiter with one quota per key: each client address, API key or tenant gets
/// its own GCRA state, so a busy key cannot use up a quiet one's cells.
///
/// * **No global lock.** Keys live in a sharded map: a check locks only its key's shard,
///   for a lookup and a few integer operations. A warm key allocates nothing.
/// * **Bounded memory.** A key whose TAT is in the past is indistinguishable from a key
///   never seen, so it is forgotten: automatically before a shard would grow, or all at
///   once with [`retain_recent`](KeyedRateLimiter::retain_recent). Memory follows the keys
///   active within the last burst period, not every key ever seen.
/// * **An optional maximum of keys** ([`with_max_keys`](KeyedRateLimiter::with_max_keys)):
///   a new key that finds the limiter full of active keys is refused with
///   [`KeyedError::TooManyKeys`], rather than growing without bound.
/// * The same decisions as [`RateLimiter`](super::RateLimiter)'s `check`, per key (see
///   the [module documentation](super)). Keys have no waiting line.
///
/// ```
/// use kompoz::rate::{KeyedError, KeyedRateLimiter, Quota};
/// use kompoz::ManualClock;
///
/// let clock = ManualClock::new();
/// let per_client = KeyedRateLimiter::new(Quota::per_minute(2)?, clock.clone());
/// per_client.check(&"10.0.0.1")?;
/// per_client.check(&"10.0.0.1")?;
/// assert!(matches!(per_client.check(&"10.0.0.1"), Err(KeyedError::RateLimited(_))));
/// per_client.check(&"10.0.0.2")?; // another client is not affected
/// clock.advance(std::time::Duration::from_secs(60));
/// assert_eq!(per_client.retain_recent(), 2); // both idle again: forgotten
/// assert!(per_client.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedRateLimiter<K, C, S = DefaultHasher> {
    map: ShardedMap<K, u64, S>,
    gcra: Gcra,
    clock: C,
    /// The clock's `coarse_lag` in nanoseconds, read once when the limiter is built.
    lag: u64,
    tally: Tally,
    /// After a full map found nothing to evict: the earliest TAT it holds (nanoseconds).
    /// Until then a new key is refused at once, without sweeping again.
    full_until: AtomicU64,
    /// The name its refusals and `Debug` carry.
    name: Name,
}

/// A snapshot of a [`KeyedRateLimiter`]'s counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyedStats {
    /// Cells admitted so far, over all keys.
    pub admitted: u64,
    /// Requests refused so far, over all keys.
    pub rejected: u64,
    /// Keys tracked now (idle ones not yet forgotten included).
    pub keys: usize,
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedRateLimiter<K, C> {
    /// A keyed limiter giving each key `quota` on `clock`, with no maximum of keys.
    pub fn new(quota: Quota, clock: C) -> Self {
        KeyedRateLimiter::build(quota, clock, None, DefaultHasher::default())
    }

    /// A keyed limiter that tracks at most `max_keys` keys; fails if `max_keys` is zero.
    ///
    /// ```
    /// use kompoz::rate::{KeyedError, KeyedRateLimiter, Quota, TooManyKeys};
    /// use kompoz::ManualClock;
    ///
    /// let limiter = KeyedRateLimiter::with_max_keys(Quota::per_hour(1)?, ManualClock::new(), 2)?;
    /// limiter.check(&1)?;
    /// limiter.check(&2)?;
    /// assert_eq!(limiter.check(&3), Err(KeyedError::TooManyKeys(TooManyKeys { max_keys: 2 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_keys(quota: Quota, clock: C, max_keys: usize) -> Result<Self, QuotaError> {
        KeyedRateLimiter::with_hasher(quota, clock, Some(max_keys), DefaultHasher::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock, S: BuildHasher> KeyedRateLimiter<K, C, S> {
    /// A keyed limiter hashing keys with `hasher`, with an optional maximum of keys
    /// (zero is an error).
    pub fn with_hasher(
        quota: Quota,
        clock: C,
        max_keys: Option<usize>,
        hasher: S,
    ) -> Result<Self, QuotaError> {
        if max_keys == Some(0) {
            return Err(QuotaError::ZeroMaxKeys);
        }
        Ok(KeyedRateLimiter::build(quota, clock, max_keys, hasher))
    }

    fn build(quota: Quota, clock: C, max_keys: Option<usize>, hasher: S) -> Self {
        KeyedRateLimiter {
            map: ShardedMap::new(DEFAULT_SHARDS, max_keys, hasher),
            gcra: Gcra::new(quota),
            lag: crate::time::duration_to_nanos(clock.coarse_lag()),
            clock,
            tally: Tally::new(),
            full_until: AtomicU64::new(0),
            name: None,
        }
    }

    /// Names the limiter: its refusals, reported to the `tracing` and `metrics`
    /// integrations, carry the name (one name for the whole limiter, not one per key),
    /// and so does its `Debug`. Costs 8 bytes and one allocation, here; nothing per check.
    ///
    /// ```
    /// use kompoz::rate::{KeyedRateLimiter, Quota};
    /// use kompoz::ManualClock;
    ///
    /// let per_client = KeyedRateLimiter::<&str, _>::new(Quota::per_second(5)?, ManualClock::new())
    ///     .with_name("per_client");
    /// assert_eq!(per_client.name(), Some("per_client"));
    /// assert!(format!("{per_client:?}").contains("per_client"));
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(Box::new(name.into()));
        self
    }

    /// The limiter's name, if it was given one.
    ///
    /// ```
    /// use kompoz::rate::{KeyedRateLimiter, Quota};
    /// use kompoz::ManualClock;
    ///
    /// let per_client = KeyedRateLimiter::<u32, _>::new(Quota::per_second(5)?, ManualClock::new());
    /// assert_eq!(per_client.name(), None);
    /// # Ok::<(), kompoz::rate::QuotaError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().map(|name| &**name)
    }

    /// Admits one cell for `key` now, or says why not. Never waits.
    #[inline]
    pub fn check(&self, key: &K) -> Result<(), KeyedError> {
        self.check_n(key, 1)
    }

    /// Admits `cells` cells for `key` now, all or none. A batch larger than the burst is
    /// [`KeyedError::ExceedsBurst`]; zero cells are admitted without touching the key.
    #[inline]
    pub fn check_n(&self, key: &K, cells: u32) -> Result<(), KeyedError> {
        let result = self.decide(key, cells);
        match result {
            Ok(()) => self.tally.admitted(cells),
            Err(refused) => {
                self.tally.rejected();
                if let KeyedError::RateLimited(limited) = refused {
                    super::report_refusal(&self.name, limited);
                }
            }
        }
        result
    }

    #[inline]
    fn decide(&self, key: &K, cells: u32) -> Result<(), KeyedError> {
        if cells > self.gcra.burst {
            return Err(KeyedError::ExceedsBurst(ExceedsBurst { cells, burst: self.gcra.burst }));
        }
        if cells == 0 {
            return Ok(());
        }
        // Read before the shard's lock: a clock is user code.
        let coarse = self.clock.now_coarse();
        match self.decide_at(key, coarse, cells)? {
            Ok(()) => Ok(()),
            // Final beyond the coarse lag: the precise time cannot have reached it.
            Err(earliest) if earliest > coarse.as_nanos().saturating_add(self.lag) => {
                Err(RateLimited::at(earliest, coarse).into())
            }
            Err(_) => self.decide_precisely(key, cells),
        }
    }

    /// A refusal near its edge on the coarse reading: decided again on the precise clock.
    #[cold]
    fn decide_precisely(&self, key: &K, cells: u32) -> Result<(), KeyedError> {
        let now = self.clock.now();
        match self.decide_at(key, now, cells)? {
            Ok(()) => Ok(()),
            Err(earliest) => Err(RateLimited::at(earliest, now).into()),
        }
    }

    /// The GCRA decision for `key` at `now`: `Ok(Ok(()))` admitted, `Ok(Err(earliest))`
    /// refused, `Err` no room for a new key.
    #[inline]
    fn decide_at(&self, key: &K, now: Instant, cells: u32) -> Result<Result<(), u64>, KeyedError> {
        let now = now.as_nanos();
        let gcra = self.gcra;
        if now < self.full_until.load(Ordering::Relaxed) && self.map.get(key, |_| ()).is_none() {
            return Err(self.too_many());
        }
        // The earliest TAT seen among the entries a sweep had to keep.
        let earliest_kept = Cell::new(u64::MAX);
        let decided = self.map.update(
            key,
            |tat| match gcra.step(*tat, now, 0, cells) {
                Decision::Conform { tat: next } => {
                    *tat = next;
                    Ok(())
                }
                Decision::Wait { earliest } => Err(earliest),
            },
            || 0,
            |tat| {
                let idle = *tat <= now;
                if !idle {
                    earliest_kept.set(earliest_kept.get().min(*tat));
                }
                idle
            },
        );
        match decided {
            Ok(decided) => Ok(decided),
            Err(_full) => {
                self.full_until.fetch_max(earliest_kept.get(), Ordering::Relaxed);
                Err(self.too_many())
            }
        }
    }

    fn too_many(&self) -> KeyedError {
        KeyedError::TooManyKeys(TooManyKeys { max_keys: self.map.max_len().unwrap_or(usize::MAX) })
    }

    /// Forgets every key whose state is indistinguishable from a fresh one (its TAT is in
    /// the past, on the precise clock), and gives back the memory of emptied shards.
    /// Returns how many keys were forgotten.
    pub fn retain_recent(&self) -> usize {
        let now = self.clock.now().as_nanos();
        let removed = self.map.retain(|_, tat| *tat > now);
        self.full_until.store(0, Ordering::Relaxed);
        removed
    }

    /// Forgets every key: each starts afresh, with its full burst. The counters keep
    /// counting.
    pub fn reset(&self) {
        self.map.retain(|_, _| false);
        self.full_until.store(0, Ordering::Relaxed);
    }

    /// Keys tracked now, idle ones not yet forgotten included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys tracked at once, if bounded.
    pub fn max_keys(&self) -> Option<usize> {
        self.map.max_len()
    }

    /// How many keys the limiter's tables can hold without growing: the memory it keeps.
    pub fn key_capacity(&self) -> usize {
        self.map.capacity()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> KeyedStats {
        let (admitted, rejected) = self.tally.totals();
        KeyedStats { admitted, rejected, keys: self.map.len() }
    }

    /// The quota each key gets.
    pub fn quota(&self) -> Quota {
        self.gcra.quota()
    }

    /// The clock the limiter decides on.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<K, C: fmt::Debug, S> fmt::Debug for KeyedRateLimiter<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("KeyedRateLimiter");
        if let Some(name) = &self.name {
            out.field("name", name);
        }
        out.field("quota", &self.gcra.quota())
            .field("clock", &self.clock)
            .field("keys", &self.map.len())
            .finish_non_exhaustive()
    }
}
