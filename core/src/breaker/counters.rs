//! The breaker's call counters, kept off the shared state word so that the closed-state
//! hot path writes nothing shared.
//!
//! With `std`, each thread that uses a breaker claims one of a few cache-line-sized
//! shards the first time (by a per-thread id), and from then on is the only writer of
//! that shard: it bumps its counters with a plain load and store, no read-modify-write
//! and no contention. Threads that find their shard claimed by another thread (more
//! threads than shards) share one more shard with atomic adds. Without `std` there is
//! no thread identity and every count is an atomic add on the shared shard. Readers sum
//! the shards; every counter only grows, so a sum is a valid snapshot of each counter.

#[cfg(all(feature = "std", not(loom)))]
use alloc::boxed::Box;

use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::time::Instant;

/// Shards per breaker (with `std`).
#[cfg(all(feature = "std", not(loom)))]
const SHARDS: usize = 16;

/// One writer's counters, on a cache line of its own.
#[repr(align(128))]
struct Shard {
    /// The id of the thread that writes this shard alone (0: unclaimed). Unused on the
    /// shared shard, and without `std`.
    #[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
    owner: AtomicUsize,
    successes: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    abandoned: AtomicU64,
    /// The latest instants stamped, as nanoseconds; meaningful once the matching count is
    /// not zero (each stamp is stored before its count, which is published with Release).
    last_success: AtomicU64,
    last_failure: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            owner: AtomicUsize::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
        }
    }
}

/// A shard and whether the calling thread is its only writer.
struct Writer<'a> {
    shard: &'a Shard,
    exclusive: bool,
}

impl Writer<'_> {
    /// Counts one more, published with Release so that a reader who sees the count also
    /// sees the stamp stored before it.
    #[inline]
    fn bump(&self, counter: &AtomicU64) {
        if self.exclusive {
            // Sole writer: a plain load and store cannot lose an update.
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        } else {
            counter.fetch_add(1, Ordering::Release);
        }
    }

    #[inline]
    fn stamp(&self, cell: &AtomicU64, at: Instant) {
        let value = at.as_nanos();
        if self.exclusive {
            if cell.load(Ordering::Relaxed) < value {
                cell.store(value, Ordering::Relaxed);
            }
        } else {
            cell.fetch_max(value, Ordering::Relaxed);
        }
    }
}

/// Totals summed over the shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) rejected: u64,
    pub(crate) abandoned: u64,
    pub(crate) last_success: Option<Instant>,
    pub(crate) last_failure: Option<Instant>,
}

pub(crate) struct Counters {
    #[cfg(all(feature = "std", not(loom)))]
    shards: Box<[Shard; SHARDS]>,
    shared: Shard,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            #[cfg(all(feature = "std", not(loom)))]
            shards: Box::new(core::array::from_fn(|_| Shard::new())),
            shared: Shard::new(),
        }
    }

    #[inline]
    fn writer(&self) -> Writer<'_> {
        #[cfg(all(feature = "std", not(loom)))]
        if let Some(id) = thread_id() {
            let shard = &self.shards[id % SHARDS];
            let owner = shard.owner.load(Ordering::Relaxed);
            if owner == id
                || (owner == 0
                    && shard
                        .owner
                        .compare_exchange(0, id, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok())
            {
                return Writer { shard, exclusive: true };
            }
        }
        Writer { shard: &self.shared, exclusive: false }
    }

    #[inline]
    pub(crate) fn success(&self, at: Instant) {
        let w = self.writer();
        w.stamp(&w.shard.last_success, at);
        w.bump(&w.shard.successes);
    }

    pub(crate) fn failure(&self, at: Instant) {
        let w = self.writer();
        w.stamp(&w.shard.last_failure, at);
        w.bump(&w.shard.failures);
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        let w = self.writer();
        w.bump(&w.shard.rejected);
    }

    pub(crate) fn abandoned(&self) {
        let w = self.writer();
        w.bump(&w.shard.abandoned);
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        let (mut last_success, mut last_failure) = (None, None);
        let mut add = |shard: &Shard| {
            // Counts first (Acquire): a stamp is stored before the count that covers it.
            let successes = shard.successes.load(Ordering::Acquire);
            let failures = shard.failures.load(Ordering::Acquire);
            totals.successes += successes;
            totals.failures += failures;
            totals.rejected += shard.rejected.load(Ordering::Relaxed);
            totals.abandoned += shard.abandoned.load(Ordering::Relaxed);
            let latest = |seen: Option<u64>, count: u64, cell: &AtomicU64| match count {
                0 => seen,
                _ => Some(seen.unwrap_or(0).max(cell.load(Ordering::Relaxed))),
            };
            last_success = latest(last_success, successes, &shard.last_success);
            last_failure = latest(last_failure, failures, &shard.last_failure);
        };
        #[cfg(all(feature = "std", not(loom)))]
        self.shards.iter().for_each(&mut add);
        add(&self.shared);
        totals.last_success = last_success.map(Instant::from_nanos);
        totals.last_failure = last_failure.map(Instant::from_nanos);
        totals
    }
}

/// A small, nonzero id for the calling thread, fixed for its lifetime; `None` while the
/// thread is being torn down.
#[cfg(all(feature = "std", not(loom)))]
#[inline]
fn thread_id() -> Option<usize> {
    use core::cell::Cell;

    static NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);
    std::thread_local! {
        static ID: Cell<usize> = const { Cell::new(0) };
    }
    ID.try_with(|id| match id.get() {
        0 => {
            let fresh = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            id.set(fresh);
            fresh
        }
        known => known,
    })
    .ok()
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::*;
    use alloc::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let counters = Arc::new(Counters::new());
        // More threads than shards, so the shared shard is exercised too.
        let threads: alloc::vec::Vec<_> = (0..SHARDS + 4)
            .map(|i| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for n in 0..1_000u64 {
                        counters.success(Instant::from_nanos(i as u64 * 1_000 + n));
                        counters.rejected();
                        if n % 10 == 0 {
                            counters.failure(Instant::from_nanos(n));
                            counters.abandoned();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let totals = counters.totals();
        let threads = (SHARDS + 4) as u64;
        assert_eq!(totals.successes, threads * 1_000);
        assert_eq!(totals.rejected, threads * 1_000);
        assert_eq!((totals.failures, totals.abandoned), (threads * 100, threads * 100));
        assert_eq!(totals.last_success, Some(Instant::from_nanos((threads - 1) * 1_000 + 999)));
        assert_eq!(totals.last_failure, Some(Instant::from_nanos(990)));
    }

    #[test]
    fn never_is_none_and_both_ends_of_time_are_exact() {
        let counters = Counters::new();
        assert_eq!(counters.totals().last_success, None);
        counters.success(Instant::ZERO);
        assert_eq!(counters.totals().last_success, Some(Instant::ZERO));
        counters.failure(Instant::MAX);
        assert_eq!(counters.totals().last_failure, Some(Instant::MAX));
    }
}
