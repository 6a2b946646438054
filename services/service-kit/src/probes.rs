//! Liveness and readiness. Readiness turns false as soon as shutdown starts,
//! before the listener drains, so a load balancer stops sending new work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Shared readiness flag.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the probes answer: `{"status": "ok" | "ready" | "draining"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
}

/// `GET /healthz`: the process is alive and serving.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is alive", body = ProbeStatus,
        example = json!({"status": "ok"}))))]
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 while accepting work, 503 once draining.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "Accepting work", body = ProbeStatus,
        example = json!({"status": "ready"})),
    (status = 503, description = "Shutting down: draining before the listener closes",
        body = ProbeStatus, example = json!({"status": "draining"}))))]
pub async fn ready(State(r): State<Readiness>) -> (StatusCode, Json<Value>) {
    if r.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
    }
}
