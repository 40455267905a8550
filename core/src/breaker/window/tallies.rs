//! Per-writer tallies of a time window's fast successes: what lets two threads record
//! successes into one time window without writing a shared cache line.
//!
//! # How it works
//!
//! A time window keeps [`WRITERS`] *tallies*, each on a cache line of its own. A tally
//! belongs to one live thread at a time (its *writer*, named by its [thread
//! token](super::super::thread_token)), which claims it under the window's lock and keeps
//! it until it exits; after that the next thread that needs one may claim it again (its
//! `Acquire` check of the token sees the exited writer's last writes).
//!
//! A tally counts the fast successes of one generation in one bucket:
//!
//! * `generation` and `start` (the bucket's first nanosecond) are written by the writer,
//!   under the window's lock, so whoever holds the lock reads them consistently;
//! * `count` is written by the writer alone, with a plain load and store, and read by the
//!   window's sums under the lock (`Acquire`: every count it sees was made while the
//!   tally had the tag it reads, since the writer changes the tag only under the lock).
//!
//! The writer's fast path bumps `count` when its tally is for the call's generation and
//! for the bucket the window recorded in last (`latest`), and `now` falls in that bucket:
//! three loads, a subtraction and a store, no lock and no division. Anything else (a new
//! bucket, a new generation, a clock set back, a thread without a tally) takes the lock,
//! where the writer folds its old count into the ring of buckets and starts a new one.
//!
//! A success counted this way is ordered before whichever record moves `latest` past its
//! bucket, or ends its generation, and that record's sum reads it or not accordingly:
//! counts are indistinguishable and only grow, so a sum that reads the tallies one by one
//! sees a total the window really had at some instant during the sum.
//!
//! Threads beyond [`WRITERS`] at once, and builds without thread identity (no `std`),
//! record every outcome under the lock, as failures always are.

use alloc::boxed::Box;

use crate::sync::{AtomicU64, Ordering};

/// Threads that can each hold a tally of one time window at once.
pub(crate) const WRITERS: usize = 2;

/// One writer's fast successes in one bucket of one generation, on a cache line that only
/// its writer writes.
#[repr(C, align(64))]
pub(super) struct Tally {
    /// `u64::MAX` (no window's generation) until first tagged.
    generation: AtomicU64,
    /// The first nanosecond of the bucket counted in.
    start: AtomicU64,
    count: AtomicU64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // No window is ever in this generation.
            generation: AtomicU64::new(u64::MAX),
            start: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// The tag and count, for a holder of the window's lock.
    pub(super) fn read(&self) -> (u64, u64, u64) {
        (
            self.generation.load(Ordering::Relaxed),
            self.start.load(Ordering::Relaxed),
            self.count.load(Ordering::Acquire),
        )
    }

    /// The writer, under the window's lock: counts for `generation` in the bucket from
    /// `start`, starting at `count`.
    pub(super) fn retag(&self, generation: u64, start: u64, count: u64) {
        self.generation.store(generation, Ordering::Relaxed);
        self.start.store(start, Ordering::Relaxed);
        self.count.store(count, Ordering::Release);
    }

    /// The writer: one more in the current tag.
    #[inline]
    pub(super) fn bump(&self) {
        let count = self.count.load(Ordering::Relaxed);
        self.count.store(count.wrapping_add(1), Ordering::Release);
    }
}

/// The tallies of one time window.
pub(super) struct Tallies {
    /// Each tally's writer's token (0: unclaimed), apart from the tallies' lines: a thread
    /// looking for its own tally reads no line that another writer writes (the window keeps
    /// this on its read-mostly line; it changes only when a tally is claimed).
    writers: [AtomicU64; WRITERS],
    /// Boxed: a cache line each, which a count window does not need.
    tallies: Box<[Tally; WRITERS]>,
}

impl Tallies {
    pub(super) fn new() -> Tallies {
        Tallies {
            writers: core::array::from_fn(|_| AtomicU64::new(0)),
            tallies: Box::new(core::array::from_fn(|_| Tally::new())),
        }
    }

