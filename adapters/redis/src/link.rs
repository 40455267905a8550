//! The link to Redis: whether it is up, reconnection with backoff, and the one place
//! where every Redis call gets its timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisError, ScriptInvocation};
use tokio::sync::watch;

use crate::error::Unreachable;

/// What the link's watchers see: whether it is up, and how many times it came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkState {
    pub(crate) up: bool,
    /// Incremented each time the link comes back: a watcher that saw another epoch
    /// resynchronises (the server may have restarted and lost its data meanwhile).
    pub(crate) epoch: u64,
}

/// Delays between reconnection attempts: doubling from `min` up to `max`, each drawn at
/// random from its upper half so that a fleet does not reconnect in lockstep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    pub(crate) fn first(&self) -> Duration {
        self.min
    }

    pub(crate) fn next(&self, delay: Duration) -> Duration {
        delay.saturating_mul(2).min(self.max)
    }

    pub(crate) fn jittered(delay: Duration) -> Duration {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos / 2 + fastrand::u64(0..=nanos / 2))
    }
}

/// The connection to Redis and its health. A call that fails for a connection reason
/// (I/O error, refusal, timeout) marks the link down; from then on calls fail at once
/// with [`Unreachable::Down`] instead of each paying the timeout, until the prober's
/// `PING` gets through.
pub(crate) struct Link {
    connection: ConnectionManager,
    call_timeout: Duration,
    up: AtomicBool,
    state: watch::Sender<LinkState>,
}

impl Link {
    pub(crate) fn new(connection: ConnectionManager, call_timeout: Duration) -> Link {
        Link {
            connection,
            call_timeout,
            up: AtomicBool::new(true),
            state: watch::Sender::new(LinkState { up: true, epoch: 0 }),
        }
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub(crate) fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    pub(crate) fn mark_down(&self) {
        if self.up.swap(false, Ordering::AcqRel) {
            self.state.send_modify(|state| state.up = false);
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            self.state.send_modify(|state| {
                state.up = true;
                state.epoch += 1;
            });
        }
    }

    /// Runs a script, unless the link is down.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Unreachable> {
        if !self.is_up() {
            return Err(Unreachable::Down);
        }
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.call_timeout, invocation.invoke_async(&mut connection))
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if is_connection_problem(&error) {
                    self.mark_down();
                }
                Err(Unreachable::Redis(error))
            }
            Err(_elapsed) => {
                self.mark_down();
                Err(Unreachable::TimedOut(self.call_timeout))
            }
        }
    }

    /// While the link is down, pings Redis with backoff until it answers. Runs for the
    /// fleet's lifetime (aborted when the fleet is dropped).
    pub(crate) async fn probe(self: Arc<Link>, backoff: Backoff) {
        let mut state = self.watch();
        loop {
            while state.borrow_and_update().up {
                if state.changed().await.is_err() {
                    return;
                }
            }
            let mut delay = backoff.first();
            loop {
                tokio::time::sleep(Backoff::jittered(delay)).await;
                let mut connection = self.connection.clone();
                let command = redis::cmd("PING");
                let ping = command.query_async::<String>(&mut connection);
                if let Ok(Ok(_)) = tokio::time::timeout(self.call_timeout, ping).await {
                    self.mark_up();
                    break;
                }
                delay = backoff.next(delay);
            }
        }
    }
}

fn is_connection_problem(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}
