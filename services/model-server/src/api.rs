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
use seldon_protocol::{Array, Feedback, Limits, Meta, Names, Repr, SeldonMessage};
use serde_json::{Value, json};

use crate::body;
use crate::errors::SeldonError;
use crate::model::{Model, check_inputs};
use crate::v1::{self, Payload};

/// Which Seldon predictive unit this is (set by the Seldon operator).
#[derive(Clone, Debug, Default)]
pub struct Unit {
    pub id: Option<String>,
    pub image: Option<String>,
}

/// The model requests use: replaced whole when its file changes (see
/// `models::watch`), so a request runs entirely on one model.
pub struct ModelSlot(std::sync::RwLock<Arc<dyn Model>>);

impl ModelSlot {
    pub fn new(model: Box<dyn Model>) -> Self {
        Self(std::sync::RwLock::new(Arc::from(model)))
    }

    /// The model now; requests hold it until they have answered.
    pub fn current(&self) -> Arc<dyn Model> {
        // A poisoned lock still holds a whole model: the swap cannot panic
        // half-way.
        self.0
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |m| Arc::clone(&m))
    }

    /// Puts `model` in place for the requests that follow.
    pub fn replace(&self, model: Arc<dyn Model>) {
        match self.0.write() {
            Ok(mut m) => *m = model,
            Err(p) => *p.into_inner() = model,
        }
    }
}

pub struct AppState {
    pub model: Arc<ModelSlot>,
    /// The model's name and version on the Open Inference Protocol (its
    /// service's name, `MODEL_NAME`).
    pub served: crate::v2::Served,
    pub unit: Unit,
    /// Bounds on the arrays a request may describe (from `MAX_BODY_BYTES`).
    pub limits: Limits,
    pub metrics: ModelMetrics,
    /// Where requests' work runs, and its queue.
    pub compute: Arc<crate::compute::Compute>,
    /// The dynamic batcher, when batching is on (`MAX_BATCH_SIZE` > 1).
    pub batcher: Option<Arc<crate::batching::Batcher>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    outcome: &'static str,
}

/// The model's own metrics, beside the HTTP ones.
#[derive(Clone)]
pub struct ModelMetrics {
    predictions: Family<OutcomeLabels, Counter>,
    pub(crate) rows: Counter,
    pub(crate) latency: Histogram,
    feedback: Counter,
    reward: Counter<f64, std::sync::atomic::AtomicU64>,
    penalty: Counter<f64, std::sync::atomic::AtomicU64>,
}

impl ModelMetrics {
    pub fn new() -> Self {
        Self {
            predictions: Family::default(),
            rows: Counter::default(),
            latency: Histogram::new(exponential_buckets(0.00001, 2.0, 18)),
            feedback: Counter::default(),
            reward: Counter::default(),
            penalty: Counter::default(),
        }
    }

    /// Counts a prediction by its outcome: ok, or the status it failed
    /// with (a 4xx is bad input).
    pub(crate) fn count(&self, outcome: Result<(), StatusCode>) {
        let outcome = match outcome {
            Ok(()) => "ok",
            Err(s) if s.is_client_error() => "bad_input",
            Err(_) => "error",
        };
        self.predictions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
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
        // A counter only grows: positive and negative rewards are summed
        // apart (the net reward is their difference).
        r.register(
            "model_feedback_reward",
            "Sum of the positive feedback rewards",
            self.reward.clone(),
        );
        r.register(
            "model_feedback_penalty",
            "Sum of the magnitudes of the negative feedback rewards",
            self.penalty.clone(),
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
        .route("/predict", get(predict_query).post(predict))
        .route("/api/v1.0/predictions", post(predict))
        .route("/api/v0.1/predictions", post(predict))
        .route("/send-feedback", get(feedback_query).post(feedback))
        .route("/api/v1.0/feedback", post(feedback))
        .route("/api/v0.1/feedback", post(feedback))
        .route("/health/ping", get(health_ping))
        .route("/health/status", get(health_status))
        .route("/api/v1.0/health/status", get(health_status))
        .route("/metadata", get(metadata))
        .route("/api/v1.0/metadata", get(metadata))
        .with_state(Arc::clone(&state))
        .merge(crate::v2::routes(state))
}

/// Predict: the model's answer to a SeldonMessage, in the request's form.
#[utoipa::path(post, path = "/predict", tag = "seldon",
    request_body(description = "A SeldonMessage with one payload: data (tensor or ndarray), \
        jsonData, strData or binData. gzip and deflate bodies (Content-Encoding) are decompressed.",
        content(
            (SeldonMessage = "application/json", example = json!(crate::openapi::tutorial())),
            (crate::openapi::JsonForm = "application/x-www-form-urlencoded"),
            (crate::openapi::MultipartMessage = "multipart/form-data"))),
    responses(
        (status = 200, description = "The prediction, in the request's array form", body = SeldonMessage),
        (status = 400, description = "Malformed message or input the model cannot take", body = SeldonMessage),
        (status = 408, description = "The body did not arrive within BODY_READ_TIMEOUT_SECS", body = SeldonMessage),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES", body = SeldonMessage),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding", body = SeldonMessage),
        (status = 503, description = "Shutting down", body = SeldonMessage)))]