    /// The index of the calling thread's tally (`me`), if it holds one.
    #[inline]
    fn find(&self, me: u64) -> Option<usize> {
        self.writers.iter().position(|w| w.load(Ordering::Relaxed) == me)
    }

    /// Every tally, for sums under the lock.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Tally> {
        self.tallies.iter()
    }

    /// The fast path: one more fast success of `generation` at `now`, if the calling
    /// thread holds a tally for that generation and the bucket from `latest` (the bucket
    /// the window recorded in last), and `now` is in that bucket of `width` nanoseconds.
    /// `false`: take the lock instead.
    #[inline]
    pub(super) fn bump(&self, generation: u64, now: u64, latest: &AtomicU64, width: u64) -> bool {
        self.ready(generation, latest, width).is_some_and(|ready| ready.count(now))
    }

    /// The first half of the fast path, before the clock is read (so that its loads overlap
    /// the reading): the calling thread's tally, if it is tagged with `generation` and the
    /// bucket from `latest`.
    #[inline]
    pub(super) fn ready(
        &self,
        generation: u64,
        latest: &AtomicU64,
        width: u64,
    ) -> Option<Ready<'_>> {
        let me = identity::peek();
        let tally = &self.tallies[self.find(me)?];
        let start = tally.start.load(Ordering::Relaxed);
        (tally.generation.load(Ordering::Relaxed) == generation
            && latest.load(Ordering::Relaxed) == start)
            .then_some(Ready { tally, start, width })
    }

    /// Under the window's lock: the calling thread's tally, claiming a free one (never
    /// claimed, or its writer exited) if it holds none; `None` if all are taken or the
    /// thread has no identity.
    pub(super) fn mine(&self) -> Option<&Tally> {
        let me = identity::token()?;
        if let Some(index) = self.find(me) {
            return Some(&self.tallies[index]);
        }
        let index = self.writers.iter().position(|w| {
            // Acquire (here, or in `is_live`): an exited writer's last writes are visible.
            let writer = w.load(Ordering::Acquire);
            identity::claimable(writer)
                && w.compare_exchange(writer, me, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        })?;
        Some(&self.tallies[index])
    }
}

/// A tally ready to count a fast success in its bucket (see [`Tallies::ready`]).
pub(crate) struct Ready<'a> {
    tally: &'a Tally,
    start: u64,
    width: u64,
}

impl Ready<'_> {
    /// The second half of the fast path: counts the success if `now` falls in the tally's
    /// bucket (a subtraction, no division); `false`: take the lock instead.
    #[inline]
    pub(crate) fn count(self, now: u64) -> bool {
        if now.wrapping_sub(self.start) >= self.width {
            return false;
        }
        self.tally.bump();
        true
    }
}

/// Who the calling thread is, as a tally's writer.
#[cfg(all(feature = "std", not(loom)))]
mod identity {
    use super::super::super::thread_token;

    /// Equal to a claimed tally's writer only on that writer's thread (never 0).
    #[inline(always)]
    pub(super) fn peek() -> u64 {
        thread_token::peek()
    }

    pub(super) fn token() -> Option<u64> {
        thread_token::current()
    }

    /// Whether a tally of `writer` may be claimed: never claimed, or its thread exited.
    pub(super) fn claimable(writer: u64) -> bool {
        writer == 0 || !thread_token::is_live(writer)
    }
}

/// Under loom: a token per model thread (loom's threads share the OS thread's locals), and
/// tallies are never handed on.
#[cfg(loom)]
mod identity {
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(1);

    loom::thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn peek() -> u64 {
        TOKEN.with(|t| *t)
    }

    pub(super) fn token() -> Option<u64> {
        Some(peek())
    }

    pub(super) fn claimable(writer: u64) -> bool {
        writer == 0
    }
}

/// Without `std`: no thread identity, so no tallies are claimed.
#[cfg(not(any(loom, feature = "std")))]
mod identity {
    /// Never a writer (writers are never claimed, so every tally's is 0).
    pub(super) fn peek() -> u64 {
        u64::MAX
    }

    pub(super) fn token() -> Option<u64> {
        None
    }

    pub(super) fn claimable(_: u64) -> bool {
        false
    }
}
