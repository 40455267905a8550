//! The operations a fuzz target applies to a service under simulation: [`Op`] and the
//! [`Reply`] a simulated dependency gives.

use core::time::Duration;

/// How a simulated dependency ([`Backend`](super::Backend)) answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// Answers well after this long (while the backend is down: answers with an error
    /// after this long instead).
    Succeed {
        /// The answer's latency.
        after: Duration,
    },
    /// Answers with an error after this long.
    Fail {
        /// The answer's latency.
        after: Duration,
    },
    /// Never answers: only a time limit or a cancellation ends the request.
    Hang,
}

/// One step of a scenario: the vocabulary a fuzz target decodes from the fuzzer's bytes
/// (with the `arbitrary` feature) and applies to the service under test.
///
/// What each operation means for a given service is the fuzz target's to say; the
/// intended reading is below. Operations that pick a call take their index modulo the
/// number of calls in flight and do nothing when there is none.
///
/// ```
/// use core::time::Duration;
/// use kompoz::sim::{Op, Reply};
///
/// let scenario = [
///     Op::Call(Reply::Fail { after: Duration::from_millis(5) }),
///     Op::BackendDown,
///     Op::Call(Reply::Hang),
///     Op::Advance(Duration::from_secs(1)),
///     Op::Cancel { call: 0 },
///     Op::Reset,
/// ];
/// assert_eq!(scenario.iter().filter(|op| matches!(op, Op::Call(_))).count(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Lets this much simulated time pass, running everything that happens meanwhile.
    Advance(Duration),
    /// Starts a call through the service, answered by the dependency with this reply.
    Call(Reply),
    /// Cancels (drops) a call in flight: the `call`-th oldest, modulo their number.
    Cancel {
        /// Which call.
        call: u16,
    },
    /// Resets the circuit breaker.
    Reset,
    /// Forces the circuit breaker open.
    ForceOpen,
    /// The dependency goes down: every request fails or hangs until it is back up.
    BackendDown,
    /// The dependency is back up.
    BackendUp,
}
