//! The service under test: a client of a flaky backend.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use kompoz::breaker::{CallError, CircuitBreaker, Verdict};
use kompoz::limit::{AcquireError, Permit, Semaphore};
use kompoz::rate::{RateLimited, RateLimiter};
use kompoz::retry::{Budget, Decision, RetryBudget, RetryPolicy};
use kompoz::sim::{Backend, BreakerWatch, LimitWatch, RateWatch, Reply, RetriedCall, RetryWatch};
use kompoz::{Clock, ManualClock, timeout};

use crate::outage::{AdmittedAs, OutageWatch};

/// Which client: the correct one, or one of four deliberately broken ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `retry(breaker(timeout(limit(rate(call)))))`, nothing else.
    Correct,
    /// When the breaker refuses a call, sends the request anyway, "just this once": it
    /// retries through an open circuit.
    BypassOpenCircuit,
    /// Keeps each call's permit in a table of requests in flight, removed when the call
    /// returns. A call that is cancelled (or cut off by the time limit) never returns,
    /// so its permit stays in the table for ever.
    LeakPermitOnCancel,
    /// Sends a retry without asking the rate limiter: "the first attempt already paid for
    /// this request".
    BypassRateLimitOnRetry,
    /// Retries every failure, the breaker's refusals included: "every failure deserves
    /// another go".
    RetryOpenCircuit,
}

/// Why a fetch did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FetchError {
    /// The breaker refused the call.
    CircuitOpen,
    /// No permit within the limit's maximum wait.
    Busy(AcquireError),
    /// The rate limiter refused the request (it would admit from `earliest`).
    RateLimited(RateLimited),
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
            FetchError::RateLimited(limited) => limited.fmt(f),
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
    /// Requests that passed the rate limiter, against its quota (when there is one).
    pub rate: Option<RateWatch>,
    /// Attempts, against the retry policy and budget.
    pub retry: RetryWatch,
    /// The service's own property.
    pub outage: OutageWatch,
}

/// The client's retry budget, if it has one.
#[derive(Clone, Copy, Debug)]
pub struct SharedBudget<'a>(pub Option<&'a RetryBudget<ManualClock>>);

impl Budget for SharedBudget<'_> {
    fn deposit(&self) {
        if let Some(budget) = self.0 {
            budget.deposit();
        }
    }

    fn try_withdraw(&self) -> bool {
        self.0.is_none_or(|budget| budget.try_withdraw())
    }
}

/// How an attempt's outcome counts for the breaker: a request the rate limiter kept from
/// the backend says nothing about the backend's health.
fn classify(result: &Result<(), FetchError>) -> Verdict {
    match result {
        Ok(()) => Verdict::Success,
        Err(FetchError::RateLimited(_)) => Verdict::Ignore,
        Err(_) => Verdict::Failure,
    }
}

/// A client of a flaky backend: each [`fetch`](Client::fetch) is retried under a policy
/// and a retry budget (never when the breaker refused; after a rate limiter's refusal,
/// exactly when it said it would admit), and each attempt goes through a circuit breaker,
/// then a time limit (which covers the waits for a permit and a cell), then a concurrency
/// limit, then a rate limit on requests to the backend, then to the backend.
#[derive(Debug)]
pub struct Client<'a> {
    /// The backend.
    pub backend: &'a Backend,
    /// The retry policy around each attempt.
    pub retry: RetryPolicy,
    /// The retry budget shared by every fetch.
    pub budget: SharedBudget<'a>,
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
    /// The rate limit on requests to the backend, if any.
    pub rate: Option<&'a RateLimiter<ManualClock>>,
    /// The longest wait for a cell of the rate limit (`None`: as long as the time limit
    /// allows).
    pub rate_max_wait: Option<Duration>,
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
    /// Fetches from the backend, which answers as `reply` says, retrying failures under
    /// the policy and the budget, but not refusals of the breaker (it knows the backend
    /// is down), and refusals of the rate limiter only once it admits.
    pub async fn fetch(&self, reply: Reply) -> Result<(), FetchError> {
        let call = self.watches.retry.call();
        let retried =
            self.retry.retry(&self.clock, || self.attempt(reply, &call)).budget(self.budget);
        if self.variant == Variant::RetryOpenCircuit {
            // BROKEN: the breaker's refusal is retried like any failure.
            return retried
                .when(|error: &FetchError| match error {
                    FetchError::RateLimited(limited) => Decision::RetryAfter(limited.wait),
                    _ => Decision::Retry,
                })
                .await;
        }
        retried
            .when(|error: &FetchError| match error {
                FetchError::CircuitOpen => Decision::GiveUp,
                FetchError::RateLimited(limited) => Decision::RetryAfter(limited.wait),
                _ => Decision::Retry,
            })
            .await
    }

    /// One attempt: `breaker(timeout(limit(rate(request))))`, reported to the retry watch.
    async fn attempt(&self, reply: Reply, call: &RetriedCall<'_>) -> Result<(), FetchError> {
        // First thing in the attempt, before any await.
        call.attempt(self.clock.now());
        let retry = call.attempts() > 1;
        let answer = match self.breaker.call_with(classify, self.guarded(reply, retry)).await {
            Ok(()) => Ok(()),
            Err(CallError::Inner(error)) => Err(error),
            Err(CallError::Rejected(_)) if self.variant == Variant::BypassOpenCircuit => {
                // BROKEN: "the breaker is too careful; try the backend once anyway".
                self.send(reply, None, retry).await
            }
            Err(CallError::Rejected(_)) => Err(FetchError::CircuitOpen),
        };
        match answer {
            Err(FetchError::CircuitOpen) => call.circuit_open(),
            Err(FetchError::RateLimited(limited)) => call.rate_limited(limited.earliest),
            _ => {}
        }
        answer
    }

    /// What the breaker guards: the time limit around the concurrency limit around the
    /// rate-limited request.
    async fn guarded(&self, reply: Reply, retry: bool) -> Result<(), FetchError> {
        // First thing after the breaker let the call in, before any await.
        let admission = self.watches.breaker.admitted(self.breaker);
        let probe = self.watches.outage.admitted(&admission, self.breaker);
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
                let answer = self.send(reply, Some(AdmittedAs::of(&admission)), retry).await;
                self.in_flight.borrow_mut().remove(&number);
                answer
            } else {
                let _permit = permit;
                self.send(reply, Some(AdmittedAs::of(&admission)), retry).await
            }
        };
        let answer = timeout(&self.clock, self.time_limit, limited).await;
        probe.finished();
        answer.unwrap_or(Err(FetchError::TimedOut))
    }

    /// Sends the request to the backend, once the rate limit admits it (`retry`: the
    /// request is a retry's).
    async fn send(
        &self,
        reply: Reply,
        admitted: Option<AdmittedAs>,
        retry: bool,
    ) -> Result<(), FetchError> {
        if let Some(limiter) = self.rate {
            // BROKEN (one variant): a retry skips the limiter.
            if !(retry && self.variant == Variant::BypassRateLimitOnRetry) {
                match self.rate_max_wait {
                    Some(max_wait) => limiter
                        .until_ready_within(max_wait)
                        .await
                        .map_err(FetchError::RateLimited)?,
                    None => limiter.until_ready().await,
                }
            }
            // Right where the request leaves, with no await since the limiter admitted it.
            if let Some(watch) = &self.watches.rate {
                watch.admitted(self.clock.now(), 1);
            }
        }
        let _request = self.watches.breaker.at_dependency();
        self.watches.outage.request(admitted, self.breaker, self.backend.is_down());
        self.backend.request(reply).await.map_err(|_| FetchError::Backend)
    }
}
