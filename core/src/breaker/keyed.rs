//! [`BreakerMap`]: a circuit breaker per key (host, endpoint, tenant), made on first use
//! from one template, evicted once closed and idle.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::hash::Hash;
use core::time::Duration;

use hashbrown::DefaultHashBuilder;

use super::builder::Config;
use super::circuit::nanos;
use super::extras::{Extras, OnStateChange};
use super::{BreakerBuilder, BreakerError, BreakerStats, CircuitBreaker, CircuitState};
use crate::events::Listener;
use crate::keyed::{DEFAULT_SHARDS, ShardedMap};
use crate::time::{Clock, Instant};

/// The callback of [`BreakerMapBuilder::on_state_change`]: the key, then what a breaker's
/// own callback gets.
type KeyedListener<K> = dyn Fn(&K, CircuitState, CircuitState, &BreakerStats) + Send + Sync;

/// The function of [`BreakerMapBuilder::name_with`]: a breaker's name from its key.
type KeyName<K> = dyn Fn(&K) -> Cow<'static, str> + Send + Sync;

/// The default of [`BreakerMapBuilder::idle_after`]: ten minutes.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(600);

struct Entry<C> {
    breaker: Arc<CircuitBreaker<C>>,
    /// When the breaker was made (nanoseconds on the map's clock).
    created: u64,
}

impl<C: Clock> Entry<C> {
    /// Whether the map may drop this breaker at `now`: nobody holds it, it is closed, and
    /// nothing was recorded on it for `idle_after` (since it was made, if ever).
    fn evictable(&self, now: u64, idle_after: u64) -> bool {
        if Arc::strong_count(&self.breaker) != 1 {
            return false;
        }
        // Under the shard's lock: nothing here may read the clock (user code).
        let (state, last_success, last_failure) = self.breaker.state_and_last_activity();
        if state != CircuitState::Closed {
            return false;
        }
        let stamps = [last_success, last_failure];
        let last = stamps.into_iter().flatten().map(Instant::as_nanos).fold(self.created, u64::max);
        now.saturating_sub(last) >= idle_after
    }
}

/// A circuit breaker per key: services that call many hosts (or endpoints, or tenants) keep
/// one breaker for each, so that one failing host does not open the circuit of the others.
///
/// * **Made on first use**: [`get`](BreakerMap::get) returns the key's breaker, making it
///   from the template configuration the first time. The template is validated once, when
///   the map is built.
/// * **Cheap to hand out**: a breaker is shared as an `Arc`; `get` on a known key hashes the
///   key once (outside any lock), takes a short per-shard spin lock (the map is split in
///   shards, so threads working on different keys rarely meet; there is no global lock)
///   and clones the `Arc`. Hold the `Arc` for as long as a call runs; calls through it cost
///   what they cost on any breaker.
/// * **Memory follows the active keys**: a breaker that nobody holds, that is closed, and on
///   which nothing was recorded for [`idle_after`](BreakerMapBuilder::idle_after) is
///   *idle*. When a new key's breaker is made and its shard has grown to twice the entries
///   it kept at its last sweep, the shard's idle breakers are dropped first (so a shard
///   holds at most twice its peak of active keys, plus 16);
///   [`evict_idle`](BreakerMap::evict_idle) sweeps every shard at once. A key seen again
///   after its breaker was dropped gets a fresh (closed) one: only the history of a closed,
///   idle breaker is lost. (What counts as recorded: `last_success_time`, sampled, and
///   `last_failure_time`; see [`BreakerStats`].)
/// * **Transitions come with their key**:
///   [`on_state_change`](BreakerMapBuilder::on_state_change) is called with the key, after
///   each transition of any of the map's breakers, with a breaker's usual guarantees.
/// * **Named after their key, if you say how**: with
///   [`name_with`](BreakerMapBuilder::name_with) each breaker is named when it is made
///   (one call of your function, and whatever it allocates, per breaker made; nothing per
///   event), so its events and metrics carry the key; otherwise each breaker has the
///   template's name, if it has one. The template's events listener hears every breaker
///   of the map.
/// * `no_std` + `alloc`, like the rest; the keys need `Hash`, `Eq` and `Clone` (a key is
///   cloned into its entry and into its breaker's callback).
///
/// What runs under a shard's lock: the key's `Hash` (when a table grows), `Eq`, `Clone`
/// and `Drop`; never a breaker's callback or the clock.
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::{BreakerBuilder, BreakerMap, CircuitState};
///
/// let per_host = BreakerMap::builder(BreakerBuilder::new().failure_threshold(2))
///     .idle_after(Duration::from_secs(300))
///     .on_state_change(|host: &String, old, new, _| println!("{host}: {old} -> {new}"))
///     .build()?;
///
/// let flaky = per_host.get(&"flaky.example".to_string());
/// flaky.try_acquire()?.failure();
/// flaky.try_acquire()?.failure();
/// assert_eq!(flaky.state(), CircuitState::Open);
/// // Other hosts are not affected.
/// assert!(per_host.get(&"healthy.example".to_string()).try_acquire().is_ok());
/// assert_eq!(per_host.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BreakerMap<K, C> {
    map: ShardedMap<K, Entry<C>, DefaultHashBuilder>,
    config: Config,
    clock: C,
    idle_after: u64,
    listener: Option<Arc<KeyedListener<K>>>,
    /// The template's name, for breakers that `name_with` does not name.
    name: Option<Cow<'static, str>>,
    name_with: Option<Arc<KeyName<K>>>,
    /// The template's events listener, shared by every breaker.
    events: Option<Arc<dyn Listener>>,
}

