//! The bootstrap every service runs: bind, serve with probes, metrics, JSON
//! errors and a body limit, stop gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::env::ServeEnv;
use crate::metrics::{self, Metrics};
use crate::probes::{self, Readiness};
use crate::{ConnAddrs, errors, shutdown};

/// What a service brings: its name and its routes.
pub struct Service {
    pub name: &'static str,
    pub version: &'static str,
    pub routes: Router,
    /// Registers the service's own metrics beside the HTTP ones.
    pub metrics: Box<dyn FnOnce(&mut Registry) + Send>,
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
    let readiness = Readiness::default();
    let app = router(
        service.routes,
        service.name,
        service.metrics,
        &env,
        readiness.clone(),
    );

    tracing::info!(
        service = service.name,
        version = service.version,
        addr = %local,
        port = local.port(),
        "listening"
    );
    readiness.set(true);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnAddrs>(),
    )
    .with_graceful_shutdown(signals.wait(readiness, env.drain))
    .await
    .context("serving")?;
    tracing::info!(service = service.name, "stopped");
    Ok(())
}

fn router(
    routes: Router,
    name: &str,
    extra_metrics: Box<dyn FnOnce(&mut Registry) + Send>,
    env: &ServeEnv,
    readiness: Readiness,
) -> Router {
    let metrics = Metrics::new(name, extra_metrics);
    let mut app = routes
        .route("/healthz", get(probes::live))
        .route("/readyz", get(probes::ready).with_state(readiness))
        .route(
            "/metrics",
            get(metrics::serve).with_state(Arc::clone(&metrics)),
        )
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(DefaultBodyLimit::max(env.max_body_bytes));
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
    app.route_layer(axum::middleware::from_fn_with_state(
        metrics,
        metrics::track,
    ))
}

/// A service's whole `main`: logging, settings, the runtime, and on failure
/// the error on stderr (and in the log) with a non-zero exit.
pub fn main(
    name: &str,
    env: impl FnOnce() -> Result<ServeEnv>,
    service: impl FnOnce(&ServeEnv) -> Result<Service>,
) -> std::process::ExitCode {
    crate::logging::init();
    let result = env().and_then(|env| {
        let service = service(&env)?;
        let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
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
