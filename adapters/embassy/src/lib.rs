//! # kompoz-embassy
//!
//! [kompoz](https://docs.rs/kompoz)'s resilience primitives on [embassy]'s timers, for
//! `no_std` firmware.
//!
//! This crate re-exports all of `kompoz`, adds [`EmbassyClock`] (a clock and timer backed
//! by `embassy-time`'s `Instant` and `Timer`) and offers constructors that need no timer
//! plumbing: [`timeout()`], [`timeout_at`] and [`with_timeout`]. It is `#![no_std]` and
//! works on whatever executor polls it (embassy's, or any other), as long as the
//! application links an embassy time driver (its HAL's, or `embassy-time`'s `mock-driver`
//! or `std` driver on a host).
//!
//! The core is `no_std` + `alloc`, so a firmware needs a global allocator
//! (`embedded-alloc`, say) even if nothing allocates: timeouts, limits and breakers
//! allocate nothing per call, and a breaker allocates once, when it is built with an
//! `on_state_change` callback (the box).
//!
//! * **Tick rate**: whatever the application chose with `embassy-time`'s `tick-hz-*`
//!   feature ([`embassy_time::TICK_HZ`][tick-hz], 1 MHz by default); nothing is assumed.
//! * **Rounding**: kompoz's [`Instant`] is nanoseconds since boot. A tick count is read as
//!   nanoseconds rounded down, and a deadline becomes the first tick at or after it, so a
//!   timer fires on exactly the first tick at which [`EmbassyClock`] reads its deadline.
//!   At 1 MHz both are exact (a tick is 1000 ns).
//! * **The ends of time**: nothing overflows or panics. At tick rates up to 1 GHz,
//!   embassy's range outlasts kompoz's 584 years: later ticks read [`Instant::MAX`]. At
//!   faster rates embassy's range ends first, and a deadline past it becomes embassy's
//!   last tick ([`embassy_time::Instant::MAX`][embassy-max]), which never comes.
//! * **Cost**: [`EmbassyClock`] is zero-sized and its timer *is* embassy's `Timer`, same
//!   type, same size. Reading the clock is embassy's driver read and one 64-bit
//!   multiplication (plus a division by a constant if the tick rate does not divide
//!   1 GHz); turning a deadline into ticks is a multiplication and a division by a
//!   constant.
//!   A kompoz [`Timeout`] is one `Duration` larger than embassy's `with_timeout` future:
//!   it keeps the duration until its first pending poll and only then reads the clock
//!   and makes the timer, so a future that is ready at once costs neither.
//!
//! ```
//! use core::future::Future;
//! use core::task::{Context, Poll, Waker};
//! use core::time::Duration;
//! use embassy_time::{MockDriver, Timer};
//! use kompoz_embassy::{AsyncCombinator, async_rule, with_timeout};
//!
//! // A sensor that takes 50 ms to answer, read with a 20 ms limit.
//! let read = async_rule(async |celsius: &mut i32| {
//!     Timer::after_millis(50).await;
//!     *celsius = 21;
//!     true
//! });
//! let guarded = with_timeout(read, Duration::from_millis(20)).on_timeout(|c: &mut i32| *c = -1);
//!
//! // On a board the executor polls this; here embassy's mock driver stands in for time.
//! let mut run = core::pin::pin!(guarded.run_owned(0));
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(run.as_mut().poll(&mut cx).is_pending());
//! MockDriver::get().advance(embassy_time::Duration::from_millis(20));
//! assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready((false, -1)));
//! ```
//!
//! On targets without compare-and-swap (`thumbv6m-none-eabi`, `riscv32imc`), enable this
//! crate's `critical-section` feature, as embassy itself requires there; the application
//! provides the critical-section implementation (its HAL, or `cortex-m`'s
//! `critical-section-single-core`).
//!
//! [embassy]: https://embassy.dev
//! [tick-hz]: https://docs.rs/embassy-time/0.5/embassy_time/constant.TICK_HZ.html
//! [embassy-max]: https://docs.rs/embassy-time/0.5/embassy_time/struct.Instant.html#associatedconstant.MAX
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/kompoz-embassy/0.1.0")]

use core::future::IntoFuture;
use core::time::Duration;

pub use kompoz::*;

mod ticks;

use ticks::TickRate;

/// embassy's tick rate, chosen by the application's `tick-hz-*` feature.
const EMBASSY_RATE: TickRate = TickRate::new(embassy_time::TICK_HZ);

/// A [`Clock`] and [`Sleep`] on `embassy-time`: instants are embassy's ticks since boot as
/// nanoseconds, and timers are embassy's own [`Timer`][timer], so they cost exactly what
/// embassy's do and are woken by the application's time driver.
///
/// It has no state (a zero-sized `Copy` value), so breakers, timeouts and limits can
/// each carry their own. [`now_coarse`](Clock::now_coarse) is [`now`](Clock::now):
/// reading embassy's tick counter is already the cheap reading.
///
/// ```
/// use core::time::Duration;
/// use embassy_time::MockDriver;
/// use kompoz_embassy::breaker::{BreakerBuilder, CircuitState};
/// use kompoz_embassy::{Clock, EmbassyClock};
///
/// let start = EmbassyClock.now();
/// MockDriver::get().advance(embassy_time::Duration::from_millis(3));
/// assert_eq!(EmbassyClock.now() - start, Duration::from_millis(3));
///
/// // A breaker that measures its recovery time in embassy time.
/// let breaker = BreakerBuilder::new()
///     .failure_threshold(3)
///     .recovery_timeout(Duration::from_secs(5))
///     .build_with(EmbassyClock)?;
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// # Ok::<(), kompoz_embassy::breaker::BreakerError>(())
/// ```
///
/// [timer]: https://docs.rs/embassy-time/0.5/embassy_time/struct.Timer.html
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EmbassyClock;

