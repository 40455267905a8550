//! The FIFO list of tasks waiting for a permit: an intrusive doubly linked list whose
//! nodes live inside the acquire futures themselves, so waiting allocates nothing.
//!
//! # How it works
//!
//! Each [`Acquire`](super::Acquire) future embeds a [`Waiter`] node. When a task must
//! wait, the semaphore links the node at the tail of its [`WaitList`] (with a clone of
//! the task's waker) and the future keeps its `queued` flag set. Permits are handed out
//! from the head: [`settle_front`](WaitList::settle_front) unlinks the oldest node, moves
//! its waker out, and only then publishes the node's outcome. The owner of the node
//! finds that outcome on its next poll, without the lock.
//!
//! # The states of a node
//!
//! ```text
//!   new (not linked, WAITING) --push_back--> linked, WAITING
//!   linked, WAITING --settle_front--> not linked, GRANTED (a permit is the owner's)
//!   linked, WAITING --settle_front--> not linked, CLOSED  (the semaphore closed)
//!   linked, WAITING --unlink--------> not linked, WAITING (the owner gave up)
//! ```
//!
//! `GRANTED` and `CLOSED` are final: nobody but the owner touches the node again.
//!
//! # Who may touch what
//!
//! * The list itself (`head`, `tail`, `len`, `granted`) and every linked node's `links`
//!   (neighbours and waker) are touched only under the semaphore's lock; holding
//!   `&mut WaitList` is the proof (the list lives inside that lock).
//! * A node's `state` is written only under the lock, and only while the node is linked
//!   (the last write, `settle_front`'s Release store, also ends the list's access to it).
//!   Its owner reads it without the lock (Acquire): once it reads `GRANTED` or `CLOSED`,
//!   the node is unlinked for good and the owner may move on or free it.
//! * A node's memory belongs to its owner, a pinned future. **Invariant (linked nodes
//!   live):** a linked node stays alive and in place until it is unlinked. The owner
//!   upholds it: it is `!Unpin`, so the node cannot move while linked, and its `Drop`
//!   takes the lock and unlinks the node if it is still linked (pinning guarantees `Drop`
//!   runs before the memory is reused). The owner must therefore always be able to reach
//!   its semaphore while its node is linked: `AcquireOwned` keeps its `Arc` in place
//!   for as long as it may be queued.
//!
//! # User code
//!
//! Wakers are user code: cloning, waking or dropping one may panic, or re-enter the
//! semaphore (a waker that owns a permit releases it when dropped). The list never runs
//! any of them: [`push_back`](WaitList::push_back) takes a waker cloned before the lock,
//! and every method that removes a waker from a node ([`settle_front`](WaitList::settle_front),
//! [`unlink`](WaitList::unlink), [`replace_waker`](WaitList::replace_waker)) returns it, so
//! the caller drops or wakes it after the lock is released, when the list and the
//! semaphore's counts are whole again. [`will_wake`](WaitList::will_wake) compares wakers
//! without calling into them. A panic in user code therefore never leaves a node half
//! linked or a count half updated.

use core::cell::UnsafeCell;
use core::marker::PhantomPinned;
use core::ptr::NonNull;
use core::task::Waker;

use crate::sync::{AtomicUsize, Ordering};

/// Queued, waiting for a permit (also the state of a node that was never queued).
pub(crate) const WAITING: usize = 0;
/// A permit was handed to the waiter: its owner now holds it.
pub(crate) const GRANTED: usize = 1;
/// The semaphore was closed while the waiter was queued.
pub(crate) const CLOSED: usize = 2;

/// One waiting task's node, inside its acquire future (see the module's docs).
#[derive(Debug)]
pub(crate) struct Waiter {
    /// `WAITING`, `GRANTED` or `CLOSED`: written under the lock, read by the owner
    /// without it (Acquire, pairing with the Release of `settle_front`).
    state: AtomicUsize,
    /// Guarded by the semaphore's lock.
    links: UnsafeCell<Links>,
    /// When the owner queued the node (nanoseconds on `StdClock`; 0: not timed), for the
    /// `metrics` feature's wait-time histogram. Written and read by the owner only.
    #[cfg(feature = "metrics")]
    pub(crate) queued_at: crate::sync::AtomicU64,
    /// The list holds the node's address: it must not move while linked.
    _pinned: PhantomPinned,
}

#[derive(Debug)]
struct Links {
    prev: Option<NonNull<Waiter>>,
    next: Option<NonNull<Waiter>>,
    /// `Some` while linked: the waker of the owner's latest poll.
    waker: Option<Waker>,
}

