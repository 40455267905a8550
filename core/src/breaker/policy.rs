//! The policies a breaker is built with: what trips a closed circuit ([`FailureRate`], or
//! kompoz's consecutive failures) and how long it stays open ([`BreakDuration`]).
//!
//! Both are plain values, validated when the breaker is built; the machinery that runs
//! them lives in `window/` and `breaks.rs`.

use core::time::Duration;

use super::BreakerError;
use super::circuit::nanos;

/// The longest count window: a window keeps one byte per call.
pub const MAX_WINDOW_CALLS: u32 = 1 << 20;
/// The most buckets a time window can have.
pub const MAX_BUCKETS: u32 = 1024;

/// Trip on the *rate* of failures (and, if asked, of slow calls) over a window of recent
/// calls, instead of on consecutive failures: what resilience4j and Polly users expect.
///
/// * **The window.** [`over_calls(n)`](FailureRate::over_calls): the last `n` calls of the
///   current closed period (resilience4j's count-based window).
///   [`over_time(span)`](FailureRate::over_time): the calls of the last `span`, kept in
///   [`buckets`](FailureRate::buckets) (10 by default) so that outcomes leave the window
///   a bucket at a time (resilience4j's time-based window, Polly's sampling duration).
///   Each closed period starts with an empty window. What counts: calls admitted in the
///   current closed period that ended with a verdict (`Ignore`d, cancelled and panicked
///   calls count in no window); outcomes of calls admitted before the circuit last changed
///   state are late and count in none.
/// * **The rule.** When a failure or a slow call is recorded, and the window holds at
///   least [`minimum_calls`](FailureRate::minimum_calls), the circuit opens if failures
///   make up at least [`threshold`](FailureRate::threshold) of the window's calls, or slow
///   calls at least the slow-call threshold (Polly's rule: a success never opens a
///   circuit).
/// * **Slow calls** ([`slow_calls`](FailureRate::slow_calls)): a call (success or failure)
///   that took at least `slower_than` is slow. Calls are timed on the breaker's coarse
///   clock ([`Clock::now_coarse`](crate::Clock::now_coarse)), read when the call is
///   admitted and when it ends: about 2 ns a reading on Linux, with the coarse clock's
///   precision (a kernel tick or two, a few milliseconds; exact on a `ManualClock`).
///   Without `slow_calls`, calls are not timed at all.
/// * **Half-open** works as under every policy: `half_open_max_calls` probes,
///   `success_threshold` successes close the circuit, a failed probe opens it again, and
///   so does a slow probe.
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::{CircuitBreaker, CircuitState, FailureRate};
///
/// let breaker = CircuitBreaker::builder()
///     .trip_on(FailureRate::over_calls(10).minimum_calls(5).threshold(0.5))
///     .build()?;
/// for _ in 0..4 {
///     breaker.try_acquire()?.failure();
/// }
/// assert_eq!(breaker.state(), CircuitState::Closed, "four calls are fewer than the minimum");
/// breaker.try_acquire()?.failure();
/// assert_eq!(breaker.state(), CircuitState::Open, "five failures of five calls");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureRate {
    window: Span,
    minimum_calls: Option<u32>,
    threshold: f64,
    slow: Option<(Duration, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Span {
    Calls(u32),
    Time { span: Duration, buckets: u32 },
}

impl FailureRate {
    /// A window of the last `calls` calls. `minimum_calls` defaults to `calls` (the
    /// window is judged once full), `threshold` to 0.5.
    ///
    /// ```
    /// use kompoz::breaker::FailureRate;
    ///
    /// let policy = FailureRate::over_calls(100).minimum_calls(20).threshold(0.25);
    /// ```
    pub const fn over_calls(calls: u32) -> FailureRate {
        FailureRate { window: Span::Calls(calls), minimum_calls: None, threshold: 0.5, slow: None }
    }

    /// A window of the calls of the last `span`, in 10 buckets of `span / 10` (see
    /// [`buckets`](FailureRate::buckets)). `minimum_calls` defaults to 10, `threshold` to
    /// 0.5.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::FailureRate;
    ///
    /// let policy = FailureRate::over_time(Duration::from_secs(30)).minimum_calls(100);
    /// ```
    pub const fn over_time(span: Duration) -> FailureRate {
        FailureRate {
            window: Span::Time { span, buckets: 10 },
            minimum_calls: None,
            threshold: 0.5,
            slow: None,
        }
    }

    /// For a time window: how many buckets it is kept in (1 to [`MAX_BUCKETS`]). Outcomes
    /// leave the window a whole bucket at a time: with 10 buckets over 30 s, an outcome
    /// counts for between 27 and 30 s. Ignored by a count window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::FailureRate;
    ///
    /// // Outcomes leave a 60 s window second by second.
    /// let policy = FailureRate::over_time(Duration::from_secs(60)).buckets(60);
    /// ```
    pub const fn buckets(mut self, buckets: u32) -> FailureRate {
        if let Span::Time { span, .. } = self.window {
            self.window = Span::Time { span, buckets };
        }
        self
    }

    /// The fewest calls the window must hold before its rates are judged (at least 1; for
    /// a count window, at most its size).
    ///
    /// ```
    /// use kompoz::breaker::FailureRate;
    ///
    /// // One failure in a thousand calls should not open a circuit; five in a row at
    /// // 3 a.m. may.
    /// let policy = FailureRate::over_calls(1000).minimum_calls(5).threshold(0.9);
    /// ```
    pub const fn minimum_calls(mut self, calls: u32) -> FailureRate {
        self.minimum_calls = Some(calls);
        self
    }

    /// The failure ratio, in (0, 1], that opens the circuit (default 0.5).
    ///
    /// ```
    /// use kompoz::breaker::FailureRate;
    ///
    /// let policy = FailureRate::over_calls(20).threshold(0.1);
    /// ```
    pub const fn threshold(mut self, ratio: f64) -> FailureRate {
        self.threshold = ratio;
        self
    }

    /// Counts calls that take at least `slower_than` as slow, and opens the circuit when
    /// slow calls make up at least `ratio` (in (0, 1]) of the window, whether or not they
    /// failed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::FailureRate;
    ///
    /// let policy = FailureRate::over_calls(50).slow_calls(Duration::from_secs(2), 0.8);
    /// ```
    pub const fn slow_calls(mut self, slower_than: Duration, ratio: f64) -> FailureRate {
        self.slow = Some((slower_than, ratio));
        self
    }

    /// Checks every field; the validated form.
    pub(crate) fn validate(self) -> Result<RateConfig, BreakerError> {
        let ratio = |field: &'static str, value: f64| {
            // NaN fails both comparisons.
            if value > 0.0 && value <= 1.0 {
                Ok(value)
            } else {
                Err(BreakerError::Ratio { field, value })
            }
        };
        let threshold = ratio("threshold", self.threshold)?;
        let slow = match self.slow {
            None => None,
            Some((duration, slow_ratio)) => {
                if duration.is_zero() {
                    return Err(BreakerError::ZeroDuration { field: "slow_calls.slower_than" });
                }
                Some((nanos(duration), ratio("slow_calls.ratio", slow_ratio)?))
            }
        };
        let (window, minimum_calls) = match self.window {
            Span::Calls(calls) => {
                if calls == 0 {
                    return Err(BreakerError::Zero { field: "over_calls" });
                }
                if calls > MAX_WINDOW_CALLS {
                    return Err(BreakerError::TooLarge {
                        field: "over_calls",
                        value: calls,
                        max: MAX_WINDOW_CALLS,
                    });
                }
                let minimum = self.minimum_calls.unwrap_or(calls);
                if minimum > calls {
                    return Err(BreakerError::MinimumAboveWindow {
                        minimum_calls: minimum,
                        window_calls: calls,
                    });
                }
                (WindowConfig::Calls(calls), minimum)
            }
            Span::Time { span, buckets } => {
                if span.is_zero() {
                    return Err(BreakerError::ZeroDuration { field: "over_time" });
                }
                if buckets == 0 {
                    return Err(BreakerError::Zero { field: "buckets" });
                }
                let span_nanos = nanos(span);
                let max = MAX_BUCKETS.min(u32::try_from(span_nanos).unwrap_or(u32::MAX));
                if buckets > max {
                    return Err(BreakerError::TooLarge { field: "buckets", value: buckets, max });
                }
                (
                    WindowConfig::Time { bucket: span_nanos / u64::from(buckets), buckets },
                    self.minimum_calls.unwrap_or(10),
                )
            }
        };
        if minimum_calls == 0 {
            return Err(BreakerError::Zero { field: "minimum_calls" });
        }
        Ok(RateConfig { window, minimum_calls, threshold, slow })
    }
}