pub async fn predict(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let result = async {
        let (text, admission) = body::read_text(req).await?;
        let size = text.len();
        let large = size > INLINE_BYTES;
        let model = s.model.current();
        if let Some(batcher) = s.batcher.clone().filter(|_| model.batched()) {
            let reply = predict_batched(Arc::clone(&s), batcher, model, text, large).await?;
            return Ok::<_, SeldonError>(admission.hold_until_sent(reply));
        }
        let state = Arc::clone(&s);
        let work = move || -> Result<Response, SeldonError> {
            let msg = body::parse(&text)?;
            // The message owns copies of what it needs from the text.
            drop(text);
            let reply = run_model(&state, msg)?;
            Ok(json_reply(&reply))
        };
        let reply = s.compute.run(large, work).await?;
        // The reply is part of the memory the admission bounds, until sent.
        Ok::<_, SeldonError>(admission.hold_until_sent(reply))
    }
    .await;
    s.metrics
        .count(result.as_ref().map(|_| ()).map_err(|e| e.http));
    match result {
        Ok(reply) => reply,
        Err(e) => {
            tracing::debug!(status = e.http.as_u16(), info = %e.info, "prediction refused");
            e.into_response()
        }
    }
}

/// Messages up to this size are handled on the I/O threads while the
/// model's work is quick (a thread hop would cost them more than it
/// saves); larger ones on the blocking pool (see `compute`).
pub(crate) const INLINE_BYTES: usize = 16 * 1024;

/// A prediction with dynamic batching: decoded and encoded here (or on
/// the blocking pool when `large`), waiting for its batch without holding
/// a thread; a client that goes away leaves the batch queue.
async fn predict_batched(
    s: Arc<AppState>,
    batcher: Arc<crate::batching::Batcher>,
    model: Arc<dyn Model>,
    text: String,
    large: bool,
) -> Result<Response, SeldonError> {
    let (state, decoding) = (Arc::clone(&s), Arc::clone(&model));
    let decode = move || -> Result<_, SeldonError> {
        let mut msg: SeldonMessage = body::parse(&text)?;
        drop(text);
        let input = payload_of(&mut msg, state.limits)?;
        let (rows, repr) = match &input {
            Payload::Array(a) => (a.rows() as u64, a.repr),
            _ => (1, Repr::Ndarray),
        };
        let model = decoding.as_ref();
        let inputs = check_inputs(model, v1::to_inputs(model, &state.served.name, input)?)?;
        state.metrics.rows.inc_by(rows);
        Ok((msg, repr, inputs))
    };
    let (msg, repr, inputs) = if large {
        crate::compute::blocking(decode).await?
    } else {
        decode()?
    };
    let start = Instant::now();
    let outputs = batcher.submit(inputs)?.await?;
    s.metrics.latency.observe(start.elapsed().as_secs_f64());
    let encode = move || -> Result<Response, SeldonError> {
        let output = v1::to_payload(model.as_ref(), outputs, repr)?;
        Ok(json_reply(&reply(
            &s,
            model.as_ref(),
            msg.meta.as_ref(),
            output,
        )))
    };
    if large {
        crate::compute::blocking(encode).await
    } else {
        encode()
    }
}

