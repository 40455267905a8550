//! The example's two servers and its client stack, shared with the integration test
//! (`tests/http.rs` includes this file).
//!
//! * The **upstream** is a deliberately flaky HTTP server: `GET /data` answers 500 while
//!   it is told to fail and 200 otherwise; `GET /hang` never answers.
//! * The **front** is an axum server. Its routes share a rate limit per client address
//!   (429, with `Retry-After`, above `per_client_per_second`) and one concurrency limit that
//!   sheds load (503 above `max_concurrent` requests in flight). `GET /work` and `GET /slow`
//!   call the upstream through a client stack, retry(breaker(timeout(hyper client))): a
//!   request that fails (no answer in time, a broken connection) is tried once more, but
//!   not while the circuit is open; the breaker counts a 5xx as a failure and a 4xx not.
//!   A refusal by the breaker is a 503, a time limit a 504, an upstream 5xx a 502. `GET /hold` waits until released (the test
//!   uses it to fill the limit without timing). `GET /metrics` is the Prometheus text,
//!   outside the limit.

#![allow(dead_code, unreachable_pub)] // each user of this file uses part of it

use std::convert::Infallible;
use std::error::Error;
use std::future::pending;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error as ClientError};
use hyper_util::rt::TokioExecutor;
use kompoz::breaker::{CallError, CircuitBreaker, Verdict};
use kompoz::limit::Semaphore;
use kompoz::rate::{KeyedRateLimiter, Quota};
use kompoz::retry::RetryPolicy;
use kompoz::{Clock, Sleep};
use kompoz_tower::{
    BreakerLayer, BreakerService, ConcurrencyError, KeyedRateLimitLayer, LimitLayer,
    RateLimitError, RetryLayer, RetryService, TimeoutError, TimeoutLayer, TimeoutService,
    rejection,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::util::MapRequest;
use tower::{ServiceBuilder, ServiceExt};

/// The flaky upstream, running on a loopback port.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// While set, `GET /data` answers 500.
    pub failing: Arc<AtomicBool>,
    /// Requests it has received.
    pub requests: Arc<AtomicUsize>,
}

/// Starts the upstream on a loopback port of the system's choosing.
pub async fn start_upstream() -> std::io::Result<Upstream> {
    let failing = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let state = (failing.clone(), requests.clone());
    let app = Router::new().route("/data", get(data)).route("/hang", get(hang)).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Upstream { addr, failing, requests })
}

async fn data(
    State((failing, requests)): State<(Arc<AtomicBool>, Arc<AtomicUsize>)>,
) -> Response<Body> {
    requests.fetch_add(1, Ordering::SeqCst);
    if failing.load(Ordering::SeqCst) {
        (StatusCode::INTERNAL_SERVER_ERROR, "upstream is failing").into_response()
    } else {
        (StatusCode::OK, "fresh data").into_response()
    }
}

async fn hang(State((_, requests)): State<(Arc<AtomicBool>, Arc<AtomicUsize>)>) -> Response<Body> {
    requests.fetch_add(1, Ordering::SeqCst);
    pending().await
}

/// The front's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The name of the front's limit and of its client's breaker, in metrics.
    pub name: &'static str,
    /// Requests in flight before the front sheds load with 503.
    pub max_concurrent: usize,
    /// Requests a second each client address may make (also its burst) before 429.
    pub per_client_per_second: u32,
    /// The time limit on each call to the upstream (a 504 past it).
    pub upstream_timeout: Duration,
    /// Consecutive upstream failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets a probe through.
    pub recovery_timeout: Duration,
}

/// The client's error: the breaker's, around the timeout's, around hyper's.
pub type UpstreamError = CallError<TimeoutError<ClientError>>;

type UpstreamResult = Result<Response<Incoming>, TimeoutError<ClientError>>;

