//! Rate limiters: a direct `check()` that is admitted (on one thread, and on two threads
//! hammering one limiter), one that is refused, and a keyed `check` of a warm key among
//! 10,000.
//!
//! Peer: `governor`, through its cheapest faces: the direct limiter with its default
//! clock (quanta: the CPU's time-stamp counter, a precise reading) and the keyed limiter
//! with its default state store (a `DashMap` hashed with SipHash). Quotas are like for
//! like: one cell per nanosecond with a burst of 10^9 for the admitted cases (every check
//! conforms), one per hour with its single cell used for the refused one, and for the
//! keyed case a quota that keeps every key warm (see [`keyed_warm`]).
//!
//! kompoz's `check` decides on the coarse clock (`StdClock::now_coarse`, refined on the
//! precise clock only near a refusal's edge); the extra case on `Precise(StdClock)` shows
//! what a precise reading on every check costs, for comparison with governor's TSC.

use std::hint::black_box;
use std::num::NonZeroU32;

use kompoz::StdClock;
use kompoz::rate::{KeyedRateLimiter, Quota, RateLimiter};
use kompoz::time::Precise;

use super::{Case, Metric, Reference, Target};
use crate::harness::{Contender, Role, on_threads, single};

/// Keys of the keyed case.
pub const KEYS: u64 = 10_000;
/// Cells per second (and burst) of the admitted cases: one per nanosecond.
const PLENTY: u32 = 1_000_000_000;

fn plenty() -> Quota {
    Quota::per_second(PLENTY).expect("one cell per nanosecond")
}

fn governor_plenty() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(PLENTY).expect("nonzero"))
}

/// Direct `check()`, admitted, one thread.
pub fn admitted_one_thread() -> Case {
    Case {
        id: "rate_admitted_1t",
        label: "rate limiter: check() admitted, 1 thread",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 0.8, of: Reference::Peer("governor") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![kompoz_admitted(1), governor_admitted(1)],
    }
}

/// Direct `check()`, admitted, two threads on one limiter.
pub fn admitted_two_threads() -> Case {
    Case {
        id: "rate_admitted_2t",
        label: "rate limiter: check() admitted, 2 threads on one limiter (ns/check per thread)",
        metric: Metric::Throughput,
        target: Target::ThroughputAtLeast { min: 1.0, of: Reference::Peer("governor") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![kompoz_admitted(2), governor_admitted(2)],
    }
}

/// Direct `check()`, refused.
pub fn refused() -> Case {
    Case {
        id: "rate_refused",
        label: "rate limiter: check() refused, 1 thread",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 0.8, of: Reference::Peer("governor") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![kompoz_refused(), governor_refused()],
    }
}

/// The keyed case's quota: a hundred cells a minute with a burst of a million, so that
/// every key stays warm (each visit moves its TAT 600 ms on, and the walk comes back to it
/// within milliseconds: never idle, so never evicted, and never refused).
fn warm() -> Quota {
    Quota::per_minute(100).and_then(|q| q.with_burst(1_000_000)).expect("valid")
}

fn governor_warm() -> governor::Quota {
    governor::Quota::per_minute(NonZeroU32::new(100).expect("nonzero"))
        .allow_burst(NonZeroU32::new(1_000_000).expect("nonzero"))
}

/// Keyed `check(&key)` of a warm key among [`KEYS`].
pub fn keyed_warm() -> Case {
    Case {
        id: "rate_keyed_warm",
        label: "keyed rate limiter: check(&key), warm key among 10,000, 1 thread",
        metric: Metric::NsPerOp,
        target: Target::CostAtMost { max: 0.8, of: Reference::Peer("governor") },
        kompoz_missing: None,
        min_ops: 1,
        contenders: || vec![kompoz_keyed(), governor_keyed()],
    }
}

/// [`admitted_one_thread`] with kompoz deciding on the precise clock every time.
pub fn admitted_precise() -> Case {
    Case {
        id: "rate_admitted_precise_1t",
        label: "rate limiter, kompoz on Precise(StdClock): check() admitted, 1 thread \
                (informational: a precise reading on every check)",
        target: Target::CostAtMost { max: 1.0, of: Reference::Peer("governor") },
        contenders: || {
            let limiter = RateLimiter::new(plenty(), Precise(StdClock));
            let kompoz = Contender::new(
                "kompoz",
                Role::Kompoz,
                single(move || black_box(&limiter).check().expect("plenty")),
            );
            vec![kompoz, governor_admitted(1)]
        },
        ..admitted_one_thread()
    }
}

fn runner(threads: usize, op: impl Fn() + Send + Sync + 'static) -> crate::Runner {
    if threads == 1 { single(op) } else { on_threads(threads, op) }
}

fn kompoz_admitted(threads: usize) -> Contender {
    let limiter = RateLimiter::new(plenty(), StdClock);
    Contender::new(
        "kompoz",
        Role::Kompoz,
        runner(threads, move || black_box(&limiter).check().expect("plenty")),
    )
}

fn governor_admitted(threads: usize) -> Contender {
    let limiter = governor::RateLimiter::direct(governor_plenty());
    Contender::new(
        "governor",
        Role::Peer,
        runner(threads, move || black_box(&limiter).check().expect("plenty")),
    )
}

fn kompoz_refused() -> Contender {
    let limiter = RateLimiter::new(Quota::per_hour(1).expect("valid"), StdClock);
    limiter.check().expect("the one cell");
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || {
            black_box(black_box(&limiter).check().expect_err("refused"));
        }),
    )
}

fn governor_refused() -> Contender {
    let limiter = governor::RateLimiter::direct(governor::Quota::per_hour(
        NonZeroU32::new(1).expect("nonzero"),
    ));
    limiter.check().expect("the one cell");
    Contender::new(
        "governor",
        Role::Peer,
        single(move || {
            black_box(black_box(&limiter).check().expect_err("refused"));
        }),
    )
}

/// The next key of a walk through all [`KEYS`] keys in a scattered order.
#[inline(always)]
fn next_key(key: &mut u64) -> u64 {
    *key = (*key + 7_919) % KEYS;
    *key
}

fn kompoz_keyed() -> Contender {
    let limiter = KeyedRateLimiter::new(warm(), StdClock);
    for key in 0..KEYS {
        limiter.check(&key).expect("a new key");
    }
    let mut key = 0;
    Contender::new(
        "kompoz",
        Role::Kompoz,
        single(move || black_box(&limiter).check(&next_key(&mut key)).expect("warm")),
    )
}

fn governor_keyed() -> Contender {
    let limiter = governor::RateLimiter::keyed(governor_warm());
    for key in 0..KEYS {
        limiter.check_key(&key).expect("a new key");
    }
    let mut key = 0;
    Contender::new(
        "governor",
        Role::Peer,
        single(move || black_box(&limiter).check_key(&next_key(&mut key)).expect("warm")),
    )
}