// SAFETY: `links` is only accessed under the semaphore's lock (through `&mut WaitList`),
// and `state` is atomic, so sharing a `Waiter` between threads is sound; the raw pointers
// in `links` are never dereferenced outside that lock.
unsafe impl Sync for Waiter {}
// SAFETY: as above: the node's data moves with it only while it is not linked.
unsafe impl Send for Waiter {}

impl Waiter {
    /// A node that is not queued.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Waiter {
        Waiter {
            state: AtomicUsize::new(WAITING),
            links: UnsafeCell::new(Links { prev: None, next: None, waker: None }),
            #[cfg(feature = "metrics")]
            queued_at: crate::sync::AtomicU64::new(0),
            _pinned: PhantomPinned,
        }
    }

    /// A node that is not queued.
    #[cfg(loom)]
    pub(crate) fn new() -> Waiter {
        Waiter {
            state: AtomicUsize::new(WAITING),
            links: UnsafeCell::new(Links { prev: None, next: None, waker: None }),
            #[cfg(feature = "metrics")]
            queued_at: crate::sync::AtomicU64::new(0),
            _pinned: PhantomPinned,
        }
    }

    /// The node's state, as its owner sees it without the lock.
    pub(crate) fn state(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }
}

/// The queue itself, behind the semaphore's lock: `&mut WaitList` proves the lock is held.
#[derive(Debug)]
pub(crate) struct WaitList {
    head: Option<NonNull<Waiter>>,
    tail: Option<NonNull<Waiter>>,
    len: usize,
    /// Permits handed to waiters and taken by them (counted here, under the lock, rather
    /// than with an atomic add on the contended path).
    granted: u64,
}

// SAFETY: the list only holds addresses of linked nodes, which are `Sync` and stay alive
// and in place until unlinked under the same lock that guards the list.
unsafe impl Send for WaitList {}

impl WaitList {
    pub(crate) const fn new() -> WaitList {
        WaitList { head: None, tail: None, len: 0, granted: 0 }
    }

    /// Number of queued waiters.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Permits handed to waiters since creation, less those taken back.
    pub(crate) fn granted(&self) -> u64 {
        self.granted
    }

    /// A granted waiter was dropped before it took its permit: the hand-over does not
    /// count as an acquisition.
    pub(crate) fn take_back_grant(&mut self) {
        self.granted = self.granted.saturating_sub(1);
    }

    /// Appends `waiter`, waiting, with `waker`.
    ///
    /// # Safety
    ///
    /// `waiter` is not linked in any list, and stays alive and in place until it is
    /// unlinked: by [`settle_front`](WaitList::settle_front), or by its owner through
    /// [`unlink`](WaitList::unlink) (pinned futures do so in `Drop`).
    pub(crate) unsafe fn push_back(&mut self, waiter: &Waiter, waker: Waker) {
        let node = NonNull::from(waiter);
        waiter.state.store(WAITING, Ordering::Relaxed);
        // SAFETY: the lock is held (`&mut self`) and the node is not linked, so nobody
        // else reads or writes its links.
        unsafe { *waiter.links.get() = Links { prev: self.tail, next: None, waker: Some(waker) } };
        match self.tail {
            // SAFETY: `tail` is a linked node, alive and in place (push_back's contract),
            // and its links are ours while the lock is held.
            Some(tail) => unsafe { (*tail.as_ref().links.get()).next = Some(node) },
            None => self.head = Some(node),
        }
        self.tail = Some(node);
        self.len += 1;
    }

    /// Unlinks the oldest waiter, gives it `outcome` (`GRANTED` or `CLOSED`) and returns
    /// its waker (`None`: the list is empty), for the caller to wake once the lock is
    /// released. The node must not be touched afterwards: its owner may return and free
    /// it as soon as it sees the new state.
    pub(crate) fn settle_front(&mut self, outcome: usize) -> Option<Waker> {
        let node = self.head?;
        // SAFETY: `node` is linked (it is the head), so it is alive and in place, and its
        // links are ours while the lock is held.
        let waiter = unsafe { node.as_ref() };
        // SAFETY: as above.
        let waker = unsafe { self.detach(waiter) };
        if outcome == GRANTED {
            self.granted += 1;
        }
        // Last: from here on the owner may free the node.
        waiter.state.store(outcome, Ordering::Release);
        waker
    }

    /// Unlinks `waiter` (its owner gave up) and returns its waker, for the caller to drop
    /// once the lock is released.
    ///
    /// # Safety
    ///
    /// `waiter` is linked in this list.
    #[must_use = "drop the waker after releasing the lock"]
    pub(crate) unsafe fn unlink(&mut self, waiter: &Waiter) -> Option<Waker> {
        // SAFETY: forwarded: the node is linked in this list.
        unsafe { self.detach(waiter) }
    }

