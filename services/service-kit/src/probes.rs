//! Liveness and readiness. Readiness turns false as soon as shutdown starts,
//! before the listener drains, so a load balancer stops sending new work;
//! and while the service says it is too busy to take more (`Busy`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Why a service takes no more work now (a model's queue is full), or
/// `None`: it does.
pub type Busy = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Shared readiness: accepting work (until shutdown), and not busy.
#[derive(Clone, Default)]
pub struct Readiness {
    accepting: Arc<AtomicBool>,
    busy: Option<Busy>,
}

impl Readiness {
    /// Readiness that also asks `busy`.
    pub fn with_busy(busy: Option<Busy>) -> Self {
        Self {
            accepting: Arc::default(),
            busy,
        }
    }

    pub fn set(&self, ready: bool) {
        self.accepting.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.state().is_ok()
    }

    /// Ready, or why not: `draining` (shutting down) or `overloaded`, with
    /// the service's reason.
    pub fn state(&self) -> Result<(), (&'static str, Option<String>)> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(("draining", None));
        }
        match self.busy.as_ref().and_then(|b| b()) {
            Some(why) => Err(("overloaded", Some(why))),
            None => Ok(()),
        }
    }
}

/// What the probes answer: `{"status": "ok" | "ready" | "draining" |
/// "overloaded"}`, with a `reason` when overloaded.
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

/// `GET /readyz`: 200 while accepting work, 503 once draining or while
/// the service is too busy to take more.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "Accepting work", body = ProbeStatus,
        example = json!({"status": "ready"})),
    (status = 503, description = "Shutting down (draining before the listener closes), or \
        overloaded (a model's queue is past its bounds)",
        body = ProbeStatus, example = json!({"status": "draining"}))))]
pub async fn ready(State(r): State<Readiness>) -> (StatusCode, Json<Value>) {
    match r.state() {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err((status, None)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status })),
        ),
        Err((status, Some(reason))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status, "reason": reason })),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_is_draining_or_overloaded_with_the_reason() {
        let busy: Busy = Arc::new(|| Some("8 requests wait".to_string()));
        let r = Readiness::with_busy(Some(busy));
        let (status, Json(body)) = ready(State(r.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"status": "draining"}));
        r.set(true);
        let (status, Json(body)) = ready(State(r.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            json!({"status": "overloaded", "reason": "8 requests wait"})
        );
        assert!(!r.is_ready());
        let idle = Readiness::with_busy(Some(Arc::new(|| None)));
        idle.set(true);
        assert_eq!(ready(State(idle)).await.0, StatusCode::OK);
    }
}
