//! Writing into pinned places without the drop glue of the whole type.
//!
//! `Pin::set` drops the old value first, through the drop glue of the whole type; for the
//! nested state machines of a retry or a pipeline that glue is large, so the compiler
//! calls it out of line even where the code has just seen that the place holds nothing
//! (an empty slot) or which variant it holds. These helpers write without it, or with
//! only the glue of the part that needs dropping, where that is sound; and [`Slot`] keeps
//! the glue of whatever holds it to one check.

use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::Poll;

/// Ends the current variant of the enum at `place`: drops its one field with drop glue,
/// `field`, in place (that field's own drop glue, not the whole enum's), then writes
/// `next` over the enum. If dropping panics, `next` is written all the same, as an
/// assignment does, so the enum never holds a value already dropped.
///
/// # Safety
///
/// `place` must be valid for writes. `field` must point into the value at `place`, be
/// derived from `place` with no other use of `place` since, and be the only part of that
/// value with drop glue. The value is dropped where it lies, so a pinned field keeps the
/// pinning contract's drop guarantee.
#[inline(always)]
pub(crate) unsafe fn end_variant<T, F>(place: *mut T, field: *mut F, next: T) {
    /// Writes `next` at `place` when dropped: after the field's drop, or during its unwind.
    struct WriteNext<T> {
        place: *mut T,
        next: ManuallyDrop<T>,
    }

    impl<T> Drop for WriteNext<T> {
        #[inline(always)]
        fn drop(&mut self) {
            // SAFETY: `place` is valid for writes (the caller's contract) and its old value
            // has been dropped, so overwriting it leaks nothing; `next` is taken once.
            unsafe { core::ptr::write(self.place, ManuallyDrop::take(&mut self.next)) }
        }
    }

    let write = WriteNext { place, next: ManuallyDrop::new(next) };
    // SAFETY: the caller's contract: `field` is the value's only part with drop glue, and
    // valid to drop in place.
    unsafe { core::ptr::drop_in_place(field) };
    drop(write);
}

/// A pinned place for at most one value (a future, a timer, a guard) whose drop glue is a
/// single check: the value's own glue is called out of line, only when there is a value.
///
/// An `Option<T>` in a future inlines `T`'s glue into its own, and a nest of layers'
/// futures nests their glue, which grows too large to be inlined where the call's future
/// is dropped. A nest of `Slot`s has glue of one check per level, which the compiler
/// inlines, and which it removes entirely where it has just seen the slot emptied: a
/// layer that empties its slots when it completes (see [`Slot::clear`]) costs nothing
/// more to drop.
pub(crate) struct Slot<T> {
    /// Structurally pinned: never moved out while `Some`, dropped in place by `clear` or by
    /// `Slot`'s `Drop`.
    value: ManuallyDrop<Option<T>>,
}

impl<T> Slot<T> {
    /// An empty slot.
    #[inline(always)]
    pub(crate) const fn empty() -> Self {
        Slot { value: ManuallyDrop::new(None) }
    }

    /// A slot holding `value`.
    #[inline(always)]
    pub(crate) const fn new(value: T) -> Self {
        Slot { value: ManuallyDrop::new(Some(value)) }
    }

    /// Whether the slot holds a value.
    #[inline(always)]
    pub(crate) fn is_some(&self) -> bool {
        self.value.is_some()
    }

    /// The value, pinned, if there is one.
    #[inline(always)]
    pub(crate) fn as_pin_mut(self: Pin<&mut Self>) -> Option<Pin<&mut T>> {
        // SAFETY: the value is structurally pinned (never moved out while in the slot), so
        // a pinned slot pins it.
        unsafe { self.get_unchecked_mut().value.as_mut().map(|value| Pin::new_unchecked(value)) }
    }

    /// Takes the value out, leaving the slot empty: for a slot whose value is not pinned
    /// (`T: Unpin`).
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<T>
    where
        T: Unpin,
    {
        self.value.take()
    }

