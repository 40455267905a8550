//! `size_of` of each primitive and of the values a call creates, kompoz beside its peers.
//!
//! Sizes are of the value itself (what sits in a struct or a task's future). Where a
//! primitive is a handle to shared state (failsafe's `StateMachine`, recloser's
//! `AsyncRecloser` are an `Arc` each), the heap block behind it is not included; neither
//! are heap blocks a value owns (kompoz's breaker keeps its per-thread counter shards in
//! a boxed array). [`heap_rows`] covers those: the heap bytes that building each primitive
//! allocates, which the `compare` binary measures with its counting allocator.

use std::future::Ready;
use std::hint::black_box;
use std::mem::{size_of, size_of_val};

use kompoz::StdClock;
use kompoz::breaker::{BreakerGuard, CircuitBreaker};

use crate::cases::breaker::{Call, Failure, ready_ok};

/// One row of the size table: what is measured, and `(contender, bytes)` for each
/// contender that has such a value.
#[derive(Debug)]
pub struct SizeRow {
    /// The thing measured, e.g. `"semaphore"`.
    pub what: &'static str,
    /// Bytes per contender (table column).
    pub sizes: Vec<(&'static str, usize)>,
}

/// Every size row, in table order.
pub fn size_rows() -> Vec<SizeRow> {
    let kompoz_sem = kompoz::limit::Semaphore::new(1).expect("a valid size");
    let tokio_sem = tokio::sync::Semaphore::new(1);
    let async_lock_sem = async_lock::Semaphore::new(1);
    let maitake_sem = maitake_sync::Semaphore::new(1);

    let tokio_acquire = tokio_sem.acquire();
    let tokio_acquire_size = size_of_val(&tokio_acquire);
    drop(tokio_acquire);

    let kompoz = CircuitBreaker::builder().build().expect("the defaults are valid");
    let kompoz_call = kompoz.call(ready_ok());
    let kompoz_call_size = size_of_val(&kompoz_call);
    drop(kompoz_call);
    let failsafe = failsafe::Config::new().build();
    let failsafe_call = failsafe::futures::CircuitBreaker::call(&failsafe, ready_ok());
    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::custom().build());
    let recloser_call = recloser.call(ready_ok());

    let policy = crate::cases::retry::policy();
    let kompoz_retry = policy.retry(StdClock, ready_ok);
    let backon_retry = backon::Retryable::retry(ready_ok, backon::ConstantBuilder::default());
    let mut tower_service = tower::retry::Retry::new(
        crate::cases::retry::Attempts(2),
        tower::service_fn(|req: u64| std::future::ready(Ok::<u64, Failure>(req))),
    );
    let tower_retry = tower::Service::call(&mut tower_service, 7);
    let pipeline = crate::cases::pipeline::stacked_pipeline();
    let pipeline_call = pipeline.call(ready_ok);