impl<K, C> BreakerMap<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock + Clone,
{
    /// The breaker of `key`, made from the template if the key has none yet.
    ///
    /// ```
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMap};
    /// let per_tenant = BreakerMap::builder(BreakerBuilder::new()).build()?;
    /// let breaker = per_tenant.get(&42_u64);
    /// assert!(std::sync::Arc::ptr_eq(&breaker, &per_tenant.get(&42)), "one breaker per key");
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn get(&self, key: &K) -> Arc<CircuitBreaker<C>> {
        if let Some(breaker) = self.map.get(key, |entry| entry.breaker.clone()) {
            return breaker;
        }
        self.make(key)
    }

    /// The slow half of [`get`](BreakerMap::get): the key had no breaker a moment ago.
    #[cold]
    fn make(&self, key: &K) -> Arc<CircuitBreaker<C>> {
        // Read outside the shard's lock: the clock is the caller's code.
        let now = self.clock.now_coarse().as_nanos();
        let idle_after = self.idle_after;
        // Made outside the lock too (it allocates); dropped unused if another thread made
        // the key's breaker meanwhile.
        let mut fresh = Some(self.breaker_for(key, now));
        let found = self.map.update(
            key,
            |entry| entry.breaker.clone(),
            || fresh.take().expect("made once"),
            |entry| entry.evictable(now, idle_after),
        );
        // The map is unbounded: `update` cannot fail.
        found.unwrap_or_else(|_| unreachable!("an unbounded map is never full"))
    }

    fn breaker_for(&self, key: &K, now: u64) -> Entry<C> {
        let on_state_change = self.listener.clone().map(|keyed| {
            let key = key.clone();
            Box::new(move |old: CircuitState, new: CircuitState, stats: &BreakerStats| {
                keyed(&key, old, new, stats)
            }) as OnStateChange
        });
        let name = match &self.name_with {
            Some(name_with) => Some(name_with(key)),
            None => self.name.clone(),
        };
        let listener = self.events.clone().map(|events| Box::new(events) as Box<dyn Listener>);
        let extras = Extras { name, listener, on_state_change };
        let breaker = CircuitBreaker::from_config(self.config, self.clock.clone(), extras);
        Entry { breaker: Arc::new(breaker), created: now }
    }

    /// Drops every idle breaker now (see the type's docs); returns how many went.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::ManualClock;
    /// use kompoz::breaker::{BreakerBuilder, BreakerMap};
    ///
    /// let clock = ManualClock::new();
    /// let per_host = BreakerMap::builder(BreakerBuilder::new())
    ///     .idle_after(Duration::from_secs(60))
    ///     .build_with(clock.clone())?;
    /// per_host.get(&"a").try_acquire()?.success();
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!((per_host.evict_idle(), per_host.len()), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evict_idle(&self) -> usize {
        let now = self.clock.now_coarse().as_nanos();
        self.map.retain(|_, entry| !entry.evictable(now, self.idle_after))
    }

    /// How many keys have a breaker (exact when no breaker is being made or dropped).
    ///
    /// ```
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMap};
    /// let per_host = BreakerMap::builder(BreakerBuilder::new()).build()?;
    /// assert!(per_host.is_empty());
    /// per_host.get(&"a");
    /// assert_eq!(per_host.len(), 1);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key has a breaker.
    ///
    /// ```
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMap};
    /// let per_host = BreakerMap::<u64, _>::builder(BreakerBuilder::new()).build()?;
    /// assert!(per_host.is_empty());
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of `key`'s breaker, if it has one (without making one).
    ///
    /// ```
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMap, CircuitState};
    /// let per_host = BreakerMap::builder(BreakerBuilder::new()).build()?;
    /// assert_eq!(per_host.state(&"a"), None);
    /// per_host.get(&"a").force_open();
    /// assert_eq!(per_host.state(&"a"), Some(CircuitState::Open));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn state(&self, key: &K) -> Option<CircuitState> {
        self.map.get(key, |entry| entry.breaker.state())
    }
}

