//! The lease keeper: one task per limit and process that owns the process's leases.
//!
//! Every change to this process's leases in Redis goes through it, in order: a lease is
//! registered (`Hold`), renewed with all the others every third of the lease time, and
//! given back (`Release`) or given up before it was granted (`Abandon`). Because one
//! task does all of it, a renewal can never re-register a lease that was just given
//! back. Orders that fail while Redis is unreachable wait for the link to come back
//! (for at most a lease time: by then Redis has expired the lease by itself), and when
//! it does the keeper registers every lease it holds again: a Redis that restarted
//! without persistence forgets them, and leases taken locally while it was away must be
//! counted from then on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::LimitShared;

/// What the keeper knows of one lease a permit of this process holds.
#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    /// Redis did not have the lease when it was renewed (it expired before a renewal got
    /// through, or Redis forgot it): the fleet may have admitted another holder meanwhile.
    pub(crate) lapsed: AtomicBool,
}

/// An order to the keeper.
pub(crate) enum Order {
    /// A permit holds the lease `id`; `in_redis`: it was granted by Redis (rather than
    /// taken locally while Redis was unreachable).
    Hold { id: String, state: Arc<LeaseState>, in_redis: bool },
    /// The permit holding `id` is gone; `done` is told when Redis has been asked.
    Release { id: String, done: Option<oneshot::Sender<()>> },
    /// An acquisition of `id` was given up: it may be in line, or even granted.
    Abandon { id: String },
    /// Tell `done` once every order sent before this one has been carried out.
    Settle { done: oneshot::Sender<()> },
}

struct Held {
    state: Arc<LeaseState>,
    in_redis: bool,
}

/// Orders taken together.
#[derive(Default)]
struct Batch {
    released: Vec<String>,
    abandoned: Vec<String>,
    /// Told once the batch is carried out.
    settled: Vec<oneshot::Sender<()>>,
    /// A lease taken locally arrived: register it now.
    adopt: bool,
}

impl Batch {
    fn take(&mut self, order: Order, held: &mut HashMap<String, Held>) {
        match order {
            Order::Hold { id, state, in_redis } => {
                self.adopt |= !in_redis;
                held.insert(id, Held { state, in_redis });
            }
            Order::Release { id, done } => {
                if let Some(lease) = held.remove(&id)
                    && lease.in_redis
                {
                    self.released.push(id);
                }
                self.settled.extend(done);
            }
            Order::Abandon { id } => self.abandoned.push(id),
            Order::Settle { done } => self.settled.push(done),
        }
    }
}

/// Runs the keeper of `limit` until every sender (the limit and its permits) is gone.
pub(crate) async fn keep(limit: Arc<LimitShared>, mut orders: mpsc::UnboundedReceiver<Order>) {
    let link = Arc::clone(&limit.fleet.link);
    let mut link_state = link.watch();
    let mut epoch = link_state.borrow_and_update().epoch;
    let every = limit.lease_time / 3;
    let mut held: HashMap<String, Held> = HashMap::new();
    // Releases and abandons that Redis has not heard yet, with when they were ordered.
    let mut pending: Vec<(Instant, String, bool)> = Vec::new();
    let mut next_renewal = Instant::now() + every;
    loop {
        let renew_now = tokio::select! {
            biased;
            order = orders.recv() => {
                let Some(order) = order else {
                    // The limit and all its permits are gone: a last attempt, then stop.
                    flush(&limit, &mut pending).await;
                    return;
                };
                // Take every order already queued: releases and abandonments go to Redis
                // together, one round trip each, in the order they came.
                let mut batch = Batch::default();
                batch.take(order, &mut held);
                while let Ok(order) = orders.try_recv() {
                    batch.take(order, &mut held);
                }
                for (ids, abandon) in [(&batch.released, false), (&batch.abandoned, true)] {
                    if !release(&limit, ids, abandon).await {
                        let now = Instant::now();
                        pending.extend(ids.iter().map(|id| (now, id.clone(), abandon)));
                    }
                }
                if !batch.settled.is_empty() && link.is_up() {
                    flush(&limit, &mut pending).await;
                }
                for done in batch.settled {
                    let _ = done.send(());
                }
                batch.adopt && link.is_up()
            }
            changed = link_state.changed() => {
                if changed.is_err() {
                    return;
                }
                let state = *link_state.borrow_and_update();
                let back = state.up && state.epoch != epoch;
                epoch = state.epoch;
                if back {
                    flush(&limit, &mut pending).await;
                }
                back
            }
            () = tokio::time::sleep_until(next_renewal), if !held.is_empty() => true,
        };
        // Due is due, however busy: in a busy process orders are waiting every time the
        // keeper looks, and the biased select above never reaches the renewal branch.
        let renew_now = renew_now || (!held.is_empty() && Instant::now() >= next_renewal);
        if renew_now {
            renew(&limit, &mut held).await;
            next_renewal = Instant::now() + every;
        } else if held.is_empty() {
            next_renewal = Instant::now() + every;
        }
    }
}

/// Gives back (or abandons) `ids` in one round trip; returns whether Redis heard it.
async fn release(limit: &LimitShared, ids: &[String], abandon: bool) -> bool {
    if ids.is_empty() {
        return true;
    }
    let script = &super::scripts().release;
    let mut call = script.prepare_invoke();
    limit.keys(&mut call);
    call.arg("")
        .arg(limit.capacity)
        .arg(if abandon { "abandon" } else { "release" })
        .arg(limit.lease_time.as_micros() as u64)
        .arg(&limit.channel);
    for id in ids {
        call.arg(id.as_str());
    }
    limit.fleet.link.eval::<i64>(&call).await.is_ok()
}

/// Sends the orders Redis has not heard yet; drops those older than a lease time.
async fn flush(limit: &LimitShared, pending: &mut Vec<(Instant, String, bool)>) {
    let now = Instant::now();
    pending.retain(|(at, _, _)| now.duration_since(*at) < limit.lease_time);
    for abandon in [false, true] {
        let ids: Vec<String> =
            pending.iter().filter(|(_, _, a)| *a == abandon).map(|(_, id, _)| id.clone()).collect();
        if release(limit, &ids, abandon).await {
            pending.retain(|(_, _, a)| *a != abandon);
        }
    }
}

/// Renews every lease held, registering those Redis does not have.
async fn renew(limit: &LimitShared, held: &mut HashMap<String, Held>) {
    if held.is_empty() {
        return;
    }
    let script = &super::scripts().renew;
    let ids: Vec<&String> = held.keys().collect();
    for chunk in ids.chunks(1000) {
        let mut call = script.prepare_invoke();
        limit.keys(&mut call);
        call.arg("")
            .arg(limit.capacity)
            .arg(limit.lease_time.as_micros() as u64)
            .arg(&limit.channel);
        for id in chunk {
            call.arg(id.as_str());
        }
        let Ok(missing) = limit.fleet.link.eval::<Vec<String>>(&call).await else {
            // Unreachable: the leases may lapse; they are registered again on reconnection.
            return;
        };
        for id in missing {
            if let Some(lease) = held.get(&id)
                && lease.in_redis
            {
                lease.state.lapsed.store(true, Ordering::Release);
            }
        }
    }
    for lease in held.values_mut() {
        lease.in_redis = true;
    }
}
