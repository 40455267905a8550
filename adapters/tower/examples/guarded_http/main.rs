//! A front server that sheds load, calling a flaky upstream through retry(breaker(timeout(client))),
//! with Prometheus metrics. Both servers run on loopback ports; the program drives a short
//! tour and exits:
//!
//! ```sh
//! cargo run -p kompoz-tower --example guarded_http
//! ```

mod app;

use std::sync::atomic::Ordering;
use std::time::Duration;

use kompoz::StdClock;
use kompoz_tokio::TokioClock;
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    kompoz::events::metrics::enable(); // count kompoz's events with it
    let upstream = app::start_upstream().await?;
    let settings = app::Settings {
        name: "example",
        max_concurrent: 4,
        per_client_per_second: 50,
        upstream_timeout: Duration::from_millis(300),
        failure_threshold: 3,
        recovery_timeout: Duration::from_millis(500),
    };
    let front =
        app::start_front(upstream.addr, settings, TokioClock, StdClock, Some(metrics)).await?;
    println!("front on http://{}, upstream on http://{}", front.addr, upstream.addr);

    let show = |what: &str, (status, body): (axum::http::StatusCode, String)| {
        println!("{what:<32} {status} {body}");
    };
    show("healthy upstream", app::get_path(front.addr, "/work").await?);
    show("upstream that hangs", app::get_path(front.addr, "/slow").await?);
    upstream.failing.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        show("failing upstream", app::get_path(front.addr, "/work").await?);
    }
    println!("breaker: {}", front.breaker.state());
    upstream.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(settings.recovery_timeout).await;
    show("recovered upstream (a probe)", app::get_path(front.addr, "/work").await?);
    println!("breaker: {}", front.breaker.state());

    // Fill the limit with held requests, then one more is shed.
    let held: Vec<_> = (0..settings.max_concurrent)
        .map(|_| tokio::spawn(app::get_path(front.addr, "/hold")))
        .collect();
    while front.limit.stats().in_flight < settings.max_concurrent {
        tokio::task::yield_now().await;
    }
    show("one request too many", app::get_path(front.addr, "/work").await?);
    front.release.send_replace(true);
    for request in held {
        show("held request, released", request.await??);
    }

    let (_, text) = app::get_path(front.addr, "/metrics").await?;
    for line in text.lines().filter(|line| line.starts_with("kompoz_")) {
        println!("{line}");
    }
    Ok(())
}
