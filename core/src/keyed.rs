//! [`ShardedMap`]: a concurrent map from keys to small states (a rate limiter's TAT, a
//! breaker's word), for primitives that keep one state per key.
//!
//! The map is split into a power-of-two number of shards, each a `hashbrown` table behind
//! its own short spin lock, so threads working on different keys rarely meet and there is
//! no global lock anywhere. A key is hashed once, outside any lock; the shard is picked
//! from bits of the hash that the table itself does not use for its control bytes.
//!
//! * **Warm keys cost one short critical section and no allocation**: find the entry,
//!   run the caller's closure on its value.
//! * **Memory stays bounded by the live keys.** The caller says which values are
//!   *evictable* (indistinguishable from a fresh one, such as a TAT in the past). When an
//!   insert finds its shard holding twice the entries that were live after its last
//!   sweep (and at least 16), the shard's evictable entries are swept out first. So a
//!   shard holds at most twice its peak of live entries (plus 16), in a table at most
//!   about twice that size, and sweeps cost O(1) amortised per insert. [`retain`](ShardedMap::retain) sweeps every shard on demand
//!   and shrinks emptied tables.
//! * **An optional maximum number of entries**: inserting into a full map first sweeps
//!   every shard (one lock at a time), and fails with [`Full`] if nothing was evictable.
//!
//! What runs under a shard's lock: the caller's closures (keep them short: they see one
//! value) and the key's `Eq`, `Clone` and `Drop` (and `Hash` when a table is resized).
//! They must not call back into the same map.

use alloc::boxed::Box;
use core::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::sync::{AtomicUsize, Ordering, SpinMutex};

/// Shards of a map made with the default count: enough that a few threads working on
/// different keys rarely share one.
pub(crate) const DEFAULT_SHARDS: usize = 32;

/// A map is full and nothing in it could be evicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// A shard holds at least this many entries before it sweeps.
const MIN_SWEEP: usize = 16;

/// One shard, on cache lines of its own.
#[repr(align(128))]
struct Shard<K, V> {
    table: SpinMutex<Table<K, V>>,
}

struct Table<K, V> {
    entries: HashTable<(K, V)>,
    /// Sweep before an insert once this many entries are held.
    sweep_at: usize,
}

impl<K, V> Table<K, V> {
    /// Removes the evictable entries; returns how many went.
    fn sweep(&mut self, evictable: &mut impl FnMut(&V) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|entry| !evictable(&entry.1));
        self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP);
        before - self.entries.len()
    }
}

/// A concurrent map from `K` to `V`, in shards; see the [module documentation](self).
pub(crate) struct ShardedMap<K, V, S> {
    shards: Box<[Shard<K, V>]>,
    /// log2 of the number of shards.
    bits: u32,
    hasher: S,
    /// Entries in all shards.
    len: AtomicUsize,
    /// The most entries allowed (`usize::MAX`: unbounded).
    max_len: usize,
}

