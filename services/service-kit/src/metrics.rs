//! Prometheus metrics: a request counter and latency histogram per route,
//! served in the text exposition format at `/metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route template (`/api/v1.0/predictions`), never the raw path, so
    /// that scanners probing random URLs cannot blow up the series count.
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Route,
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
                route: Route(Arc::from(UNMATCHED)),
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

/// Counts and times every request of the routes it wraps (a route layer:
/// the route label is the matched template, never the raw path). A plain
/// tower layer, without boxing, because it runs on every request.
#[derive(Clone)]
pub struct TrackLayer(pub Arc<Metrics>);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            route: Arc::new(RouteCache {
                metrics: Arc::clone(&self.0),
                route: OnceLock::new(),
                latency: Default::default(),
                ok: Default::default(),
            }),
        }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    /// Shared by the clones of the one route this instance wraps.
    route: Arc<RouteCache>,
}

/// A route's label, learnt from its first request, and the series its
/// common requests land in, resolved once: a request then costs two atomic
/// loads instead of two label-set lookups in the families.
struct RouteCache {
    metrics: Arc<Metrics>,
    route: OnceLock<Route>,
    /// Per method (by [`method_index`]): latency, and the count of 200s.
    latency: [OnceLock<Histogram>; METHODS],
    ok: [OnceLock<Counter>; METHODS],
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let method = method_index(req.method());
        self.route.route.get_or_init(|| {
            Route(
                req.extensions()
                    .get::<MatchedPath>()
                    .map_or_else(|| Arc::from(UNMATCHED), |p| Arc::from(p.as_str())),
            )
        });
        TrackFuture {
            inner: self.inner.call(req),
            start: Instant::now(),
            method,
            cache: Some(Arc::clone(&self.route)),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: usize,
        cache: Option<Arc<RouteCache>>,
    }
}

impl<F, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(resp), Some(cache)) = (&result, this.cache.take()) {
            let elapsed = this.start.elapsed();
            let status = resp.status().as_u16();
            let (i, m) = (*this.method, &*cache.metrics);
            let route = || {
                cache
                    .route
                    .get()
                    .cloned()
                    .unwrap_or_else(|| Route(Arc::from(UNMATCHED)))
            };
            cache.latency[i]
                .get_or_init(|| {
                    m.latency
                        .get_or_create(&RouteLabels {
                            method: METHOD_NAMES[i],
                            route: route(),
                        })
                        .clone()
                })
                .observe(elapsed.as_secs_f64());
            let labels = || RequestLabels {
                method: METHOD_NAMES[i],
                route: route(),
                status,
            };
            if status == 200 {
                cache.ok[i]
                    .get_or_init(|| m.requests.get_or_create(&labels()).clone())
                    .inc();
            } else {
                m.requests.get_or_create(&labels()).inc();
            }
            tracing::debug!(
                method = METHOD_NAMES[i],
                status,
                elapsed_us = elapsed.as_micros() as u64,
                "request"
            );
        }
        Poll::Ready(result)
    }
}

/// A route template as a label value, shared rather than copied.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Route(Arc<str>);

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

const METHODS: usize = 8;

/// The method label; anything unusual is `OTHER`, so methods add no series.
const METHOD_NAMES: [&str; METHODS] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "OTHER",
];

fn method_index(m: &axum::http::Method) -> usize {
    use axum::http::Method;
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        _ => 7,
    }
}

fn static_method(m: &axum::http::Method) -> &'static str {
    METHOD_NAMES[method_index(m)]
}

/// The content type of what prometheus-client's text encoder writes
/// (OpenMetrics 1.0: `# EOF` at the end, counters' `_total` samples).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: OpenMetrics text, which Prometheus scrapes.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "probes", responses(
    (status = 200, description = "Metrics in the OpenMetrics text format", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn serve(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
        m.render(),
    )
}
