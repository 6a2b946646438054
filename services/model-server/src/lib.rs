//! A model server: one `Model` chosen at start-up, served over Seldon Core's
//! v1 protocol (its endpoints, request formats and error shape) and the
//! Open Inference Protocol v2 over REST, both onto one protocol-neutral
//! core (`inference_core`).

pub mod api;
pub mod batching;
mod body;
pub mod compute;
pub mod errors;
pub mod model;
pub mod models;
pub mod openapi;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use anyhow::Result;
use service_kit::{ServeEnv, Service};

/// Reads the model and Seldon settings from `lookup` (the environment):
/// `MODEL` and its keys (see `models::from_env`), `MODEL_NAME` and
/// `MODEL_VERSION` (the name and version the Open Inference Protocol
/// serves it under), the Seldon operator's `PREDICTIVE_UNIT_*`.
pub fn service(env: &ServeEnv, lookup: impl Fn(&str) -> Option<String>) -> Result<Service> {
    // A panic is logged as every other event is (tract panics on some
    // inputs and graphs; where the model runs and loads, it is caught and
    // answered, and the log says what it was).
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
    let limits = seldon_protocol::Limits::for_body(env.max_body_bytes);
    let model = models::from_env(&lookup, limits.max_elements)?;
    let served = v2::Served {
        name: lookup("MODEL_NAME")
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| model.name().to_string()),
        version: lookup("MODEL_VERSION")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "1".into()),
    };
    tracing::info!(model = model.name(), served = %served.name, "model loaded");
    let slot = Arc::new(api::ModelSlot::new(model));
    // MODEL=onnx: a changed MODEL_PATH is served without a restart.
    if let Some((path, options)) = models::reload_source(&lookup, limits.max_elements)? {
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
    let compute_settings = compute::ComputeSettings::from_env(&lookup)?;
    let batching = batching::BatchSettings::from_env(&lookup, &compute_settings)?;
    let compute = Arc::new(compute::Compute::new(compute_settings));
    let compute_metrics = compute.metrics().clone();
    let batcher = if batching.enabled() {
        if env.max_concurrent_requests < batching.max_batch_size {
            tracing::warn!(
                max_concurrent_requests = env.max_concurrent_requests,
                max_batch_size = batching.max_batch_size,
                "MAX_CONCURRENT_REQUESTS is below MAX_BATCH_SIZE: at most that many requests \
                 are handled at once, so a batch gathers no more; raise it to the clients a \
                 batch should gather"
            );
        }
        tracing::info!(
            max_batch_size = batching.max_batch_size,
            max_queue_delay_us = batching.max_queue_delay.as_micros() as u64,
            "dynamic batching"
        );
        Some(batching::Batcher::start(
            batching,
            Arc::clone(&slot),
            compute_settings.instances,
            compute_metrics.clone(),
        )?)
    } else {
        None
    };
    let batch_sizes = batcher.as_ref().map(|b| b.sizes.clone());
    let busy = (Arc::clone(&compute), batcher.clone());
    let state = Arc::new(api::AppState {
        model: slot,
        served,
        unit: api::Unit {
            id: lookup("PREDICTIVE_UNIT_ID"),
            image: lookup("PREDICTIVE_UNIT_IMAGE"),
        },
        limits,
        metrics: metrics.clone(),
        compute,
        batcher,
    });
    Ok(Service {
        name: "model-server",
        version: env!("CARGO_PKG_VERSION"),
        routes: api::routes(state),
        metrics: Box::new(move |r| {
            metrics.register(r);
            compute_metrics.register(r);
            if let Some(sizes) = batch_sizes {
                r.register(
                    "model_batch_size",
                    "Rows per run of the dynamic batcher",
                    sizes,
                );
            }
        }),
        busy: Some(Arc::new(move || {
            busy.0
                .overloaded()
                .or_else(|| busy.1.as_ref().and_then(|b| b.overloaded()))
        })),
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
