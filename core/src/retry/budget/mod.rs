//! [`RetryBudget`]: retries limited to a share of the calls, shared by every caller, so
//! that a fleet of clients cannot multiply the load on a struggling dependency.
//!
//! The machine is in `machine.rs`; this file is its thin concurrent layer. Calls are
//! counted with one atomic add and nothing else (no clock read, no lock): the hot path
//! of a call that succeeds first time stays cheap. The counted calls are settled into
//! the window when a retry asks to go, under a short spin lock that runs no user code.

use core::fmt;
use core::time::Duration;

mod machine;

use machine::{Limits, SLOTS, Window};

use super::RetryError;
use crate::sync::{AtomicU64, Ordering, SpinMutex};
use crate::time::{Clock, Instant, duration_to_nanos};

/// Something that limits retries: a [`RetryBudget`] (owned, borrowed or in an `Arc`), or
/// [`NoBudget`].
pub trait Budget {
    /// A call was made (once per call, not per attempt).
    fn deposit(&self);
    /// A retry (or a hedge) asks to go: `true` lets it, and spends one retry.
    fn try_withdraw(&self) -> bool;
}

/// No budget: every retry the policy allows may go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoBudget;

impl Budget for NoBudget {
    #[inline]
    fn deposit(&self) {}
    #[inline]
    fn try_withdraw(&self) -> bool {
        true
    }
}

impl<B: Budget + ?Sized> Budget for &B {
    #[inline]
    fn deposit(&self) {
        (**self).deposit()
    }
    fn try_withdraw(&self) -> bool {
        (**self).try_withdraw()
    }
}

#[cfg(target_has_atomic = "ptr")]
impl<B: Budget + ?Sized> Budget for alloc::sync::Arc<B> {
    #[inline]
    fn deposit(&self) {
        (**self).deposit()
    }
    fn try_withdraw(&self) -> bool {
        (**self).try_withdraw()
    }
}

/// A retry budget: over a sliding `window`, retries may be at most `retry_percent` % of
/// the calls made, plus a floor of `min_per_second` retries per second that a quiet
/// client always has.
///
/// * **Shared.** One budget per dependency, borrowed or held by `Arc` by every retry and
///   pipeline that calls it: when the dependency struggles, the fleet's retries stay a
///   bounded share of its load instead of multiplying it.
/// * **Cheap when all is well.** A call adds one to an atomic counter; nothing else
///   happens until a retry asks to go.
/// * **Exact in its window.** The window is cut into ten slots; calls and retries leave
///   it a slot at a time. Calls counted since the last retry are settled into the slot
///   current when the next retry asks (if more than a window passed since the last
///   settlement, only the share of them that fits a window is kept: at a steady rate,
///   the ones still inside it).
/// * **Allocation-free**, and `no_std`.
///
/// Defaults (those of Finagle and tower): 20 %, 10 retries per second, a 10 s window.
///
/// ```
/// use std::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::retry::{Budget, RetryBudget};
///
/// let clock = ManualClock::new();
/// let budget = RetryBudget::builder()
///     .retry_percent(10)
///     .min_per_second(0)
///     .window(Duration::from_secs(10))
///     .build_with(clock.clone())?;
/// for _ in 0..30 {
///     budget.deposit(); // 30 calls earn 3 retries
/// }
/// assert_eq!(budget.available(), 3);
/// assert!((0..3).all(|_| budget.try_withdraw()));
/// assert!(!budget.try_withdraw(), "spent");
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(budget.available(), 0, "the calls left the window with the retries");
/// # Ok::<(), kompoz::retry::RetryError>(())
/// ```
pub struct RetryBudget<C> {
    /// Calls counted since the last settlement.
    pending: AtomicU64,
    /// The window, and when calls were last settled into it.
    window: SpinMutex<(Window, Instant)>,
    limits: Limits,
    window_len: Duration,
    clock: C,
}

impl<C: Clock> RetryBudget<C> {
    /// Retries that may go now.
    pub fn available(&self) -> u64 {
        self.settled(|window, limits, _| {
            let balance = window.balance(limits);
            (window, u64::try_from(balance / 100).unwrap_or(0))
        })
    }

    /// The length of the sliding window.
    pub fn window(&self) -> Duration {
        self.window_len
    }

