//! [`Hedge`]: a second attempt beside a slow first one; the first to succeed wins.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::Poll;
use core::time::Duration;

use super::{Budget, RetryError};
use crate::sync::{AtomicU64, Ordering};
use crate::time::{Instant, Sleep, duration_to_nanos};

/// When a hedge starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HedgeDelay {
    /// This long after the previous attempt started.
    Fixed(Duration),
    /// At the given percentile (1 to 100) of the latencies of the last
    /// [`Latencies::CAPACITY`] calls; `fallback` until [`Latencies::MIN_SAMPLES`] have
    /// been recorded.
    Percentile {
        /// The percentile: 95 starts a hedge once the first attempt is slower than 95 %
        /// of recent calls.
        percentile: u8,
        /// The delay while too few calls have been recorded.
        fallback: Duration,
    },
}

/// The latencies of recent calls, for [`HedgeDelay::Percentile`]: a ring of the last
/// [`CAPACITY`](Latencies::CAPACITY) latencies in atomics. Recording is one atomic add
/// and one store; a percentile is computed (a sort of 64 numbers on the stack) only
/// when a call is slow enough to need its hedge's delay.
pub struct Latencies {
    recorded: AtomicU64,
    ring: [AtomicU64; Latencies::CAPACITY],
}

impl Latencies {
    /// Latencies kept.
    pub const CAPACITY: usize = 64;
    /// Latencies needed before a percentile is trusted.
    pub const MIN_SAMPLES: usize = 8;

    /// An empty record.
    pub fn new() -> Latencies {
        Latencies { recorded: AtomicU64::new(0), ring: core::array::from_fn(|_| AtomicU64::new(0)) }
    }

    /// Records one call's latency.
    pub fn record(&self, latency: Duration) {
        let slot = self.recorded.fetch_add(1, Ordering::Relaxed) as usize % Self::CAPACITY;
        self.ring[slot].store(duration_to_nanos(latency), Ordering::Relaxed);
    }

    /// The `percentile` (1 to 100) of the recorded latencies, or `None` with fewer than
    /// [`MIN_SAMPLES`](Latencies::MIN_SAMPLES).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::retry::Latencies;
    ///
    /// let latencies = Latencies::new();
    /// for ms in 1..=20 {
    ///     latencies.record(Duration::from_millis(ms));
    /// }
    /// assert_eq!(latencies.percentile(90), Some(Duration::from_millis(18)));
    /// assert_eq!(latencies.percentile(100), Some(Duration::from_millis(20)));
    /// ```
    pub fn percentile(&self, percentile: u8) -> Option<Duration> {
        let n = (self.recorded.load(Ordering::Relaxed) as usize).min(Self::CAPACITY);
        if n < Self::MIN_SAMPLES {
            return None;
        }
        let mut sorted = [0u64; Self::CAPACITY];
        for (value, slot) in sorted.iter_mut().zip(&self.ring).take(n) {
            *value = slot.load(Ordering::Relaxed);
        }
        let sorted = &mut sorted[..n];
        sorted.sort_unstable();
        let rank = (usize::from(percentile.clamp(1, 100)) * n).div_ceil(100);
        Some(Duration::from_nanos(sorted[rank.max(1) - 1]))
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl fmt::Debug for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latencies")
            .field("recorded", &self.recorded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Hedging: when an attempt is slow, a second one starts beside it, and the first to
/// succeed wins; the others are dropped (cancelled).
///
/// * After the delay ([`HedgeDelay`]: fixed, or a percentile of recent latencies) with
///   no success yet, one more attempt starts, up to `max_hedges` beyond the first.
/// * An attempt that fails starts the next hedge at once (if one is left); the call fails
///   only when every attempt it started has failed, with the last failure.
/// * Each hedge spends one retry from the [`Budget`], if one is given: hedges add load
///   to a dependency exactly as retries do.
/// * The first attempt lives in the call's future; hedges, when they start, are boxed
///   (a call that needs no hedge allocates nothing).
///
/// ```
/// use std::time::Duration;
/// use kompoz::retry::{Hedge, NoBudget};
/// use kompoz::{ManualClock, Sleep};
///
/// let clock = ManualClock::new();
/// let hedge = Hedge::builder().delay(Duration::from_millis(50)).max_hedges(1).build()?;
/// let attempts = std::cell::Cell::new(0u64);
/// // The first attempt takes 200 ms, the hedge 10 ms.
/// let call = || {
///     attempts.set(attempts.get() + 1);
///     let (n, timer) = (attempts.get(), clock.clone());
///     async move {
///         timer.sleep(Duration::from_millis(if n == 1 { 200 } else { 10 })).await;
///         Ok::<_, ()>(n)
///     }
/// };
/// let hedged = hedge.run(&clock, &NoBudget, call);
/// let mut hedged = std::pin::pin!(hedged);
/// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// use std::future::Future;
/// assert!(hedged.as_mut().poll(&mut cx).is_pending());
/// clock.advance(Duration::from_millis(50)); // the hedge starts
/// assert!(hedged.as_mut().poll(&mut cx).is_pending());
/// clock.advance(Duration::from_millis(10)); // and wins
/// assert_eq!(hedged.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(2)));
/// assert_eq!(clock.pending_timers(), 0, "the first attempt was dropped");
/// # Ok::<(), kompoz::retry::RetryError>(())
/// ```
#[derive(Debug)]
pub struct Hedge {
    delay: HedgeDelay,
    max_hedges: u32,
    latencies: Latencies,
}

impl Hedge {
    /// A [`HedgeBuilder`]: one hedge after the delay you give.
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder { delay: None, max_hedges: 1 }
    }

    /// When hedges start.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }

    /// Attempts beyond the first.
    pub fn max_hedges(&self) -> u32 {
        self.max_hedges
    }

    /// The recent latencies this hedge records (and, with a percentile delay, reads).
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    /// The delay before the next hedge, as things stand.
    fn next_delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(delay) => delay,
            HedgeDelay::Percentile { percentile, fallback } => {
                self.latencies.percentile(percentile).unwrap_or(fallback)
            }
        }
    }

