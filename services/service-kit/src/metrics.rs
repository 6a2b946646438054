//! Prometheus metrics: a request counter and latency histogram per route,
//! served in the text exposition format at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route template (`/api/v1.0/predictions`), never the raw path, so
    /// that scanners probing random URLs cannot blow up the series count.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// The metrics of one service process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    /// `service` becomes a constant label; `extra` registers the service's own.
    pub fn new(service: &str, extra: impl FnOnce(&mut Registry)) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // 100 µs .. ~3.3 s: loopback calls sit at the low end, model calls higher.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            format!("HTTP requests served by {service}, by method, route and status"),
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            format!("Latency of HTTP requests served by {service}"),
            latency.clone(),
        );
        extra(&mut registry);
        Arc::new(Self {
            registry,
            requests,
            latency,
        })
    }

    /// Counts a request no route matched (404) under the fixed route label
    /// `unmatched`, so that scanners cannot add series.
    pub fn count_unmatched(&self, method: &axum::http::Method, status: axum::http::StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                method: static_method(method),
                route: UNMATCHED.to_owned(),
                status: status.as_u16(),
            })
            .inc();
    }

    /// The current values in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware that counts and times every request.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = static_method(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    m.latency
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    tracing::debug!(
        method,
        status,
        elapsed_us = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

fn static_method(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// `GET /metrics`: the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "probes", responses(
    (status = 200, description = "Prometheus metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn serve(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        m.render(),
    )
}
