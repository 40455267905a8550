//! Acquiring a permit of a [`FleetLimit`]: the local permit first (in `Local` mode),
//! then `ACQUIRE` in Redis, waiting in line between wake-ups and polls.

use std::fmt;
use std::future::IntoFuture;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use kompoz::limit::OwnedPermit;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::keeper::Order;
use super::permit::{Admission, FleetPermit, Lease};
use super::{FleetLimit, scripts};
use crate::Degradation;

/// Why a permit of a [`FleetLimit`] was not acquired. Cheap to make and copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireError {
    /// [`FleetLimit::try_acquire`]: no permit is free in the fleet (or others are in
    /// line for it), or none is free locally.
    NoPermits,
    /// The maximum wait passed before a permit was owed to this waiter.
    WaitElapsed,
    /// Redis is unreachable and the limit fails closed
    /// ([`Degradation::FailClosed`]).
    Unavailable,
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcquireError::NoPermits => "no permit is free in the fleet",
            AcquireError::WaitElapsed => "no permit became free within the maximum wait",
            AcquireError::Unavailable => "Redis is unreachable and the limit fails closed",
        })
    }
}

impl std::error::Error for AcquireError {}

impl From<AcquireError> for kompoz::limit::AcquireError {
    /// For the combinator face: a limit that fails closed while Redis is unreachable is,
    /// for its callers, a closed limit.
    fn from(error: AcquireError) -> Self {
        match error {
            AcquireError::NoPermits => kompoz::limit::AcquireError::NoPermits,
            AcquireError::WaitElapsed => kompoz::limit::AcquireError::WaitElapsed,
            AcquireError::Unavailable => kompoz::limit::AcquireError::Closed,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Try,
    Wait,
}

/// An acquisition under way. Dropped before it is granted (cancelled, timed out, or
/// Redis failed), it leaves the local wake-up list and, if Redis may have heard of it
/// (in line, or even granted with the answer lost), asks the keeper to abandon it.
struct Ticket<'a> {
    limit: &'a FleetLimit,
    n: u64,
    id: String,
    /// An `ACQUIRE` for `id` may have reached Redis, and no final answer came back.
    unsettled: bool,
    waiter: Option<Arc<Notify>>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.waiter.is_some() {
            let mut waiters =
                self.limit.shared.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            waiters.remove(&self.n);
        }
        if self.unsettled {
            let id = std::mem::take(&mut self.id);
            let _ = self.limit.keeper.send(Order::Abandon { id });
        }
    }
}

impl FleetLimit {
    /// Waits for a permit, at most the limit's [`max_wait`](super::LimitBuilder::max_wait)
    /// if it has one. Cancellation-safe: dropping the future at any point gives back
    /// whatever it had been granted or promised.
    pub async fn acquire(&self) -> Result<FleetPermit, AcquireError> {
        self.take(Mode::Wait, self.shared.max_wait).await
    }

    /// Waits for a permit at most `max_wait` (a zero wait takes a permit only if one is
    /// free now).
    pub async fn acquire_with_max_wait(
        &self,
        max_wait: Duration,
    ) -> Result<FleetPermit, AcquireError> {
        self.take(Mode::Wait, Some(max_wait)).await
    }

    /// Takes a permit if one is free in the fleet and nobody is in line for it; never
    /// waits in line. One round trip.
    pub async fn try_acquire(&self) -> Result<FleetPermit, AcquireError> {
        self.take(Mode::Try, None).await
    }

    /// Runs `future` while holding a permit, and gives the permit back however the run
    /// ends (completion, panic, or cancellation).
    pub async fn run<F: IntoFuture>(&self, future: F) -> Result<F::Output, AcquireError> {
        let _permit = self.acquire().await?;
        Ok(future.await)
    }

    async fn take(
        &self,
        mode: Mode,
        max_wait: Option<Duration>,
    ) -> Result<FleetPermit, AcquireError> {
        let shared = &self.shared;
        // A wait too long to be an instant (`Duration::MAX`) has no deadline: it waits.
        let deadline = max_wait.and_then(|wait| Instant::now().checked_add(wait));
        let local = match &shared.local {
            Some(semaphore) => Some(take_local(semaphore, mode, deadline).await?),
            None => None,
        };
        let link = &shared.fleet.link;
        if !link.is_up() {
            return self.degraded(local);
        }
        let (n, id) = shared.fleet.new_id();
        let mut ticket = Ticket { limit: self, n, id, unsettled: false, waiter: None };
        if mode == Mode::Wait {
            let waiter = Arc::new(Notify::new());
            shared
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(n, Arc::clone(&waiter));
            ticket.waiter = Some(waiter);
        }
        let script = &scripts().acquire;
        let mut call = script.prepare_invoke();
        shared.keys(&mut call);
        call.arg("")
            .arg(shared.capacity)
            .arg(ticket.id.as_str())
            .arg(micros(shared.lease_time))
            .arg(if mode == Mode::Wait { "wait" } else { "try" })
            .arg(micros(shared.waiter_ttl))
            .arg(shared.channel.as_str());
        loop {
            ticket.unsettled = true;
            let reply = link.eval::<(i64, i64)>(&call);
            let reply = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, reply).await {
                    Ok(reply) => reply,
                    Err(_) => return Err(AcquireError::WaitElapsed),
                },
                None => reply.await,
            };
            match reply {
                Ok((1, _expiry)) => {
                    ticket.unsettled = false;
                    let id = std::mem::take(&mut ticket.id);
                    let lease = Lease::hold(&self.keeper, id, true);
                    return Ok(FleetPermit::new(Admission::Fleet, Some(lease), local));
                }
                Ok((0, _place)) if mode == Mode::Try => {
                    ticket.unsettled = false;
                    return Err(AcquireError::NoPermits);
                }
                Ok((0, _place)) => {}
                // Abandoned (never for a live ticket), or an answer kompoz does not know.
                Ok(_) | Err(_) => return self.degraded(local),
            }
            let waiter = ticket.waiter.as_deref().expect("a waiting ticket has a waiter");
            tokio::select! {
                () = waiter.notified() => {}
                () = tokio::time::sleep(shared.poll_interval) => {}
                () = until(deadline) => return Err(AcquireError::WaitElapsed),
            }
        }
    }

    /// Redis is unreachable: follow the limit's degradation.
    fn degraded(&self, local: Option<OwnedPermit>) -> Result<FleetPermit, AcquireError> {
        match self.shared.degradation {
            Degradation::Local => {
                let (_, id) = self.shared.fleet.new_id();
                let lease = Lease::hold(&self.keeper, id, false);
                Ok(FleetPermit::new(Admission::Local, Some(lease), local))
            }
            Degradation::FailOpen => Ok(FleetPermit::new(Admission::Open, None, None)),
            Degradation::FailClosed => Err(AcquireError::Unavailable),
        }
    }
}

async fn take_local(
    semaphore: &Arc<kompoz::Semaphore>,
    mode: Mode,
    deadline: Option<Instant>,
) -> Result<OwnedPermit, AcquireError> {
    let semaphore = Arc::clone(semaphore);
    match (mode, deadline) {
        (Mode::Try, _) => semaphore.try_acquire_owned().map_err(|_| AcquireError::NoPermits),
        (Mode::Wait, None) => semaphore.acquire_owned().await.map_err(|_| AcquireError::NoPermits),
        (Mode::Wait, Some(deadline)) => {
            match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
                Ok(permit) => permit.map_err(|_| AcquireError::NoPermits),
                Err(_) => Err(AcquireError::WaitElapsed),
            }
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
