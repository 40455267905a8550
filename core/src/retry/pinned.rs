//! Writing into pinned places without the drop glue of the whole type.
//!
//! `Pin::set` drops the old value first, through the drop glue of the whole type; for the
//! nested state machines of a retry or a pipeline that glue is large, so the compiler
//! calls it out of line even where the code has just seen that the place holds nothing
//! (an empty slot) or which variant it holds. These helpers write without it, or with
//! only the glue of the part that needs dropping, where that is sound.

use core::mem::ManuallyDrop;
use core::pin::Pin;

/// Puts `value` into an empty pinned slot without a call to `Option<T>`'s drop glue (if
/// the slot is not empty, the old value is dropped as `Pin::set` would), and returns it
/// pinned.
#[inline(always)]
pub(crate) fn fill<T>(slot: Pin<&mut Option<T>>, value: T) -> Pin<&mut T> {
    // SAFETY: nothing is moved out of the slot: a `None` is overwritten (nothing to
    // drop), a `Some` is replaced by assignment, which drops the old value in place; the
    // value returned lives in the slot, which stays pinned.
    unsafe {
        let slot = slot.get_unchecked_mut();
        match slot {
            None => core::ptr::write(slot, Some(value)),
            Some(_) => *slot = Some(value),
        }
        match slot {
            Some(value) => Pin::new_unchecked(value),
            // Just written; the compiler removes this arm.
            None => unreachable!("a slot just filled is empty"),
        }
    }
}

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
