//! A Seldon Core v1 compatible model server: one `Model` chosen at start-up,
//! served with Seldon's endpoints, request formats and error shape.

pub mod api;
mod body;
pub mod errors;
pub mod model;
pub mod models;
pub mod openapi;

use std::sync::Arc;

use anyhow::Result;
use service_kit::{ServeEnv, Service};

/// Reads the model and Seldon settings from `lookup` (the environment).
pub fn service(env: &ServeEnv, lookup: impl Fn(&str) -> Option<String>) -> Result<Service> {
    let model = models::from_env(&lookup)?;
    tracing::info!(model = model.name(), "model loaded");
    let slot = Arc::new(api::ModelSlot::new(model));
    // MODEL=onnx: a changed MODEL_PATH is served without a restart.
    if let Some((path, options)) = models::reload_source(&lookup) {
        let every =
            service_kit::env::parse::<u64>(&lookup, "MODEL_RELOAD_SECS", "seconds")?.unwrap_or(2);
        if every > 0 {
            models::watch(
                path,
                options,
                Arc::clone(&slot),
                std::time::Duration::from_secs(every),
            )?;
        }
    }
    let metrics = api::ModelMetrics::new();
    let state = Arc::new(api::AppState {
        model: slot,
        unit: api::Unit {
            id: lookup("PREDICTIVE_UNIT_ID"),
            image: lookup("PREDICTIVE_UNIT_IMAGE"),
        },
        limits: seldon_protocol::Limits::for_body(env.max_body_bytes),
        metrics: metrics.clone(),
    });
    Ok(Service {
        name: "model-server",
        version: env!("CARGO_PKG_VERSION"),
        routes: api::routes(state),
        metrics: Box::new(move |r| metrics.register(r)),
        openapi: openapi::document(),
    })
}

/// The Seldon operator tells a unit its port in
/// `PREDICTIVE_UNIT_HTTP_SERVICE_PORT`; it wins over `PORT`.
pub fn serve_env(lookup: impl Fn(&str) -> Option<String>) -> Result<ServeEnv> {
    let port = service_kit::env::parse::<u16>(
        &lookup,
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
        "a port number 0-65535",
    )?;
    let mut env = ServeEnv::from_lookup(&lookup)?;
    if let Some(p) = port {
        env.port = p;
    }
    Ok(env)
}
