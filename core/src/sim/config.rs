//! Configurations as plain values: what a fuzzer generates and a scenario prints, turned
//! into the real builders with the public constructors.

use core::time::Duration;

use crate::breaker::{BreakerBuilder, BreakerError, CircuitBreaker, DEFAULT_RECOVERY_TIMEOUT};
use crate::limit::{LimitError, Semaphore};
use crate::rate::{Quota, QuotaError, RateLimiter};
use crate::retry::{RetryBudget, RetryBudgetBuilder, RetryError};
use crate::time::Clock;

/// A circuit breaker's configuration as plain values: the fields of
/// [`BreakerBuilder`], which validates them when built. With the `arbitrary` feature a
/// fuzzer generates only valid ones.
///
/// ```
/// use core::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::breaker::BreakerError;
/// use kompoz::sim::BreakerConfig;
///
/// let mut config = BreakerConfig::default(); // kompoz's defaults
/// config.failure_threshold = 2;
/// config.recovery_timeout = Duration::from_millis(500);
/// let breaker = config.build_with(ManualClock::new())?;
/// assert_eq!(breaker.recovery_timeout(), Duration::from_millis(500));
///
/// config.half_open_max_calls = 0;
/// assert_eq!(
///     config.build_with(ManualClock::new()).unwrap_err(),
///     BreakerError::Zero { field: "half_open_max_calls" },
/// );
/// # Ok::<(), BreakerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures in the closed state that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before it lets a probe in.
    pub recovery_timeout: Duration,
    /// Probes let in at once while half-open.
    pub half_open_max_calls: u32,
    /// Successful probes that close the circuit.
    pub success_threshold: u32,
}

impl BreakerConfig {
    /// A [`BreakerBuilder`] with this configuration.
    pub fn builder(&self) -> BreakerBuilder {
        BreakerBuilder::new()
            .failure_threshold(self.failure_threshold)
            .recovery_timeout(self.recovery_timeout)
            .half_open_max_calls(self.half_open_max_calls)
            .success_threshold(self.success_threshold)
    }

    /// Builds a breaker with this configuration on `clock`.
    pub fn build_with<C: Clock>(&self, clock: C) -> Result<CircuitBreaker<C>, BreakerError> {
        self.builder().build_with(clock)
    }
}

impl Default for BreakerConfig {
    /// kompoz's defaults: 5 failures, 30 s, 1 probe, 1 success.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            half_open_max_calls: 1,
            success_threshold: 1,
        }
    }
}

/// A concurrency limit's configuration: how many calls at once, and how long a call may
/// wait for its turn (`None`: as long as it takes).
///
/// ```
/// use kompoz::sim::LimitConfig;
///
/// let config = LimitConfig { max_concurrent: 4, ..LimitConfig::default() };
/// assert_eq!(config.semaphore()?.available_permits(), 4);
/// # Ok::<(), kompoz::limit::LimitError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitConfig {
    /// Calls let in at once (at least 1 for a valid limit).
    pub max_concurrent: usize,
    /// The longest a call waits for a permit before it is rejected.
    pub max_wait: Option<Duration>,
}

impl LimitConfig {
    /// A semaphore for this limit. A `max_concurrent` of zero is refused
    /// ([`LimitError::ZeroPermits`]), as [`limited`](crate::limited) refuses it.
    pub fn semaphore(&self) -> Result<Semaphore, LimitError> {
        crate::limit::check_size(self.max_concurrent)?;
        Semaphore::new(self.max_concurrent)
    }
}

impl Default for LimitConfig {
    /// One call at a time, waiting as long as it takes.
    fn default() -> Self {
        LimitConfig { max_concurrent: 1, max_wait: None }
    }
}

/// A time limit's configuration: how long a call may take, permit wait included when the
/// limit is outside the concurrency limit. Every duration is valid (zero times out any
/// call that is not ready at once; [`Duration::MAX`] never does).
///
/// ```
/// use core::time::Duration;
/// use kompoz::sim::TimeoutConfig;
///
/// let config = TimeoutConfig { time_limit: Duration::from_millis(150) };
/// assert_eq!(config.time_limit.as_millis(), 150);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeoutConfig {
    /// The time limit.
    pub time_limit: Duration,
}

