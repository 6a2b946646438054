//! The HTTP API, as Seldon Core's v1 Python wrapper serves it.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use seldon_protocol::{Array, Feedback, Meta, SeldonMessage};
use serde_json::{Value, json};

use crate::body;
use crate::errors::SeldonError;
use crate::model::{Model, Payload};

/// Which Seldon predictive unit this is (set by the Seldon operator).
#[derive(Clone, Debug, Default)]
pub struct Unit {
    pub id: Option<String>,
    pub image: Option<String>,
}

pub struct AppState {
    pub model: Box<dyn Model>,
    pub unit: Unit,
    pub max_body_bytes: usize,
    pub metrics: ModelMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    outcome: &'static str,
}

/// The model's own metrics, beside the HTTP ones.
#[derive(Clone)]
pub struct ModelMetrics {
    predictions: Family<OutcomeLabels, Counter>,
    rows: Counter,
    latency: Histogram,
    feedback: Counter,
    reward: Counter<f64, std::sync::atomic::AtomicU64>,
}

impl ModelMetrics {
    pub fn new() -> Self {
        Self {
            predictions: Family::default(),
            rows: Counter::default(),
            latency: Histogram::new(exponential_buckets(0.00001, 2.0, 18)),
            feedback: Counter::default(),
            reward: Counter::default(),
        }
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "model_predictions",
            "Prediction requests by outcome",
            self.predictions.clone(),
        );
        r.register("model_prediction_rows", "Rows predicted", self.rows.clone());
        r.register(
            "model_prediction_duration_seconds",
            "Time spent in the model's predict",
            self.latency.clone(),
        );
        r.register(
            "model_feedback",
            "Feedback requests received",
            self.feedback.clone(),
        );
        r.register(
            "model_feedback_reward",
            "Sum of feedback rewards",
            self.reward.clone(),
        );
    }
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/predict", get(predict).post(predict))
        .route("/api/v1.0/predictions", post(predict))
        .route("/api/v0.1/predictions", post(predict))
        .route("/send-feedback", post(feedback))
        .route("/api/v1.0/feedback", post(feedback))
        .route("/api/v0.1/feedback", post(feedback))
        .route("/health/ping", get(|| async { "pong" }))
        .route("/health/status", get(health_status))
        .route("/metadata", get(metadata))
        .route("/api/v1.0/metadata", get(metadata))
        .with_state(state)
}

async fn predict(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let result = async {
        let msg: SeldonMessage = body::read(req, s.max_body_bytes).await?;
        let reply = run_model(&s, &msg)?;
        Ok::<_, SeldonError>(reply)
    }
    .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.http.is_client_error() => "bad_input",
        Err(_) => "error",
    };
    s.metrics
        .predictions
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
    match result {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => {
            tracing::debug!(status = e.http.as_u16(), info = %e.info, "prediction refused");
            e.into_response()
        }
    }
}

/// Decodes the payload, predicts, and encodes the answer in the request's form.
fn run_model(s: &AppState, msg: &SeldonMessage) -> Result<SeldonMessage, SeldonError> {
    let (input, names) = payload_of(msg)?;
    let rows = match &input {
        Payload::Array(a) => a.rows() as u64,
        _ => 1,
    };
    let start = Instant::now();
    let output = s.model.predict(input, &names)?;
    s.metrics.latency.observe(start.elapsed().as_secs_f64());
    s.metrics.rows.inc_by(rows);
    Ok(reply(s, msg.meta.as_ref(), output))
}

fn payload_of(msg: &SeldonMessage) -> Result<(Payload, Vec<String>), SeldonError> {
    let given = [
        msg.data.is_some(),
        msg.json_data.is_some(),
        msg.str_data.is_some(),
        msg.bin_data.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err(SeldonError::bad_data(
                "the message has no payload: send data (tensor or ndarray), jsonData, strData or binData",
            ));
        }
        1 => {}
        _ => {
            return Err(SeldonError::bad_data(
                "the message has more than one of data, jsonData, strData, binData: send one",
            ));
        }
    }
    if let Some(d) = &msg.data {
        let array = Array::from_data(d).map_err(|e| SeldonError::bad_data(e.to_string()))?;
        if !d.names.is_empty() && d.names.len() != array.cols() {
            return Err(SeldonError::bad_data(format!(
                "data.names has {} names for {} columns",
                d.names.len(),
                array.cols()
            )));
        }
        return Ok((Payload::Array(array), d.names.clone()));
    }
    if let Some(j) = &msg.json_data {
        return Ok((Payload::Json(j.clone()), Vec::new()));
    }
    if let Some(s) = &msg.str_data {
        return Ok((Payload::Str(s.clone()), Vec::new()));
    }
    let b64 = msg.bin_data.as_deref().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| SeldonError::bad_data(format!("binData is not valid base64: {e}")))?;
    Ok((Payload::Bin(bytes), Vec::new()))
}

