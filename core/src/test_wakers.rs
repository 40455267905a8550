//! Wakers that misbehave on purpose, for the unit tests of everything that stores wakers
//! (the semaphore's waiter list, the manual clock's timers).
//!
//! A [`Hostile`] waker can panic in `clone`, `wake` or `drop`, and can run a hook in each
//! (acquire or release on the semaphore under test, own a permit, move the clock): user
//! code that re-enters. Every clone, wake and drop first asserts that this thread holds no
//! kompoz lock ([`assert_no_lock_held`]): running user code under a lock is the bug these
//! tests hunt, and the assertion turns it into an immediate, deterministic failure rather
//! than a thread spinning forever on a lock it holds itself.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{RawWaker, RawWakerVTable, Waker};

use crate::sync::assert_no_lock_held;

type Hook = Box<dyn Fn() + Send + Sync>;

/// The shared state of a family of hostile waker handles (one and its clones).
#[derive(Default)]
pub(crate) struct Hostile {
    panic_on_clone: AtomicBool,
    panic_on_wake: AtomicBool,
    panic_on_drop: AtomicBool,
    on_clone: Option<Hook>,
    on_wake: Option<Hook>,
    on_drop: Option<Hook>,
    clones: AtomicUsize,
    wakes: AtomicUsize,
    /// Handles released: dropped, or consumed by a by-value wake.
    released: AtomicUsize,
}

impl Hostile {
    /// A waker family that behaves until told otherwise.
    pub(crate) fn new() -> Hostile {
        Hostile::default()
    }

    /// Runs `hook` on every clone, before cloning (and before panicking, if armed).
    pub(crate) fn on_clone(mut self, hook: impl Fn() + Send + Sync + 'static) -> Hostile {
        self.on_clone = Some(Box::new(hook));
        self
    }

    /// Runs `hook` on every wake (by value or by reference), before panicking if armed.
    pub(crate) fn on_wake(mut self, hook: impl Fn() + Send + Sync + 'static) -> Hostile {
        self.on_wake = Some(Box::new(hook));
        self
    }

    /// Runs `hook` whenever a handle is dropped, before panicking if armed.
    pub(crate) fn on_drop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Hostile {
        self.on_drop = Some(Box::new(hook));
        self
    }

    /// The first handle of the family.
    pub(crate) fn waker(self) -> (Arc<Hostile>, Waker) {
        let hostile = Arc::new(self);
        let data = Arc::into_raw(hostile.clone()).cast::<()>();
        // SAFETY: `data` is a strong count of an `Arc<Hostile>` and VTABLE's functions
        // treat it as exactly that (see each of them).
        let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
        (hostile, waker)
    }

    pub(crate) fn panic_on_clone(&self, armed: bool) {
        self.panic_on_clone.store(armed, Ordering::SeqCst);
    }

    pub(crate) fn panic_on_wake(&self, armed: bool) {
        self.panic_on_wake.store(armed, Ordering::SeqCst);
    }

    pub(crate) fn panic_on_drop(&self, armed: bool) {
        self.panic_on_drop.store(armed, Ordering::SeqCst);
    }

    /// Clones made so far.
    pub(crate) fn clones(&self) -> usize {
        self.clones.load(Ordering::SeqCst)
    }

    /// Wake-ups so far (by value and by reference).
    pub(crate) fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Handles alive: the first one plus every clone, less those dropped or consumed.
    /// Zero once everything that held one let go: no waker leaked.
    pub(crate) fn live(&self) -> usize {
        1 + self.clones.load(Ordering::SeqCst) - self.released.load(Ordering::SeqCst)
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_handle);

/// Releases one strong count when dropped, so a handle is released even if its hook or
/// its armed panic unwinds.
struct Release(*const Hostile);

impl Drop for Release {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a strong count owned by the handle being released.
        unsafe {
            (*self.0).released.fetch_add(1, Ordering::SeqCst);
            Arc::decrement_strong_count(self.0);
        }
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    assert_no_lock_held("a waker's clone");
    // SAFETY: `data` is a live handle's strong count (the caller holds the handle).
    let hostile = unsafe { &*data.cast::<Hostile>() };
    if let Some(hook) = &hostile.on_clone {
        hook();
    }
    assert!(!hostile.panic_on_clone.load(Ordering::SeqCst), "hostile waker: clone panics");
    // SAFETY: as above; the new handle owns the new count.
    unsafe { Arc::increment_strong_count(data.cast::<Hostile>()) };
    hostile.clones.fetch_add(1, Ordering::SeqCst);
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // The handle is consumed whatever happens below.
    let _release = Release(data.cast());
    // SAFETY: the handle being consumed holds a strong count until `_release` drops.
    unsafe { wake_by_ref(data) };
}

unsafe fn wake_by_ref(data: *const ()) {
    assert_no_lock_held("a waker's wake");
    // SAFETY: `data` is a live handle's strong count.
    let hostile = unsafe { &*data.cast::<Hostile>() };
    hostile.wakes.fetch_add(1, Ordering::SeqCst);
    if let Some(hook) = &hostile.on_wake {
        hook();
    }
    assert!(!hostile.panic_on_wake.load(Ordering::SeqCst), "hostile waker: wake panics");
}

unsafe fn drop_handle(data: *const ()) {
    let _release = Release(data.cast());
    assert_no_lock_held("a waker's drop");
    // SAFETY: the handle being dropped holds a strong count until `_release` drops.
    let hostile = unsafe { &*data.cast::<Hostile>() };
    if let Some(hook) = &hostile.on_drop {
        hook();
    }
    assert!(!hostile.panic_on_drop.load(Ordering::SeqCst), "hostile waker: drop panics");
}

/// Runs `f`, expecting it to panic because a hostile waker panicked on purpose (and not,
/// say, because a hostile waker found itself running under a kompoz lock).
#[track_caller]
pub(crate) fn expect_panic<R>(f: impl FnOnce() -> R) {
    let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) else {
        panic!("expected a hostile waker's panic");
    };
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| alloc::string::String::from(*s))
        .or_else(|| payload.downcast_ref::<alloc::string::String>().cloned())
        .unwrap_or_default();
    assert!(message.starts_with("hostile waker"), "an unexpected panic: {message:?}");
}