/// A rate limit's configuration: its [`Quota`] (one cell every `interval`, `burst` at
/// once), and how long a call may wait for its cell (`None`: as long as it takes;
/// `Some(Duration::ZERO)`: only a cell that conforms now).
///
/// The quota is kept as the validated value itself: [`Quota`]'s constructors are where a
/// rate is checked, and with the `arbitrary` feature a fuzzer generates only valid ones.
///
/// ```
/// use core::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::rate::Quota;
/// use kompoz::sim::RateLimitConfig;
///
/// let config = RateLimitConfig {
///     quota: Quota::per_second(10)?.with_burst(2)?,
///     max_wait: Some(Duration::from_millis(50)),
/// };
/// let limiter = config.limiter_with(ManualClock::new());
/// assert!(limiter.check().is_ok() && limiter.check().is_ok());
/// assert_eq!(limiter.check().unwrap_err().wait, Duration::from_millis(100));
/// # Ok::<(), kompoz::rate::QuotaError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitConfig {
    /// How fast cells are admitted.
    pub quota: Quota,
    /// The longest a call waits for its cell before it is refused.
    pub max_wait: Option<Duration>,
}

impl RateLimitConfig {
    /// A limiter of this quota on `clock`, with its full burst available.
    pub fn limiter_with<C: Clock>(&self, clock: C) -> RateLimiter<C> {
        RateLimiter::new(self.quota, clock)
    }

    /// A configuration of one cell every `interval`, `burst` at once, waiting at most
    /// `max_wait`; the quota is validated by [`Quota::every`] and [`Quota::with_burst`].
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz::rate::QuotaError;
    /// use kompoz::sim::RateLimitConfig;
    ///
    /// let config = RateLimitConfig::every(Duration::from_millis(100), 5, None)?;
    /// assert_eq!(config.quota.burst(), 5);
    /// assert_eq!(RateLimitConfig::every(Duration::ZERO, 5, None), Err(QuotaError::ZeroPeriod));
    /// # Ok::<(), QuotaError>(())
    /// ```
    pub fn every(
        interval: Duration,
        burst: u32,
        max_wait: Option<Duration>,
    ) -> Result<RateLimitConfig, QuotaError> {
        Ok(RateLimitConfig { quota: Quota::every(interval)?.with_burst(burst)?, max_wait })
    }
}

/// A retry budget's configuration as plain values: the fields of
/// [`RetryBudgetBuilder`], which validates them when built. A
/// [`RetryWatch`](super::RetryWatch) reads them to bound the retries the budget allows.
///
/// ```
/// use core::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::retry::{Budget, RetryError};
/// use kompoz::sim::RetryBudgetConfig;
///
/// let config = RetryBudgetConfig { retry_percent: 50, min_per_second: 0, ..Default::default() };
/// let budget = config.build_with(ManualClock::new())?;
/// budget.deposit();
/// budget.deposit(); // two calls earn one retry
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
///
/// let too_short = RetryBudgetConfig { window: Duration::ZERO, ..config };
/// assert_eq!(
///     too_short.build_with(ManualClock::new()).unwrap_err(),
///     RetryError::Zero { field: "window" },
/// );
/// # Ok::<(), RetryError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryBudgetConfig {
    /// Retries allowed per 100 calls in the window.
    pub retry_percent: u32,
    /// Retries per second allowed whatever the traffic, counted over the window.
    pub min_per_second: u32,
    /// The sliding window calls and retries are counted over.
    pub window: Duration,
}

impl RetryBudgetConfig {
    /// A [`RetryBudgetBuilder`] with this configuration.
    pub fn builder(&self) -> RetryBudgetBuilder {
        RetryBudgetBuilder::new()
            .retry_percent(self.retry_percent)
            .min_per_second(self.min_per_second)
            .window(self.window)
    }

    /// Builds a budget with this configuration on `clock`.
    pub fn build_with<C: Clock>(&self, clock: C) -> Result<RetryBudget<C>, RetryError> {
        self.builder().build_with(clock)
    }
}

impl Default for RetryBudgetConfig {
    /// The budget's defaults: 20 %, 10 retries per second, a 10 s window.
    fn default() -> Self {
        RetryBudgetConfig { retry_percent: 20, min_per_second: 10, window: Duration::from_secs(10) }
    }
}
