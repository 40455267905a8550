//! `PipelineLayer`: a whole kompoz pipeline around a tower service. What `poll_ready`
//! reserves (nothing), clones sharing the pipeline, cancellation giving back permits and
//! probe slots, retries on clones of the service, and errors that box and say which guard
//! refused. Deterministic: requests are held open by hand, and time is a `ManualClock` or
//! tokio's paused clock.

use std::future::{Future, pending};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::ManualClock;
use kompoz::breaker::{CircuitBreaker, CircuitState};
use kompoz::limit::{AcquireError, Semaphore};
use kompoz::retry::RetryPolicy;
use kompoz_tower::{PipelineError, Rejection, pipeline_layer, rejection};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

fn poll<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// A response that never comes: the request stays in flight until its future is dropped.
type Pending = Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send>>;

fn never_answers()
-> impl Service<u32, Response = u32, Error = std::io::Error, Future = Pending> + Clone + Send + 'static
{
    service_fn(|_: u32| -> Pending { Box::pin(pending()) })
}

#[test]
fn poll_ready_reserves_nothing_and_a_dropped_response_gives_everything_back() {
    let clock = ManualClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .failure_threshold(1)
            .recovery_timeout(Duration::from_secs(10))
            .build_with(clock.clone())
            .unwrap(),
    );
    let permits = Arc::new(Semaphore::new(1).unwrap());
    // Half-open, with its one probe slot free.
    breaker.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    let pipeline = kompoz::pipeline::Pipeline::<u32, std::io::Error, _>::with_timer(clock.clone())
        .breaker(breaker.clone())
        .limit(permits.clone())
        .max_wait(Duration::ZERO);
    let mut service = pipeline_layer!(pipeline).layer(never_answers());

    for _ in 0..3 {
        assert!(matches!(
            service.poll_ready(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ));
    }
    assert_eq!(permits.available_permits(), 1, "poll_ready reserves no permit");
    assert_eq!(breaker.stats().probes_in_flight, 0, "nor a probe slot");

    let mut probe = service.call(1);
    assert!(poll(probe.as_mut()).is_pending());
    assert_eq!(permits.available_permits(), 0, "the running request holds the permit");
    assert_eq!(breaker.stats().probes_in_flight, 1, "and the probe slot");

    // Half-open with its probe slot taken: a clone's request is refused by the breaker,
    // which comes first in the pipeline.
    let mut clone = service.clone();
    let refused = poll(pin!(clone.call(2)));
    let Poll::Ready(Err(refused)) = refused else { panic!("expected a refusal") };
    assert!(matches!(refused.rejection(), Some(Rejection::Circuit(_))), "{refused:?}");

    drop(probe); // the request is cancelled
    assert_eq!(permits.available_permits(), 1, "cancelling gave the permit back");
    let stats = breaker.stats();
    assert_eq!((stats.probes_in_flight, stats.abandoned_calls), (0, 1), "and the probe slot");
    assert_eq!(breaker.state(), CircuitState::HalfOpen, "with no verdict");
}

#[test]
fn clones_share_the_pipeline_and_refusals_box_and_say_who_refused() {
    let permits = Arc::new(Semaphore::new(1).unwrap());
    let pipeline =
        kompoz::pipeline::Pipeline::<u32, std::io::Error, _>::with_timer(ManualClock::new())
            .limit(permits.clone())
            .max_wait(Duration::ZERO);
    let layer = pipeline_layer!(pipeline);
    let mut first = layer.layer(never_answers());
    let mut second = first.clone();
    let mut held = first.call(1);
    assert!(poll(held.as_mut()).is_pending());

    let Poll::Ready(Err(refused)) = poll(pin!(second.call(2))) else {
        panic!("the clone shares the one permit, which is taken")
    };
    assert_eq!(refused.rejection(), Some(Rejection::Limit(AcquireError::WaitElapsed)));
    assert_eq!(refused.rejection().map(|r| r.http_status()), Some(503));
    let boxed: BoxError = refused.into();
    assert_eq!(rejection(&*boxed), Some(Rejection::Limit(AcquireError::WaitElapsed)));
    drop(held);
    assert_eq!(permits.available_permits(), 1);
}

#[test]
fn the_inner_services_own_error_is_not_a_rejection() {
    let pipeline =
        kompoz::pipeline::Pipeline::<u32, std::io::Error, _>::with_timer(ManualClock::new())
            .timeout(Duration::from_secs(1));
    let mut service = pipeline_layer!(pipeline)
        .layer(service_fn(|_: u32| async { Err::<u32, _>(std::io::Error::other("boom")) }));
    let Poll::Ready(Err(failed)) = poll(pin!(service.call(1))) else { panic!("expected an error") };
    assert_eq!(failed.rejection(), None);
    let boxed: BoxError = failed.into();
    assert_eq!(rejection(&*boxed), None);
    assert_eq!(boxed.to_string(), "boom");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_time_limit_cuts_the_request_off_with_a_504() {
    let pipeline = kompoz_tokio::pipeline::<u32, std::io::Error>().timeout(Duration::from_secs(2));
    let mut service = pipeline_layer!(pipeline).layer(never_answers());
    let error = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(matches!(error, PipelineError(kompoz::Error::TimedOut(_))), "{error:?}");
    assert_eq!(error.rejection().map(|r| r.http_status()), Some(504));
}

/// Fails its first `failures` calls; counts calls and readiness checks.
#[derive(Clone)]
struct Flaky {
    failures: usize,
    calls: Arc<AtomicUsize>,
    readied: Arc<AtomicUsize>,
}

impl Service<String> for Flaky {
    type Response = String;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<String, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.readied.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: String) -> Self::Future {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if call < self.failures {
            Err(std::io::Error::other("busy"))
        } else {
            Ok(format!("{request}, attempt {}", call + 1))
        })
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_retry_sends_a_clone_of_the_request_to_a_ready_clone_of_the_service() {
    let policy =
        RetryPolicy::builder().max_attempts(3).backoff(Duration::from_millis(100)).build().unwrap();
    let pipeline = kompoz_tokio::pipeline::<String, std::io::Error>().retry(policy);
    let flaky = Flaky { failures: 2, calls: Arc::default(), readied: Arc::default() };
    let mut service = pipeline_layer!(pipeline).layer(flaky.clone());
    let answer = service.ready().await.unwrap().call("hello".to_string()).await.unwrap();
    assert_eq!(answer, "hello, attempt 3");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    // Once by `ready()` for the first attempt, then once per retry on its clone.
    assert_eq!(flaky.readied.load(Ordering::SeqCst), 3);
}
