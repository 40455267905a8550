//! Synchronisation building blocks shared by the core, switched to loom's models under
//! `--cfg loom` so the model checker sees every atomic access.
//!
//! # The spin lock, and the two rules that make it safe
//!
//! The core has no `std` and so no OS mutex: the few short critical sections it needs
//! (the semaphore's waiter list, the registries, the manual clock's timers) take a
//! [`SpinMutex`]. A spin lock is only safe if its holder always gets to finish, so:
//!
//! 1. **No user code under the lock.** A critical section never clones, wakes or drops a
//!    [`Waker`](core::task::Waker), and never calls a callback: any of those may re-enter
//!    kompoz (a waker that owns a permit and releases it when dropped), which would spin
//!    forever on a lock its own thread holds, or may panic half-way through an update.
//!    Wakers are cloned before the lock is taken, swapped under it, and dropped or woken
//!    after it is released. Unit tests check this rule deterministically: in `cfg(test)`
//!    builds the lock counts its holders per thread, and the tests' hostile wakers fail at
//!    once if they run while a kompoz lock is held (see `assert_no_lock_held`).
//! 2. **No interrupt handler may preempt a holder and then wait for the same lock.** On a
//!    single core, an interrupt handler that spins on a lock held by the code it
//!    interrupted spins forever: the holder cannot run again until the handler returns.
//!    * With the `critical-section` feature, every critical section of this lock runs
//!      inside `critical_section::with`, which (with a single-core implementation such
//!      as cortex-m's `critical-section-single-core`) masks interrupts: no handler can
//!      preempt a holder, so handlers may use kompoz freely (drop a permit, add permits,
//!      close a semaphore, move a manual clock). The sections are short and call no user
//!      code, so interrupts stay masked for a bounded, small time.
//!    * Without it (the default, and what `thumbv7em-none-eabihf` builds with when its
//!      application does not ask for the feature), **do not touch a kompoz primitive from
//!      an interrupt handler** (nor from any context that can preempt a thread of equal
//!      or lower priority using the same primitive, such as a higher-priority RTIC task).
//!      Signal a task instead and let it do the work; or enable `critical-section`.
//!      With `std`, threads are preemptible and a waiting thread yields to a preempted
//!      holder, so the rule is about interrupt handlers and signal handlers only.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A minimal spin lock for short, cold critical sections (waiter lists, registries,
/// the manual clock's timers) that must work without `std`.
///
/// Access goes through [`SpinMutex::with`], so a guard can never escape and the lock is
/// released even if the closure panics. Critical sections must stay short and must not
/// call user code (see the module's docs: wakers are cloned before the lock and dropped or
/// woken after it). With the `critical-section` feature each section also runs inside
/// `critical_section::with`, so interrupt handlers may take the lock.
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

    /// Runs `f` with exclusive access to the value (inside a critical section with the
    /// `critical-section` feature: interrupts cannot preempt the holder).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(feature = "critical-section")]
        return critical_section::with(|_| self.with_locked(f));
        #[cfg(not(feature = "critical-section"))]
        self.with_locked(f)
    }

    fn with_locked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.acquire();
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                #[cfg(test)]
                HELD.with(|held| held.set(held.get() - 1));
                self.0.store(false, Ordering::Release);
            }
        }
        #[cfg(test)]
        HELD.with(|held| held.set(held.get() + 1));
        #[cfg(test)]
        TAKEN.with(|taken| taken.set(taken.get() + 1));
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

// How many kompoz locks this thread holds, in unit tests: user code (a hostile waker)
// asserts it holds none, so a regression that calls user code under a lock fails at
// once, deterministically, instead of spinning forever when that code re-enters.
#[cfg(all(test, not(loom)))]
std::thread_local! {
    static HELD: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    static TAKEN: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// How many times this thread has taken a kompoz lock, in unit tests: the paths promised
/// to be lock-free (an uncontended acquire and release) are checked with it.
#[cfg(all(test, not(loom)))]
pub(crate) fn locks_taken() -> u64 {
    TAKEN.with(core::cell::Cell::get)
}

/// Panics if this thread holds a kompoz lock: called by the tests' hostile wakers on every
/// clone, wake and drop, which must never run under one.
#[cfg(all(test, not(loom)))]
#[track_caller]
pub(crate) fn assert_no_lock_held(what: &str) {
    let held = HELD.with(core::cell::Cell::get);
    assert_eq!(held, 0, "{what} ran while this thread held {held} kompoz lock(s)");
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
        // Fewer under miri: at 10,000 rounds this test took 145 s of miri's 282 s over the
        // core's unit tests in CI's list; 1,000 rounds of four threads still contend on
        // every acquire, with each access checked for data races.
        const ROUNDS: u64 = if cfg!(miri) { 1_000 } else { 10_000 };
        let counter = Arc::new(SpinMutex::new(0u64));
        let threads: alloc::vec::Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        counter.with(|c| *c += 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.with(|c| *c), 4 * ROUNDS);
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
