//! The bootstrap every service runs: bind, serve HTTP/1 with probes,
//! metrics, JSON errors, request decompression and bounded connections,
//! then stop gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::routing::get;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::env::ServeEnv;
use crate::lifecycle::{self, BodyPolicy, Lifecycle};
use crate::metrics::{self, Metrics};
use crate::probes::{self, Readiness};
use crate::{ConnAddrs, errors, openapi, shutdown};

/// The most a connection buffers while reading a request head (the request
/// line, so also a GET's `?json=`, and the headers): larger heads get 431.
/// hyper's default, about 400 KiB, let 256 slow clients hold 100 MiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields a request may have (hyper's default; more get
/// 431). Like every request hyper cannot parse, it is answered with the
/// bare status and the connection closed: there is no request to route.
pub const MAX_HEADERS: usize = 100;

/// Replies are handed to the socket in pieces of this size, so that a
/// reply's memory, and its admission, last until it has been written.
pub const SEND_CHUNK_BYTES: usize = 64 * 1024;

/// After the drain, how long clients still sending a request are waited
/// for before their connections are closed. Requests already being
/// handled are always finished.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// What a service brings: its name and its routes.
pub struct Service {
    pub name: &'static str,
    pub version: &'static str,
    pub routes: Router,
    /// Registers the service's own metrics beside the HTTP ones.
    pub metrics: Box<dyn FnOnce(&mut Registry) + Send>,
    /// The service's routes as OpenAPI (utoipa); served, with the common
    /// ones, at `/openapi.json`.
    pub openapi: utoipa::openapi::OpenApi,
    /// Asked by the readiness probes: why the service takes no more work
    /// now (a model's queue is full), which makes them answer 503.
    pub busy: Option<probes::Busy>,
}

/// Serves `service` until SIGTERM or SIGINT; returns after in-flight
/// requests have finished.
pub async fn run(service: Service, env: ServeEnv) -> Result<()> {
    let addr = SocketAddr::new(env.bind, env.port);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: is the port in use? set PORT to another port")
    })?;
    let local = listener.local_addr().context("reading the bound address")?;
    let signals = shutdown::Signals::install()?;
    let readiness = Readiness::with_busy(service.busy.clone());
    let life = Lifecycle::new(
        readiness.clone(),
        BodyPolicy {
            max_bytes: env.max_body_bytes,
            read_timeout: env.body_read_timeout,
        },
        env.max_concurrent_requests,
    );
    let doc = openapi::document(service.openapi, service.name, service.version);
    let app = router(
        service
            .routes
            .route("/openapi.json", get(openapi::serve).with_state(doc)),
        service.name,
        service.metrics,
        &env,
        &life,
    );

    tracing::info!(
        service = service.name,
        version = service.version,
        addr = %local,
        port = local.port(),
        "listening"
    );
    readiness.set(true);
    let stop = signals.wait(readiness, env.drain);
    serve(listener, app, &env, &life, stop).await;
    tracing::info!(service = service.name, "stopped");
    Ok(())
}

