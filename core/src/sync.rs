//! Synchronisation building blocks shared by the core, switched to loom's models under
//! `--cfg loom` so the model checker sees every atomic access.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A minimal spin lock for short, cold critical sections (waiter lists, registries,
/// the manual clock's timers) that must work without `std`.
///
/// Access goes through [`SpinMutex::with`], so a guard can never escape and the lock is
/// released even if the closure panics. Critical sections must stay short and must not
/// call user code (wakers are collected and woken after the lock is released).
///
/// Under loom it is loom's own mutex: a spin lock makes loom explore endless spinning
/// schedules when three threads contend, while a blocking mutex has the same mutual
/// exclusion and lets the models check 3 or more preemptions.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct SpinMutex<T> {
    locked: AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one thread at a time, so sharing the mutex is
// sound whenever `T` may be sent between threads (the same bound as `std::sync::Mutex`).
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for SpinMutex<T> {}
// SAFETY: the mutex owns its `T`; moving it moves the `T`.
#[cfg(not(loom))]
unsafe impl<T: Send> Send for SpinMutex<T> {}

#[cfg(not(loom))]
impl<T> SpinMutex<T> {
    /// A new, unlocked mutex.
    pub(crate) const fn new(value: T) -> Self {
        SpinMutex { locked: AtomicBool::new(false), value: core::cell::UnsafeCell::new(value) }
    }

    /// Runs `f` with exclusive access to the value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.acquire();
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: `acquire` set `locked` with Acquire ordering and it is cleared only by
        // `_unlock` after `f` returns or unwinds, so no other `&mut T` exists while this
        // one lives, and the closure cannot leak it (its lifetime is the call's).
        f(unsafe { &mut *self.value.get() })
    }

    fn acquire(&self) {
        let mut spins: u32 = 0;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.wrapping_add(1);
                relax(spins);
            }
        }
    }
}

/// Backs off while a lock is held elsewhere: spin briefly, then (with an OS) yield the
/// thread so a preempted holder can run.
#[cfg(not(loom))]
#[inline]
fn relax(spins: u32) {
    #[cfg(feature = "std")]
    if spins > 64 {
        std::thread::yield_now();
        return;
    }
    let _ = spins;
    core::hint::spin_loop();
}

/// Under loom: loom's mutex, with the same interface.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct SpinMutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> SpinMutex<T> {
    /// A new, unlocked mutex.
    pub(crate) fn new(value: T) -> Self {
        SpinMutex(loom::sync::Mutex::new(value))
    }

    /// Runs `f` with exclusive access to the value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A poisoned lock only means a model already failed; keep the value going.
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

#[cfg(loom)]
impl<T: Default> Default for SpinMutex<T> {
    fn default() -> Self {
        SpinMutex::new(T::default())
    }
}

#[cfg(all(test, not(loom), feature = "std"))]
mod tests {
    use super::*;
    use alloc::sync::Arc;

    #[test]
    fn excludes_concurrent_writers() {
        let counter = Arc::new(SpinMutex::new(0u64));
        let threads: alloc::vec::Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counter.with(|c| *c += 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.with(|c| *c), 40_000);
    }

    #[test]
    fn a_panic_inside_releases_the_lock() {
        let m = Arc::new(SpinMutex::new(1));
        let m2 = m.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m2.with(|_| panic!("inside the lock"));
        }));
        assert!(r.is_err());
        assert_eq!(m.with(|v| *v), 1);
    }
}
