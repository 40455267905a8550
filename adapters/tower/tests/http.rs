//! A real front server and a real flaky upstream on loopback ports, driven over HTTP: load
//! shedding, the client's breaker, time limits, and the Prometheus text against the
//! primitives' stats. Concurrency is controlled with held requests and time with manual
//! clocks; real sockets only add waiting, bounded generously, never a verdict.

#[path = "../examples/guarded_http/app.rs"]
mod app;

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use kompoz::ManualClock;
use kompoz::breaker::CircuitState;
use kompoz_tokio::TokioClock;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The process's one Prometheus recorder (the `metrics` facade has one global recorder).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().expect("the only recorder");
            kompoz::events::metrics::enable();
            handle
        })
        .clone()
}

fn settings(name: &'static str) -> app::Settings {
    app::Settings {
        name,
        max_concurrent: 3,
        per_client_per_second: 1_000,
        upstream_timeout: Duration::from_secs(5),
        failure_threshold: 3,
        recovery_timeout: Duration::from_secs(30),
    }
}

/// Waits until `done` holds, checking every millisecond for at most ten seconds: the
/// sockets and the server's tasks need real time to move, however loaded the machine.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("still waiting for {what} after ten seconds");
}

async fn status(front: std::net::SocketAddr, path: &str) -> Result<StatusCode, Error> {
    Ok(app::get_path(front, path).await?.0)
}

fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_concurrency_limit_requests_are_shed_with_503() -> Result<(), Error> {
    let upstream = app::start_upstream().await?;
    let settings = settings("shed_test");
    let front =
        app::start_front(upstream.addr, settings, TokioClock, ManualClock::new(), None).await?;
    let held: Vec<_> =
        (0..settings.max_concurrent).map(|_| spawn(app::get_path(front.addr, "/hold"))).collect();
    wait_until("the held requests to fill the limit", || {
        front.limit.stats().in_flight == settings.max_concurrent
    })
    .await;
    for _ in 0..2 {
        assert_eq!(status(front.addr, "/work").await?, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0, "shed before reaching upstream");
    front.release.send_replace(true);
    for request in held {
        assert_eq!(request.await??.0, StatusCode::OK);
    }
    assert_eq!(status(front.addr, "/work").await?, StatusCode::OK);
    let stats = front.limit.stats();
    assert_eq!((stats.total_rejected, stats.in_flight), (2, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_per_client_rate_requests_get_429_until_the_rate_allows_again()
-> Result<(), Error> {
    let upstream = app::start_upstream().await?;
    let clock = ManualClock::new();
    let settings = app::Settings { per_client_per_second: 4, ..settings("rate_test") };
    let front = app::start_front(upstream.addr, settings, TokioClock, clock.clone(), None).await?;
    for _ in 0..4 {
        assert_eq!(status(front.addr, "/work").await?, StatusCode::OK);
    }
    let reached = upstream.requests.load(Ordering::SeqCst);
    let (code, body) = app::get_path(front.addr, "/work").await?;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.starts_with("rejected by a rate limit: rate limited: retry after"), "{body}");
    assert_eq!(upstream.requests.load(Ordering::SeqCst), reached, "refused before upstream");
    // The rate's clock moves on by one interval: one more request is admitted, not two.
    clock.advance(Duration::from_millis(250));
    assert_eq!(status(front.addr, "/work").await?, StatusCode::OK);
    assert_eq!(status(front.addr, "/work").await?, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(front.per_client.stats().rejected, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_breaker_opens_while_upstream_fails_and_closes_after_it_recovers()
-> Result<(), Error> {
    let upstream = app::start_upstream().await?;
    let clock = ManualClock::new();
    let settings = settings("breaker_test");
    let front = app::start_front(upstream.addr, settings, TokioClock, clock.clone(), None).await?;
    assert_eq!(status(front.addr, "/work").await?, StatusCode::OK);

    upstream.failing.store(true, Ordering::SeqCst);
    for _ in 0..settings.failure_threshold {
        assert_eq!(status(front.addr, "/work").await?, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(front.breaker.state(), CircuitState::Open);
    let reached = upstream.requests.load(Ordering::SeqCst);
    assert_eq!(status(front.addr, "/work").await?, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.requests.load(Ordering::SeqCst), reached, "refused without calling");

    // Still failing when the recovery time has passed: the probe fails, it opens again.
    clock.advance(settings.recovery_timeout);
    assert_eq!(status(front.addr, "/work").await?, StatusCode::BAD_GATEWAY);
    assert_eq!(front.breaker.state(), CircuitState::Open);

    upstream.failing.store(false, Ordering::SeqCst);
    assert_eq!(status(front.addr, "/work").await?, StatusCode::SERVICE_UNAVAILABLE);
    clock.advance(settings.recovery_timeout);
    assert_eq!(status(front.addr, "/work").await?, StatusCode::OK, "the probe succeeds");
    assert_eq!(front.breaker.state(), CircuitState::Closed);
    let stats = front.breaker.stats();
    assert_eq!((stats.success_count, stats.total_failures, stats.rejected_calls), (2, 4, 2));
    assert_eq!(stats.times_opened, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_hangs_is_cut_off_with_504() -> Result<(), Error> {
    let metrics = prometheus();
    let upstream = app::start_upstream().await?;
    let timer = ManualClock::new();
    let settings = settings("timeout_test");
    let front =
        app::start_front(upstream.addr, settings, timer.clone(), ManualClock::new(), None).await?;
    let request = spawn(app::get_path(front.addr, "/slow"));
    // The first attempt is cut off, and so is the retry.
    for attempt in 1..=2 {
        wait_until("an attempt to start its timer", || timer.pending_timers() == 1).await;
        timer.advance(settings.upstream_timeout);
        wait_until("the attempt to fail", || front.breaker.stats().total_failures == attempt).await;
    }
    assert_eq!(request.await??.0, StatusCode::GATEWAY_TIMEOUT);
    // Each is a failure for the breaker, and a timeout event under the limit's name.
    assert_eq!(front.breaker.stats().total_failures, 2);
    let timeouts = [("primitive", "timeout"), ("name", settings.name)];
    assert_eq!(sample(&metrics.render(), "kompoz_timeouts_total", &timeouts), Some(2.0));
    Ok(())
}

/// The value of the sample `metric{labels}` in Prometheus text.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
        let rest = rest.strip_suffix('}')?;
        let mut found: Vec<(&str, &str)> = rest
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((key, value.trim_matches('"')))
            })
            .collect();
        found.sort();
        let mut wanted = labels.to_vec();
        wanted.sort();
        (name == metric && found == wanted).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_text_reports_what_the_primitives_counted() -> Result<(), Error> {
    let metrics = prometheus();
    let upstream = app::start_upstream().await?;
    let settings = settings("metrics_test");
    let front =
        app::start_front(upstream.addr, settings, TokioClock, ManualClock::new(), Some(metrics))
            .await?;
    // Some of everything: successes, failures that open the breaker, a refusal, a shed.
    for _ in 0..2 {
        assert_eq!(status(front.addr, "/work").await?, StatusCode::OK);
    }
    upstream.failing.store(true, Ordering::SeqCst);
    for _ in 0..settings.failure_threshold {
        assert_eq!(status(front.addr, "/work").await?, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(status(front.addr, "/work").await?, StatusCode::SERVICE_UNAVAILABLE);
    let held: Vec<_> =
        (0..settings.max_concurrent).map(|_| spawn(app::get_path(front.addr, "/hold"))).collect();
    wait_until("the held requests to fill the limit", || {
        front.limit.stats().in_flight == settings.max_concurrent
    })
    .await;
    assert_eq!(status(front.addr, "/work").await?, StatusCode::SERVICE_UNAVAILABLE);

    // Scraped while the held requests still hold their permits.
    let (code, text) = app::get_path(front.addr, "/metrics").await?;
    assert_eq!(code, StatusCode::OK);
    let breaker = front.breaker.stats();
    let limit = front.limit.stats();
    let name = ("name", settings.name);
    let calls =
        |outcome| sample(&text, "kompoz_breaker_calls_total", &[name, ("outcome", outcome)]);
    assert_eq!(calls("success"), Some(breaker.success_count as f64));
    assert_eq!(calls("failure"), Some(breaker.total_failures as f64));
    assert_eq!(calls("rejected"), Some(breaker.rejected_calls as f64));
    assert_eq!(calls("abandoned"), Some(breaker.abandoned_calls as f64));
    assert_eq!((breaker.success_count, breaker.total_failures, breaker.rejected_calls), (2, 3, 1));
    assert_eq!(sample(&text, "kompoz_breaker_state", &[name]), Some(1.0), "open");
    let gauge = |metric| sample(&text, metric, &[name]);
    assert_eq!(gauge("kompoz_limit_permits"), Some(limit.capacity as f64));
    assert_eq!(gauge("kompoz_limit_permits_in_use"), Some(settings.max_concurrent as f64));
    assert_eq!(gauge("kompoz_limit_permits_in_use"), Some(limit.in_flight as f64));
    assert_eq!(gauge("kompoz_limit_waiters"), Some(limit.waiting as f64));
    assert_eq!(gauge("kompoz_limit_acquired_total"), Some(limit.total_acquired as f64));
    assert_eq!(gauge("kompoz_limit_rejected_total"), Some(limit.total_rejected as f64));
    assert_eq!(limit.total_rejected, 1);
    // The shed request was also reported as an event, under the limit's name.
    let shed = [("primitive", "limit"), name, ("cause", "no_permits")];
    assert_eq!(sample(&text, "kompoz_rejections_total", &shed), Some(1.0));

    front.release.send_replace(true);
    for request in held {
        assert_eq!(request.await??.0, StatusCode::OK);
    }
    Ok(())
}