/// Decodes the payload, predicts, and encodes the answer in the request's form.
fn run_model(s: &AppState, mut msg: SeldonMessage) -> Result<SeldonMessage, SeldonError> {
    let input = payload_of(&mut msg, s.limits)?;
    // Bounded by the limits, so the counter cannot be pushed to wrap.
    let (rows, repr) = match &input {
        Payload::Array(a) => (a.rows() as u64, a.repr),
        _ => (1, Repr::Ndarray),
    };
    let start = Instant::now();
    let model = s.model.current();
    let output = predict_v1(s, model.as_ref(), input, repr)?;
    s.metrics.latency.observe(start.elapsed().as_secs_f64());
    s.metrics.rows.inc_by(rows);
    Ok(reply(s, model.as_ref(), msg.meta.as_ref(), output))
}

/// A v1 payload through the model, answered in the array form `repr`.
fn predict_v1(
    s: &AppState,
    model: &dyn Model,
    input: Payload,
    repr: Repr,
) -> Result<Payload, crate::model::ModelError> {
    let inputs = check_inputs(model, v1::to_inputs(model, &s.served.name, input)?)?;
    let outputs = model.infer(inputs)?;
    v1::to_payload(model, outputs, repr)
}

/// The one payload of `msg` (moved out of it). Its `data.names` are
/// advisory, as in Seldon: any count is accepted, and dropped.
fn payload_of(msg: &mut SeldonMessage, limits: Limits) -> Result<Payload, SeldonError> {
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
    if let Some(d) = msg.data.take() {
        let array =
            Array::take_data(d, limits).map_err(|e| SeldonError::bad_data(e.to_string()))?;
        return Ok(Payload::Array(array));
    }
    if let Some(j) = msg.json_data.take() {
        return Ok(Payload::Json(j));
    }
    if let Some(s) = msg.str_data.take() {
        return Ok(Payload::Str(s));
    }
    let b64 = msg.bin_data.take().unwrap_or_default();
    Ok(Payload::Bin(decode_base64(&b64)?))
}

/// Standard base64; line breaks and other whitespace are skipped, as
/// Python's `base64.b64decode` (and so Seldon) skips them: `base64` wraps
/// its output every 76 characters by default.
fn decode_base64(text: &str) -> Result<Vec<u8>, SeldonError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| SeldonError::bad_data(format!("binData is not valid base64: {e}")))
}

/// Column names of an output, as Seldon's `client_class_names`: for two or
/// more dimensions the model's class names (when they fit) or `t:0`,
/// `t:1`, ... over the second dimension; none for 0-D and 1-D outputs.
fn output_names(model: &dyn Model, a: &Array) -> Names {
    let &[_, width, ..] = a.shape() else {
        return Names::default();
    };
    match model.labels().class_names.as_deref() {
        Some(n) if n.len() == width => Names::List(n.to_vec()),
        _ => Names::Indexed(width),
    }
}

/// Serialises a reply into a buffer sized up front: a growing buffer would
/// hold one and a half times the reply while it doubles.
fn json_reply(msg: &SeldonMessage) -> Response {
    let data = msg.data.as_ref().map_or(0, |d| {
        let array = d
            .tensor
            .as_ref()
            .map(|t| t.values.get().len())
            .or_else(|| d.ndarray.as_ref().map(|n| n.get().len()))
            .unwrap_or(0);
        array + d.names.json_len()
    });
    let mut buf = Vec::with_capacity(data + 256);
    match serde_json::to_writer(&mut buf, msg) {
        Ok(()) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            buf,
        )
            .into_response(),
        Err(e) => {
            SeldonError::from(crate::model::ModelError::Internal(e.to_string())).into_response()
        }
    }
}