    /// Runs `make()`'s future, with hedges as configured, on `timer`: the plain-future
    /// face. Each hedge spends one retry of `budget`.
    pub fn run<'a, S, B, F, Fut, T, E>(
        &'a self,
        timer: &'a S,
        budget: &'a B,
        make: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        S: Sleep,
        B: Budget + ?Sized,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        hedged(self, timer, budget, make)
    }
}

/// Builds a [`Hedge`], validating its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HedgeBuilder {
    delay: Option<HedgeDelay>,
    max_hedges: u32,
}

impl HedgeBuilder {
    /// Starts a hedge this long after the previous attempt started.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(HedgeDelay::Fixed(delay));
        self
    }

    /// Starts a hedge once the attempt is slower than `percentile` % of recent calls
    /// (1 to 100), or after `fallback` until enough calls were recorded.
    pub fn percentile(mut self, percentile: u8, fallback: Duration) -> Self {
        self.delay = Some(HedgeDelay::Percentile { percentile, fallback });
        self
    }

    /// Attempts beyond the first (default 1; at least 1, at most 16).
    pub fn max_hedges(mut self, hedges: u32) -> Self {
        self.max_hedges = hedges;
        self
    }

    /// Validates the configuration. The delay is required: there is no sensible default.
    pub fn build(self) -> Result<Hedge, RetryError> {
        let Some(delay) = self.delay else {
            return Err(RetryError::Zero { field: "delay (none given)" });
        };
        if let HedgeDelay::Percentile { percentile, .. } = delay {
            if percentile == 0 {
                return Err(RetryError::Zero { field: "percentile" });
            }
            if percentile > 100 {
                return Err(RetryError::TooLarge {
                    field: "percentile",
                    value: u64::from(percentile),
                    max: 100,
                });
            }
        }
        match self.max_hedges {
            0 => Err(RetryError::Zero { field: "max_hedges" }),
            n if n > 16 => {
                Err(RetryError::TooLarge { field: "max_hedges", value: u64::from(n), max: 16 })
            }
            max_hedges => Ok(Hedge { delay, max_hedges, latencies: Latencies::new() }),
        }
    }
}

