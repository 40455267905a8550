//! The FIFO list of tasks waiting for a permit: a slab of nodes linked by index.
//!
//! Each waiting `Acquire` future owns one node, from enqueue until it frees it (when it
//! completes or is dropped). Releasing a permit unlinks the oldest node and marks it
//! granted; the node stays allocated so its owner can observe the grant, which makes a
//! reused index impossible while an owner still holds it. Linking by index keeps the
//! code free of `unsafe`; the slab's memory is kept for reuse.

use alloc::vec::Vec;
use core::task::Waker;

const NIL: usize = usize::MAX;

/// What happened to a waiter.
#[derive(Debug)]
pub(crate) enum WaiterState {
    /// Queued, with the waker of the owner's last poll.
    Waiting(Waker),
    /// A permit was handed to it: the owner now holds that permit.
    Granted,
    /// The semaphore was closed while it waited.
    Closed,
}

#[derive(Debug)]
enum Slot {
    Free { next_free: usize },
    Used { prev: usize, next: usize, state: WaiterState },
}

#[derive(Debug)]
pub(crate) struct WaitQueue {
    slots: Vec<Slot>,
    free: usize,
    head: usize,
    tail: usize,
    len: usize,
}

impl WaitQueue {
    pub(crate) const fn new() -> Self {
        WaitQueue { slots: Vec::new(), free: NIL, head: NIL, tail: NIL, len: 0 }
    }

    /// Number of queued (waiting) nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends a waiter; returns its key.
    pub(crate) fn push_back(&mut self, waker: Waker) -> usize {
        let slot = Slot::Used { prev: self.tail, next: NIL, state: WaiterState::Waiting(waker) };
        let key = if self.free != NIL {
            let key = self.free;
            if let Slot::Free { next_free } = self.slots[key] {
                self.free = next_free;
            }
            self.slots[key] = slot;
            key
        } else {
            self.slots.push(slot);
            self.slots.len() - 1
        };
        match self.tail {
            NIL => self.head = key,
            tail => self.set_next(tail, key),
        }
        self.tail = key;
        self.len += 1;
        key
    }

    /// Unlinks the oldest waiter, marks it `Granted` and returns its waker.
    pub(crate) fn grant_front(&mut self) -> Option<Waker> {
        self.settle_front(WaiterState::Granted)
    }

    /// Unlinks the oldest waiter, marks it `Closed` and returns its waker.
    pub(crate) fn close_front(&mut self) -> Option<Waker> {
        self.settle_front(WaiterState::Closed)
    }

    fn settle_front(&mut self, outcome: WaiterState) -> Option<Waker> {
        let key = self.head;
        if key == NIL {
            return None;
        }
        self.unlink(key);
        match self.state_mut(key) {
            Some(state) => match core::mem::replace(state, outcome) {
                WaiterState::Waiting(waker) => Some(waker),
                _ => None,
            },
            None => None,
        }
    }

    /// The state of the node `key`.
    pub(crate) fn state_mut(&mut self, key: usize) -> Option<&mut WaiterState> {
        match self.slots.get_mut(key) {
            Some(Slot::Used { state, .. }) => Some(state),
            _ => None,
        }
    }

    /// Frees node `key` (unlinking it first if it is still waiting) and returns its state.
    pub(crate) fn remove(&mut self, key: usize) -> Option<WaiterState> {
        if matches!(self.state_mut(key), Some(WaiterState::Waiting(_))) {
            self.unlink(key);
        }
        match core::mem::replace(self.slots.get_mut(key)?, Slot::Free { next_free: self.free }) {
            Slot::Used { state, .. } => {
                self.free = key;
                Some(state)
            }
            free => {
                // Not in use: put it back untouched.
                self.slots[key] = free;
                None
            }
        }
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = match self.slots[key] {
            Slot::Used { prev, next, .. } => (prev, next),
            Slot::Free { .. } => return,
        };
        match prev {
            NIL => self.head = next,
            prev => self.set_next(prev, next),
        }
        match next {
            NIL => self.tail = prev,
            next => self.set_prev(next, prev),
        }
        if let Slot::Used { prev, next, .. } = &mut self.slots[key] {
            *prev = NIL;
            *next = NIL;
        }
        self.len -= 1;
    }

    fn set_next(&mut self, key: usize, to: usize) {
        if let Slot::Used { next, .. } = &mut self.slots[key] {
            *next = to;
        }
    }

    fn set_prev(&mut self, key: usize, to: usize) {
        if let Slot::Used { prev, .. } = &mut self.slots[key] {
            *prev = to;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn grants_in_arrival_order_and_skips_removed_waiters() {
        let mut q = WaitQueue::new();
        let a = q.push_back(noop());
        let b = q.push_back(noop());
        let c = q.push_back(noop());
        assert!(matches!(q.remove(b), Some(WaiterState::Waiting(_))));
        assert_eq!(q.len(), 2);
        assert!(q.grant_front().is_some());
        assert!(matches!(q.state_mut(a), Some(WaiterState::Granted)));
        assert!(matches!(q.state_mut(c), Some(WaiterState::Waiting(_))));
        assert!(q.close_front().is_some());
        assert!(matches!(q.state_mut(c), Some(WaiterState::Closed)));
        assert_eq!(q.len(), 0);
        assert!(q.grant_front().is_none());
        // Freed slots are reused, and a stale key finds nothing.
        assert!(matches!(q.remove(a), Some(WaiterState::Granted)));
        assert!(q.remove(a).is_none());
        let d = q.push_back(noop());
        assert_eq!(d, a);
    }

    #[test]
    fn removing_the_only_waiter_empties_the_list() {
        let mut q = WaitQueue::new();
        let a = q.push_back(noop());
        q.remove(a);
        assert_eq!(q.len(), 0);
        let b = q.push_back(noop());
        let c = q.push_back(noop());
        q.remove(c);
        q.grant_front();
        assert!(matches!(q.state_mut(b), Some(WaiterState::Granted)));
        assert_eq!((q.head, q.tail), (NIL, NIL));
    }
}
