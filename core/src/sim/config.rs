//! Configurations as plain values: what a fuzzer generates and a scenario prints, turned
//! into the real builders with the public constructors.

use core::time::Duration;

use crate::breaker::{
    BreakDuration, BreakerBuilder, BreakerError, CircuitBreaker, DEFAULT_HALF_OPEN_MAX_WAIT,
    DEFAULT_RECOVERY_TIMEOUT, FailureRate,
};
use crate::limit::{LimitError, Semaphore};
use crate::rate::{Quota, QuotaError, RateLimiter};
use crate::retry::{RetryBudget, RetryBudgetBuilder, RetryError};
use crate::time::Clock;

/// A circuit breaker's configuration as plain values: the settings of
/// [`BreakerBuilder`], which validates them when built. With the `arbitrary` feature a
/// fuzzer generates only valid ones, under every policy: consecutive failures or a
/// [`FailureRate`] (over calls or over time, with or without slow calls), a fixed or
/// growing, jittered [`BreakDuration`], and any `half_open_max_wait`.
///
/// The struct is `#[non_exhaustive]`: start from [`default`](BreakerConfig::default)
/// (kompoz's defaults) and set fields. The two policies are optional fields beside the
/// plain settings they replace, as on the builder: `trip_on` replaces
/// `failure_threshold`, and `break_duration` replaces `recovery_timeout`.
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
///
/// Policies:
///
/// ```
/// use core::time::Duration;
/// use kompoz::ManualClock;
/// use kompoz::breaker::{BreakDuration, BreakerError, CircuitState, FailureRate};
/// use kompoz::sim::BreakerConfig;
///
/// let mut config = BreakerConfig::default();
/// config.trip_on = Some(FailureRate::over_calls(4).threshold(0.5));
/// config.break_duration = Some(
///     BreakDuration::exponential(Duration::from_secs(1), Duration::from_secs(8)).jitter(0.1, 7),
/// );
/// config.half_open_max_wait = Duration::from_secs(5);
/// let breaker = config.build_with(ManualClock::new())?;
/// for _ in 0..2 {
///     breaker.try_acquire().unwrap().success();
///     breaker.try_acquire().unwrap().failure();
/// }
/// assert_eq!(breaker.state(), CircuitState::Open, "two failures in four calls");
/// assert_eq!(breaker.half_open_max_wait(), Duration::from_secs(5));
///
/// config.half_open_max_wait = Duration::ZERO;
/// assert_eq!(
///     config.build_with(ManualClock::new()).unwrap_err(),
///     BreakerError::ZeroDuration { field: "half_open_max_wait" },
/// );
/// # Ok::<(), BreakerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures in the closed state that open the circuit (when `trip_on` is
    /// `None`).
    pub failure_threshold: u32,
    /// How long the circuit stays open before it lets a probe in (when `break_duration`
    /// is `None`).
    pub recovery_timeout: Duration,
    /// Probes let in at once while half-open.
    pub half_open_max_calls: u32,
    /// Successful probes that close the circuit.
    pub success_threshold: u32,
    /// Trip on a failure (and slow-call) rate instead of on `failure_threshold`
    /// consecutive failures ([`BreakerBuilder::trip_on`]); `None`: consecutive failures.
    pub trip_on: Option<FailureRate>,
    /// How long each opening lasts, instead of a fixed `recovery_timeout`
    /// ([`BreakerBuilder::break_duration`]); `None`: every break is `recovery_timeout`.
    pub break_duration: Option<BreakDuration>,
    /// How long a half-open probe may hold its slot before it is presumed hung
    /// ([`BreakerBuilder::half_open_max_wait`]).
    pub half_open_max_wait: Duration,
}

impl BreakerConfig {
    /// A [`BreakerBuilder`] with this configuration: `trip_on` given instead of
    /// `failure_threshold` when it is set, `break_duration` instead of
    /// `recovery_timeout`.
    ///
    /// ```
    /// use kompoz::ManualClock;
    /// use kompoz::breaker::FailureRate;
    /// use kompoz::sim::BreakerConfig;
    ///
    /// let mut config = BreakerConfig::default();
    /// config.trip_on = Some(FailureRate::over_calls(10));
    /// let breaker = config.builder().build_with(ManualClock::new())?;
    /// assert_eq!(breaker.stats().window_calls, 0);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn builder(&self) -> BreakerBuilder {
        let builder = match self.trip_on {
            Some(rate) => BreakerBuilder::new().trip_on(rate),
            None => BreakerBuilder::new().failure_threshold(self.failure_threshold),
        };
        let builder = match self.break_duration {
            Some(breaks) => builder.break_duration(breaks),
            None => builder.recovery_timeout(self.recovery_timeout),
        };
        builder
            .half_open_max_calls(self.half_open_max_calls)
            .success_threshold(self.success_threshold)
            .half_open_max_wait(self.half_open_max_wait)
    }

    /// Builds a breaker with this configuration on `clock`.
    ///
    /// ```
    /// use kompoz::ManualClock;
    /// use kompoz::breaker::CircuitState;
    /// use kompoz::sim::BreakerConfig;
    ///
    /// let breaker = BreakerConfig::default().build_with(ManualClock::new())?;
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// # Ok::<(), kompoz::breaker::BreakerError>(())
    /// ```
    pub fn build_with<C: Clock>(&self, clock: C) -> Result<CircuitBreaker<C>, BreakerError> {
        self.builder().build_with(clock)
    }
}

impl Default for BreakerConfig {
    /// kompoz's defaults: 5 consecutive failures, a fixed 30 s break, 1 probe, 1 success,
    /// probes presumed hung after a minute.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            half_open_max_calls: 1,
            success_threshold: 1,
            trip_on: None,
            break_duration: None,
            half_open_max_wait: DEFAULT_HALF_OPEN_MAX_WAIT,
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