    /// The clock the window is measured on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Settles the pending calls into the window at the clock's time, then applies `f`
    /// (given that time). The clock is read before the lock is taken: a clock is user code,
    /// which never runs inside a critical section (see `sync.rs`).
    fn settled<R>(&self, f: impl FnOnce(Window, &Limits, Instant) -> (Window, R)) -> R {
        let now = self.clock.now();
        let limits = &self.limits;
        let window_nanos = duration_to_nanos(self.window_len).max(1);
        self.window.with(|(window, last)| {
            let calls = self.pending.swap(0, Ordering::AcqRel);
            let since = duration_to_nanos(now.saturating_duration_since(*last));
            let kept = if since <= window_nanos {
                calls
            } else {
                // At a steady rate, only this share of the calls is still in the window.
                (u128::from(calls) * u128::from(window_nanos) / u128::from(since)) as u64
            };
            *last = now;
            let (next, result) = f(window.deposit(now, kept, limits), limits, now);
            *window = next;
            result
        })
    }
}

impl<C: Clock> Budget for RetryBudget<C> {
    #[inline]
    fn deposit(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    fn try_withdraw(&self) -> bool {
        self.settled(|window, limits, now| window.withdraw(now, limits))
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryBudget<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("retry_percent", &self.limits.earned_per_call)
            .field("window", &self.window_len)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RetryBudget`], validating its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryBudgetBuilder {
    retry_percent: u32,
    min_per_second: u32,
    window: Duration,
}

/// The largest `retry_percent`: a hundred retries per call.
pub const MAX_RETRY_PERCENT: u32 = 10_000;

impl RetryBudgetBuilder {
    /// The defaults: 20 %, 10 per second, a 10 s window.
    pub const fn new() -> Self {
        RetryBudgetBuilder {
            retry_percent: 20,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }

    /// Retries allowed per 100 calls in the window (default 20; at most
    /// [`MAX_RETRY_PERCENT`]).
    pub const fn retry_percent(mut self, percent: u32) -> Self {
        self.retry_percent = percent;
        self
    }

    /// Retries per second allowed whatever the traffic, counted over the window (default
    /// 10): a client that makes few calls can still retry.
    pub const fn min_per_second(mut self, retries: u32) -> Self {
        self.min_per_second = retries;
        self
    }

    /// The sliding window calls and retries are counted over (default 10 s; at least
    /// ten nanoseconds).
    pub const fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Builds a budget that measures its window on `clock`.
    pub fn build_with<C: Clock>(self, clock: C) -> Result<RetryBudget<C>, RetryError> {
        if self.retry_percent > MAX_RETRY_PERCENT {
            return Err(RetryError::TooLarge {
                field: "retry_percent",
                value: u64::from(self.retry_percent),
                max: u64::from(MAX_RETRY_PERCENT),
            });
        }
        let window_nanos = duration_to_nanos(self.window);
        if window_nanos == 0 {
            return Err(RetryError::Zero { field: "window" });
        }
        if window_nanos < SLOTS as u64 {
            return Err(RetryError::TooSmall {
                field: "window (nanoseconds)",
                value: window_nanos,
                min: SLOTS as u64,
            });
        }
        // min_per_second × window, in hundredths of a retry.
        let reserve =
            u128::from(self.min_per_second) * u128::from(window_nanos) * 100 / 1_000_000_000;
        let reserve = u64::try_from(reserve).map_err(|_| RetryError::TooLarge {
            field: "min_per_second",
            value: u64::from(self.min_per_second),
            max: u64::MAX / 100,
        })?;
        let now = clock.now();
        Ok(RetryBudget {
            pending: AtomicU64::new(0),
            window: SpinMutex::new((Window::new(now), now)),
            limits: Limits {
                earned_per_call: u64::from(self.retry_percent),
                reserve,
                slot_nanos: window_nanos / SLOTS as u64,
            },
            window_len: self.window,
            clock,
        })
    }

    /// Builds a budget on [`StdClock`](crate::StdClock).
    #[cfg(feature = "std")]
    pub fn build(self) -> Result<RetryBudget<crate::StdClock>, RetryError> {
        self.build_with(crate::StdClock)
    }
}

impl Default for RetryBudgetBuilder {
    fn default() -> Self {
        RetryBudgetBuilder::new()
    }
}

impl RetryBudget<()> {
    /// A [`RetryBudgetBuilder`] with the defaults.
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder::new()
    }
}

#[cfg(all(test, not(loom), target_has_atomic = "ptr"))]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    const SEC: Duration = Duration::from_secs(1);

    fn budget(clock: &ManualClock, percent: u32, floor: u32) -> RetryBudget<ManualClock> {
        RetryBudget::builder()
            .retry_percent(percent)
            .min_per_second(floor)
            .window(SEC * 10)
            .build_with(clock.clone())
            .unwrap()
    }

    /// A clock that asks the budget it measures how many retries are left whenever it is
    /// read (at most one level deep): legal user code, which would spin for ever if the
    /// budget read its clock under its own lock.
    #[cfg(feature = "std")]
    #[derive(Clone, Default)]
    struct ReentrantClock {
        inner: ManualClock,
        budget: alloc::sync::Arc<std::sync::OnceLock<alloc::sync::Weak<RetryBudget<Self>>>>,
    }

    #[cfg(feature = "std")]
    impl Clock for ReentrantClock {
        fn now(&self) -> Instant {
            std::thread_local!(static INSIDE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) });
            if !INSIDE.with(|inside| inside.replace(true)) {
                if let Some(budget) = self.budget.get().and_then(alloc::sync::Weak::upgrade) {
                    let _ = budget.available();
                }
                INSIDE.with(|inside| inside.set(false));
            }
            self.inner.now()
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_clock_that_reenters_the_budget_runs_outside_its_lock() {
        let clock = ReentrantClock::default();
        let budget = alloc::sync::Arc::new(
            RetryBudget::builder().min_per_second(1).build_with(clock.clone()).unwrap(),
        );
        clock.budget.set(alloc::sync::Arc::downgrade(&budget)).ok().unwrap();
        // On a thread of its own: a regression spins for ever instead of failing.
        let (done, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let withdrawn = budget.try_withdraw();
            done.send((withdrawn, budget.available())).unwrap();
        });
        let answer = answer.recv_timeout(core::time::Duration::from_secs(30));
        assert_eq!(answer, Ok((true, 9)), "the budget spun on its own lock");
    }

    #[test]
    fn refuses_past_its_percentage_and_recovers() {
        let clock = ManualClock::new();
        let b = budget(&clock, 20, 0);
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!((0..30).filter(|_| b.try_withdraw()).count(), 20);
        clock.advance(SEC * 5);
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!((0..30).filter(|_| b.try_withdraw()).count(), 2, "10 new calls earn 2");
        clock.advance(SEC * 6);
        assert_eq!(b.available(), 0, "the first 100 calls left with their 20 retries");
        clock.advance(SEC * 5);
        assert_eq!(b.available(), 0, "and now the 10 calls with their 2 retries");
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!(b.available(), 2, "new calls earn new retries: recovered");
    }

    #[test]
    fn the_floor_lets_a_quiet_client_retry() {
        let clock = ManualClock::new();
        let b = budget(&clock, 20, 1);
        assert_eq!((0..20).filter(|_| b.try_withdraw()).count(), 10, "1 per second over 10 s");
        clock.advance(SEC * 10);
        assert_eq!(b.available(), 10);
    }

    #[test]
    fn calls_from_long_ago_count_only_for_their_share_of_the_window() {
        let clock = ManualClock::new();
        let b = budget(&clock, 100, 0);
        for _ in 0..100 {
            b.deposit();
        }
        clock.advance(SEC * 40);
        assert_eq!(b.available(), 25, "a window's quarter of 40 s of calls");
    }

    #[test]
    fn configuration_is_validated() {
        let clock = ManualClock::new();
        let e = RetryBudget::builder().retry_percent(20_000).build_with(clock.clone());
        assert!(matches!(e, Err(RetryError::TooLarge { field: "retry_percent", .. })));
        let e = RetryBudget::builder().window(Duration::ZERO).build_with(clock.clone());
        assert_eq!(e.unwrap_err(), RetryError::Zero { field: "window" });
        let e = RetryBudget::builder().window(Duration::from_nanos(9)).build_with(clock.clone());
        assert!(matches!(e, Err(RetryError::TooSmall { value: 9, min: 10, .. })));
        let e = RetryBudget::builder()
            .min_per_second(u32::MAX)
            .window(Duration::MAX)
            .build_with(clock.clone());
        assert!(matches!(e, Err(RetryError::TooLarge { field: "min_per_second", .. })));
        let b = RetryBudget::builder().build_with(clock).unwrap();
        assert_eq!(b.window(), SEC * 10);
        assert!(alloc::format!("{b:?}").starts_with("RetryBudget"));
    }

    #[test]
    fn no_budget_always_allows_and_references_forward() {
        assert!(NoBudget.try_withdraw());
        let clock = ManualClock::new();
        let b = alloc::sync::Arc::new(budget(&clock, 0, 0));
        Budget::deposit(&&b);
        assert!(!b.try_withdraw());
    }
}
