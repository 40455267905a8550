//! The service under test: a client of a flaky backend.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use kompoz::breaker::{CallError, CircuitBreaker};
use kompoz::limit::{AcquireError, Permit, Semaphore};
use kompoz::retry::RetryPolicy;
use kompoz::sim::{Backend, BreakerWatch, LimitWatch, Reply};
use kompoz::{ManualClock, timeout};

use crate::outage::{AdmittedAs, OutageWatch};

/// Which client: the correct one, or one of two deliberately broken ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `breaker(timeout(limit(call)))`, nothing else.
    Correct,
    /// When the breaker refuses a call, sends the request anyway, "just this once": it
    /// retries through an open circuit.
    BypassOpenCircuit,
    /// Keeps each call's permit in a table of requests in flight, removed when the call
    /// returns. A call that is cancelled (or cut off by the time limit) never returns,
    /// so its permit stays in the table for ever.
    LeakPermitOnCancel,
}

/// Why a fetch did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FetchError {
    /// The breaker refused the call.
    CircuitOpen,
    /// No permit within the limit's maximum wait.
    Busy(AcquireError),
    /// The time limit passed.
    TimedOut,
    /// The backend answered with an error.
    Backend,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::CircuitOpen => f.write_str("the circuit is open"),
            FetchError::Busy(error) => write!(f, "no permit: {error}"),
            FetchError::TimedOut => f.write_str("timed out"),
            FetchError::Backend => f.write_str("the backend failed"),
        }
    }
}

impl std::error::Error for FetchError {}

/// The watches the client reports to: kompoz's invariants and the service's own
/// property. In a real service these hooks would sit behind a test-only feature.
#[derive(Debug)]
pub struct Watches {
    /// Calls inside the concurrency limit.
    pub limit: LimitWatch,
    /// Admissions and requests, against the breaker.
    pub breaker: BreakerWatch,
    /// The service's own property.
    pub outage: OutageWatch,
}

/// A client of a flaky backend: each [`fetch`](Client::fetch) is retried under a policy
/// (never when the breaker refused), and each attempt goes through a circuit breaker,
/// then a time limit (which covers the wait for a permit), then a concurrency limit, then
/// to the backend.
#[derive(Debug)]
pub struct Client<'a> {
    /// The backend.
    pub backend: &'a Backend,
    /// The retry policy around each attempt.
    pub retry: RetryPolicy,
    /// The breaker around each attempt.
    pub breaker: &'a CircuitBreaker<ManualClock>,
    /// The concurrency limit.
    pub limit: &'a Semaphore,
    /// The clock of the time limit and the permit wait.
    pub clock: ManualClock,
    /// The time limit.
    pub time_limit: Duration,
    /// The longest wait for a permit (`None`: as long as the time limit allows).
    pub max_wait: Option<Duration>,
    /// Which client.
    pub variant: Variant,
    /// What the client reports to.
    pub watches: &'a Watches,
    /// Requests in flight by number ([`Variant::LeakPermitOnCancel`] only).
    pub in_flight: RefCell<BTreeMap<u64, Permit<'a>>>,
    /// The next request's number.
    pub next_request: Cell<u64>,
}

impl<'a> Client<'a> {
    /// Fetches from the backend, which answers as `reply` says, retrying failures (but
    /// not refusals: the breaker knows the backend is down) under the policy.
    pub async fn fetch(&self, reply: Reply) -> Result<(), FetchError> {
        let retried = self.retry.retry(&self.clock, || self.attempt(reply));
        retried.when(|error: &FetchError| *error != FetchError::CircuitOpen).await
    }

    /// One attempt: `breaker(timeout(limit(request)))`.
    async fn attempt(&self, reply: Reply) -> Result<(), FetchError> {
        match self.breaker.call(self.guarded(reply)).await {
            Ok(()) => Ok(()),
            Err(CallError::Inner(error)) => Err(error),
            Err(CallError::Rejected(_)) if self.variant == Variant::BypassOpenCircuit => {
                // BROKEN: "the breaker is too careful; try the backend once anyway".
                self.send(reply, None).await
            }
            Err(CallError::Rejected(_)) => Err(FetchError::CircuitOpen),
        }
    }

    /// What the breaker guards: the time limit around the concurrency limit around the
    /// request.
    async fn guarded(&self, reply: Reply) -> Result<(), FetchError> {
        // First thing after the breaker let the call in, before any await.
        let admission = self.watches.breaker.admitted(self.breaker);
        let probe = self.watches.outage.admitted(&admission);
        // The semaphore's own lifetime, so its permits may live in `in_flight`.
        let limit: &'a Semaphore = self.limit;
        let limited = async {
            let permit = match self.max_wait {
                Some(max_wait) => limit.acquire_with_max_wait(&self.clock, max_wait).await,
                None => limit.acquire().await,
            }
            .map_err(FetchError::Busy)?;
            let _inside = self.watches.limit.enter();
            if self.variant == Variant::LeakPermitOnCancel {
                // BROKEN: the permit is released only if the call returns.
                let number = self.next_request.get();
                self.next_request.set(number + 1);
                self.in_flight.borrow_mut().insert(number, permit);
                let answer = self.send(reply, Some(AdmittedAs::of(&admission))).await;
                self.in_flight.borrow_mut().remove(&number);
                answer
            } else {
                let _permit = permit;
                self.send(reply, Some(AdmittedAs::of(&admission))).await
            }
        };
        let answer = timeout(&self.clock, self.time_limit, limited).await;
        probe.finished();
        answer.unwrap_or(Err(FetchError::TimedOut))
    }

    /// Sends the request to the backend.
    async fn send(&self, reply: Reply, admitted: Option<AdmittedAs>) -> Result<(), FetchError> {
        let _request = self.watches.breaker.at_dependency();
        self.watches.outage.request(admitted, self.breaker, self.backend.is_down());
        self.backend.request(reply).await.map_err(|_| FetchError::Backend)
    }
}
