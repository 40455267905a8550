//! The reporter: one task per shared breaker and process that sends failures, openings
//! and probe outcomes to Redis, in order, reads the fleet's state every `sync_interval`
//! and after every reconnection, and moves the view to what Redis says.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kompoz::Clock;
use kompoz::breaker::{CircuitState, Verdict};
use tokio::sync::{mpsc, oneshot};

use super::{BreakerShared, scripts};
use crate::limit::micros;

/// An order to the reporter.
pub(crate) enum Report {
    /// A call admitted while the view was closed in `generation` failed.
    Failure { generation: u64 },
    /// The local breaker opened by itself while the view was closed in `generation`.
    Opened { generation: u64 },
    /// The probe `n` (of this process) of `generation` ended.
    Settle { n: u64, generation: u64, verdict: Verdict },
    /// Read the fleet's state (a missed message, or the periodic read).
    Sync,
    /// Read the fleet's state and tell `done`.
    Read(Option<oneshot::Sender<()>>),
}

/// Handles a message on the breaker's channel (`None`: the subscriber reconnected and
/// may have missed some).
pub(crate) fn on_message<C: Clock + Send + Sync>(
    breaker: &BreakerShared<C>,
    payload: Option<&str>,
) {
    let mut words = payload.unwrap_or("").split(' ');
    let generation = |word: Option<&str>| word.and_then(|word| word.parse::<u64>().ok());
    match words.next() {
        Some("open") => {
            if let (Some(g), Some(remaining)) = (generation(words.next()), generation(words.next()))
            {
                breaker.apply(g, true, Duration::from_micros(remaining), false);
            }
        }
        Some("closed") => {
            if let Some(g) = generation(words.next()) {
                breaker.apply(g, false, Duration::ZERO, false);
            }
        }
        _ => {
            let _ = breaker.reporter.send(Report::Sync);
        }
    }
}

/// Runs the reporter until the breaker is dropped.
pub(crate) async fn run<C: Clock + Send + Sync>(
    breaker: Weak<BreakerShared<C>>,
    mut orders: mpsc::UnboundedReceiver<Report>,
) {
    let (link, every) = match breaker.upgrade() {
        Some(breaker) => (Arc::clone(&breaker.fleet.link), breaker.config.sync_interval),
        None => return,
    };
    let mut link_state = link.watch();
    let mut epoch = link_state.borrow_and_update().epoch;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut carried: VecDeque<Report> = VecDeque::new();
    // Probe leases given back while Redis was unreachable, with when: sent again once it
    // is back (an abandonment is idempotent), until Redis would have expired them anyway.
    let mut unreturned: Vec<(tokio::time::Instant, u64, u64)> = Vec::new();
    loop {
        let (order, resync) = match carried.pop_front() {
            Some(order) => (Some(order), false),
            None => tokio::select! {
                order = orders.recv() => match order {
                    Some(order) => (Some(order), false),
                    None => return,
                },
                _ = tick.tick() => (Some(Report::Sync), false),
                changed = link_state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let state = *link_state.borrow_and_update();
                    let back = state.up && state.epoch != epoch;
                    epoch = state.epoch;
                    (None, back)
                }
            },
        };
        let Some(breaker) = breaker.upgrade() else { return };
        if resync {
            let lease = breaker.config.probe_lease;
            unreturned.retain(|(at, ..)| at.elapsed() < lease);
            let mut still = Vec::new();
            for (at, n, generation) in unreturned.drain(..) {
                let id = format!("{}:{n}", breaker.fleet.instance);
                if !settle(&breaker, &id, generation, Verdict::Ignore).await {
                    still.push((at, n, generation));
                }
            }
            unreturned = still;
            resynchronise(&breaker).await;
        }
        match order {
            Some(Report::Failure { generation }) => {
                // Failures queued behind this one, of the same generation, go together.
                let mut failures = 1u32;
                while let Ok(next) = orders.try_recv() {
                    match next {
                        Report::Failure { generation: g } if g == generation => failures += 1,
                        other => {
                            carried.push_back(other);
                            break;
                        }
                    }
                }
                report(&breaker, "fail", generation, failures).await;
            }
            Some(Report::Opened { generation }) => report(&breaker, "open", generation, 0).await,
            Some(Report::Settle { n, generation, verdict }) => {
                let id = format!("{}:{n}", breaker.fleet.instance);
                let sent = settle(&breaker, &id, generation, verdict).await;
                // Only an abandonment is sent again: a success that did reach Redis
                // (its reply lost) would count twice.
                if !sent && verdict == Verdict::Ignore {
                    unreturned.push((tokio::time::Instant::now(), n, generation));
                }
            }
            Some(Report::Sync) => {
                read(&breaker, false).await;
            }
            Some(Report::Read(done)) => {
                read(&breaker, false).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            None => {}
        }
        // Something told of an older generation than the view's: if Redis itself is
        // behind (it lost the circuit), adopt its state, as after a reconnection.
        if breaker.behind.swap(false, std::sync::atomic::Ordering::AcqRel) {
            resynchronise(&breaker).await;
        }
    }
}

