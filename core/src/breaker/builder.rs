//! [`BreakerBuilder`]: a breaker's configuration, validated when built.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use core::fmt;
use core::time::Duration;

use super::extras::Extras;
use super::machine::{Limits, MAX_COUNT, Rule};
use super::policy::{BreakConfig, RateConfig};
use super::{
    BreakDuration, BreakerError, BreakerStats, CircuitBreaker, CircuitState,
    DEFAULT_HALF_OPEN_MAX_WAIT, DEFAULT_RECOVERY_TIMEOUT, FailureRate,
};
use crate::events::Listener;
use crate::time::Clock;

/// Configures a [`CircuitBreaker`] with kompoz's parameter names and defaults, and
/// validates the configuration when it is built: a zero or oversized count is a
/// [`BreakerError`] that names the field, never a panic or a silent default.
///
/// | parameter | default | meaning |
/// | --- | --- | --- |
/// | `failure_threshold` | 5 | consecutive failures in the closed state that open it |
/// | `trip_on` | (consecutive failures) | a [`FailureRate`] policy instead |
/// | `recovery_timeout` | 30 s | how long it stays open before letting a probe in |
/// | `break_duration` | `recovery_timeout` | a [`BreakDuration`] that may grow instead |
/// | `half_open_max_calls` | 1 | probes let in at once; more are rejected, not queued |
/// | `success_threshold` | `half_open_max_calls` | successful probes that close it |
/// | `half_open_max_wait` | 60 s | how long a probe may hold its slot before it is presumed hung |
/// | `name` | (none) | the name its events, metrics and `Debug` carry |
/// | `listener` | (none) | an events [`Listener`] for its transitions and rejections |
///
/// ```
/// use std::time::Duration;
/// use kompoz::breaker::{BreakerError, CircuitBreaker};
///
/// let breaker = CircuitBreaker::builder()
///     .failure_threshold(3)
///     .recovery_timeout(Duration::from_secs(10))
///     .half_open_max_calls(2)
///     .on_state_change(|old, new, stats| println!("{old} -> {new}, {} failures so far", stats.total_failures))
///     .build()?;
///
/// assert_eq!(
///     CircuitBreaker::builder().failure_threshold(0).build().unwrap_err(),
///     BreakerError::Zero { field: "failure_threshold" },
/// );
/// # Ok::<(), BreakerError>(())
/// ```
pub struct BreakerBuilder {
    /// `None`: kompoz's default of 5, unless a rate policy replaces the rule.
    failure_threshold: Option<u32>,
    rate: Option<FailureRate>,
    breaks: BreakDuration,
    half_open_max_calls: u32,
    success_threshold: Option<u32>,
    half_open_max_wait: Duration,
    /// The name, the events listener and `on_state_change`.
    extras: Extras,
}

impl BreakerBuilder {
    /// kompoz's defaults: 5 failures, 30 s, 1 probe, 1 success; probes presumed hung after
    /// a minute.
    ///
    /// ```
    /// use kompoz::{ManualClock, breaker::BreakerBuilder};
    ///
    /// // Without `std`, or on a clock of your own: `build_with(clock)`.
    /// let breaker = BreakerBuilder::new().failure_threshold(2).build_with(ManualClock::new())?;
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn new() -> Self {
        BreakerBuilder {
            failure_threshold: None,
            rate: None,
            breaks: BreakDuration::fixed(DEFAULT_RECOVERY_TIMEOUT),
            half_open_max_calls: 1,
            success_threshold: None,
            half_open_max_wait: DEFAULT_HALF_OPEN_MAX_WAIT,
            extras: Extras::default(),
        }
    }

    /// Consecutive failures in the closed state that open the circuit (default 5).
    ///
    /// ```
    /// use kompoz::breaker::{CircuitBreaker, CircuitState};
    ///
    /// let breaker = CircuitBreaker::builder().failure_threshold(2).build()?;
    /// breaker.try_acquire()?.failure();
    /// breaker.try_acquire()?.success(); // a success ends the streak
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(breaker.state(), CircuitState::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = Some(failures);
        self
    }

