//! A timeout around a future that is ready at once, awaited inside a tokio runtime with
//! the time driver enabled: `kompoz_tokio::timeout` vs `tokio::time::timeout`.

use std::convert::Infallible;
use std::future::ready;
use std::hint::black_box;
use std::time::Duration;

use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, in_runtime};

/// The time limit: long enough never to pass.
const LIMIT: Duration = Duration::from_secs(60);

/// The ready-inner timeout case.
pub fn ready_inner() -> Case {
    Case {
        id: "timeout_ready",
        label: "timeout around a ready future (in a tokio runtime)",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 1.05, of: Reference::Peer("tokio") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![bare(), kompoz(), tokio()],
    }
}

/// A current-thread runtime with time enabled, as a timeout needs.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime")
}

/// The ready future alone, awaited in the same loop: what the timeouts add to.
fn bare() -> Contender {
    Contender::new(
        "bare",
        Role::Baseline,
        in_runtime(runtime(), || ready(Ok::<u64, Infallible>(black_box(7)))),
    )
}

fn kompoz() -> Contender {
    Contender::new(
        "kompoz",
        Role::Kompoz,
        in_runtime(runtime(), || kompoz_tokio::timeout(black_box(LIMIT), ready(black_box(7u64)))),
    )
}

fn tokio() -> Contender {
    Contender::new(
        "tokio",
        Role::Peer,
        in_runtime(runtime(), || tokio::time::timeout(black_box(LIMIT), ready(black_box(7u64)))),
    )
}