#[cfg(feature = "std")]
impl<K> BreakerMap<K, crate::StdClock> {
    /// A [`BreakerMapBuilder`] whose breakers are made from `template`.
    ///
    /// ```
    /// use kompoz::breaker::{BreakerBuilder, BreakerMap, FailureRate};
    ///
    /// let per_endpoint = BreakerMap::builder(
    ///     BreakerBuilder::new().trip_on(FailureRate::over_calls(20).minimum_calls(10)),
    /// )
    /// .build()?;
    /// # let _: &BreakerMap<&str, _> = &per_endpoint;
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn builder(template: BreakerBuilder) -> BreakerMapBuilder<K> {
        BreakerMapBuilder::new(template)
    }
}

impl<K, C: fmt::Debug> fmt::Debug for BreakerMap<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerMap")
            .field("keys", &self.map.len())
            .field("idle_after", &Duration::from_nanos(self.idle_after))
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Configures a [`BreakerMap`]: the template its breakers are made from, when an idle
/// breaker may be dropped, and a callback that gets each transition with its key.
///
/// ```
/// use std::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::breaker::{BreakerBuilder, BreakerError, BreakerMapBuilder};
///
/// let per_host = BreakerMapBuilder::<String>::new(BreakerBuilder::new().failure_threshold(3))
///     .idle_after(Duration::from_secs(120))
///     .build_with(ManualClock::new())?;
/// assert_eq!(
///     BreakerMapBuilder::<String>::new(BreakerBuilder::new().failure_threshold(0))
///         .build_with(ManualClock::new())
///         .unwrap_err(),
///     BreakerError::Zero { field: "failure_threshold" },
/// );
/// # Ok::<(), BreakerError>(())
/// ```
pub struct BreakerMapBuilder<K> {
    template: BreakerBuilder,
    idle_after: Duration,
    listener: Option<Arc<KeyedListener<K>>>,
    name_with: Option<Arc<KeyName<K>>>,
}

