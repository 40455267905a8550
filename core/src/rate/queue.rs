//! The line of waiting tasks: a FIFO list threaded through a slab of slots, behind the
//! limiter's lock. Safe code only: each waiter holds the index of its slot, and only that
//! waiter ever frees it, so an index never names another waiter's slot. The slab grows to
//! the largest number of tasks that ever waited at once, and is given back when the line
//! empties. See `wait.rs` for the algorithm it serves.

use alloc::vec::Vec;
use core::task::Waker;

/// One waiter's place in line.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The cells the waiter asks for (0: the slot is free).
    cells: u32,
    prev: Option<usize>,
    next: Option<usize>,
    /// The waker of the waiter's last pending poll; taken (not cloned) to wake it.
    waker: Option<Waker>,
}

/// The line: `&mut Line` proves the limiter's lock is held.
#[derive(Debug, Default)]
pub(crate) struct Line {
    slots: Vec<Slot>,
    free: Vec<usize>,
    head: Option<usize>,
    tail: Option<usize>,
    len: usize,
    /// The cells of every waiter in line.
    cells: u64,
}

/// Storage the line gave up when it emptied, to be dropped after the lock is released.
pub(crate) type Released = Option<(Vec<Slot>, Vec<usize>)>;

/// Slabs larger than this are freed when the line empties (smaller ones are kept for the
/// next burst of waiters).
const KEEP: usize = 16;

impl Line {
    pub(crate) const fn new() -> Line {
        Line { slots: Vec::new(), free: Vec::new(), head: None, tail: None, len: 0, cells: 0 }
    }

    /// Waiters in line.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Cells asked for by every waiter in line.
    pub(crate) fn cells(&self) -> u64 {
        self.cells
    }

    /// Whether `key` is first in line.
    pub(crate) fn is_head(&self, key: usize) -> bool {
        self.head == Some(key)
    }

    /// Cells asked for by the waiters ahead of `key`.
    pub(crate) fn cells_ahead(&self, key: usize) -> u64 {
        let mut sum = 0u64;
        let mut at = self.head;
        while let Some(index) = at {
            if index == key {
                break;
            }
            sum += u64::from(self.slots[index].cells);
            at = self.slots[index].next;
        }
        sum
    }

    /// Joins the end of the line; returns the slot's key.
    pub(crate) fn push_back(&mut self, cells: u32, waker: Waker) -> usize {
        debug_assert!(cells > 0);
        let slot = Slot { cells, prev: self.tail, next: None, waker: Some(waker) };
        let key = match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        match self.tail {
            Some(tail) => self.slots[tail].next = Some(key),
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        self.len += 1;
        self.cells += u64::from(cells);
        key
    }

    /// Replaces the waker of `key`; the old one is returned, to be dropped after the lock.
    pub(crate) fn set_waker(&mut self, key: usize, waker: Waker) -> Option<Waker> {
        self.slots[key].waker.replace(waker)
    }

    /// The first waiter's waker, taken out to be woken after the lock is released.
    pub(crate) fn take_head_waker(&mut self) -> Option<Waker> {
        let head = self.head?;
        self.slots[head].waker.take()
    }

    /// Leaves the line. Returns the leaver's own waker and, if it was first, the waker of
    /// the new first waiter (both to be handled after the lock), and any storage given up.
    pub(crate) fn remove(&mut self, key: usize) -> (Option<Waker>, Option<Waker>, Released) {
        let was_head = self.head == Some(key);
        let slot = core::mem::replace(
            &mut self.slots[key],
            Slot { cells: 0, prev: None, next: None, waker: None },
        );
        debug_assert!(slot.cells > 0, "a free slot left the line");
        match slot.prev {
            Some(prev) => self.slots[prev].next = slot.next,
            None => self.head = slot.next,
        }
        match slot.next {
            Some(next) => self.slots[next].prev = slot.prev,
            None => self.tail = slot.prev,
        }
        self.len -= 1;
        self.cells -= u64::from(slot.cells);
        self.free.push(key);
        let next_head = if was_head { self.take_head_waker() } else { None };
        let released = if self.len == 0 && self.slots.capacity() > KEEP {
            self.head = None;
            self.tail = None;
            Some((core::mem::take(&mut self.slots), core::mem::take(&mut self.free)))
        } else {
            if self.len == 0 {
                self.slots.clear();
                self.free.clear();
            }
            None
        };
        (slot.waker, next_head, released)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn first_in_first_out_with_leavers_anywhere() {
        let mut line = Line::new();
        let a = line.push_back(1, noop());
        let b = line.push_back(2, noop());
        let c = line.push_back(3, noop());
        assert_eq!((line.len(), line.cells()), (3, 6));
        assert!(line.is_head(a));
        assert_eq!((line.cells_ahead(a), line.cells_ahead(c)), (0, 3));
        // The middle one leaves: nobody else is woken.
        let (own, next, _) = line.remove(b);
        assert!(own.is_some() && next.is_none());
        assert_eq!(line.cells_ahead(c), 1);
        // The first leaves: the next one's waker comes out to be woken, once.
        let (_, next, _) = line.remove(a);
        assert!(next.is_some());
        assert!(line.is_head(c));
        assert!(line.take_head_waker().is_none(), "already taken");
        assert!(line.set_waker(c, noop()).is_none());
        // A freed slot is reused.
        let d = line.push_back(4, noop());
        assert!(d == a || d == b);
        assert_eq!(line.cells_ahead(d), 3);
        line.remove(c);
        line.remove(d);
        assert_eq!((line.len(), line.cells(), line.head, line.tail), (0, 0, None, None));
    }

    #[test]
    fn a_large_slab_is_given_back_when_the_line_empties() {
        let mut line = Line::new();
        let keys: Vec<usize> = (0..100).map(|_| line.push_back(1, noop())).collect();
        let mut released = None;
        for key in keys {
            released = line.remove(key).2;
        }
        assert!(released.is_some());
        assert_eq!(line.slots.capacity(), 0);
        let again = line.push_back(1, noop());
        assert_eq!(again, 0);
    }
}