fn reply(s: &AppState, request_meta: Option<&Meta>, output: Payload) -> SeldonMessage {
    let mut meta = Meta {
        puid: request_meta.and_then(|m| m.puid.clone()),
        tags: request_meta.map(|m| m.tags.clone()).unwrap_or_default(),
        ..Meta::default()
    };
    if let Some(id) = &s.unit.id {
        let image = s.unit.image.clone().unwrap_or_default();
        meta.request_path.insert(id.clone(), Value::String(image));
    }
    let mut msg = SeldonMessage {
        meta: Some(meta),
        ..SeldonMessage::default()
    };
    match output {
        Payload::Array(a) => {
            let cols = a.cols();
            let names = match s.model.class_names() {
                Some(n) if n.len() == cols => n.to_vec(),
                _ => (0..cols).map(|i| format!("t:{i}")).collect(),
            };
            msg.data = Some(a.to_data(names));
        }
        Payload::Json(j) => msg.json_data = Some(j),
        Payload::Str(t) => msg.str_data = Some(t),
        Payload::Bin(b) => msg.bin_data = Some(base64::engine::general_purpose::STANDARD.encode(b)),
    }
    msg
}

async fn feedback(
    State(s): State<Arc<AppState>>,
    req: Request,
) -> Result<Json<SeldonMessage>, SeldonError> {
    let fb: Feedback = body::read(req, s.max_body_bytes).await?;
    if fb.request.is_none() && fb.reward.is_none() && fb.truth.is_none() {
        return Err(SeldonError::bad_data(
            "feedback needs at least one of request, reward or truth",
        ));
    }
    if let Some(r) = fb.reward
        && !r.is_finite()
    {
        return Err(SeldonError::bad_data("reward must be a finite number"));
    }
    for (field, m) in [
        ("request", &fb.request),
        ("response", &fb.response),
        ("truth", &fb.truth),
    ] {
        if let Some(d) = m.as_ref().and_then(|m| m.data.as_ref()) {
            Array::from_data(d).map_err(|e| SeldonError::bad_data(format!("{field}: {e}")))?;
        }
    }
    s.metrics.feedback.inc();
    if let Some(r) = fb.reward
        && r > 0.0
    {
        s.metrics.reward.inc_by(r);
    }
    let meta = fb.request.as_ref().and_then(|m| m.meta.as_ref());
    Ok(Json(SeldonMessage {
        meta: Some(Meta {
            puid: meta.and_then(|m| m.puid.clone()),
            tags: meta.map(|m| m.tags.clone()).unwrap_or_default(),
            ..Meta::default()
        }),
        ..SeldonMessage::default()
    }))
}

/// Runs the model on its probe input: 200 with the answer, or 503.
async fn health_status(State(s): State<Arc<AppState>>) -> Response {
    match s.model.predict(s.model.probe(), &[]) {
        Ok(out) => Json(reply(&s, None, out)).into_response(),
        Err(e) => {
            let mut err = SeldonError::from(e);
            err.http = StatusCode::SERVICE_UNAVAILABLE;
            err.into_response()
        }
    }
}

/// Seldon v1 model metadata.
async fn metadata(State(s): State<Arc<AppState>>) -> Json<Value> {
    let schema = |names: Option<&[String]>| match names {
        Some(n) => json!({"messagetype": "tensor", "schema": {"names": n, "shape": [n.len()]}}),
        None => json!({"messagetype": "ndarray", "schema": {}}),
    };
    Json(json!({
        "name": s.model.name(),
        "versions": [env!("CARGO_PKG_VERSION")],
        "platform": s.model.platform(),
        "inputs": [schema(s.model.feature_names())],
        "outputs": [schema(s.model.class_names())],
    }))
}