/// The breaker's classifier: a 5xx or no answer is the upstream failing; a 4xx is the
/// caller's mistake and says nothing about the upstream's health.
fn server_errors(result: &UpstreamResult) -> Verdict {
    match result {
        Ok(response) if response.status().is_server_error() => Verdict::Failure,
        Ok(_) => Verdict::Success,
        Err(_) => Verdict::Failure,
    }
}

/// A GET of `uri` (requests are retried, so the stack takes a `Uri`, which clones).
fn get_request(uri: Uri) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    request
}

/// The client stack: retry(breaker(timeout(hyper's client))).
pub type UpstreamClient<T, C> = RetryService<
    BreakerService<
        TimeoutService<
            MapRequest<Client<HttpConnector, Empty<Bytes>>, fn(Uri) -> Request<Empty<Bytes>>>,
            T,
        >,
        Arc<CircuitBreaker<C>>,
        fn(&UpstreamResult) -> Verdict,
    >,
    T,
>;

/// What the front's handlers share.
pub struct Front<T, C: Clock> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The client's breaker.
    pub breaker: Arc<CircuitBreaker<C>>,
    /// The front's concurrency limit.
    pub limit: Arc<Semaphore>,
    /// The front's rate limit per client address.
    pub per_client: Arc<KeyedRateLimiter<Option<IpAddr>, C>>,
    /// Send `true` to release every request waiting in `GET /hold`.
    pub release: watch::Sender<bool>,
    _timer: std::marker::PhantomData<T>,
}

impl<T, C: Clock> std::fmt::Debug for Front<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("addr", &self.addr).finish_non_exhaustive()
    }
}

struct FrontState<T, C: Clock> {
    upstream: SocketAddr,
    client: UpstreamClient<T, C>,
    breaker: Arc<CircuitBreaker<C>>,
    limit: Arc<Semaphore>,
    release: watch::Sender<bool>,
    metrics: Option<PrometheusHandle>,
    name: &'static str,
}

/// Starts the front on a loopback port of the system's choosing, calling `upstream`.
/// Time limits run on `timer`; the breaker measures time on `clock`.
pub async fn start_front<T, C>(
    upstream: SocketAddr,
    settings: Settings,
    timer: T,
    clock: C,
    metrics: Option<PrometheusHandle>,
) -> Result<Front<T, C>, Box<dyn std::error::Error + Send + Sync>>
where
    T: Sleep + Clone + Send + Sync + 'static,
    T::Timer: Send,
    C: Clock + Clone + Send + Sync + 'static,
{
    let per_client = Arc::new(KeyedRateLimiter::new(
        Quota::per_second(settings.per_client_per_second)?,
        clock.clone(),
    ));
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .failure_threshold(settings.failure_threshold)
            .recovery_timeout(settings.recovery_timeout)
            .build_with(clock)?,
    );
    let hyper_client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let classify: fn(&UpstreamResult) -> Verdict = server_errors;
    let to_request: fn(Uri) -> Request<Empty<Bytes>> = get_request;
    // One more attempt for a request that failed, at once.
    let retry = RetryPolicy::builder().max_attempts(2).build()?;
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(retry, timer.clone()))
        .layer(BreakerLayer::new(breaker.clone()).classify(classify))
        .layer(TimeoutLayer::new(timer, settings.upstream_timeout).name(settings.name))
        .map_request(to_request)
        .service(hyper_client);
    let limit = LimitLayer::named(settings.name, settings.max_concurrent)?.shed();
    let semaphore = limit.semaphore().clone();
    let release = watch::Sender::new(false);
    let state = Arc::new(FrontState {
        upstream,
        client,
        breaker: breaker.clone(),
        limit: semaphore.clone(),
        release: release.clone(),
        metrics,
        name: settings.name,
    });
    let limited = Router::new()
        .route("/work", get(work::<T, C>))
        .route("/slow", get(slow::<T, C>))
        .route("/hold", get(hold::<T, C>))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refused))
                .layer(KeyedRateLimitLayer::new(per_client.clone(), client_address))
                .layer(limit),
        );
    let app = limited.route("/metrics", get(render_metrics::<T, C>)).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Served with each connection's peer address, for the rate limit per client.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Front {
        addr,
        breaker,
        limit: semaphore,
        per_client,
        release,
        _timer: std::marker::PhantomData,
    })
}