type Reply = (u64, u8, u64);

fn applied<C: Clock + Send + Sync>(breaker: &BreakerShared<C>, reply: Reply, resync: bool) {
    let (generation, open, remaining) = reply;
    breaker.apply(generation, open == 1, Duration::from_micros(remaining), resync);
}

async fn report<C: Clock + Send + Sync>(
    breaker: &BreakerShared<C>,
    mode: &str,
    generation: u64,
    failures: u32,
) {
    let config = &breaker.config;
    let mut call = scripts().report.prepare_invoke();
    breaker.keys(&mut call);
    call.arg("")
        .arg(mode)
        .arg(generation)
        .arg(failures)
        .arg(config.fleet_failure_threshold)
        .arg(micros(config.failure_window))
        .arg(micros(config.recovery_timeout))
        .arg(breaker.channel.as_str());
    if let Ok((g, open, remaining, _counted)) =
        breaker.fleet.link.eval::<(u64, u8, u64, u64)>(&call).await
    {
        applied(breaker, (g, open, remaining), false);
    }
}

/// Sends a probe's outcome; whether Redis answered.
async fn settle<C: Clock + Send + Sync>(
    breaker: &BreakerShared<C>,
    id: &str,
    generation: u64,
    verdict: Verdict,
) -> bool {
    let config = &breaker.config;
    let verdict = match verdict {
        Verdict::Success => "success",
        Verdict::Failure => "failure",
        Verdict::Ignore => "abandon",
    };
    let mut call = scripts().settle.prepare_invoke();
    breaker.keys(&mut call);
    call.arg("")
        .arg(generation)
        .arg(id)
        .arg(verdict)
        .arg(config.success_threshold)
        .arg(micros(config.recovery_timeout))
        .arg(breaker.channel.as_str());
    match breaker.fleet.link.eval::<Reply>(&call).await {
        Ok(reply) => {
            applied(breaker, reply, false);
            true
        }
        Err(_) => false,
    }
}

/// Reads the fleet's state; with `push`, restores this process's opening in a Redis that
/// forgot its state.
async fn sync<C: Clock + Send + Sync>(
    breaker: &BreakerShared<C>,
    push: Option<Duration>,
    resync: bool,
) -> bool {
    let mut call = scripts().sync.prepare_invoke();
    breaker.keys(&mut call);
    call.arg("")
        .arg(if push.is_some() { "push" } else { "read" })
        .arg(push.map_or(0, micros))
        .arg(breaker.channel.as_str());
    match breaker.fleet.link.eval::<Reply>(&call).await {
        Ok(reply) => {
            applied(breaker, reply, resync);
            true
        }
        Err(_) => false,
    }
}

async fn read<C: Clock + Send + Sync>(breaker: &BreakerShared<C>, resync: bool) -> bool {
    sync(breaker, None, resync).await
}

/// The link came back: Redis may have restarted. Restore this process's opening if
/// Redis forgot it, adopt whatever Redis says, and report a local opening that could not
/// be reported while Redis was away.
async fn resynchronise<C: Clock + Send + Sync>(breaker: &BreakerShared<C>) {
    let push = if breaker.view_is_closed() {
        None
    } else {
        let until = kompoz::Instant::from_nanos(breaker.view_until());
        Some(
            until
                .saturating_duration_since(breaker.local.clock().now())
                .max(Duration::from_millis(1)),
        )
    };
    if !sync(breaker, push, true).await {
        return;
    }
    if breaker.view_is_closed() && breaker.local.state() == CircuitState::Open {
        report(breaker, "open", breaker.seen_generation(), 0).await;
    }
}
