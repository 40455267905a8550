//! The limiters' totals (cells admitted, requests refused), kept off the GCRA state so that
//! counting adds no contended write to the hot path.
//!
//! With `std`, each thread claims one of a few cache-line-sized shards the first time it
//! counts (by a per-thread id) and from then on is that shard's only writer: a plain load
//! and store, no read-modify-write. Threads that find their shard claimed by another share
//! one more shard with atomic adds; without `std` (no thread identity) everyone does.
//! Readers sum the shards; the counters only grow, so each sum is a valid snapshot.

use alloc::boxed::Box;

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Shards owned by one thread each (with `std`), before the shared one.
#[cfg(all(feature = "std", not(loom)))]
const OWNED: usize = 16;
#[cfg(not(all(feature = "std", not(loom))))]
const OWNED: usize = 0;

#[repr(align(128))]
struct Shard {
    /// The thread that writes this shard alone (0: unclaimed; unused on the shared shard,
    /// and without `std`).
    #[cfg_attr(not(all(feature = "std", not(loom))), allow(dead_code))]
    owner: AtomicUsize,
    admitted: AtomicU64,
    rejected: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            owner: AtomicUsize::new(0),
            admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }
}

/// The counters of one limiter. The last shard is the shared one.
pub(crate) struct Tally {
    shards: Box<[Shard]>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally { shards: (0..=OWNED).map(|_| Shard::new()).collect() }
    }

    /// The calling thread's shard, and whether it is that shard's only writer.
    #[inline]
    fn writer(&self) -> (&Shard, bool) {
        #[cfg(all(feature = "std", not(loom)))]
        if let Some(id) = thread_id() {
            let shard = &self.shards[id % OWNED];
            let owner = shard.owner.load(Ordering::Relaxed);
            if owner == id
                || (owner == 0
                    && shard
                        .owner
                        .compare_exchange(0, id, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok())
            {
                return (shard, true);
            }
        }
        (&self.shards[OWNED], false)
    }

    #[inline]
    fn bump(&self, pick: impl Fn(&Shard) -> &AtomicU64, by: u64) {
        let (shard, exclusive) = self.writer();
        let counter = pick(shard);
        if exclusive {
            // Sole writer: a plain load and store cannot lose an update.
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
        } else {
            counter.fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Counts `cells` admitted cells.
    #[inline]
    pub(crate) fn admitted(&self, cells: u32) {
        self.bump(|shard| &shard.admitted, u64::from(cells));
    }

    /// Counts one refused request.
    #[inline]
    pub(crate) fn rejected(&self) {
        self.bump(|shard| &shard.rejected, 1);
    }

    /// (admitted cells, refused requests) so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(admitted, rejected), shard| {
            (
                admitted.wrapping_add(shard.admitted.load(Ordering::Relaxed)),
                rejected.wrapping_add(shard.rejected.load(Ordering::Relaxed)),
            )
        })
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
        let tally = Arc::new(Tally::new());
        let threads: alloc::vec::Vec<_> = (0..OWNED + 4)
            .map(|_| {
                let tally = tally.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        tally.admitted(2);
                        tally.rejected();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let threads = (OWNED + 4) as u64;
        assert_eq!(tally.totals(), (threads * 2_000, threads * 1_000));
    }
}
