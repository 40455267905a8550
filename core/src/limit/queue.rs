//! The FIFO list of tasks waiting for a permit: an intrusive doubly linked list whose
//! nodes live inside the acquire futures themselves.
//!
//! A waiting future is pinned, so its [`Waiter`] node has a fixed address for as long as
//! it is linked; its `Drop` unlinks it (under the semaphore's lock) before that memory
//! can be reused. The links and the waker are only touched under the lock (`&mut
//! WaitList` is the proof). The node's `state` is written under the lock too, but read
//! by its owner without it: once the owner sees `GRANTED` or `CLOSED` the node is no longer
//! linked and nobody else touches it again, so a woken waiter takes its permit without
//! taking the lock. Waiting allocates nothing.

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

/// One waiting task's node, inside its acquire future.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// `WAITING`, `GRANTED` or `CLOSED`: written under the lock, read by the owner
    /// without it (Acquire, pairing with the Release of `settle_front`).
    state: AtomicUsize,
    /// Guarded by the semaphore's lock.
    links: UnsafeCell<Links>,
    /// The list holds the node's address: it must not move while linked.
    _pinned: PhantomPinned,
}

#[derive(Debug)]
struct Links {
    prev: Option<NonNull<Waiter>>,
    next: Option<NonNull<Waiter>>,
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
            _pinned: PhantomPinned,
        }
    }

    /// A node that is not queued.
    #[cfg(loom)]
    pub(crate) fn new() -> Waiter {
        Waiter {
            state: AtomicUsize::new(WAITING),
            links: UnsafeCell::new(Links { prev: None, next: None, waker: None }),
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
    /// its waker. The node must not be touched afterwards: its owner may return and free
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

    /// Unlinks `waiter` (its owner gave up) and drops its waker.
    ///
    /// # Safety
    ///
    /// `waiter` is linked in this list.
    pub(crate) unsafe fn unlink(&mut self, waiter: &Waiter) {
        // SAFETY: forwarded: the node is linked in this list.
        drop(unsafe { self.detach(waiter) });
    }

    /// Replaces the waker of a linked waiter (the owner polled again).
    ///
    /// # Safety
    ///
    /// `waiter` is linked in this list.
    pub(crate) unsafe fn set_waker(&mut self, waiter: &Waiter, waker: &Waker) {
        // SAFETY: linked, so alive and in place; its links are ours under the lock.
        let links = unsafe { &mut *waiter.links.get() };
        match &mut links.waker {
            Some(current) => current.clone_from(waker),
            None => links.waker = Some(waker.clone()),
        }
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
            list.unlink(&b);
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
    fn unlinking_the_tail_or_the_only_node_keeps_the_ends_right() {
        let (a, b) = (pin!(Waiter::new()), pin!(Waiter::new()));
        let mut list = WaitList::new();
        // SAFETY: as above.
        unsafe {
            list.push_back(&a, noop());
            list.unlink(&a);
            assert_eq!((list.head, list.tail, list.len()), (None, None, 0));
            list.push_back(&a, noop());
            list.push_back(&b, noop());
            list.unlink(&b);
        }
        assert!(list.settle_front(GRANTED).is_some());
        assert_eq!(a.state(), GRANTED);
        assert_eq!((list.head, list.tail), (None, None));
    }
}