    /// Whether the waker stored in a linked waiter wakes the same task as `waker`: then a
    /// re-poll need not replace it. Calls no user code (it compares the wakers' data and
    /// vtable pointers).
    ///
    /// # Safety
    ///
    /// `waiter` is linked in this list.
    pub(crate) unsafe fn will_wake(&self, waiter: &Waiter, waker: &Waker) -> bool {
        // SAFETY: linked, so alive and in place; its links are ours under the lock, and
        // only read here.
        let links = unsafe { &*waiter.links.get() };
        links.waker.as_ref().is_some_and(|stored| stored.will_wake(waker))
    }

    /// Stores `waker` (cloned by the caller before taking the lock) in a linked waiter and
    /// returns the one it replaces, for the caller to drop once the lock is released.
    ///
    /// # Safety
    ///
    /// `waiter` is linked in this list.
    #[must_use = "drop the old waker after releasing the lock"]
    pub(crate) unsafe fn replace_waker(&mut self, waiter: &Waiter, waker: Waker) -> Option<Waker> {
        // SAFETY: linked, so alive and in place; its links are ours under the lock.
        let links = unsafe { &mut *waiter.links.get() };
        links.waker.replace(waker)
    }

    /// Takes `waiter` out of the list and returns its waker.
    ///
    /// # Safety
    ///
    /// `waiter` is linked in this list.
    unsafe fn detach(&mut self, waiter: &Waiter) -> Option<Waker> {
        // SAFETY: linked, so alive and in place; its links, and its neighbours' links,
        // are ours while the lock is held.
        unsafe {
            let links = &mut *waiter.links.get();
            match links.prev {
                Some(prev) => (*prev.as_ref().links.get()).next = links.next,
                None => self.head = links.next,
            }
            match links.next {
                Some(next) => (*next.as_ref().links.get()).prev = links.prev,
                None => self.tail = links.prev,
            }
            links.prev = None;
            links.next = None;
            self.len -= 1;
            links.waker.take()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::pin::pin;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn settles_in_arrival_order_and_skips_unlinked_waiters() {
        let (a, b, c) = (pin!(Waiter::new()), pin!(Waiter::new()), pin!(Waiter::new()));
        let mut list = WaitList::new();
        // SAFETY: each node is pinned on this stack frame, outlives the list's use of it,
        // and is linked once.
        unsafe {
            list.push_back(&a, noop());
            list.push_back(&b, noop());
            list.push_back(&c, noop());
            assert!(list.unlink(&b).is_some());
        }
        assert_eq!(list.len(), 2);
        assert!(list.settle_front(GRANTED).is_some());
        assert_eq!((a.state(), c.state()), (GRANTED, WAITING));
        assert!(list.settle_front(CLOSED).is_some());
        assert_eq!(c.state(), CLOSED);
        assert_eq!((list.len(), list.granted()), (0, 1));
        assert!(list.settle_front(GRANTED).is_none());
        assert_eq!((list.head, list.tail), (None, None));
    }

    #[test]
    fn a_linked_waiter_keeps_a_waker_that_wakes_the_same_task_and_swaps_another() {
        let a = pin!(Waiter::new());
        let mut list = WaitList::new();
        let first = crate::test_wakers::Hostile::new().waker().1;
        let other = crate::test_wakers::Hostile::new().waker().1;
        // SAFETY: as above.
        unsafe {
            list.push_back(&a, first.clone());
            assert!(list.will_wake(&a, &first));
            assert!(!list.will_wake(&a, &other));
            let old = list.replace_waker(&a, other.clone());
            assert!(old.is_some_and(|old| old.will_wake(&first)));
            assert!(list.will_wake(&a, &other));
        }
        let stored = list.settle_front(GRANTED);
        assert!(stored.is_some_and(|stored| stored.will_wake(&other)));
    }

    #[test]
    fn unlinking_the_tail_or_the_only_node_keeps_the_ends_right() {
        let (a, b) = (pin!(Waiter::new()), pin!(Waiter::new()));
        let mut list = WaitList::new();
        // SAFETY: as above.
        unsafe {
            list.push_back(&a, noop());
            assert!(list.unlink(&a).is_some());
            assert_eq!((list.head, list.tail, list.len()), (None, None, 0));
            list.push_back(&a, noop());
            list.push_back(&b, noop());
            assert!(list.unlink(&b).is_some());
        }
        assert!(list.settle_front(GRANTED).is_some());
        assert_eq!(a.state(), GRANTED);
        assert_eq!((list.head, list.tail), (None, None));
    }
}