impl<K> BreakerMapBuilder<K> {
    /// Breakers made from `template` (validated when the map is built; its own
    /// `on_state_change` is refused: give the map's, which gets the key).
    ///
    /// ```
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMapBuilder};
    /// let builder = BreakerMapBuilder::<u32>::new(BreakerBuilder::new());
    /// ```
    pub fn new(template: BreakerBuilder) -> Self {
        BreakerMapBuilder {
            template,
            idle_after: DEFAULT_IDLE_AFTER,
            listener: None,
            name_with: None,
        }
    }

    /// How long a closed breaker that nobody holds must have recorded nothing before the
    /// map may drop it (default [`DEFAULT_IDLE_AFTER`], ten minutes; longer than zero).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMapBuilder};
    /// let builder = BreakerMapBuilder::<u32>::new(BreakerBuilder::new())
    ///     .idle_after(Duration::from_secs(30));
    /// ```
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.idle_after = idle;
        self
    }

    /// Calls `callback(key, old, new, stats)` after each transition of the key's breaker,
    /// with the guarantees of [`BreakerBuilder::on_state_change`].
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use kompoz::breaker::{BreakerBuilder, BreakerMap, CircuitState};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let per_host = BreakerMap::builder(BreakerBuilder::new().failure_threshold(1))
    ///     .on_state_change(move |host: &&str, _, new, _| log.lock().unwrap().push((*host, new)))
    ///     .build()?;
    /// per_host.get(&"db").try_acquire()?.failure();
    /// assert_eq!(*seen.lock().unwrap(), [("db", CircuitState::Open)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(&K, CircuitState, CircuitState, &BreakerStats) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(callback));
        self
    }

    /// Names each breaker after its key, with `name(key)`, called once when the key's
    /// breaker is made (outside the shard's lock): its events, and so its `tracing`
    /// events and metrics, carry the name (`kompoz_breaker_transitions_total{name=..}`).
    /// Without it, every breaker has the template's name, if any. (The keys need not be
    /// `Display`, so the map cannot name them itself.)
    ///
    /// ```
    /// use kompoz::breaker::{BreakerBuilder, BreakerMap};
    ///
    /// let per_host = BreakerMap::builder(BreakerBuilder::new())
    ///     .name_with(|host: &String| format!("upstream:{host}"))
    ///     .build()?;
    /// assert_eq!(per_host.get(&"db.internal".to_string()).name(), Some("upstream:db.internal"));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn name_with<F, N>(mut self, name: F) -> Self
    where
        F: Fn(&K) -> N + Send + Sync + 'static,
        N: Into<Cow<'static, str>>,
    {
        self.name_with = Some(Arc::new(move |key: &K| name(key).into()));
        self
    }

    /// Builds the map; its breakers measure time on clones of `clock`.
    ///
    /// ```
    /// # use kompoz::{ManualClock, breaker::{BreakerBuilder, BreakerMapBuilder}};
    /// let per_host = BreakerMapBuilder::<&str>::new(BreakerBuilder::new()).build_with(ManualClock::new())?;
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn build_with<C: Clock + Clone>(
        mut self,
        clock: C,
    ) -> Result<BreakerMap<K, C>, BreakerError>
    where
        K: Hash + Eq,
    {
        let extras = self.template.take_extras();
        if extras.on_state_change.is_some() {
            return Err(BreakerError::Conflict {
                field: "the template's on_state_change",
                with: "BreakerMap (give the map's on_state_change: it gets the key)",
            });
        }
        if self.idle_after.is_zero() {
            return Err(BreakerError::ZeroDuration { field: "idle_after" });
        }
        Ok(BreakerMap {
            map: ShardedMap::new(DEFAULT_SHARDS, None, DefaultHashBuilder::default()),
            config: self.template.validate()?,
            clock,
            idle_after: nanos(self.idle_after),
            listener: self.listener,
            name: extras.name,
            name_with: self.name_with,
            events: extras.listener.map(Arc::from),
        })
    }

    /// Builds the map on [`StdClock`](crate::StdClock).
    ///
    /// ```
    /// # use kompoz::breaker::{BreakerBuilder, BreakerMapBuilder};
    /// let per_host = BreakerMapBuilder::<String>::new(BreakerBuilder::new()).build()?;
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn build(self) -> Result<BreakerMap<K, crate::StdClock>, BreakerError>
    where
        K: Hash + Eq,
    {
        self.build_with(crate::StdClock)
    }
}

