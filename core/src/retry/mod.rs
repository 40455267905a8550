//! Retry, hedging and retry budgets.
//!
//! * [`RetryPolicy`]: how many attempts (kompoz: 3), the [`Backoff`] between them
//!   (none, constant, exponential with a cap, decorrelated jitter), an added jitter, an
//!   overall deadline, and a seed for the draws in tests. A plain `Copy` value.
//! * Faces: the plain-future face [`RetryPolicy::retry`] (a factory, since a future
//!   cannot be re-run), the combinator face [`retry`](crate::retry()) (kompoz's
//!   `AsyncRetry`, re-running the rule on the same context), and a layer of the
//!   [`Pipeline`](crate::pipeline::Pipeline).
//! * Which failures are retried is a predicate ([`RetryIf`], returning a [`Decision`]).
//!   The pipeline's and the combinator's default, [`DefaultRetryIf`], never retries a
//!   circuit breaker's rejection, and waits out exactly the time a rejection names
//!   ([`RetryAfter`](crate::RetryAfter)) before retrying. `on_retry(attempt, &error,
//!   delay)` hears of each retry ([`OnRetry`]).
//! * [`RetryBudget`]: retries limited to a share of the calls over a sliding window,
//!   plus a floor per second, shared by every caller ([`Budget`]).
//! * [`Hedge`]: after a delay (fixed, or a percentile of recent latencies) a second
//!   attempt starts beside the first; the first to succeed wins, the other is dropped.
//!
//! The schedule (attempts, delays, deadline) is a pure function over a plain value
//! (`schedule.rs`), which every face and the reference model in `tests/model` run.

mod backoff;
mod budget;
mod decide;
pub(crate) mod hedge;
mod pinned;
mod policy;
mod run;
mod schedule;

pub use backoff::Backoff;
pub use budget::{Budget, MAX_RETRY_PERCENT, NoBudget, RetryBudget, RetryBudgetBuilder};
pub use decide::{Decision, DefaultRetryIf, NoHook, OnRetry, RetryAll, RetryIf};
pub use hedge::{Hedge, HedgeBuilder, HedgeDelay, Latencies};
pub use policy::{DEFAULT_MAX_ATTEMPTS, RetryError, RetryPolicy, RetryPolicyBuilder};
pub use run::Retry;

pub use run::Progress;

pub(crate) use pinned::{Slot, end_variant};
pub(crate) use run::Attempts;