    vec![
        SizeRow {
            what: "semaphore",
            sizes: vec![
                ("kompoz", size_of_val(&kompoz_sem)),
                ("tokio", size_of_val(&tokio_sem)),
                ("async-lock", size_of_val(&async_lock_sem)),
                ("maitake-sync", size_of_val(&maitake_sem)),
            ],
        },
        SizeRow {
            what: "permit (borrowing)",
            sizes: vec![
                ("kompoz", size_of::<kompoz::limit::Permit<'_>>()),
                ("tokio", size_of::<tokio::sync::SemaphorePermit<'_>>()),
                ("async-lock", size_of::<async_lock::SemaphoreGuard<'_>>()),
                ("maitake-sync", size_of::<maitake_sync::semaphore::Permit<'_>>()),
            ],
        },
        SizeRow {
            what: "acquire future",
            sizes: vec![
                ("kompoz", size_of::<kompoz::limit::Acquire<'_>>()),
                ("tokio", tokio_acquire_size),
                ("async-lock", size_of::<async_lock::futures::Acquire<'_>>()),
                ("maitake-sync", size_of::<maitake_sync::semaphore::Acquire<'_>>()),
            ],
        },
        SizeRow {
            what: "timeout future (ready u64 inside)",
            sizes: vec![
                ("bare", size_of::<Ready<u64>>()),
                (
                    "kompoz",
                    size_of::<kompoz_tokio::Timeout<kompoz_tokio::TokioClock, Ready<u64>>>(),
                ),
                ("tokio", size_of::<tokio::time::Timeout<Ready<u64>>>()),
            ],
        },
        SizeRow {
            what: "breaker (kompoz: the breaker itself; peers: their handle)",
            sizes: vec![
                ("kompoz", size_of_val(&kompoz)),
                ("failsafe", size_of_val(&failsafe)),
                ("recloser", size_of_val(&recloser)),
            ],
        },
        SizeRow {
            what: "breaker call future (ready inside)",
            sizes: vec![
                ("bare", size_of::<Ready<Call>>()),
                ("kompoz", kompoz_call_size),
                ("failsafe", size_of_val(&failsafe_call)),
                ("recloser", size_of_val(&recloser_call)),
            ],
        },
        SizeRow {
            what: "breaker guard (kompoz's `try_acquire`)",
            sizes: vec![("kompoz", size_of::<BreakerGuard<'_, StdClock>>())],
        },
        SizeRow {
            what: "rate limiter, direct (on the default clock)",
            sizes: vec![
                ("kompoz", size_of::<kompoz::rate::RateLimiter<StdClock>>()),
                ("governor", size_of::<governor::DefaultDirectRateLimiter>()),
            ],
        },
        SizeRow {
            what: "rate limiter, keyed by u64 (before any key)",
            sizes: vec![
                ("kompoz", size_of::<kompoz::rate::KeyedRateLimiter<u64, StdClock>>()),
                ("governor", size_of::<governor::DefaultKeyedRateLimiter<u64>>()),
            ],
        },
        SizeRow {
            what: "retry future (ready inside; tower: its response future)",
            sizes: vec![
                ("bare", size_of::<Ready<Call>>()),
                ("kompoz", size_of_val(&kompoz_retry)),
                ("backon", size_of_val(&backon_retry)),
                ("tower", size_of_val(&tower_retry)),
            ],
        },
        SizeRow {
            what: "pipeline call future: timeout + limit + breaker + retry (ready inside)",
            sizes: vec![
                ("bare", size_of::<Ready<Call>>()),
                ("kompoz", size_of_val(&pipeline_call)),
            ],
        },
    ]
}

/// Builds one primitive (with its usual configuration) and drops it.
pub type Build = fn();

/// One row of the heap table: what is built, and how, for each contender.
#[derive(Debug)]
pub struct HeapRow {
    /// The thing built, e.g. `"breaker"`.
    pub what: &'static str,
    /// A builder per contender (table column).
    pub builders: Vec<(&'static str, Build)>,
}

/// Every heap row, in table order.
pub fn heap_rows() -> Vec<HeapRow> {
    vec![
        HeapRow {
            what: "semaphore::new(8)",
            builders: vec![
                ("kompoz", || {
                    let _ = black_box(kompoz::limit::Semaphore::new(8));
                }),
                ("tokio", || {
                    black_box(tokio::sync::Semaphore::new(8));
                }),
                ("async-lock", || {
                    black_box(async_lock::Semaphore::new(8));
                }),
                ("maitake-sync", || {
                    black_box(maitake_sync::Semaphore::new(8));
                }),
            ],
        },
        HeapRow {
            what: "breaker, default configuration",
            builders: vec![
                ("kompoz", || {
                    let _ = black_box(CircuitBreaker::builder().build());
                }),
                ("failsafe", || {
                    black_box(failsafe::Config::new().build());
                }),
                ("recloser", || {
                    black_box(recloser::AsyncRecloser::from(recloser::Recloser::custom().build()));
                }),
            ],
        },
        HeapRow {
            what: "rate limiter, direct",
            builders: vec![
                ("kompoz", || {
                    let quota = kompoz::rate::Quota::per_second(100).expect("valid");
                    black_box(kompoz::rate::RateLimiter::new(quota, StdClock));
                }),
                ("governor", || {
                    let quota = governor::Quota::per_second(nonzero(100));
                    black_box(governor::RateLimiter::direct(quota));
                }),
            ],
        },
        HeapRow {
            what: "keyed rate limiter holding 10,000 u64 keys (divide by 10,000 for a key)",
            builders: vec![
                ("kompoz", || {
                    let quota = kompoz::rate::Quota::per_second(100).expect("valid");
                    let limiter = kompoz::rate::KeyedRateLimiter::new(quota, StdClock);
                    for key in 0..10_000u64 {
                        let _ = limiter.check(&key);
                    }
                    black_box(limiter);
                }),
                ("governor", || {
                    let limiter =
                        governor::RateLimiter::keyed(governor::Quota::per_second(nonzero(100)));
                    for key in 0..10_000u64 {
                        let _ = limiter.check_key(&key);
                    }
                    black_box(limiter);
                }),
            ],
        },
    ]
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).expect("nonzero")
}