/// A validated [`FailureRate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RateConfig {
    pub(crate) window: WindowConfig,
    pub(crate) minimum_calls: u32,
    pub(crate) threshold: f64,
    /// `slower_than` in nanoseconds, and the ratio.
    pub(crate) slow: Option<(u64, f64)>,
}

/// A validated window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowConfig {
    /// The last this many calls.
    Calls(u32),
    /// `buckets` buckets of `bucket` nanoseconds each.
    Time { bucket: u64, buckets: u32 },
}

/// How long an opened circuit stays open before it lets a probe in: fixed (kompoz's
/// `recovery_timeout`), or growing while the dependency stays down (Polly's
/// `BreakDurationGenerator`).
///
/// * [`fixed(d)`](BreakDuration::fixed): every break is `d`.
/// * [`exponential(initial, max)`](BreakDuration::exponential): the first opening after
///   the circuit was closed breaks for `initial`, and each further opening (a failed
///   probe) for twice the previous break, up to `max`. Closing the circuit (by probes or
///   `reset`) starts again from `initial`; a `force_open` is not an opening that grows it.
/// * [`jitter(ratio, seed)`](BreakDuration::jitter): each break is shortened by a random
///   amount up to `ratio` of it, from a small PRNG (`fastrand`) seeded with `seed`, so
///   that breakers opened together do not all probe at once; the same seed gives the same
///   breaks, for reproducible tests.
///
/// The break of the current (or last) open period is in
/// [`BreakerStats::break_duration`](super::BreakerStats::break_duration).
///
/// ```
/// use std::time::Duration;
/// use kompoz::{ManualClock, breaker::{BreakDuration, BreakerBuilder}};
///
/// let clock = ManualClock::new();
/// let breaker = BreakerBuilder::new()
///     .failure_threshold(1)
///     .break_duration(BreakDuration::exponential(Duration::from_secs(1), Duration::from_secs(8)))
///     .build_with(clock.clone())?;
/// breaker.try_acquire()?.failure();
/// assert_eq!(breaker.stats().break_duration, Duration::from_secs(1));
/// clock.advance(Duration::from_secs(1));
/// breaker.try_acquire()?.failure(); // the probe fails
/// assert_eq!(breaker.stats().break_duration, Duration::from_secs(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakDuration {
    initial: Duration,
    max: Duration,
    jitter: Option<(f64, u64)>,
}

