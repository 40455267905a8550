//! The rate limit layers: nothing reserved in `poll_ready`, refusals at once that never
//! reach the inner service, a quota per key, the wait until admission; on a manual clock.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::rate::{KeyedError, KeyedRateLimiter, Quota, RateLimiter};
use kompoz_tower::{KeyedRateLimitLayer, RateLimitError, RateLimitLayer, Rejection, rejection};
use tower::{Layer, Service, service_fn};

fn poll<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn ready<S: Service<R>, R>(service: &mut S) {
    assert!(matches!(
        service.poll_ready(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Ok(()))
    ));
}

#[test]
fn poll_ready_spends_nothing_and_a_refusal_never_reaches_the_service() {
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::new(Quota::per_second(2).unwrap(), clock.clone()));
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let inner = service_fn(move |n: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(n) }
    });
    let mut service = RateLimitLayer::new(limiter.clone()).layer(inner);
    for _ in 0..10 {
        ready(&mut service);
    }
    assert_eq!(limiter.stats().admitted, 0, "readiness spends no cell");
    for n in 0..2 {
        assert!(matches!(poll(pin!(service.call(n))), Poll::Ready(Ok(_))));
    }
    let Poll::Ready(Err(refused)) = poll(pin!(service.call(9))) else { panic!("refused") };
    assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    assert!(matches!(rejection(&refused), Some(Rejection::Rate(KeyedError::RateLimited(_)))));
    assert_eq!(rejection(&refused).map(|r| r.http_status()), Some(429));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_millis(500));
    assert!(matches!(poll(pin!(service.call(3))), Poll::Ready(Ok(3))));
}

#[test]
fn each_key_has_a_quota_of_its_own() {
    let clock = ManualClock::new();
    let limiter = Arc::new(KeyedRateLimiter::new(Quota::per_second(1).unwrap(), clock.clone()));
    let inner = service_fn(|(_, n): (u8, u32)| async move { Ok::<_, std::io::Error>(n) });
    let mut service =
        KeyedRateLimitLayer::new(limiter.clone(), |request: &(u8, u32)| request.0).layer(inner);
    let mut call = |client: u8| match poll(pin!(service.call((client, 7)))) {
        Poll::Ready(answer) => answer,
        Poll::Pending => panic!("ready at once"),
    };
    assert!(call(1).is_ok());
    assert!(call(2).is_ok());
    assert!(matches!(call(1), Err(RateLimitError::Rejected(KeyedError::RateLimited(_)))));
    assert!(call(3).is_ok());
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected, stats.keys), (3, 1, 3));
}