/// Accepts connections until `stop` resolves, then closes them: idle ones
/// at once, busy ones after their response; clients still sending get
/// [`STOP_GRACE`], requests being handled are finished.
async fn serve(
    listener: TcpListener,
    app: Router,
    env: &ServeEnv,
    life: &Arc<Lifecycle>,
    stop: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(env.max_connections));
    let (close, closing) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    loop {
        // At the connection limit, stop accepting: the kernel's backlog holds
        // further clients until a slot frees.
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => s,
            () = &mut stop => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        while conns.try_join_next().is_some() {}
        match accepted {
            Ok((stream, remote)) => {
                let conn = connection(
                    stream,
                    remote,
                    app.clone(),
                    env,
                    Arc::clone(life),
                    closing.clone(),
                );
                conns.spawn(async move {
                    conn.await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, as axum does.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    close.send_replace(true);
    let all_closed = async { while conns.join_next().await.is_some() {} };
    let grace_over = tokio::time::timeout(STOP_GRACE, all_closed).await.is_err();
    if grace_over {
        life.stop_reading();
        if life.in_flight() > 0 {
            life.idle().await;
            // Let the last responses reach their sockets.
            let flush = async { while conns.join_next().await.is_some() {} };
            let _ = tokio::time::timeout(Duration::from_millis(200), flush).await;
        }
        if !conns.is_empty() {
            tracing::info!(
                connections = conns.len(),
                "closing connections whose clients stopped sending"
            );
        }
        conns.abort_all();
    }
}

/// What a connection is doing, for its watchdog: idle (waiting for a
/// request head: closed after `HEADER_READ_TIMEOUT_SECS`), handling a
/// request (no limit here: the body read has its own), or sending a reply
/// (closed when the client takes nothing for `SEND_TIMEOUT_SECS`). The
/// phase and the millisecond it began share one word.
struct Activity {
    opened: Instant,
    state: AtomicU64,
    /// Requests begun whose reply has not been sent (pipelining may overlap
    /// one's end with the next one's start).
    busy: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle = 0,
    Handling = 1,
    Sending = 2,
}

/// Why the watchdog closed a connection.
#[derive(Debug)]
enum Stalled {
    Head,
    Reply,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            state: AtomicU64::new(Phase::Idle as u64),
            busy: AtomicUsize::new(0),
        }
    }

    fn mark(&self, phase: Phase) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.state.store(ms << 2 | phase as u64, Ordering::Relaxed);
    }

    /// A request head arrived; the guard ends it when dropped. (Handling
    /// has no time limit, so no clock is read for it.)
    fn begin(self: Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        let since = self.state.load(Ordering::Relaxed) & !3;
        self.state
            .store(since | Phase::Handling as u64, Ordering::Relaxed);
        Busy(self)
    }

    /// Resolves when the connection has stalled, saying how.
    async fn watch(self: Arc<Self>, head: Duration, send: Duration) -> Stalled {
        loop {
            let seen = self.state.load(Ordering::Relaxed);
            let since = self.opened + Duration::from_millis(seen >> 2);
            let idle = self.busy.load(Ordering::Relaxed) == 0;
            let (limit, stalled) = match seen & 3 {
                p if p == Phase::Idle as u64 && idle => (head, Some(Stalled::Head)),
                p if p == Phase::Sending as u64 => (send, Some(Stalled::Reply)),
                _ => (head, None),
            };
            match stalled {
                Some(why) => {
                    tokio::time::sleep_until(since + limit).await;
                    if self.state.load(Ordering::Relaxed) == seen {
                        return why;
                    }
                }
                // Handling: look again later.
                None => tokio::time::sleep(limit).await,
            }
        }
    }
}

/// A request between its head and the end of its reply.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.mark(Phase::Idle);
        }
    }
}

/// A reply body on its way to the socket: handed over in pieces of at most
/// [`SEND_CHUNK_BYTES`] (hyper asks for the next piece once the last is
/// nearly written), each marking progress for the watchdog. Whatever the
/// reply holds (its admission) lives until the last piece is taken.
struct Sending {
    inner: Body,
    rest: Bytes,
    busy: Busy,
}

impl Sending {
    fn new(inner: Body, busy: Busy) -> Self {
        // The phase turns to sending with the first piece.
        Self {
            inner,
            rest: Bytes::new(),
            busy,
        }
    }

    fn piece(&mut self) -> Frame<Bytes> {
        let n = self.rest.len().min(SEND_CHUNK_BYTES);
        self.busy.0.mark(Phase::Sending);
        Frame::data(self.rest.split_to(n))
    }
}

impl http_body::Body for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if !self.rest.is_empty() {
            return Poll::Ready(Some(Ok(self.piece())));
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    self.rest = data;
                    Poll::Ready(Some(Ok(self.piece())))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower() + rest);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// Serves one HTTP/1 connection until it ends, stalls, or shutdown closes