impl BreakDuration {
    /// Every break is `duration` (kompoz's `recovery_timeout`). Zero lets the next call
    /// probe at once; [`Duration::MAX`] keeps the circuit open until `reset`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::{BreakDuration, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .break_duration(BreakDuration::fixed(Duration::from_secs(10)))
    ///     .build()?;
    /// assert_eq!(breaker.recovery_timeout(), Duration::from_secs(10));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub const fn fixed(duration: Duration) -> BreakDuration {
        BreakDuration { initial: duration, max: duration, jitter: None }
    }

    /// `initial` for the first opening, doubling with each consecutive opening, up to
    /// `max` (`initial` must be longer than zero and `max` at least `initial`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::BreakDuration;
    ///
    /// // 1, 2, 4, 8, 8, ... seconds.
    /// let breaks = BreakDuration::exponential(Duration::from_secs(1), Duration::from_secs(8));
    /// ```
    pub const fn exponential(initial: Duration, max: Duration) -> BreakDuration {
        BreakDuration { initial, max, jitter: None }
    }

    /// Shortens each break by a random amount up to `ratio` (in (0, 1]) of it, drawn from
    /// a PRNG seeded with `seed`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::BreakDuration;
    ///
    /// // Breaks of 7.5 to 10 s, different for breakers given different seeds.
    /// let breaks = BreakDuration::fixed(Duration::from_secs(10)).jitter(0.25, 42);
    /// ```
    pub const fn jitter(mut self, ratio: f64, seed: u64) -> BreakDuration {
        self.jitter = Some((ratio, seed));
        self
    }

    pub(crate) fn validate(self) -> Result<BreakConfig, BreakerError> {
        if self.max != self.initial {
            if self.initial.is_zero() {
                return Err(BreakerError::ZeroDuration { field: "break_duration.initial" });
            }
            if self.max < self.initial {
                return Err(BreakerError::MaxBelowInitial { initial: self.initial, max: self.max });
            }
        }
        let (jitter, seed) = match self.jitter {
            None => (0.0, 0),
            Some((ratio, seed)) if ratio > 0.0 && ratio <= 1.0 => (ratio, seed),
            Some((ratio, _)) => return Err(BreakerError::Ratio { field: "jitter", value: ratio }),
        };
        Ok(BreakConfig { initial: nanos(self.initial), max: nanos(self.max), jitter, seed })
    }
}