impl<K> fmt::Debug for BreakerMapBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerMapBuilder")
            .field("template", &self.template)
            .field("idle_after", &self.idle_after)
            .field("on_state_change", &self.listener.is_some())
            .field("name_with", &self.name_with.is_some())
            .finish()
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::time::Duration;
    use std::sync::Mutex;

    use super::*;
    use crate::ManualClock;

    const SECOND: Duration = Duration::from_secs(1);

    fn map(clock: &ManualClock) -> BreakerMap<u64, ManualClock> {
        BreakerMapBuilder::new(BreakerBuilder::new().failure_threshold(1))
            .idle_after(60 * SECOND)
            .build_with(clock.clone())
            .unwrap()
    }

    /// A manual clock that counts its readings.
    #[derive(Clone, Default)]
    struct CountedClock {
        inner: ManualClock,
        reads: Arc<core::sync::atomic::AtomicUsize>,
    }

    impl Clock for CountedClock {
        fn now(&self) -> Instant {
            self.reads.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            self.inner.now()
        }
    }

    #[test]
    fn a_sweep_reads_the_clock_once_outside_the_locks_whatever_the_policy() {
        // A clock is user code, and sweeps run under a shard's lock: the map reads the
        // clock once, before, even for time-window breakers (whose `stats()` reads it).
        let clock = CountedClock::default();
        let m = BreakerMapBuilder::new(
            BreakerBuilder::new().trip_on(crate::breaker::FailureRate::over_time(SECOND * 10)),
        )
        .idle_after(60 * SECOND)
        .build_with(clock.clone())
        .unwrap();
        for key in 0..3u64 {
            m.get(&key).try_acquire().unwrap().success();
        }
        clock.inner.advance(60 * SECOND);
        let before = clock.reads.load(core::sync::atomic::Ordering::Relaxed);
        assert_eq!(m.evict_idle(), 3);
        assert_eq!(clock.reads.load(core::sync::atomic::Ordering::Relaxed) - before, 1);
    }

    #[test]
    fn keys_are_isolated_and_each_gets_one_breaker() {
        let clock = ManualClock::new();
        let m = map(&clock);
        m.get(&1).try_acquire().unwrap().failure();
        assert_eq!(m.state(&1), Some(CircuitState::Open));
        assert!(m.get(&2).try_acquire().is_ok(), "key 2 has its own breaker");
        assert!(Arc::ptr_eq(&m.get(&1), &m.get(&1)));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn idle_breakers_are_evicted_busy_open_or_held_ones_are_not() {
        let clock = ManualClock::new();
        let m = map(&clock);
        m.get(&1); // made, never used
        m.get(&2).try_acquire().unwrap().failure(); // open
        let held = m.get(&3); // held by the caller
        clock.advance(30 * SECOND);
        m.get(&4).try_acquire().unwrap().success(); // used recently
        clock.advance(30 * SECOND);
        assert_eq!(m.evict_idle(), 1, "only the idle one");
        assert_eq!((m.state(&1), m.len()), (None, 3));
        drop(held);
        assert_eq!(m.evict_idle(), 1, "no longer held");
        clock.advance(30 * SECOND);
        assert_eq!(m.evict_idle(), 1, "key 4 is idle now");
        assert_eq!(m.state(&2), Some(CircuitState::Open), "an open breaker stays");
        // A key seen again gets a fresh breaker.
        assert!(m.get(&1).try_acquire().is_ok());
    }

    #[test]
    fn making_new_keys_drops_idle_ones_so_memory_follows_the_active_keys() {
        let clock = ManualClock::new();
        let m = map(&clock);
        // Fewer keys under miri (safe code here; 10,000 breakers take minutes there): 600
        // are still live at the end, after more than three lifetimes of keys.
        let keys = if cfg!(miri) { 2_000 } else { 10_000u64 };
        for key in 0..keys {
            m.get(&key).try_acquire().unwrap().success();
            clock.advance(SECOND / 10); // each key is active for 60 s, then idle
        }
        // 600 keys are active at the end; sweeps keep each shard within twice its active
        // keys (plus 16).
        assert!(m.len() <= 2 * 600 + 16 * DEFAULT_SHARDS, "{} keys kept", m.len());
        assert!(m.len() >= 600);
    }

    #[test]
    fn transitions_are_reported_with_their_key() {
        let clock = ManualClock::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let m = BreakerMapBuilder::new(
            BreakerBuilder::new().failure_threshold(1).recovery_timeout(SECOND),
        )
        .on_state_change(move |key: &&str, old, new, stats| {
            log.lock().unwrap().push((*key, old, new, stats.state))
        })
        .build_with(clock.clone())
        .unwrap();
        m.get(&"a").try_acquire().unwrap().failure();
        clock.advance(SECOND);
        m.get(&"a").try_acquire().unwrap().success();
        m.get(&"b").try_acquire().unwrap().failure();
        use CircuitState::{Closed, HalfOpen, Open};
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("a", Closed, Open, Open),
                ("a", Open, HalfOpen, HalfOpen),
                ("a", HalfOpen, Closed, Closed),
                ("b", Closed, Open, Open)
            ]
        );
    }

    #[test]
    fn the_template_is_validated_once_and_its_own_callback_refused() {
        let bad = BreakerMapBuilder::<u8>::new(BreakerBuilder::new().half_open_max_calls(0))
            .build_with(ManualClock::new());
        assert_eq!(bad.unwrap_err(), BreakerError::Zero { field: "half_open_max_calls" });
        let with_callback =
            BreakerMapBuilder::<u8>::new(BreakerBuilder::new().on_state_change(|_, _, _| ()))
                .build_with(ManualClock::new());
        assert!(matches!(with_callback.unwrap_err(), BreakerError::Conflict { .. }));
        let zero = BreakerMapBuilder::<u8>::new(BreakerBuilder::new())
            .idle_after(Duration::ZERO)
            .build_with(ManualClock::new());
        assert_eq!(zero.unwrap_err(), BreakerError::ZeroDuration { field: "idle_after" });
    }

    #[test]
    fn many_threads_get_one_breaker_per_key() {
        let m = Arc::new(map(&ManualClock::new()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    (0..200u64).map(|key| Arc::as_ptr(&m.get(&key)) as usize).collect::<Vec<_>>()
                })
            })
            .collect();
        let seen: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "every thread got the same breakers");
        assert_eq!(m.len(), 200);
    }
}
