//! [`RetryPolicy`]: how many attempts, how long between them, and for how long in all;
//! validated when built.

use core::fmt;
use core::time::Duration;

use super::Backoff;

/// kompoz's default `max_attempts`: 3.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A validated retry policy: a plain `Copy` value, shared by every call it guards.
///
/// Built with [`RetryPolicy::builder`], with kompoz's parameter names and defaults:
///
/// | parameter | default | meaning |
/// | --- | --- | --- |
/// | `max_attempts` | 3 | attempts in all, the first one included |
/// | `backoff` | 0 | the delay before the first retry |
/// | `exponential` | false | double the delay before each further retry |
/// | `max_backoff` | none | the cap of an exponential or decorrelated backoff |
/// | `decorrelated_jitter` | false | draw each delay between `backoff` and 3 × the previous |
/// | `jitter` | 0 | a uniform draw from `[0, jitter]` added to every delay |
/// | `deadline` | none | the time from the first attempt after which none starts |
/// | `seed` | none | a fixed seed for the draws (tests); otherwise fresh per call |
///
/// Unlike kompoz, `jitter` is added even when `backoff` is zero (kompoz then ignores
/// it): a policy that asks for jitter gets it.
///
/// ```
/// use std::time::Duration;
/// use kompoz::retry::{Backoff, RetryError, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(5)
///     .backoff(Duration::from_millis(100))
///     .exponential(true)
///     .max_backoff(Duration::from_secs(2))
///     .jitter(Duration::from_millis(10))
///     .deadline(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(
///     policy.backoff(),
///     Backoff::Exponential { base: Duration::from_millis(100), max: Duration::from_secs(2) },
/// );
/// assert_eq!(
///     RetryPolicy::builder().max_attempts(0).build(),
///     Err(RetryError::Zero { field: "max_attempts" }),
/// );
/// # Ok::<(), RetryError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    jitter: Duration,
    deadline: Option<Duration>,
    seed: Option<u64>,
}

impl RetryPolicy {
    /// kompoz's defaults: 3 attempts, no delay between them.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff::None,
        jitter: Duration::ZERO,
        deadline: None,
        seed: None,
    };

    /// A [`RetryPolicyBuilder`] with kompoz's defaults.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::new()
    }

    /// Attempts in all, the first one included (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff strategy.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The upper bound of the uniform jitter added to every delay.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// The time, from the start of the first attempt, after which no attempt starts.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The fixed seed of the draws, if any.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Whether computing delays draws random numbers.
    pub(crate) fn draws(&self) -> bool {
        self.jitter > Duration::ZERO || self.backoff.draws()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// Builds a [`RetryPolicy`]; see there for the parameters. [`build`](Self::build)
/// validates: a bad value is a [`RetryError`] naming the field, never a panic or a
/// silent default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Duration,
    exponential: bool,
    decorrelated: bool,
    max_backoff: Option<Duration>,
    jitter: Duration,
    deadline: Option<Duration>,
    seed: Option<u64>,
}

impl RetryPolicyBuilder {
    /// kompoz's defaults: 3 attempts, no delay.
    pub const fn new() -> Self {
        RetryPolicyBuilder {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Duration::ZERO,
            exponential: false,
            decorrelated: false,
            max_backoff: None,
            jitter: Duration::ZERO,
            deadline: None,
            seed: None,
        }
    }

    /// Attempts in all, the first one included (default 3; at least 1).
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay before the first retry (default zero): constant, unless
    /// [`exponential`](Self::exponential) or
    /// [`decorrelated_jitter`](Self::decorrelated_jitter).
    pub const fn backoff(mut self, delay: Duration) -> Self {
        self.backoff = delay;
        self
    }

    /// Doubles the delay before each further retry (default false).
    pub const fn exponential(mut self, exponential: bool) -> Self {
        self.exponential = exponential;
        self
    }

    /// Draws each delay uniformly between `backoff` and three times the previous delay
    /// (default false). Cannot be combined with `exponential`.
    pub const fn decorrelated_jitter(mut self, decorrelated: bool) -> Self {
        self.decorrelated = decorrelated;
        self
    }