/// The reply's `meta`, as Seldon's `construct_response_json` builds it: the
/// request's `puid` (when not empty), `tags` and `metrics` echoed, and
/// `requestPath` with this unit added (the request's entries win).
fn reply_meta(s: &AppState, request: Option<&Meta>) -> Meta {
    let path = request.map(|m| m.request_path.clone()).unwrap_or_default();
    let request_path = match &s.unit.id {
        Some(id) if !path.has_key(id) => {
            path.with_first(id, s.unit.image.as_deref().unwrap_or_default())
        }
        _ => path,
    };
    Meta {
        puid: request
            .and_then(|m| m.puid.clone())
            .filter(|p| !p.is_empty()),
        tags: request.map(|m| m.tags.clone()).unwrap_or_default(),
        metrics: request.map(|m| m.metrics.clone()).unwrap_or_default(),
        request_path,
        ..Meta::default()
    }
}

fn reply(
    s: &AppState,
    model: &dyn Model,
    request_meta: Option<&Meta>,
    output: Payload,
) -> SeldonMessage {
    let mut msg = SeldonMessage {
        meta: Some(reply_meta(s, request_meta)),
        ..SeldonMessage::default()
    };
    match output {
        Payload::Array(a) => {
            let names = output_names(model, &a);
            msg.data = Some(a.to_data(names));
        }
        Payload::Json(j) => msg.json_data = Some(j),
        Payload::Str(t) => msg.str_data = Some(t),
        Payload::Bin(b) => msg.bin_data = Some(base64::engine::general_purpose::STANDARD.encode(b)),
    }
    msg
}

/// Feedback on an earlier prediction: a reward and/or the truth.
#[utoipa::path(post, path = "/send-feedback", tag = "seldon",
    request_body(content(
        (Feedback = "application/json"),
        (crate::openapi::JsonForm = "application/x-www-form-urlencoded"),
        (crate::openapi::MultipartFeedback = "multipart/form-data"))),
    responses(
        (status = 200, description = "Recorded; the request's meta echoed", body = SeldonMessage),
        (status = 400, description = "Malformed feedback", body = SeldonMessage),
        (status = 408, description = "The body did not arrive within BODY_READ_TIMEOUT_SECS", body = SeldonMessage),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES", body = SeldonMessage),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding", body = SeldonMessage),
        (status = 503, description = "Shutting down", body = SeldonMessage)))]
pub async fn feedback(
    State(s): State<Arc<AppState>>,
    req: Request,
) -> Result<Json<SeldonMessage>, SeldonError> {
    let (fb, _admission) = body::read::<Feedback>(req).await?;
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
            Array::from_data(d, s.limits)
                .map_err(|e| SeldonError::bad_data(format!("{field}: {e}")))?;
        }
    }
    s.metrics.feedback.inc();
    // A sum that would leave f64's finite range is not added to.
    if let Some(r) = fb.reward {
        let sum = if r >= 0.0 {
            &s.metrics.reward
        } else {
            &s.metrics.penalty
        };
        if r != 0.0 && (sum.get() + r.abs()).is_finite() {
            sum.inc_by(r.abs());
        }
    }
    let meta = fb.request.as_ref().and_then(|m| m.meta.as_ref());
    Ok(Json(SeldonMessage {
        meta: Some(reply_meta(&s, meta)),
        ..SeldonMessage::default()
    }))
}

/// `GET /send-feedback?json=<Feedback>`: feedback with the message in the
/// query, as Seldon's wrapper also routes it.
#[utoipa::path(get, path = "/send-feedback", tag = "seldon",
    params(("json" = String, Query, description = "The Feedback as JSON text")),
    responses(
        (status = 200, description = "Recorded; the request's meta echoed", body = SeldonMessage),
        (status = 400, description = "No or malformed `json` parameter", body = SeldonMessage),
        (status = 408, description = "A body was sent and did not arrive within BODY_READ_TIMEOUT_SECS", body = SeldonMessage),
        (status = 413, description = "A body was sent, larger than MAX_BODY_BYTES", body = SeldonMessage),
        (status = 415, description = "A body was sent with an unsupported Content-Type or Content-Encoding", body = SeldonMessage),
        (status = 503, description = "Shutting down", body = SeldonMessage)))]