/// it. Every request carries the connection's addresses and the lifecycle,
/// counts as in flight until its response is ready, and once draining has
/// begun gets `Connection: close`.
fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    env: &ServeEnv,
    life: Arc<Lifecycle>,
    mut closing: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let local = stream.local_addr().unwrap_or(remote);
    let addrs = ConnectInfo(ConnAddrs { remote, local });
    let _ = stream.set_nodelay(true);
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timeout arms a timer for every request; the
    // watchdog below checks the connection as a whole instead.
    http.keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES);
    let activity = Arc::new(Activity::new());
    let watchdog = Arc::clone(&activity).watch(env.header_read_timeout, env.send_timeout);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(addrs);
        let busy = Arc::clone(&activity).begin();
        let req = req.map(Body::new);
        let app = app.clone();
        // The in-flight guard is the request's task-local: the body reader
        // finds the lifecycle through it.
        lifecycle::CURRENT.scope(life.enter(), async move {
            let Ok(mut resp) = app.oneshot(req).await;
            if lifecycle::CURRENT.with(|l| l.draining()) {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| Sending::new(b, busy)))
        })
    });
    async move {
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let ended = tokio::select! {
            r = conn.as_mut() => r,
            () = async { drop(closing.wait_for(|c| *c).await) } => {
                // Idle: closes now; busy: after the response in progress.
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
            why = watchdog => {
                tracing::debug!(?why, "closing a stalled connection");
                Ok(())
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended");
        }
    }
}

fn router(
    routes: Router,
    name: &str,
    extra_metrics: Box<dyn FnOnce(&mut Registry) + Send>,
    env: &ServeEnv,
    life: &Arc<Lifecycle>,
) -> Router {
    let metrics = Metrics::new(name, extra_metrics);
    let unmatched = Arc::clone(&metrics);
    let mut app = routes
        .route("/healthz", get(probes::live))
        .route(
            "/readyz",
            get(probes::ready).with_state(life.readiness.clone()),
        )
        .route(
            "/metrics",
            get(metrics::serve).with_state(Arc::clone(&metrics)),
        )
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(DefaultBodyLimit::max(env.max_body_bytes))
        // A service's own readiness endpoints (the model server's
        // /v2/health/ready) answer as /readyz does.
        .layer(axum::Extension(life.readiness.clone()));
    if !env.artificial_latency.is_zero() {
        let delay = env.artificial_latency;
        tracing::warn!(
            delay_ms = delay.as_millis() as u64,
            "ARTIFICIAL_LATENCY_MS is set"
        );
        app = app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                tokio::time::sleep(delay).await;
                next.run(req).await
            },
        ));
    }
    app.route_layer(metrics::TrackLayer(metrics))
        // Fallbacks are not routes: count them here under one fixed label.
        .fallback(move |req: Request| async move {
            let method = req.method().clone();
            let resp = errors::not_found(method.clone(), req.uri().clone()).await;
            unmatched.count_unmatched(&method, axum::http::StatusCode::NOT_FOUND);
            resp
        })
}

/// Threads for work handed off the I/O threads (`spawn_blocking`: large
/// batches, a model's runs): one per request that may be processed at once
/// (`MAX_CONCURRENT_REQUESTS`), since no more can be there. Few on purpose:
/// each thread gets its own malloc arena, and arenas holding freed request
/// buffers multiply the process's memory.
pub fn blocking_threads(env: &ServeEnv) -> usize {
    env.max_concurrent_requests.clamp(1, 512)
}

/// A service's whole `main`: logging, settings, the runtime, and on failure
/// the error on stderr (and in the log) with a non-zero exit.
pub fn main(
    name: &str,
    env: impl FnOnce() -> Result<ServeEnv>,
    service: impl FnOnce(&ServeEnv) -> Result<Service>,
) -> std::process::ExitCode {
    let result = crate::logging::init().and_then(|()| env()).and_then(|env| {
        let service = service(&env)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(blocking_threads(&env))
            .build()
            .context("starting the async runtime")?;
        rt.block_on(run(service, env))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