    /// Trips on a failure (and slow-call) rate over a window of calls instead of on
    /// consecutive failures (see [`FailureRate`]); `failure_threshold` must then not be
    /// given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::{CircuitBreaker, FailureRate};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .trip_on(
    ///         FailureRate::over_time(Duration::from_secs(60))
    ///             .minimum_calls(20)
    ///             .threshold(0.5)
    ///             .slow_calls(Duration::from_secs(2), 0.8),
    ///     )
    ///     .build()?;
    /// assert_eq!(breaker.stats().window_calls, 0);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn trip_on(mut self, rate: FailureRate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// How long the circuit stays open before it lets a probe in (default 30 s). Zero
    /// lets the next call probe at once; [`Duration::MAX`] keeps it open until `reset`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::{ManualClock, breaker::{BreakerBuilder, CircuitState}};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = BreakerBuilder::new()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::from_secs(10))
    ///     .build_with(clock.clone())?;
    /// breaker.try_acquire()?.failure();
    /// clock.advance(Duration::from_secs(10));
    /// assert!(breaker.try_acquire()?.is_probe());
    /// assert_eq!(breaker.state(), CircuitState::HalfOpen);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.breaks = BreakDuration::fixed(timeout);
        self
    }

    /// How long each opening lasts: fixed, or growing with consecutive openings (see
    /// [`BreakDuration`]). Replaces `recovery_timeout` (the last one given wins: they are
    /// two ways to say the same thing).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::{BreakDuration, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .break_duration(
    ///         BreakDuration::exponential(Duration::from_secs(1), Duration::from_secs(60))
    ///             .jitter(0.2, 7),
    ///     )
    ///     .build()?;
    /// assert_eq!(breaker.recovery_timeout(), Duration::from_secs(1), "the first break");
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn break_duration(mut self, breaks: BreakDuration) -> Self {
        self.breaks = breaks;
        self
    }

    /// Probes let in at once while half-open (default 1); further calls are rejected.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::ZERO)
    ///     .half_open_max_calls(2)
    ///     .build()?;
    /// breaker.try_acquire()?.failure();
    /// let (first, second) = (breaker.try_acquire()?, breaker.try_acquire()?);
    /// assert!(first.is_probe() && second.is_probe());
    /// assert!(breaker.try_acquire().is_err(), "a third is rejected, not queued");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn half_open_max_calls(mut self, probes: u32) -> Self {
        self.half_open_max_calls = probes;
        self
    }

    /// Successful probes that close the circuit (default: `half_open_max_calls`, as in
    /// kompoz). A probe that finishes frees its slot, so this may exceed
    /// `half_open_max_calls`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::breaker::{CircuitBreaker, CircuitState};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::ZERO)
    ///     .success_threshold(2)
    ///     .build()?;
    /// breaker.try_acquire()?.failure();
    /// breaker.try_acquire()?.success();
    /// assert_eq!(breaker.state(), CircuitState::HalfOpen, "one more probe to go");
    /// breaker.try_acquire()?.success();
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = Some(successes);
        self
    }

    /// How long a half-open probe may hold its slot (default one minute, like
    /// resilience4j's `maxWaitDurationInHalfOpenState`, except that it bounds the probes,
    /// not the state). Once every probe in flight has held its slot this long, the next
    /// call is admitted as the first probe of a fresh half-open period: the old probes'
    /// slots are dropped and their outcomes, if they ever come, are late. A probe that
    /// hangs (no timeout around it) or a guard that is leaked therefore delays recovery by
    /// this much at most. Must be longer than zero; [`Duration::MAX`] never presumes a
    /// probe hung.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kompoz::{ManualClock, breaker::BreakerBuilder};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = BreakerBuilder::new()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::ZERO)
    ///     .half_open_max_wait(Duration::from_secs(5))
    ///     .build_with(clock.clone())?;
    /// breaker.try_acquire()?.failure();
    /// std::mem::forget(breaker.try_acquire()?); // a probe that never answers
    /// assert!(breaker.try_acquire().is_err());
    /// clock.advance(Duration::from_secs(5));
    /// assert!(breaker.try_acquire()?.is_probe(), "the hung probe's slot is given to a new one");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn half_open_max_wait(mut self, wait: Duration) -> Self {
        self.half_open_max_wait = wait;
        self
    }

    /// Calls `callback(old, new, stats)` after each transition: once per transition, by
    /// the thread that made it, after it is committed, outside any lock. The callback may
    /// call back into the breaker. If it panics, the panic propagates to the caller whose
    /// call made the transition; the breaker stays consistent and counts no failure.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use kompoz::breaker::{CircuitBreaker, CircuitState};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_threshold(1)
    ///     .on_state_change(move |old, new, _stats| log.lock().unwrap().push((old, new)))
    ///     .build()?;
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(*seen.lock().unwrap(), [(CircuitState::Closed, CircuitState::Open)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(CircuitState, CircuitState, &BreakerStats) + Send + Sync + 'static,
    {
        self.extras.on_state_change = Some(Box::new(callback));
        self
    }

    /// Names the breaker: its events carry the name, so the `tracing` feature's events
    /// have it as their `name` field and the `metrics` feature's series as their `name`
    /// label (`kompoz_breaker_transitions_total{name="payments",..}`); its `Debug` shows
    /// it, and [`CircuitBreaker::name`] returns it. Costs nothing per call: the name sits
    /// in a box beside `on_state_change`, read at transitions and rejections only.
    ///
    /// ```
    /// use kompoz::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().name("payments").build()?;
    /// assert_eq!(breaker.name(), Some("payments"));
    /// let tenant = 42;
    /// let owned = CircuitBreaker::builder().name(format!("tenant-{tenant}")).build()?;
    /// assert_eq!(owned.name(), Some("tenant-42"));
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.extras.name = Some(name.into());
        self
    }

    /// Gives the breaker an events [`Listener`]: it hears each transition
    /// ([`EventKind::Transition`](crate::events::EventKind::Transition)) and each
    /// rejection ([`EventKind::Rejected`](crate::events::EventKind::Rejected)), with the
    /// breaker's name, after the change is committed, outside any lock, on the thread
    /// whose call caused it; nothing is reported for a call that passes while closed. A
    /// transition's event comes before `on_state_change` is called. If the listener
    /// panics, the panic reaches that caller and the breaker stays consistent, as for
    /// `on_state_change`. With the `tracing` or `metrics` feature the events also go
    /// there, listener or not.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use kompoz::breaker::{CircuitBreaker, CircuitState};
    /// use kompoz::events::{Event, EventKind};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let breaker = CircuitBreaker::builder()
    ///     .name("payments")
    ///     .failure_threshold(1)
    ///     .listener(move |event: &Event<'_>| {
    ///         log.lock().unwrap().push((event.source.name.to_string(), event.kind));
    ///     })
    ///     .build()?;
    /// breaker.try_acquire()?.failure();
    /// assert!(breaker.try_acquire().is_err());
    /// let opened = EventKind::Transition { from: CircuitState::Closed, to: CircuitState::Open };
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0], ("payments".to_string(), opened));
    /// assert!(matches!(seen[1].1, EventKind::Rejected(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listener(mut self, listener: impl Listener + 'static) -> Self {
        self.extras.listener = Some(Box::new(listener));
        self
    }

    /// Builds a breaker that measures time on `clock`.
    ///
    /// ```
    /// use kompoz::{ManualClock, breaker::{BreakerBuilder, BreakerError}};
    ///
    /// let breaker = BreakerBuilder::new().build_with(ManualClock::new())?;
    /// assert_eq!(
    ///     BreakerBuilder::new().half_open_max_calls(0).build_with(ManualClock::new()).unwrap_err(),
    ///     BreakerError::Zero { field: "half_open_max_calls" },
    /// );
    /// # Ok::<(), BreakerError>(())
    /// ```
    pub fn build_with<C: Clock>(self, clock: C) -> Result<CircuitBreaker<C>, BreakerError> {
        let config = self.validate()?;
        Ok(CircuitBreaker::from_config(config, clock, self.extras))
    }

    /// Checks every setting: the configuration a breaker (or a map of them) is built from.
    pub(crate) fn validate(&self) -> Result<Config, BreakerError> {
        let count = |field: &'static str, value: u32| match value {
            0 => Err(BreakerError::Zero { field }),
            value if value > MAX_COUNT => {
                Err(BreakerError::TooLarge { field, value, max: MAX_COUNT })
            }
            value => Ok(value),
        };
        let (rule, rate) = match (self.rate, self.failure_threshold) {
            (Some(_), Some(_)) => {
                return Err(BreakerError::Conflict { field: "failure_threshold", with: "trip_on" });
            }
            (Some(rate), None) => (Rule::External, Some(rate.validate()?)),
            (None, threshold) => (
                Rule::Consecutive {
                    failure_threshold: count("failure_threshold", threshold.unwrap_or(5))?,
                },
                None,
            ),
        };
        let limits = Limits {
            rule,
            half_open_max_calls: count("half_open_max_calls", self.half_open_max_calls)?,
            success_threshold: count(
                "success_threshold",
                self.success_threshold.unwrap_or(self.half_open_max_calls),
            )?,
        };
        if self.half_open_max_wait.is_zero() {
            return Err(BreakerError::ZeroDuration { field: "half_open_max_wait" });
        }
        Ok(Config {
            limits,
            rate,
            breaks: self.breaks.validate()?,
            half_open_max_wait: self.half_open_max_wait,
        })
    }

    /// The name, the events listener and the callback given, if any (for a map of
    /// breakers, which hands them out itself).
    #[cfg(target_has_atomic = "ptr")]
    pub(crate) fn take_extras(&mut self) -> Extras {
        core::mem::take(&mut self.extras)
    }

    /// Builds a breaker on [`StdClock`](crate::StdClock), whose coarse reading makes
    /// rejections cheap. (To drive a breaker with tokio's paused test clock, build it
    /// with `build_with(kompoz_tokio::TokioClock)`.)
    ///
    /// ```
    /// let breaker = kompoz::breaker::BreakerBuilder::new().build()?;
    /// assert!(breaker.try_acquire().is_ok());
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn build(self) -> Result<CircuitBreaker<crate::StdClock>, BreakerError> {
        self.build_with(crate::StdClock)
    }
}

/// A validated breaker configuration: everything but the clock and the [`Extras`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Config {
    pub(crate) limits: Limits,
    pub(crate) rate: Option<RateConfig>,
    pub(crate) breaks: BreakConfig,
    pub(crate) half_open_max_wait: Duration,
}

impl Default for BreakerBuilder {
    fn default() -> Self {
        BreakerBuilder::new()
    }
}

impl fmt::Debug for BreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("failure_threshold", &self.failure_threshold)
            .field("trip_on", &self.rate)
            .field("break_duration", &self.breaks)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("success_threshold", &self.success_threshold)
            .field("half_open_max_wait", &self.half_open_max_wait)
            .field("name", &self.extras.name)
            .field("listener", &self.extras.listener.is_some())
            .field("on_state_change", &self.extras.on_state_change.is_some())
            .finish()
    }
}

#[cfg(feature = "std")]
impl CircuitBreaker<crate::StdClock> {
    /// A [`BreakerBuilder`] with kompoz's defaults.
    ///
    /// ```
    /// let breaker = kompoz::CircuitBreaker::builder().failure_threshold(3).build()?;
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn builder() -> BreakerBuilder {
        BreakerBuilder::new()
    }
}