/// A validated [`BreakDuration`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BreakConfig {
    pub(crate) initial: u64,
    pub(crate) max: u64,
    /// 0: no jitter.
    pub(crate) jitter: f64,
    pub(crate) seed: u64,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named_with_its_value() {
        let err = |rate: FailureRate| rate.validate().unwrap_err();
        assert_eq!(err(FailureRate::over_calls(0)), BreakerError::Zero { field: "over_calls" });
        assert_eq!(
            err(FailureRate::over_calls(MAX_WINDOW_CALLS + 1)),
            BreakerError::TooLarge {
                field: "over_calls",
                value: MAX_WINDOW_CALLS + 1,
                max: MAX_WINDOW_CALLS
            }
        );
        assert_eq!(
            err(FailureRate::over_calls(10).minimum_calls(11)),
            BreakerError::MinimumAboveWindow { minimum_calls: 11, window_calls: 10 }
        );
        assert_eq!(
            err(FailureRate::over_calls(10).minimum_calls(0)),
            BreakerError::Zero { field: "minimum_calls" }
        );
        for bad in [0.0, -0.5, 1.5, f64::INFINITY] {
            assert_eq!(
                err(FailureRate::over_calls(10).threshold(bad)),
                BreakerError::Ratio { field: "threshold", value: bad }
            );
        }
        assert!(matches!(
            err(FailureRate::over_calls(10).threshold(f64::NAN)),
            BreakerError::Ratio { field: "threshold", value } if value.is_nan()
        ));
        let second = Duration::from_secs(1);
        assert_eq!(
            err(FailureRate::over_calls(10).slow_calls(second, 0.0)),
            BreakerError::Ratio { field: "slow_calls.ratio", value: 0.0 }
        );
        assert_eq!(
            err(FailureRate::over_calls(10).slow_calls(Duration::ZERO, 0.5)),
            BreakerError::ZeroDuration { field: "slow_calls.slower_than" }
        );
        assert_eq!(
            err(FailureRate::over_time(Duration::ZERO)),
            BreakerError::ZeroDuration { field: "over_time" }
        );
        assert_eq!(
            err(FailureRate::over_time(second).buckets(0)),
            BreakerError::Zero { field: "buckets" }
        );
        assert_eq!(
            err(FailureRate::over_time(second).buckets(MAX_BUCKETS + 1)),
            BreakerError::TooLarge { field: "buckets", value: MAX_BUCKETS + 1, max: MAX_BUCKETS }
        );
        assert_eq!(
            err(FailureRate::over_time(Duration::from_nanos(5)).buckets(6)),
            BreakerError::TooLarge { field: "buckets", value: 6, max: 5 }
        );
        let bad_break = |b: BreakDuration| b.validate().unwrap_err();
        assert_eq!(
            bad_break(BreakDuration::exponential(Duration::ZERO, second)),
            BreakerError::ZeroDuration { field: "break_duration.initial" }
        );
        assert_eq!(
            bad_break(BreakDuration::exponential(second, second / 2)),
            BreakerError::MaxBelowInitial { initial: second, max: second / 2 }
        );
        assert_eq!(
            bad_break(BreakDuration::fixed(second).jitter(1.01, 7)),
            BreakerError::Ratio { field: "jitter", value: 1.01 }
        );
    }

    #[test]
    fn defaults_and_limits_are_what_the_docs_say() {
        let count = FailureRate::over_calls(20).validate().unwrap();
        assert_eq!(
            (count.window, count.minimum_calls, count.threshold),
            (WindowConfig::Calls(20), 20, 0.5)
        );
        let time = FailureRate::over_time(Duration::from_secs(30)).validate().unwrap();
        let tenth = Duration::from_secs(3).as_nanos() as u64;
        assert_eq!(
            (time.window, time.minimum_calls),
            (WindowConfig::Time { bucket: tenth, buckets: 10 }, 10)
        );
        assert!(FailureRate::over_calls(MAX_WINDOW_CALLS).threshold(1.0).validate().is_ok());
        assert!(FailureRate::over_time(Duration::from_nanos(5)).buckets(5).validate().is_ok());
        let fixed = BreakDuration::fixed(Duration::ZERO).validate().unwrap();
        assert_eq!((fixed.initial, fixed.max, fixed.jitter), (0, 0, 0.0));
        assert_eq!(
            BreakDuration::exponential(Duration::MAX, Duration::MAX).validate().unwrap().max,
            u64::MAX
        );
    }
}