/// The hedging engine, shared by the plain-future face and the pipeline's layer.
pub(crate) async fn hedged<S, B, A, AF, T, E>(
    hedge: &Hedge,
    timer: &S,
    budget: &B,
    attempt: A,
) -> Result<T, E>
where
    S: Sleep,
    B: Budget + ?Sized,
    A: Fn() -> AF,
    AF: Future<Output = Result<T, E>>,
{
    budget.deposit();
    let mut first = pin!(Some(attempt()));
    // Fast path: the first attempt is ready at once. Nothing is timed or recorded but
    // a zero latency.
    let ready = poll_fn(|cx| match first.as_mut().as_pin_mut() {
        Some(future) => match future.poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => Poll::Ready(None),
        },
        None => Poll::Ready(None),
    })
    .await;
    let mut last_error = match ready {
        Some(Ok(value)) => {
            hedge.latencies.record(Duration::ZERO);
            return Ok(value);
        }
        Some(Err(error)) => {
            first.set(None);
            Some(error)
        }
        None => None,
    };
    let started: Instant = timer.now();
    let mut hedges: Vec<Option<Pin<Box<AF>>>> = Vec::new();
    let mut started_hedges = 0u32;
    let mut launch_now = last_error.is_some();
    let mut next = pin!(None::<S::Timer>);
    poll_fn(move |cx| {
        loop {
            let mut settled = false;
            if let Some(future) = first.as_mut().as_pin_mut() {
                match future.poll(cx) {
                    Poll::Ready(Ok(value)) => {
                        hedge.latencies.record(timer.now().saturating_duration_since(started));
                        return Poll::Ready(Ok(value));
                    }
                    Poll::Ready(Err(error)) => {
                        first.set(None);
                        last_error = Some(error);
                        launch_now = true;
                        settled = true;
                    }
                    Poll::Pending => {}
                }
            }
            for slot in hedges.iter_mut() {
                let Some(future) = slot.as_mut() else { continue };
                match future.as_mut().poll(cx) {
                    Poll::Ready(Ok(value)) => {
                        hedge.latencies.record(timer.now().saturating_duration_since(started));
                        return Poll::Ready(Ok(value));
                    }
                    Poll::Ready(Err(error)) => {
                        *slot = None;
                        last_error = Some(error);
                        launch_now = true;
                        settled = true;
                    }
                    Poll::Pending => {}
                }
            }
            let can_hedge = started_hedges < hedge.max_hedges;
            if can_hedge && !launch_now {
                if next.is_none() {
                    next.set(Some(timer.sleep(hedge.next_delay())));
                }
                if let Some(sleep) = next.as_mut().as_pin_mut() {
                    launch_now = sleep.poll(cx).is_ready();
                }
            }
            if can_hedge && launch_now {
                launch_now = false;
                next.set(None);
                if budget.try_withdraw() {
                    started_hedges += 1;
                    hedges.push(Some(Box::pin(attempt())));
                    continue;
                }
                // Refused by the budget: no more hedges for this call.
                started_hedges = hedge.max_hedges;
                continue;
            }
            let running = first.is_some() || hedges.iter().any(Option::is_some);
            if !running {
                if let Some(error) = last_error.take() {
                    return Poll::Ready(Err(error));
                }
            }
            if settled {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}

#[cfg(all(test, not(loom), target_has_atomic = "ptr"))]
mod tests {
    use super::*;
    use crate::time::{Clock, ManualClock};
    use core::cell::Cell;
    use core::task::{Context, Waker};

    const MS: Duration = Duration::from_millis(1);

    fn poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn percentiles_need_enough_samples_and_use_the_latest() {
        let l = Latencies::new();
        for _ in 0..7 {
            l.record(MS);
        }
        assert_eq!(l.percentile(50), None);
        l.record(MS * 9);
        assert_eq!(l.percentile(100), Some(MS * 9));
        assert_eq!(l.percentile(50), Some(MS));
        for _ in 0..Latencies::CAPACITY {
            l.record(MS * 2);
        }
        assert_eq!(l.percentile(100), Some(MS * 2), "the 9 ms left the ring");
    }

    #[test]
    fn configuration_is_validated() {
        assert_eq!(
            Hedge::builder().build().unwrap_err(),
            RetryError::Zero { field: "delay (none given)" }
        );
        assert!(Hedge::builder().delay(MS).max_hedges(0).build().is_err());
        assert!(Hedge::builder().delay(MS).max_hedges(17).build().is_err());
        assert!(Hedge::builder().percentile(0, MS).build().is_err());
        assert!(Hedge::builder().percentile(101, MS).build().is_err());
        let h = Hedge::builder().percentile(95, MS).max_hedges(2).build().unwrap();
        assert_eq!((h.max_hedges(), h.next_delay()), (2, MS), "the fallback at first");
    }

    #[test]
    fn a_failure_starts_the_next_hedge_at_once_and_all_failing_fails_with_the_last() {
        let clock = ManualClock::new();
        let hedge = Hedge::builder().delay(MS * 100).max_hedges(2).build().unwrap();
        let n = Cell::new(0);
        let call = || {
            n.set(n.get() + 1);
            let (k, timer) = (n.get(), clock.clone());
            async move {
                timer.sleep(MS * 10).await;
                Err::<(), u32>(k)
            }
        };
        let mut f = pin!(hedged(&hedge, &clock, &super::super::NoBudget, call));
        assert!(poll(f.as_mut()).is_pending());
        clock.advance(MS * 10);
        assert!(poll(f.as_mut()).is_pending(), "attempt 1 failed; hedge 1 started at once");
        assert_eq!(n.get(), 2);
        clock.advance(MS * 10);
        assert!(poll(f.as_mut()).is_pending());
        clock.advance(MS * 10);
        assert_eq!(poll(f.as_mut()), Poll::Ready(Err(3)));
        assert_eq!(clock.now(), Instant::ZERO + MS * 30);
    }

    #[test]
    fn a_ready_success_costs_no_timer_and_records_zero() {
        let clock = ManualClock::new();
        let hedge = Hedge::builder().percentile(50, MS).build().unwrap();
        for _ in 0..10 {
            let mut f =
                pin!(hedge.run(&clock, &super::super::NoBudget, || async { Ok::<_, ()>(1) }));
            assert_eq!(poll(f.as_mut()), Poll::Ready(Ok(1)));
        }
        assert_eq!(hedge.latencies().percentile(100), Some(Duration::ZERO));
        assert_eq!(clock.pending_timers(), 0);
    }
}
