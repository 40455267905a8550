//! `PipelineLayer` over real HTTP: a hyper client on loopback, wrapped in one pipeline
//! (retry, breaker, time limit) as one layer, calling the example's flaky upstream. The
//! breaker's recovery runs on a manual clock; real sockets only add waiting.

#[path = "../examples/guarded_http/app.rs"]
mod app;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kompoz::ManualClock;
use kompoz::breaker::{CircuitBreaker, CircuitState};
use kompoz::retry::RetryPolicy;
use kompoz_tower::{Rejection, pipeline_layer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pipeline_layer_retries_opens_its_breaker_and_recovers_over_http() -> Result<(), Error>
{
    let upstream = app::start_upstream().await?;
    let clock = ManualClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .failure_threshold(2)
            .recovery_timeout(Duration::from_secs(30))
            .build_with(clock.clone())?,
    );
    let pipeline = kompoz_tokio::pipeline::<StatusCode, std::io::Error>()
        .retry(RetryPolicy::builder().max_attempts(2).build()?)
        .breaker(breaker.clone())
        .timeout(Duration::from_secs(10));
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // The client as a service of clonable requests (a `Uri`); a 5xx is an error, so that
    // the retry and the breaker see it.
    let client = service_fn(move |uri: Uri| {
        let http = http.clone();
        async move {
            let mut request = Request::new(Empty::new());
            *request.uri_mut() = uri;
            let response = http.request(request).await.map_err(std::io::Error::other)?;
            match response.status() {
                status if status.is_server_error() => {
                    Err(std::io::Error::other(format!("upstream said {status}")))
                }
                status => Ok(status),
            }
        }
    });
    let mut service = ServiceBuilder::new().layer(pipeline_layer!(pipeline)).service(client);
    let data: Uri = format!("http://{}/data", upstream.addr).parse()?;

    // Failing: the request is tried twice, and both failures open the breaker.
    upstream.failing.store(true, Ordering::SeqCst);
    let failed = service.ready().await?.call(data.clone()).await.unwrap_err();
    assert_eq!(failed.rejection(), None, "the upstream's own failure: {failed}");
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 2, "the first try and one retry");
    assert_eq!(breaker.state(), CircuitState::Open);

    // Open: refused at once, never sent, never retried (a 503 for a front to answer).
    let refused = service.ready().await?.call(data.clone()).await.unwrap_err();
    assert!(matches!(refused.rejection(), Some(Rejection::Circuit(_))), "{refused}");
    assert_eq!(refused.rejection().map(|r| r.http_status()), Some(503));
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 2);

    // Recovered: after the recovery timeout, the probe gets through and closes it.
    upstream.failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    assert_eq!(service.ready().await?.call(data).await?, StatusCode::OK);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 3);
    Ok(())
}
