//! Thread tokens: a small identity per live thread, recycled when the thread exits, so that
//! a per-thread slot claimed by a thread that has gone can be claimed again.
//!
//! A token packs a slot index (`< SLOTS`) and the slot's *use count*: the slot is handed to
//! one live thread at a time, and each hand-over bumps the count, so a token names one
//! thread's tenure and is never reused. A thread takes the lowest free slot the first
//! time it asks, and gives it back from a thread-local destructor when it exits; after
//! that (while the thread's other thread-local destructors run) it has no token.
//! [`is_live`] tells whether a token's thread still holds its slot: the counters use it to
//! hand the breaker's owner-written counters from an exited thread to the next writer.
//!
//! Giving a slot back is a `Release` store after every write the thread made; a thread that
//! sees the slot free (or taken again) with an `Acquire` load sees all those writes. More
//! than [`SLOTS`] threads at once: the extra ones have no token and use the shared
//! counters.

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};

/// Slots, hence threads with a token at once.
pub(crate) const SLOTS: usize = 256;
const INDEX_BITS: u32 = 8;
const IN_USE: u64 = 1;

/// Per slot: `uses << 1 | in_use`.
static TABLE: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// The calling thread has not asked yet. (Real tokens are at least `1 << INDEX_BITS`,
/// and 0 means "no token" to those who store one, so neither value is ever a token.)
const UNASKED: u64 = 1;
/// The calling thread has no token (all slots taken, or it is exiting).
const NONE: u64 = 2;

std::thread_local! {
    static TOKEN: Cell<u64> = const { Cell::new(UNASKED) };
    static RELEASE: Release = const { Release };
}

/// Gives the thread's slot back when the thread exits.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let token = TOKEN.with(|t| t.replace(NONE));
        if token != UNASKED && token != NONE {
            let (index, uses) = split(token);
            TABLE[index].store(uses << 1, Ordering::Release);
        }
    }
}

fn split(token: u64) -> (usize, u64) {
    ((token & ((1 << INDEX_BITS) - 1)) as usize, token >> INDEX_BITS)
}

/// The calling thread's token as stored, without taking one: equal to a stored token (never
/// 0) only if it is that token. One thread-local read.
#[inline(always)]
pub(crate) fn peek() -> u64 {
    TOKEN.with(Cell::get)
}

/// The calling thread's token, or `None` (no slot free, or the thread is exiting). The
/// first call takes a slot; later calls are one thread-local read.
#[inline]
pub(crate) fn current() -> Option<u64> {
    match TOKEN.with(Cell::get) {
        UNASKED => claim(),
        NONE => None,
        token => Some(token),
    }
}

#[cold]
fn claim() -> Option<u64> {
    // Register the destructor first: if that fails (the thread is exiting), take nothing.
    if RELEASE.try_with(|_| ()).is_err() {
        TOKEN.with(|t| t.set(NONE));
        return None;
    }
    for (index, slot) in TABLE.iter().enumerate() {
        let seen = slot.load(Ordering::Relaxed);
        if seen & IN_USE != 0 {
            continue;
        }
        let uses = (seen >> 1) + 1;
        if slot
            .compare_exchange(seen, uses << 1 | IN_USE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            let token = uses << INDEX_BITS | index as u64;
            TOKEN.with(|t| t.set(token));
            return Some(token);
        }
    }
    TOKEN.with(|t| t.set(NONE));
    None
}

/// Whether the thread that was given `token` still holds it. `false` for a token of a
/// thread that has exited (its writes are then visible to the caller: `Acquire`).
#[inline]
pub(crate) fn is_live(token: u64) -> bool {
    let (index, uses) = split(token);
    TABLE[index].load(Ordering::Acquire) == (uses << 1 | IN_USE)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_live_until_its_thread_exits_and_its_slot_is_taken_again() {
        let (token, index) = std::thread::spawn(|| {
            let token = current().expect("a free slot");
            assert_eq!(current(), Some(token), "stable for the thread's life");
            assert!(is_live(token));
            (token, split(token).0)
        })
        .join()
        .unwrap();
        assert!(!is_live(token), "its thread has exited");
        // The slot is free again: some later thread takes it, with a new token.
        let retaken = (0..64)
            .map(|_| std::thread::spawn(|| current().unwrap()).join().unwrap())
            .find(|t| split(*t).0 == index);
        if let Some(again) = retaken {
            assert_ne!(again, token);
            assert!(!is_live(again));
        }
    }

    #[test]
    fn thousands_of_short_lived_threads_never_run_the_table_out() {
        for _ in 0..4 * SLOTS {
            std::thread::spawn(|| assert!(current().is_some())).join().unwrap();
        }
        assert!(current().is_some());
    }
}