impl<K: Hash + Eq, V, S: BuildHasher> ShardedMap<K, V, S> {
    /// An empty map with `shards` shards (rounded up to a power of two, at least one),
    /// at most `max_len` entries, hashing with `hasher`. Allocates only the shards.
    pub(crate) fn new(shards: usize, max_len: Option<usize>, hasher: S) -> Self {
        let count = shards.max(1).next_power_of_two();
        ShardedMap {
            shards: (0..count)
                .map(|_| Shard {
                    table: SpinMutex::new(Table { entries: HashTable::new(), sweep_at: MIN_SWEEP }),
                })
                .collect(),
            bits: count.trailing_zeros(),
            hasher,
            len: AtomicUsize::new(0),
            max_len: max_len.unwrap_or(usize::MAX),
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // The shard comes from the top bits of the hash multiplied by an odd constant (2^64
        // over the golden ratio), so that every bit of the hash moves it. Taking the hash's
        // own bits was not enough: with some of foldhash's per-process seeds, consecutive
        // integer keys (ids) landed in runs on one shard, whose sweeps then kept each run
        // (a breaker map test kept 1,785 to 4,600 entries for 600 live keys in 5 runs of
        // 300; none in 300 since).
        let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let index = if self.bits == 0 { 0 } else { (mixed >> (64 - self.bits)) as usize };
        &self.shards[index]
    }

    /// Runs `f` on the value of `key`, inserting `make()` first if the key is absent.
    ///
    /// Inserting may sweep out entries whose value is `evictable` (see the module
    /// documentation). Fails with [`Full`], running nothing, if the map holds its maximum
    /// of entries and none is evictable.
    #[inline]
    pub(crate) fn update<R>(
        &self,
        key: &K,
        f: impl FnOnce(&mut V) -> R,
        make: impl FnOnce() -> V,
        evictable: impl FnMut(&V) -> bool,
    ) -> Result<R, Full>
    where
        K: Clone,
    {
        let hash = self.hasher.hash_one(key);
        let found = self.shard(hash).table.with(|table| {
            match table.entries.find_mut(hash, |entry| entry.0 == *key) {
                Some(entry) => Ok(f(&mut entry.1)),
                None => Err(f),
            }
        });
        match found {
            Ok(result) => Ok(result),
            Err(f) => self.insert(hash, key, f, make, evictable),
        }
    }

    /// The slow half of [`update`](ShardedMap::update): the key was absent.
    #[cold]
    fn insert<R>(
        &self,
        hash: u64,
        key: &K,
        f: impl FnOnce(&mut V) -> R,
        make: impl FnOnce() -> V,
        mut evictable: impl FnMut(&V) -> bool,
    ) -> Result<R, Full>
    where
        K: Clone,
    {
        // Reserve a place in the count first, so that racing inserts cannot overshoot.
        if !self.reserve() {
            self.sweep_all(&mut evictable);
            if !self.reserve() {
                return Err(Full);
            }
        }
        let hasher = &self.hasher;
        let rehash = |entry: &(K, V)| hasher.hash_one(&entry.0);
        let mut reserved = true;
        let result = self.shard(hash).table.with(|table| {
            if let Some(entry) = table.entries.find_mut(hash, |entry| entry.0 == *key) {
                // Inserted by another thread meanwhile.
                reserved = false;
                return f(&mut entry.1);
            }
            if table.entries.len() >= table.sweep_at {
                let removed = table.sweep(&mut evictable);
                self.len.fetch_sub(removed, Ordering::Relaxed);
            }
            let mut entry = table.entries.insert_unique(hash, (key.clone(), make()), rehash);
            f(&mut entry.get_mut().1)
        });
        if !reserved {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(result)
    }

    /// Counts one more entry if there is room.
    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len < self.max_len).then_some(len + 1)
            })
            .is_ok()
    }

    /// Sweeps the evictable entries out of every shard, one lock at a time.
    fn sweep_all(&self, evictable: &mut impl FnMut(&V) -> bool) {
        for shard in self.shards.iter() {
            let removed = shard.table.with(|table| table.sweep(evictable));
            self.len.fetch_sub(removed, Ordering::Relaxed);
        }
    }

    /// Runs `f` on the value of `key`, if present.
    pub(crate) fn get<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        let hash = self.hasher.hash_one(key);
        self.shard(hash)
            .table
            .with(|table| table.entries.find(hash, |entry| entry.0 == *key).map(|e| f(&e.1)))
    }

    /// Keeps only the entries for which `keep` is true, shard by shard, shrinking tables
    /// that are left mostly empty. Returns how many entries were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        let hasher = &self.hasher;
        let mut removed = 0;
        for shard in self.shards.iter() {
            let gone = shard.table.with(|table| {
                let entries = &mut table.entries;
                let before = entries.len();
                entries.retain(|entry| keep(&entry.0, &mut entry.1));
                if entries.len() < entries.capacity() / 4 {
                    entries.shrink_to(entries.len() * 2, |entry| hasher.hash_one(&entry.0));
                }
                table.sweep_at = (entries.len() * 2).max(MIN_SWEEP);
                before - entries.len()
            });
            self.len.fetch_sub(gone, Ordering::Relaxed);
            removed += gone;
        }
        removed
    }
}