pub async fn feedback_query(
    state: State<Arc<AppState>>,
    req: Request,
) -> Result<Json<SeldonMessage>, SeldonError> {
    feedback(state, req).await
}

/// `GET /predict?json=<SeldonMessage>`: predict with the message in the
/// query (seldon-core-tester's form).
#[utoipa::path(get, path = "/predict", tag = "seldon",
    params(("json" = String, Query, description = "The SeldonMessage as JSON text")),
    responses(
        (status = 200, description = "The prediction", body = SeldonMessage),
        (status = 400, description = "No or malformed `json` parameter", body = SeldonMessage),
        (status = 408, description = "A body was sent and did not arrive within BODY_READ_TIMEOUT_SECS", body = SeldonMessage),
        (status = 413, description = "A body was sent, larger than MAX_BODY_BYTES", body = SeldonMessage),
        (status = 415, description = "A body was sent with an unsupported Content-Type or Content-Encoding", body = SeldonMessage),
        (status = 503, description = "Shutting down", body = SeldonMessage)))]
pub async fn predict_query(state: State<Arc<AppState>>, req: Request) -> Response {
    predict(state, req).await
}

/// Liveness, as Seldon's wrapper answers it.
#[utoipa::path(get, path = "/health/ping", tag = "seldon",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub async fn health_ping() -> &'static str {
    "pong"
}

/// Runs the model on its probe input: 200 with the answer, or 503.
#[utoipa::path(get, path = "/health/status", tag = "seldon", responses(
    (status = 200, description = "The model answered its probe input", body = SeldonMessage),
    (status = 503, description = "The model failed on its probe input", body = SeldonMessage)))]
pub async fn health_status(State(s): State<Arc<AppState>>) -> Response {
    let model = s.model.current();
    match predict_v1_tensors(model.as_ref()) {
        Ok(out) => Json(reply(&s, model.as_ref(), None, out)).into_response(),
        Err(e) => {
            let mut err = SeldonError::from(e);
            err.http = StatusCode::SERVICE_UNAVAILABLE;
            err.into_response()
        }
    }
}

/// The model on its probe inputs, answered as v1 answers.
fn predict_v1_tensors(model: &dyn Model) -> Result<Payload, crate::model::ModelError> {
    let inputs = check_inputs(model, model.probe())?;
    let outputs = model.infer(inputs)?;
    v1::to_payload(model, outputs, Repr::Ndarray)
}

/// Seldon v1 model metadata (the wrapper's schema, seldon_core/metadata.py);
/// `custom.datatype` names the element type a model computes in (`FP32`
/// for ONNX models), so that clients know their float64 inputs are
/// rounded to float32.
#[utoipa::path(get, path = "/metadata", tag = "seldon", responses(
    (status = 200, description = "Name, versions, platform, inputs, outputs, custom", body = Object)))]
pub async fn metadata(State(s): State<Arc<AppState>>) -> Json<Value> {
    // Seldon's metadata schema: names and shape when known.
    let schema = |names: Option<&[String]>, width: Option<usize>| match (names, width) {
        (Some(n), _) => {
            json!({"messagetype": "tensor", "schema": {"names": n, "shape": [n.len()]}})
        }
        (None, Some(w)) => json!({"messagetype": "tensor", "schema": {"shape": [w]}}),
        (None, None) => json!({"messagetype": "ndarray", "schema": {}}),
    };
    let model = s.model.current();
    let input = match model.inputs() {
        [one] => Some(one),
        _ => None,
    };
    let width = input.and_then(|i| match i.shape[..] {
        [_, inference_core::Dim::Fixed(w)] => Some(w),
        _ => None,
    });
    let custom = match input {
        Some(i) => json!({ "datatype": i.datatype.as_str() }),
        None => json!({}),
    };
    let labels = model.labels();
    Json(json!({
        "name": model.name(),
        "versions": [env!("CARGO_PKG_VERSION")],
        "platform": model.platform(),
        "inputs": [schema(labels.feature_names.as_deref(), width)],
        "outputs": [schema(labels.class_names.as_deref(), None)],
        "custom": custom,
    }))
}