impl EmbassyClock {
    /// The kompoz [`Instant`] of an embassy instant: its ticks since boot as nanoseconds,
    /// rounded down, saturating at [`Instant::MAX`].
    ///
    /// ```
    /// use kompoz_embassy::{EmbassyClock, Instant};
    ///
    /// let boot_plus_1ms = embassy_time::Instant::from_millis(1);
    /// assert_eq!(EmbassyClock::from_embassy(boot_plus_1ms), Instant::from_nanos(1_000_000));
    /// assert_eq!(EmbassyClock::from_embassy(embassy_time::Instant::MAX), Instant::MAX);
    /// ```
    #[inline]
    pub fn from_embassy(instant: embassy_time::Instant) -> Instant {
        Instant::from_nanos(EMBASSY_RATE.to_nanos(instant.as_ticks()))
    }

    /// The first embassy instant at which [`EmbassyClock`] reads `instant` or later: the
    /// deadline rounded up to a whole tick, saturating at
    /// [`embassy_time::Instant::MAX`][embassy-max].
    ///
    /// ```
    /// use kompoz_embassy::{EmbassyClock, Instant};
    ///
    /// // At embassy's default 1 MHz, 1.5 µs lies between ticks 1 and 2.
    /// let deadline = Instant::from_nanos(1_500);
    /// assert_eq!(EmbassyClock::to_embassy(deadline), embassy_time::Instant::from_ticks(2));
    /// assert!(EmbassyClock::from_embassy(EmbassyClock::to_embassy(deadline)) >= deadline);
    /// ```
    ///
    /// [embassy-max]: https://docs.rs/embassy-time/0.5/embassy_time/struct.Instant.html#associatedconstant.MAX
    #[inline]
    pub fn to_embassy(instant: Instant) -> embassy_time::Instant {
        embassy_time::Instant::from_ticks(EMBASSY_RATE.to_ticks_ceil(instant.as_nanos()))
    }
}

impl Clock for EmbassyClock {
    #[inline]
    fn now(&self) -> Instant {
        EmbassyClock::from_embassy(embassy_time::Instant::now())
    }
}

impl Sleep for EmbassyClock {
    type Timer = embassy_time::Timer;

    /// embassy's [`Timer::at`][at] the first tick that reads `deadline`. Like every embassy
    /// timer, it yields to the executor once before it completes, even when the deadline
    /// has passed.
    ///
    /// [at]: https://docs.rs/embassy-time/0.5/embassy_time/struct.Timer.html#method.at
    #[inline]
    fn sleep_until(&self, deadline: Instant) -> embassy_time::Timer {
        embassy_time::Timer::at(EmbassyClock::to_embassy(deadline))
    }
}

/// [`kompoz::timeout()`] on embassy's timers: runs `future` with a time limit of
/// `duration`, counted from its first poll. [`Duration::MAX`] saturates (never fires)
/// rather than overflowing, unlike `embassy_time::Timer::after`.
///
/// ```
/// use core::future::Future;
/// use core::task::{Context, Poll, Waker};
/// use core::time::Duration;
/// use embassy_time::MockDriver;
///
/// let hang = core::future::pending::<()>();
/// let mut limited = core::pin::pin!(kompoz_embassy::timeout(Duration::from_millis(5), hang));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(limited.as_mut().poll(&mut cx).is_pending());
/// MockDriver::get().advance(embassy_time::Duration::from_millis(5));
/// assert_eq!(limited.as_mut().poll(&mut cx), Poll::Ready(Err(kompoz_embassy::Elapsed::new())));
/// ```
pub fn timeout<F: IntoFuture>(
    duration: Duration,
    future: F,
) -> Timeout<EmbassyClock, F::IntoFuture> {
    kompoz::timeout(EmbassyClock, duration, future)
}

/// [`kompoz::timeout_at()`] on embassy's timers: runs `future` until `deadline` of
/// [`EmbassyClock`] (see [`EmbassyClock::from_embassy`] to start from an embassy instant).
///
/// ```
/// use core::future::Future;
/// use core::task::{Context, Waker};
/// use kompoz_embassy::{EmbassyClock, timeout_at};
///
/// let deadline = EmbassyClock::from_embassy(embassy_time::Instant::now())
///     + core::time::Duration::from_millis(10);
/// let mut ready = core::pin::pin!(timeout_at(deadline, async { 7 }));
/// let polled = ready.as_mut().poll(&mut Context::from_waker(Waker::noop()));
/// assert_eq!(polled, core::task::Poll::Ready(Ok(7)));
/// ```
pub fn timeout_at<F: IntoFuture>(
    deadline: Instant,
    future: F,
) -> Timeout<EmbassyClock, F::IntoFuture> {
    kompoz::timeout_at(EmbassyClock, deadline, future)
}

/// kompoz's `with_timeout(rule, timeout)` on embassy's timers; see
/// [`kompoz::with_timeout_on`] and the example at the top of this crate.
pub fn with_timeout<R>(rule: R, duration: Duration) -> WithTimeout<R, EmbassyClock> {
    kompoz::with_timeout_on(EmbassyClock, rule, duration)
}
