//! [`Degradation`]: what a fleet-wide primitive does while Redis is unreachable.

use std::fmt;

/// What a fleet-wide primitive does while Redis is unreachable (a call failed or timed
/// out, and the fleet is reconnecting with backoff). Chosen per primitive.
///
/// Whatever the mode, no call waits on a dead Redis for longer than the fleet's
/// `call_timeout`, and once one call has failed the next ones do not even try until the
/// background reconnection succeeds: they degrade at once.
///
/// ```
/// use kompoz_redis::Degradation;
///
/// assert_eq!(Degradation::default(), Degradation::Local);
/// assert_eq!(Degradation::FailClosed.to_string(), "fail closed");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Degradation {
    /// Fall back to a local primitive in each process (the default): a local semaphore
    /// for a limit, a local GCRA for a rate limit, the local breaker alone for a shared
    /// breaker. When Redis returns, what is held locally is registered with Redis again
    /// (resynchronised), so nothing is counted twice and nothing is lost.
    #[default]
    Local,
    /// Refuse: nothing is admitted while Redis is unreachable.
    FailClosed,
    /// Admit everything: no limit while Redis is unreachable.
    FailOpen,
}

impl fmt::Display for Degradation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Degradation::Local => "fall back to local",
            Degradation::FailClosed => "fail closed",
            Degradation::FailOpen => "fail open",
        })
    }
}
