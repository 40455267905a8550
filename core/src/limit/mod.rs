//! Concurrency limits: a fair, cancellation-safe [`Semaphore`], and limits shared by name
//! through a [`Registry`] (or, without an allocator, a [`FixedRegistry`]).
//!
//! The combinator face is [`limited`](crate::limited) and
//! [`limited_named`](crate::limited_named); the plain-future face is
//! [`Semaphore::run`] and [`Semaphore::acquire`].

use alloc::borrow::Cow;
use core::fmt;

#[cfg(target_has_atomic = "ptr")]
mod owned;
mod queue;
mod registry;
mod semaphore;

#[cfg(target_has_atomic = "ptr")]
pub use owned::{AcquireOwned, OwnedPermit};
#[cfg(not(loom))]
pub use registry::FixedRegistry;
#[cfg(target_has_atomic = "ptr")]
pub use registry::Registry;
#[cfg(all(target_has_atomic = "ptr", not(loom)))]
pub use registry::default_registry;
pub use semaphore::{Acquire, AcquireError, MAX_PERMITS, Permit, Semaphore, SemaphoreStats};

/// A limit that cannot be built as asked. Each variant names the bad value.
///
/// ```
/// use kompoz::limit::{LimitError, Registry, Semaphore};
/// use kompoz::{async_rule, limited};
///
/// let rule = async_rule(async |_: &mut ()| true);
/// assert_eq!(limited(rule, 0).unwrap_err(), LimitError::ZeroPermits);
/// assert!(matches!(Semaphore::new(usize::MAX), Err(LimitError::TooManyPermits { .. })));
///
/// let registry = Registry::new();
/// registry.get_or_create("db", 10)?;
/// let mismatch = registry.get_or_create("db", 5).unwrap_err();
/// assert_eq!(
///     mismatch.to_string(),
///     "the limit \"db\" exists with max_concurrent = 10; it cannot also have max_concurrent = 5"
/// );
/// # Ok::<(), LimitError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitError {
    /// `max_concurrent` was zero: such a limit would never admit anything (kompoz blocks
    /// forever; here it is refused when built).
    ZeroPermits,
    /// More permits than a semaphore can count.
    TooManyPermits {
        /// The number asked for.
        requested: usize,
        /// [`MAX_PERMITS`].
        max: usize,
    },
    /// The name is already registered with a different size. kompoz silently shares
    /// whichever size came first; here it is an error.
    SizeMismatch {
        /// The limit's name.
        name: Cow<'static, str>,
        /// The size it was registered with.
        existing: usize,
        /// The size asked for now.
        requested: usize,
    },
    /// A [`FixedRegistry`] has no room for another name.
    RegistryFull {
        /// The name that did not fit.
        name: Cow<'static, str>,
        /// How many limits the registry holds.
        capacity: usize,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::ZeroPermits => {
                f.write_str("max_concurrent must be at least 1, got 0 (it would admit nothing)")
            }
            LimitError::TooManyPermits { requested, max } => {
                write!(f, "max_concurrent {requested} exceeds the largest supported count, {max}")
            }
            LimitError::SizeMismatch { name, existing, requested } => write!(
                f,
                "the limit {name:?} exists with max_concurrent = {existing}; \
                 it cannot also have max_concurrent = {requested}"
            ),
            LimitError::RegistryFull { name, capacity } => {
                write!(f, "cannot add the limit {name:?}: the registry is full ({capacity} limits)")
            }
        }
    }
}

impl core::error::Error for LimitError {}

/// Checks a size for a limit: at least one permit, at most [`MAX_PERMITS`].
pub(crate) fn check_size(max_concurrent: usize) -> Result<(), LimitError> {
    match max_concurrent {
        0 => Err(LimitError::ZeroPermits),
        n if n > MAX_PERMITS => Err(LimitError::TooManyPermits { requested: n, max: MAX_PERMITS }),
        _ => Ok(()),
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
