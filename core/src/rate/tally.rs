//! The limiters' totals (cells admitted, requests refused), kept off the GCRA state so that
//! counting adds no contended write to the hot path.
//!
//! With `std`, each thread claims one of a few cache-line-sized shards the first time it
//! counts (by a per-thread id) and from then on is that shard's only writer: a plain load
//! and store, no read-modify-write. Threads that find their shard claimed by another share
//! one more shard with atomic adds; without `std` (no thread identity) everyone does.
//! Readers sum the shards; the counters only grow, so each sum is a valid snapshot.
//!
//! The counting inlined into every check is the owner's: a thread-local read, one
//! comparison and a store. Claiming a shard, and counting on the shared one, are out of
//! line.

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

/// Which counter to bump.
#[derive(Clone, Copy)]
enum Counter {
    Admitted,
    Rejected,
}

impl Counter {
    #[inline(always)]
    fn of(self, shard: &Shard) -> &AtomicU64 {
        match self {
            Counter::Admitted => &shard.admitted,
            Counter::Rejected => &shard.rejected,
        }
    }
}

/// The counters of one limiter. The last shard is the shared one.
pub(crate) struct Tally {
    /// A fixed-size array (behind one allocation, to keep the limiter small): indexing it
    /// by `id % OWNED` needs no bounds check.
    shards: Box<[Shard; OWNED + 1]>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally { shards: Box::new(core::array::from_fn(|_| Shard::new())) }
    }

    /// Adds `by` to the calling thread's `counter`: inline when the thread owns its shard.
    #[inline(always)]
    fn bump(&self, counter: Counter, by: u64) {
        #[cfg(all(feature = "std", not(loom)))]
        {
            let id = known_thread_id();
            let shard = &self.shards[id % OWNED];
            // `NO_ID` is never an owner: a thread without an id yet goes out of line.
            if shard.owner.load(Ordering::Relaxed) == id {
                let counter = counter.of(shard);
                // Sole writer: a plain load and store cannot lose an update.
                counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
                return;
            }
            self.bump_unowned(counter, by);
        }
        // No thread identity: everyone shares the one shard.
        #[cfg(not(all(feature = "std", not(loom))))]
        counter.of(&self.shards[OWNED]).fetch_add(by, Ordering::Relaxed);
    }

    /// [`bump`](Tally::bump) for a thread that does not own its shard (yet): it claims
    /// the shard if it is free, and otherwise counts on the shared one.
    #[cfg(all(feature = "std", not(loom)))]
    #[cold]
    #[inline(never)]
    fn bump_unowned(&self, counter: Counter, by: u64) {
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
                let counter = counter.of(shard);
                counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
                return;
            }
        }
        counter.of(&self.shards[OWNED]).fetch_add(by, Ordering::Relaxed);
    }

    /// Counts `cells` admitted cells.
    #[inline(always)]
    pub(crate) fn admitted(&self, cells: u32) {
        self.bump(Counter::Admitted, u64::from(cells));
    }

    /// Counts one refused request.
    #[inline(always)]
    pub(crate) fn rejected(&self) {
        self.bump(Counter::Rejected, 1);
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

/// A thread without an id yet: never a shard's owner (ids count up from 1, and an owner
/// of 0 means unclaimed), so the inlined test `owner == id` fails for it without a
/// separate test.
#[cfg(all(feature = "std", not(loom)))]
const NO_ID: usize = usize::MAX;

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// The calling thread's id ([`NO_ID`]: none yet).
    static ID: core::cell::Cell<usize> = const { core::cell::Cell::new(NO_ID) };
}

/// The calling thread's id if it has one, else [`NO_ID`]: a plain thread-local read.
#[cfg(all(feature = "std", not(loom)))]
#[inline(always)]
fn known_thread_id() -> usize {
    ID.try_with(core::cell::Cell::get).unwrap_or(NO_ID)
}

/// A small, nonzero id for the calling thread, fixed for its lifetime (given on first
/// use); `None` while the thread is being torn down, or once ids have run out (after
/// `usize::MAX / 2` threads: ids are never reused, so two threads never share one; the
/// threads after that count on the shared shard).
#[cfg(all(feature = "std", not(loom)))]
fn thread_id() -> Option<usize> {
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    ID.try_with(|id| match id.get() {
        NO_ID => {
            let fresh =
                NEXT.fetch_update(Relaxed, Relaxed, |n| (n < usize::MAX / 2).then(|| n + 1));
            let fresh = fresh.ok()?;
            id.set(fresh);
            Some(fresh)
        }
        known => Some(known),
    })
    .ok()
    .flatten()
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