/// The client's address, the key of the rate limit per client.
fn client_address(request: &Request<Body>) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip())
}

/// The rate limit or the concurrency limit refused the request (the routes themselves
/// never fail): 429 with `Retry-After` in whole seconds, or 503.
async fn refused(error: RateLimitError<ConcurrencyError<Infallible>>) -> Response<Body> {
    let status = rejection(&error).map_or(500, |rejection| rejection.http_status());
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, report(&error)).into_response();
    if let Some(wait) = error.retry_after() {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Calls the upstream at `path` through the client stack and maps the outcome to the
/// front's answer.
async fn call_upstream<T, C>(state: &FrontState<T, C>, path: &str) -> (StatusCode, String)
where
    T: Sleep + Clone + Send + Sync + 'static,
    T::Timer: Send,
    C: Clock + Send + Sync + 'static,
{
    let uri = match format!("http://{}{path}", state.upstream).parse::<Uri>() {
        Ok(uri) => uri,
        Err(error) => return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    match state.client.clone().oneshot(uri).await {
        Ok(response) if response.status().is_success() => (StatusCode::OK, "ok".into()),
        // The upstream answered with an error of its own: a bad gateway.
        Ok(response) => (StatusCode::BAD_GATEWAY, format!("upstream said {}", response.status())),
        Err(error) => answer_for(&error),
    }
}

/// 503 for an open circuit, 504 for a time limit, 502 for anything else.
pub fn answer_for(error: &UpstreamError) -> (StatusCode, String) {
    let status = rejection(error).map_or(502, |rejection| rejection.http_status());
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), report(error))
}

/// The error's message and its sources', joined as anyhow's `{:#}` does: `rejected by a
/// rate limit: rate limited: retry after 250ms`. kompoz's errors say each message once in
/// the chain (a refusal says what refused, its source why), so walking it repeats nothing.
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut said = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        said.push_str(": ");
        said.push_str(&cause.to_string());
        next = cause.source();
    }
    said
}

async fn work<T, C>(State(state): State<Arc<FrontState<T, C>>>) -> (StatusCode, String)
where
    T: Sleep + Clone + Send + Sync + 'static,
    T::Timer: Send,
    C: Clock + Send + Sync + 'static,
{
    call_upstream(&state, "/data").await
}

async fn slow<T, C>(State(state): State<Arc<FrontState<T, C>>>) -> (StatusCode, String)
where
    T: Sleep + Clone + Send + Sync + 'static,
    T::Timer: Send,
    C: Clock + Send + Sync + 'static,
{
    call_upstream(&state, "/hang").await
}

async fn hold<T, C: Clock>(State(state): State<Arc<FrontState<T, C>>>) -> StatusCode {
    let mut released = state.release.subscribe();
    match released.wait_for(|released| *released).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn render_metrics<T, C: Clock>(
    State(state): State<Arc<FrontState<T, C>>>,
) -> (StatusCode, String) {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "no metrics recorder".into());
    };
    // The counters the primitives keep, copied in just before the text is rendered.
    kompoz::events::metrics::record_breaker_stats(state.name, &state.breaker.stats());
    kompoz::events::metrics::record_limit_stats(state.name, &state.limit.stats());
    (StatusCode::OK, handle.render())
}

/// A plain HTTP client for the example and the test: `GET` a path of `addr`, returning the
/// status and the body.
pub async fn get_path(
    addr: SocketAddr,
    path: &str,
) -> Result<(StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(format!("http://{addr}{path}").parse()?).await?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