impl<K, V, S> ShardedMap<K, V, S> {
    /// Entries in the map (exact when no insert or removal is under way).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The most entries allowed, if bounded.
    pub(crate) fn max_len(&self) -> Option<usize> {
        (self.max_len != usize::MAX).then_some(self.max_len)
    }

    /// Entries the tables could hold without growing: the memory the map keeps.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|shard| shard.table.with(|table| table.entries.capacity())).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use hashbrown::DefaultHashBuilder;

    fn map(max_len: Option<usize>) -> ShardedMap<u64, u64, DefaultHashBuilder> {
        ShardedMap::new(4, max_len, DefaultHashBuilder::default())
    }

    #[test]
    fn get_or_insert_then_update_in_place() {
        let m = map(None);
        let never = |_: &u64| false;
        assert_eq!(m.update(&1, |v| *v += 1, || 10, never), Ok(()));
        assert_eq!(m.update(&1, |v| *v, || 0, never), Ok(11));
        assert_eq!(m.get(&1, |v| *v), Some(11));
        assert_eq!(m.get(&2, |v| *v), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.max_len(), None);
    }

    #[test]
    fn a_full_map_evicts_what_it_may_and_refuses_the_rest() {
        let m = map(Some(3));
        for key in 0..3 {
            m.update(&key, |_| (), || key, |_| false).unwrap();
        }
        // Nothing evictable: refused, and `f` never ran.
        assert_eq!(m.update(&9, |_| unreachable!(), || 9, |_| false), Err(Full));
        // Key 1 is evictable: it goes, 9 comes in.
        assert_eq!(m.update(&9, |v| *v, || 9, |v| *v == 1), Ok(9));
        assert_eq!((m.len(), m.get(&1, |_| ())), (3, None));
        // A present key is updated even when the map is full.
        assert_eq!(m.update(&0, |v| *v, || 0, |_| false), Ok(0));
    }

    #[test]
    fn growth_sweeps_evictable_entries_first_so_memory_follows_the_live_keys() {
        let m = ShardedMap::new(1, None, DefaultHashBuilder::default());
        // A million keys, each live only until the next thousand have come (under miri,
        // which is slow: five hundred keys, each live for the next fifty).
        let (keys, window) = if cfg!(miri) { (500, 50) } else { (1_000_000u64, 1_000) };
        for key in 0..keys {
            let live_from = key.saturating_sub(window);
            m.update(&key, |_| (), || key, |v| *v < live_from).unwrap();
        }
        // At most twice the live keys at the last sweep...
        let live = window as usize + 1;
        assert!(m.len() <= 2 * live, "{} entries", m.len());
        // ...in tables at most about four times as large (hashbrown's load factor and
        // doubling).
        assert!(m.capacity() <= 8 * live + 64, "capacity {}", m.capacity());
        m.retain(|_, v| *v >= keys - 10);
        assert_eq!(m.len(), 10);
    }

    #[test]
    fn retain_removes_and_shrinks() {
        let m = map(None);
        let keys = if cfg!(miri) { 300 } else { 10_000u64 };
        for key in 0..keys {
            m.update(&key, |_| (), || key, |_| false).unwrap();
        }
        let removed = m.retain(|key, _| key % 100 == 0);
        let kept = (keys / 100) as usize;
        assert_eq!((removed, m.len()), (keys as usize - kept, kept));
        assert!(m.capacity() < 10 * kept, "shrunk to {}", m.capacity());
    }
}
