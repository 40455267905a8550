//! [`FleetRateLimiter`] and [`FleetKeyedRateLimiter`]: the handles users hold.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kompoz::rate::Quota;
use kompoz::{Clock, Rejection, StdClock};
use tokio::time::Instant;

use super::shared::RateShared;
use super::{Admitted, RateError};

/// A rate limit shared by every process of a fleet: at most `burst + W / T` cells over any
/// window `W` of the Redis clock, whichever process asks, for kompoz's [`Quota`] of one
/// cell every `T`. One round trip per check (fewer with
/// [`reserve`](super::RateBuilder::reserve)).
///
/// ```no_run
/// use kompoz::rate::Quota;
/// use kompoz_redis::Fleet;
/// use kompoz_redis::rate::RateError;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let partner_api = fleet.rate_limit("partner-api", Quota::per_second(50)?).build()?;
/// match partner_api.check().await {
///     Ok(()) => { /* call the partner */ }
///     Err(RateError::Limited(limited)) => println!("retry after {:?}", limited.wait),
///     Err(other) => return Err(other.into()),
/// }
/// # Ok(()) }
/// ```
pub struct FleetRateLimiter<C = StdClock> {
    pub(super) shared: Arc<RateShared<C>>,
}

impl<C> Clone for FleetRateLimiter<C> {
    fn clone(&self) -> Self {
        FleetRateLimiter { shared: Arc::clone(&self.shared) }
    }
}

impl<C: Clock> FleetRateLimiter<C> {
    pub(super) fn new(shared: Arc<RateShared<C>>) -> Self {
        FleetRateLimiter { shared }
    }

    /// Asks for one cell.
    pub async fn check(&self) -> Result<(), RateError> {
        self.shared.check(None, 1).await.map(drop)
    }

    /// Asks for `cells` at once: all or nothing.
    pub async fn check_n(&self, cells: u32) -> Result<(), RateError> {
        self.shared.check(None, cells).await.map(drop)
    }

    /// Asks for `cells` at once, and tells how they were admitted: fleet-wide (and when,
    /// on the Redis clock) or by a degradation mode.
    pub async fn check_detailed(&self, cells: u32) -> Result<Admitted, RateError> {
        self.shared.check(None, cells).await
    }

    /// Waits until one cell conforms (sleeping the wait Redis reports, then asking
    /// again), at most `max_wait`; then fails with the last refusal. Unlike kompoz's
    /// local `until_ready`, waiters in different tasks are not served in order: each asks
    /// again after its own wait.
    pub async fn until_ready(&self, max_wait: Duration) -> Result<(), RateError> {
        self.wait(Some(max_wait)).await
    }

    /// Waits for one cell, at most `max_wait` if given.
    pub(crate) async fn wait(&self, max_wait: Option<Duration>) -> Result<(), RateError> {
        // A wait too long to be an instant (`Duration::MAX`) has no deadline.
        let deadline = max_wait.and_then(|max_wait| Instant::now().checked_add(max_wait));
        loop {
            match self.check().await {
                Err(RateError::Limited(limited))
                    if deadline.is_none_or(|deadline| {
                        let ready = Instant::now().checked_add(limited.wait);
                        ready.is_some_and(|ready| ready <= deadline)
                    }) =>
                {
                    tokio::time::sleep(limited.wait).await;
                }
                other => return other,
            }
        }
    }

    /// A refusal as the rejection of a guard (for the pipeline and the combinator):
    /// [`Rejection::Rate`], carrying the wait. A limit that fails closed while Redis is
    /// unreachable is rate limited for the fleet's first reconnection delay.
    pub(crate) fn rejection(&self, error: RateError) -> Rejection {
        self.shared.rejection(error)
    }

    /// A refusal as kompoz's keyed error (for the tower layers).
    #[cfg(feature = "tower")]
    pub(crate) fn keyed_error(&self, error: RateError) -> kompoz::rate::KeyedError {
        self.shared.keyed_error(error)
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.shared.quota
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The clock the local fallback and refusals' instants read.
    pub fn clock(&self) -> &C {
        self.shared.clock()
    }
}

/// A rate limit per key (client, account, tenant), each key's quota shared by every
/// process of a fleet; one Redis key per user key, expiring once idle.
///
/// ```no_run
/// use kompoz::rate::Quota;
/// use kompoz_redis::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let per_account = fleet.rate_limit("per-account", Quota::per_second(10)?).build_keyed()?;
/// assert!(per_account.check("account-42").await.is_ok());
/// # Ok(()) }
/// ```
pub struct FleetKeyedRateLimiter<C = StdClock> {
    shared: Arc<RateShared<C>>,
}

impl<C> Clone for FleetKeyedRateLimiter<C> {
    fn clone(&self) -> Self {
        FleetKeyedRateLimiter { shared: Arc::clone(&self.shared) }
    }
}

impl<C: Clock> FleetKeyedRateLimiter<C> {
    pub(super) fn new(shared: Arc<RateShared<C>>) -> Self {
        FleetKeyedRateLimiter { shared }
    }

    /// Asks for one cell of `key`'s quota.
    pub async fn check(&self, key: &str) -> Result<(), RateError> {
        self.shared.check(Some(key), 1).await.map(drop)
    }

    /// Asks for `cells` of `key`'s quota at once: all or nothing.
    pub async fn check_n(&self, key: &str, cells: u32) -> Result<(), RateError> {
        self.shared.check(Some(key), cells).await.map(drop)
    }

    /// Asks for `cells` of `key`'s quota, and tells how they were admitted.
    pub async fn check_detailed(&self, key: &str, cells: u32) -> Result<Admitted, RateError> {
        self.shared.check(Some(key), cells).await
    }

    /// A refusal as kompoz's keyed error (for the tower layers).
    #[cfg(feature = "tower")]
    pub(crate) fn keyed_error(&self, error: RateError) -> kompoz::rate::KeyedError {
        self.shared.keyed_error(error)
    }

    /// The quota each key gets.
    pub fn quota(&self) -> Quota {
        self.shared.quota
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}

impl<C> fmt::Debug for FleetRateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.shared, "FleetRateLimiter", f)
    }
}

impl<C> fmt::Debug for FleetKeyedRateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug(&self.shared, "FleetKeyedRateLimiter", f)
    }
}

fn debug<C>(shared: &RateShared<C>, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(name)
        .field("name", &shared.name)
        .field("quota", &shared.quota)
        .field("reserve", &shared.reserve)
        .field("degradation", &shared.degradation)
        .finish_non_exhaustive()
}
