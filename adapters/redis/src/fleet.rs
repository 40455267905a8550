//! [`Fleet`]: one process's handle on the Redis that its fleet shares.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::ConfigError;
use crate::link::{Backoff, Link};
use crate::notify::Notifier;

/// The default [`FleetBuilder::call_timeout`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// Redis time is in microseconds, and the scripts compute in Lua numbers (doubles): every
/// duration they see must stay below 2^53 microseconds, and kompoz keeps them far below.
pub(crate) const MAX_SCRIPT_SPAN: Duration = Duration::from_secs(86_400 * 365);

/// One process's handle on the Redis its fleet shares: a multiplexed connection that
/// reconnects with backoff, a timeout on every call, and one pub/sub subscriber for all
/// the primitives built from it. Cheap to clone; build one per process.
///
/// * **Never a hang.** Every Redis call has a timeout ([`call_timeout`](FleetBuilder::call_timeout),
///   250 ms by default). A call that fails for a connection reason marks the link down;
///   later calls do not even try, and each primitive follows its
///   [`Degradation`](crate::Degradation) at once, until a background `PING` (with
///   exponential backoff and jitter) gets through again.
/// * **Lazy.** Building does not wait for Redis: a fleet built while Redis is down starts
///   degraded and recovers when Redis comes up.
/// * **Resynchronised.** When the link comes back, each primitive re-registers what its
///   process holds (a Redis restarted without persistence has forgotten it).
///
/// Build it inside a tokio runtime: it runs its background tasks there, and stops them
/// when the last handle (of the fleet, or of a primitive or permit built from it) is
/// dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use kompoz_redis::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379")
///     .prefix("checkout")
///     .call_timeout(Duration::from_millis(100))
///     .build()?;
/// let payments = fleet.limit("payments", 10).build()?;
/// let permit = payments.acquire().await?;
/// // ... at most 10 processes of the fleet are here at once ...
/// drop(permit);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fleet {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) link: Arc<Link>,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) prefix: String,
    /// This process's id in the fleet: prefixes every lease and ticket it creates.
    pub(crate) instance: String,
    /// The first delay before a reconnection attempt: the soonest a link that went down
    /// may be back.
    pub(crate) reconnect_delay: Duration,
    next_id: AtomicU64,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    /// A fresh id, unique in the fleet: this process's instance and a counter.
    pub(crate) fn new_id(&self) -> (u64, String) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        (n, format!("{}:{n}", self.instance))
    }
}

impl Fleet {
    /// A builder for a fleet on the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> FleetBuilder {
        FleetBuilder {
            url: url.into(),
            prefix: "kompoz".into(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            backoff: Backoff { min: Duration::from_millis(50), max: Duration::from_secs(2) },
        }
    }

    /// Whether the link to Redis is up: no call has failed since the last successful
    /// reconnection.
    pub fn is_reachable(&self) -> bool {
        self.shared.link.is_up()
    }

    /// The timeout of every Redis call.
    pub fn call_timeout(&self) -> Duration {
        self.shared.link.call_timeout()
    }

    /// The prefix of every key and channel this fleet uses.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// This process's id in the fleet (it prefixes every lease this process takes).
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// The fleet's connection (it reconnects by itself), for commands of your own.
    pub fn connection(&self) -> ConnectionManager {
        self.shared.link.connection()
    }

    /// Waits until the link is up, at most `timeout`; returns whether it is.
    pub async fn wait_reachable(&self, timeout: Duration) -> bool {
        let mut state = self.shared.link.watch();
        let up = tokio::time::timeout(timeout, state.wait_for(|state| state.up)).await;
        matches!(up, Ok(Ok(_)))
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("prefix", &self.shared.prefix)
            .field("instance", &self.shared.instance)
            .field("call_timeout", &self.shared.link.call_timeout())
            .field("reachable", &self.is_reachable())
            .finish()
    }
}

/// Configures a [`Fleet`]; see [`Fleet::builder`].
///
/// | parameter | default | meaning |
/// | --- | --- | --- |
/// | `prefix` | `"kompoz"` | the prefix of every key and channel |
/// | `call_timeout` | 250 ms | the longest any Redis call may take |
/// | `reconnect_backoff` | 50 ms to 2 s | delays between reconnection attempts (doubling, jittered) |
///
/// ```
/// use std::time::Duration;
/// use kompoz_redis::{ConfigError, Fleet};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let refused = Fleet::builder("redis://127.0.0.1:6379").call_timeout(Duration::ZERO).build();
/// assert_eq!(refused.unwrap_err(), ConfigError::Zero { field: "call_timeout" });
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FleetBuilder {
    url: String,
    prefix: String,
    call_timeout: Duration,
    backoff: Backoff,
}

impl FleetBuilder {
    /// The prefix of every key and channel (default `"kompoz"`): fleets with different
    /// prefixes share nothing.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any Redis call may take (default 250 ms); a call that takes longer
    /// counts as Redis being unreachable.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Delays between reconnection attempts: from `min`, doubling, up to `max` (default
    /// 50 ms to 2 s), each drawn at random from its upper half.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff { min, max };
        self
    }

    /// Builds the fleet and starts its background tasks. Does not wait for Redis.
    pub fn build(self) -> Result<Fleet, ConfigError> {
        check_name("prefix", &self.prefix)?;
        check_duration("call_timeout", self.call_timeout)?;
        check_duration("reconnect_backoff.min", self.backoff.min)?;
        if self.backoff.max < self.backoff.min {
            return Err(ConfigError::TooLarge {
                field: "reconnect_backoff.min",
                value: self.backoff.min.as_micros(),
                max: self.backoff.max.as_micros(),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let client = redis::Client::open(self.url.as_str())
            .map_err(|error| ConfigError::InvalidUrl { reason: error.to_string() })?;
        // The manager's own retries are few and short: the link's prober owns the backoff.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.call_timeout))
            .set_response_timeout(Some(self.call_timeout))
            .set_number_of_retries(1)
            .set_min_delay(self.backoff.min)
            .set_max_delay(self.backoff.max);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|error| ConfigError::InvalidUrl { reason: error.to_string() })?;
        let link = Arc::new(Link::new(connection, self.call_timeout));
        let (notifier, requests) = Notifier::new();
        let tasks = vec![
            runtime.spawn(Arc::clone(&link).probe(self.backoff)).abort_handle(),
            runtime
                .spawn(Arc::clone(&notifier).listen(
                    client,
                    requests,
                    self.call_timeout,
                    self.backoff,
                ))
                .abort_handle(),
        ];
        let instance = format!("{:x}-{:012x}", std::process::id(), fastrand::u64(..) >> 16);
        Ok(Fleet {
            shared: Arc::new(Shared {
                link,
                notifier,
                prefix: self.prefix,
                instance,
                reconnect_delay: self.backoff.min,
                next_id: AtomicU64::new(0),
                tasks,
            }),
        })
    }
}

/// A name usable in keys: non-empty, no braces (hash tags), no whitespace (wake-up
/// messages are space-separated).
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.contains(['{', '}']) || value.contains(char::is_whitespace) {
        return Err(ConfigError::InvalidName { field, value: value.to_string() });
    }
    Ok(())
}

/// A duration that must be neither zero nor beyond what the scripts compute exactly.
pub(crate) fn check_duration(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::Zero { field });
    }
    if value > MAX_SCRIPT_SPAN {
        return Err(ConfigError::TooLarge {
            field,
            value: value.as_micros(),
            max: MAX_SCRIPT_SPAN.as_micros(),
        });
    }
    Ok(())
}
