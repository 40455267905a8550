//! [`BreakerBuilder`]: a breaker's configuration, validated when built.

use alloc::boxed::Box;
use core::fmt;
use core::time::Duration;

use super::circuit::Listener;
use super::machine::{MAX_COUNT, Thresholds};
use super::{BreakerError, BreakerStats, CircuitBreaker, CircuitState, DEFAULT_RECOVERY_TIMEOUT};
use crate::time::Clock;

/// Configures a [`CircuitBreaker`] with kompoz's parameter names and defaults, and
/// validates the configuration when it is built: a zero or oversized count is a
/// [`BreakerError`] that names the field, never a panic or a silent default.
///
/// | parameter | default | meaning |
/// | --- | --- | --- |
/// | `failure_threshold` | 5 | consecutive failures in the closed state that open it |
/// | `recovery_timeout` | 30 s | how long it stays open before letting a probe in |
/// | `half_open_max_calls` | 1 | probes let in at once; more are rejected, not queued |
/// | `success_threshold` | `half_open_max_calls` | successful probes that close it |
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
    failure_threshold: u32,
    recovery_timeout: Duration,
    half_open_max_calls: u32,
    success_threshold: Option<u32>,
    listener: Option<Listener>,
}

impl BreakerBuilder {
    /// kompoz's defaults: 5 failures, 30 s, 1 probe, 1 success.
    pub fn new() -> Self {
        BreakerBuilder {
            failure_threshold: 5,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            half_open_max_calls: 1,
            success_threshold: None,
            listener: None,
        }
    }

    /// Consecutive failures in the closed state that open the circuit (default 5).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How long the circuit stays open before it lets a probe in (default 30 s). Zero
    /// lets the next call probe at once; [`Duration::MAX`] keeps it open until `reset`.
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// Probes let in at once while half-open (default 1); further calls are rejected.
    pub fn half_open_max_calls(mut self, probes: u32) -> Self {
        self.half_open_max_calls = probes;
        self
    }

    /// Successful probes that close the circuit (default: `half_open_max_calls`, as in
    /// kompoz). A probe that finishes frees its slot, so this may exceed
    /// `half_open_max_calls`.
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = Some(successes);
        self
    }

    /// Calls `callback(old, new, stats)` after each transition: once per transition, by
    /// the thread that made it, after it is committed, outside any lock. The callback may
    /// call back into the breaker. If it panics, the panic propagates to the caller whose
    /// call made the transition; the breaker stays consistent and counts no failure.
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(CircuitState, CircuitState, &BreakerStats) + Send + Sync + 'static,
    {
        self.listener = Some(Box::new(callback));
        self
    }

    /// Builds a breaker that measures time on `clock`.
    pub fn build_with<C: Clock>(self, clock: C) -> Result<CircuitBreaker<C>, BreakerError> {
        let count = |field: &'static str, value: u32| match value {
            0 => Err(BreakerError::Zero { field }),
            value if value > MAX_COUNT => {
                Err(BreakerError::TooLarge { field, value, max: MAX_COUNT })
            }
            value => Ok(value),
        };
        let thresholds = Thresholds {
            failure_threshold: count("failure_threshold", self.failure_threshold)?,
            half_open_max_calls: count("half_open_max_calls", self.half_open_max_calls)?,
            success_threshold: count(
                "success_threshold",
                self.success_threshold.unwrap_or(self.half_open_max_calls),
            )?,
        };
        Ok(CircuitBreaker::from_parts(thresholds, self.recovery_timeout, clock, self.listener))
    }

    /// Builds a breaker on [`StdClock`](crate::StdClock), whose coarse reading makes
    /// rejections cheap. (To drive a breaker with tokio's paused test clock, build it
    /// with `build_with(kompoz_tokio::TokioClock)`.)
    #[cfg(feature = "std")]
    pub fn build(self) -> Result<CircuitBreaker<crate::StdClock>, BreakerError> {
        self.build_with(crate::StdClock)
    }
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
            .field("recovery_timeout", &self.recovery_timeout)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("success_threshold", &self.success_threshold)
            .field("on_state_change", &self.listener.is_some())
            .finish()
    }
}

#[cfg(feature = "std")]
impl CircuitBreaker<crate::StdClock> {
    /// A [`BreakerBuilder`] with kompoz's defaults.
    pub fn builder() -> BreakerBuilder {
        BreakerBuilder::new()
    }
}