    /// The place of the `Option` inside, for [`end_variant`] over a value in the slot.
    ///
    /// # Safety
    ///
    /// Whatever is written there must respect the slot's pinning: a value in it is only
    /// dropped in place, never moved out.
    #[inline(always)]
    pub(crate) unsafe fn place(self: Pin<&mut Self>) -> *mut Option<T> {
        // SAFETY: the caller keeps the pinning contract through the pointer.
        unsafe { &mut *self.get_unchecked_mut().value }
    }

    /// Puts `value` into the slot (dropping the one it held, if any, in place), and returns
    /// it pinned.
    #[inline(always)]
    pub(crate) fn fill(mut self: Pin<&mut Self>, value: T) -> Pin<&mut T> {
        self.as_mut().clear();
        // SAFETY: the slot is empty: writing over it drops nothing and moves nothing; the
        // value written is then pinned where it lies.
        unsafe {
            let slot = &mut *self.get_unchecked_mut().value;
            core::ptr::write(slot, Some(value));
            match slot {
                Some(value) => Pin::new_unchecked(value),
                // Just written; the compiler removes this arm.
                None => unreachable!("a slot just filled is empty"),
            }
        }
    }

    /// Polls the value, if any, with `poll`, and drops it in place once it is ready,
    /// leaving the slot empty (also if that drop panics): `None` if the slot was empty.
    /// One check of the slot, where polling and then [`clear`](Slot::clear)ing would make
    /// two (the second after the poll, when the compiler no longer knows the slot full).
    #[inline(always)]
    pub(crate) fn poll_once<R>(
        self: Pin<&mut Self>,
        poll: impl FnOnce(Pin<&mut T>) -> Poll<R>,
    ) -> Option<Poll<R>> {
        // SAFETY: the value is pinned where it lies (the slot is pinned) and, once ready,
        // dropped in place, once, by `end_variant`, which leaves the slot empty; `value` is
        // derived from `place`, which is used again only by `end_variant`. `poll` cannot
        // reach the slot: it is borrowed here.
        unsafe {
            let place: *mut Option<T> = &mut *self.get_unchecked_mut().value;
            let value: *mut T = (*place).as_mut()?;
            let polled = poll(Pin::new_unchecked(&mut *value));
            if polled.is_ready() {
                end_variant(place, value, None);
            }
            Some(polled)
        }
    }

    /// Drops the value, if any, in place, and leaves the slot empty (also if that drop
    /// panics). The value's glue is inlined here, where the code emptying the slot
    /// usually knows the value's state (a finished layer's future holds only empty slots),
    /// so that it folds away.
    #[inline(always)]
    pub(crate) fn clear(self: Pin<&mut Self>) {
        // SAFETY: the value is dropped in place (the pinning contract's drop guarantee),
        // once, and the slot written empty by `end_variant` (also if the drop panics); or it
        // was empty already, and writing `None` over it drops nothing. (Written again after
        // the drop, so that the compiler knows the slot empty wherever it is dropped next.)
        unsafe {
            let place: *mut Option<T> = &mut *self.get_unchecked_mut().value;
            if let Some(value) = &mut *place {
                let value: *mut T = value;
                end_variant(place, value, None);
            }
            core::ptr::write(place, None);
        }
    }
}

impl<T> Drop for Slot<T> {
    #[inline(always)]
    fn drop(&mut self) {
        if core::mem::needs_drop::<T>() && self.value.is_some() {
            // SAFETY: dropped in place, once: the slot itself is being dropped.
            unsafe { drop_value(&mut self.value) }
        }
    }
}

/// Drops the value in `slot` in place and leaves `None` there (also if the drop panics):
/// out of line, so that the glue of everything holding a slot stays one check.
///
/// # Safety
///
/// `slot` must hold a value that is dropped only here (never again, never moved out).
#[cold]
#[inline(never)]
unsafe fn drop_value<T>(slot: &mut Option<T>) {
    let place: *mut Option<T> = slot;
    // SAFETY: `place` is valid; everything below is derived from it.
    if let Some(value) = unsafe { &mut *place } {
        let value: *mut T = value;
        // SAFETY: `value` is the `Some` variant's only field, derived from `place` just now;
        // the caller's contract makes this its only drop.
        unsafe { end_variant(place, value, None) };
    }
}
