//! Proof that the kompoz core builds and links without `std`.
//!
//! With the `proof` feature this crate defines a panic handler and a global allocator,
//! which a `#![no_std]` binary must bring itself. If anything in kompoz's dependency graph
//! linked `std`, std's own panic handler would clash with ours and the build fails with
//! "found duplicate lang item `panic_impl`". Build it alone, so no other workspace
//! member's features leak into kompoz:
//!
//! ```text
//! cargo rustc -p kompoz-no-std-check --features proof -- -C panic=abort
//! ```
//!
//! Without `proof` it is an ordinary `no_std` library, so workspace-wide builds (where
//! feature unification turns kompoz's `std` on) still compile.
#![no_std]

use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use kompoz::limit::FixedRegistry;
use kompoz::{
    AsyncCombinator, Clock, Instant, ManualClock, Sleep, async_rule, limited_on, timeout,
    with_timeout_on,
};

/// A tick counter, as a board's timer interrupt would advance it (1 tick = 1 µs).
static TICKS: AtomicU64 = AtomicU64::new(0);

/// The embedded user's clock: microsecond ticks, and timers that compare against them.
#[derive(Clone, Copy, Debug)]
pub struct TickClock;

impl Clock for TickClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(TICKS.load(Ordering::Relaxed).saturating_mul(1_000))
    }
}

/// A timer of [`TickClock`]. (A real one would arm a hardware compare interrupt.)
#[derive(Debug)]
pub struct TickTimer(Instant);

impl Future for TickTimer {
    type Output = ();
    fn poll(self: core::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if TickClock.now() >= self.0 { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Sleep for TickClock {
    type Timer = TickTimer;
    fn sleep_until(&self, deadline: Instant) -> TickTimer {
        TickTimer(deadline)
    }
}

/// Limits shared by name, with no allocation: a `static` registry.
static LIMITS: FixedRegistry<2> = FixedRegistry::new();

/// Runs timeouts, a combinator with a time limit and a shared concurrency limit; returns
/// how many of the expected results it saw (6).
#[unsafe(no_mangle)]
pub extern "C" fn kompoz_no_std_check() -> u32 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut seen = 0;

    let ready = pin!(timeout(TickClock, Duration::from_millis(5), async { 7 }));
    if ready.poll(&mut cx) == Poll::Ready(Ok(7)) {
        seen += 1;
    }

    let mut late =
        pin!(timeout(TickClock, Duration::from_micros(3), core::future::pending::<()>()));
    if late.as_mut().poll(&mut cx).is_pending() {
        seen += 1;
    }
    TICKS.fetch_add(3, Ordering::Relaxed);
    if late.as_mut().poll(&mut cx).is_ready() {
        seen += 1;
    }

    let clock = ManualClock::new();
    let positive = async_rule(async |n: &mut i32| *n > 0);
    let guarded = with_timeout_on(clock, positive, Duration::from_secs(1));
    if pin!(guarded.run_owned(3)).poll(&mut cx) == Poll::Ready((true, 3)) {
        seen += 1;
    }

    if let Ok(bus) = LIMITS.get_or_create("bus", 1) {
        let held = bus.try_acquire();
        if held.is_ok() && bus.try_acquire().is_err() {
            seen += 1;
        }
        drop(held);
        let pooled = limited_on(positive, bus);
        if pin!(pooled.run_owned(5)).poll(&mut cx) == Poll::Ready((true, 5)) {
            seen += 1;
        }
    }
    seen
}

#[cfg(feature = "proof")]
mod proof {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicUsize, Ordering};

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        loop {
            core::hint::spin_loop();
        }
    }

    /// A bump allocator over a static arena: enough for a proof, never frees.
    struct Bump {
        arena: UnsafeCell<[u8; 64 * 1024]>,
        next: AtomicUsize,
    }

    // SAFETY: the arena is only handed out in disjoint pieces, reserved with an atomic
    // fetch_add on `next`, so threads never get overlapping memory.
    unsafe impl Sync for Bump {}

    // SAFETY: `alloc` returns either null or a block of at least `layout.size()` bytes,
    // aligned to `layout.align()`, inside the arena and never handed out twice.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let base = self.arena.get() as usize;
            let mut start = 0;
            let reserved = self.next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
                start = (base + next).next_multiple_of(layout.align()) - base;
                let end = start.checked_add(layout.size())?;
                (end <= 64 * 1024).then_some(end)
            });
            match reserved {
                // SAFETY: `start + size` lies within the arena, checked above.
                Ok(_) => unsafe { (self.arena.get() as *mut u8).add(start) },
                Err(_) => core::ptr::null_mut(),
            }
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[global_allocator]
    static ALLOCATOR: Bump =
        Bump { arena: UnsafeCell::new([0; 64 * 1024]), next: AtomicUsize::new(0) };
}