    /// The largest delay a backoff grows to (default: no cap). Jitter is added on top.
    pub const fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = Some(max);
        self
    }

    /// Adds a uniform draw from `[0, jitter]` to every delay (default zero).
    pub const fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Starts no attempt later than `deadline` after the first one started, and waits
    /// for no backoff (or "retry after" hint) that would end past it: the call then
    /// gives up at once with its last error. A running attempt is not cut short; put a
    /// timeout around the retry for that.
    pub const fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Seeds the jitter's generator, so that every call draws the same delays: for tests
    /// on a manual clock. Without a seed each call draws from a fresh generator (seeded
    /// by the `std` feature's thread-local generator, or without `std` from a counter
    /// and the clock).
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<RetryPolicy, RetryError> {
        if self.max_attempts == 0 {
            return Err(RetryError::Zero { field: "max_attempts" });
        }
        if self.exponential && self.decorrelated {
            return Err(RetryError::Conflict {
                first: "exponential",
                second: "decorrelated_jitter",
            });
        }
        let max = self.max_backoff.unwrap_or(Duration::MAX);
        if max < self.backoff {
            return Err(RetryError::MaxBelowBase { base: self.backoff, max });
        }
        let base = self.backoff;
        let backoff = if self.decorrelated {
            Backoff::DecorrelatedJitter { base, max }
        } else if self.exponential && base > Duration::ZERO {
            Backoff::Exponential { base, max }
        } else if base > Duration::ZERO {
            Backoff::Constant(base)
        } else {
            Backoff::None
        };
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            backoff,
            jitter: self.jitter,
            deadline: self.deadline,
            seed: self.seed,
        })
    }
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        RetryPolicyBuilder::new()
    }
}

/// A retry, budget or hedging configuration that cannot be built. Names the field and
/// the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryError {
    /// A count or duration that must be positive was zero.
    Zero {
        /// The field, e.g. `max_attempts`.
        field: &'static str,
    },
    /// A value above the largest supported one.
    TooLarge {
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest supported value.
        max: u64,
    },
    /// A value below the smallest supported one.
    TooSmall {
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest supported value.
        min: u64,
    },
    /// `max_backoff` below `backoff`: no delay could satisfy both.
    MaxBelowBase {
        /// `backoff`.
        base: Duration,
        /// `max_backoff`.
        max: Duration,
    },
    /// Two options that exclude each other were both set.
    Conflict {
        /// One option.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Zero { field } => write!(f, "{field} must be positive, got 0"),
            RetryError::TooLarge { field, value, max } => {
                write!(f, "{field} = {value} is above the largest supported value, {max}")
            }
            RetryError::TooSmall { field, value, min } => {
                write!(f, "{field} = {value} is below the smallest supported value, {min}")
            }
            RetryError::MaxBelowBase { base, max } => {
                write!(f, "max_backoff ({max:?}) is below backoff ({base:?})")
            }
            RetryError::Conflict { first, second } => {
                write!(f, "{first} and {second} cannot both be set")
            }
        }
    }
}

impl core::error::Error for RetryError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn kompoz_defaults() {
        let p = RetryPolicy::builder().build().unwrap();
        assert_eq!(p, RetryPolicy::default());
        assert_eq!((p.max_attempts(), p.backoff(), p.jitter()), (3, Backoff::None, Duration::ZERO));
        assert!(!p.draws());
    }

    #[test]
    fn strategies_from_kompoz_flags() {
        let b = RetryPolicy::builder().backoff(MS);
        assert_eq!(b.build().unwrap().backoff(), Backoff::Constant(MS));
        assert_eq!(
            b.exponential(true).build().unwrap().backoff(),
            Backoff::Exponential { base: MS, max: Duration::MAX }
        );
        let d = b.decorrelated_jitter(true).max_backoff(MS * 9).build().unwrap();
        assert_eq!(d.backoff(), Backoff::DecorrelatedJitter { base: MS, max: MS * 9 });
        assert!(d.draws());
        assert!(RetryPolicy::builder().jitter(MS).build().unwrap().draws());
    }

    #[test]
    fn bad_values_are_named() {
        let e = RetryPolicy::builder().backoff(MS * 2).max_backoff(MS).build().unwrap_err();
        assert_eq!(e, RetryError::MaxBelowBase { base: MS * 2, max: MS });
        assert_eq!(e.to_string(), "max_backoff (1ms) is below backoff (2ms)");
        let e = RetryPolicy::builder().exponential(true).decorrelated_jitter(true).build();
        assert_eq!(
            e.unwrap_err().to_string(),
            "exponential and decorrelated_jitter cannot both be set"
        );
        assert_eq!(
            RetryError::TooLarge { field: "x", value: 9, max: 8 }.to_string(),
            "x = 9 is above the largest supported value, 8"
        );
    }
}
