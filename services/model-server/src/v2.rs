//! The Open Inference Protocol ("v2") over REST, as KServe's
//! `docs/predict-api/v2/required_api.md` specifies it (Triton's and
//! MLServer's docs carry the same text), with Triton's binary tensor data
//! extension (`binary_tensor_data.md`). Errors are `{"error": "..."}`: 400
//! for a request the model cannot take, 404 for an unknown model or
//! version, the body reader's own status (408, 413, 415, 503) otherwise.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use axum::{Json, Router};
use inference_core::{InferenceRequest, InferenceResponse, TensorSpec};
use serde_json::{Value, json};
use service_kit::probes::Readiness;

use crate::api::AppState;
use crate::model::{Model, ModelError, check_inputs};

/// The header that says where the JSON header of a binary body ends.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The name and version a model is served under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The service's name (`[services.<name>]`), from `MODEL_NAME`; else
    /// the model's own name.
    pub name: String,
    /// From `MODEL_VERSION`; `1` by default, as Triton numbers versions.
    pub version: String,
}

/// A failure, as the protocol writes it.
#[derive(Debug)]
pub struct V2Failure {
    pub status: StatusCode,
    pub error: String,
    /// `Retry-After` seconds, for a 503 of a busy model.
    pub retry_after: Option<u64>,
}

impl V2Failure {
    /// A failure with `status`, its reason cut to
    /// `service_kit::errors::MAX_REASON_BYTES`.
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: service_kit::errors::bounded(error.into()),
            retry_after: None,
        }
    }

    fn bad(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
}

impl From<ModelError> for V2Failure {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::BadInput(m) => Self::bad(m),
            ModelError::Internal(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            ModelError::Overloaded {
                retry_after_secs,
                why,
            } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, why)
            },
        }
    }
}

impl IntoResponse for V2Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.error }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub fn routes(state: Arc<AppState>) -> Router {
    // Whatever else is asked under /v2 is answered in the protocol's
    // error shape, which its clients read (tritonclient fails on another).
    let only = |m: MethodRouter<Arc<AppState>>| m.fallback(method_not_allowed);
    Router::new()
        .route("/v2", only(get(server_metadata)))
        .route("/v2/health/live", only(get(live)))
        .route("/v2/health/ready", only(get(ready)))
        .route("/v2/models/{model}", only(get(model_metadata)))
        .route(
            "/v2/models/{model}/versions/{version}",
            only(get(model_version_metadata)),
        )
        .route("/v2/models/{model}/ready", only(get(model_ready)))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            only(get(model_version_ready)),
        )
        .route("/v2/models/{model}/infer", only(post(infer)))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            only(post(infer_version)),
        )
        .route("/v2/{*rest}", any(unknown_endpoint))
        .with_state(state)
}

/// A path under /v2 that the protocol (or this server) does not have.
async fn unknown_endpoint(uri: axum::http::Uri) -> V2Failure {
    V2Failure::new(
        StatusCode::NOT_FOUND,
        format!(
            "{} is not an endpoint of this server: it serves the Open Inference Protocol's \
             /v2, /v2/health/live|ready, /v2/models/<model>[/versions/<v>][/ready|/infer]",
            uri.path()
        ),
    )
}

/// A v2 endpoint called with a method it does not take.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> V2Failure {
    V2Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}: inference is POST, everything else GET",
            uri.path()
        ),
    )
}

/// The `{model}` and optional `{version}` of a path.
#[derive(serde::Deserialize)]
pub struct ModelPath {
    model: String,
    version: Option<String>,
}

impl ModelPath {
    /// The model, when the path names the one served (and its version, if
    /// it names one); a 404 that says what is served otherwise.
    fn find(&self, s: &AppState) -> Result<Arc<dyn Model>, V2Failure> {
        let served = &s.served;
        let not_found = |what: String| V2Failure::new(StatusCode::NOT_FOUND, what);
        if self.model != served.name {
            return Err(not_found(format!(
                "unknown model {:?}: this server serves {:?}",
                self.model, served.name
            )));
        }
        if let Some(v) = &self.version
            && *v != served.version
        {
            return Err(not_found(format!(
                "model {:?} has no version {v:?}: its version is {:?}",
                served.name, served.version
            )));
        }
        Ok(s.model.current())
    }
}

/// Server metadata: name, version and the protocol extensions supported.
#[utoipa::path(get, path = "/v2", tag = "open-inference",
    responses((status = 200, description = "name, version, extensions", body = Object)))]
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "model-server",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

/// Server liveness.
#[utoipa::path(get, path = "/v2/health/live", tag = "open-inference",
    responses((status = 200, description = "Live", body = Object)))]
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// Server readiness, as `/readyz` says it: its one model is loaded before
/// it listens, and it is no longer ready once shutdown has begun (a 503,
/// so that a load balancer stops sending work).
#[utoipa::path(get, path = "/v2/health/ready", tag = "open-inference",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Shutting down", body = Object)))]
pub async fn ready(readiness: Option<Extension<Readiness>>) -> (StatusCode, Json<Value>) {
    // Without the server's flag (a router under test) it is ready.
    let ready = readiness.is_none_or(|Extension(r)| r.is_ready());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready })))
}

fn specs_json(specs: &[TensorSpec]) -> Value {
    specs
        .iter()
        .map(|t| json!({"name": t.name, "datatype": t.datatype.as_str(), "shape": t.shape_i64()}))
        .collect()
}

/// Model metadata: name, versions, platform, and each input and output
/// with its datatype and shape (`-1` for a variable dimension). A model
/// that takes any tensors (identity) lists none.
#[utoipa::path(get, path = "/v2/models/{model}", tag = "open-inference",
    params(("model" = String, Path, description = "The model's name (its service's name)")),
    responses(
        (status = 200, description = "The model's metadata", body = Object),
        (status = 404, description = "No such model or version", body = Object)))]
pub async fn model_metadata(
    State(s): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, V2Failure> {
    let model = path.find(&s)?;
    Ok(Json(json!({
        "name": s.served.name,
        "versions": [s.served.version],
        "platform": model.platform(),
        "inputs": specs_json(model.inputs()),
        "outputs": specs_json(model.outputs()),
    })))
}

/// Model readiness.
#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "open-inference",
    params(("model" = String, Path, description = "The model's name")),
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 404, description = "No such model or version", body = Object),
        (status = 503, description = "Shutting down", body = Object)))]
pub async fn model_ready(
    State(s): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
    readiness: Option<Extension<Readiness>>,
) -> Result<(StatusCode, Json<Value>), V2Failure> {
    path.find(&s)?;
    let (status, Json(server)) = ready(readiness).await;
    let ready = server["ready"] == true;
    Ok((
        status,
        Json(json!({ "name": s.served.name, "ready": ready })),
    ))
}

/// Inference: a JSON request, or a JSON header followed by binary tensor
/// data (`Inference-Header-Content-Length`); the answer likewise, with the
/// outputs asked for in binary (`binary_data`, `binary_data_output`)
/// after its JSON header.
#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "open-inference",
    params(("model" = String, Path, description = "The model's name")),
    request_body(content = Object, description = "An inference request \
        (id, parameters, inputs: name, shape, datatype, data; outputs)", content_type = "application/json"),
    responses(
        (status = 200, description = "The inference response", body = Object),
        (status = 400, description = "A request the model cannot take", body = Object),
        (status = 404, description = "No such model or version", body = Object),
        (status = 408, description = "The body did not arrive within BODY_READ_TIMEOUT_SECS", body = Object),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES", body = Object),
        (status = 415, description = "Unsupported Content-Encoding", body = Object),
        (status = 503, description = "Shutting down", body = Object)))]
pub async fn infer(
    State(s): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
    req: Request,
) -> Response {
    let result = async {
        let model = path.find(&s)?;
        let header_length = header_length(req.headers())?;
        let payload = service_kit::body::read(req)
            .await
            .map_err(|e| V2Failure::new(e.status(), e.to_string()))?;
        let (bytes, admission) = (payload.bytes, payload.admission);
        let size = bytes.len();
        let large = size > crate::api::INLINE_BYTES;
        if let Some(batcher) = s.batcher.clone().filter(|_| model.batched()) {
            let reply =
                run_batched(Arc::clone(&s), batcher, model, path, bytes, header_length).await?;
            return Ok::<_, V2Failure>(admission.hold_until_sent(reply));
        }
        let state = Arc::clone(&s);
        let work = move || run(&state, model.as_ref(), &path, &bytes, header_length);
        let reply = s.compute.run(large, work).await?;
        Ok::<_, V2Failure>(admission.hold_until_sent(reply))
    }
    .await;
    s.metrics
        .count(result.as_ref().map(|_| ()).map_err(|e| e.status));
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `Inference-Header-Content-Length`, when sent.
fn header_length(headers: &HeaderMap) -> Result<Option<usize>, V2Failure> {
    let Some(v) = headers.get(HEADER_LENGTH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            V2Failure::bad(format!(
                "Inference-Header-Content-Length must be the JSON header's length in bytes, \
                 not {:?}",
                String::from_utf8_lossy(v.as_bytes())
            ))
        })
}

/// Decodes, runs and encodes one inference.
fn run(
    s: &AppState,
    model: &dyn Model,
    path: &ModelPath,
    body: &[u8],
    header_length: Option<usize>,
) -> Result<Response, V2Failure> {
    let (request, inputs) = decode(s, model, path, body, header_length)?;
    let start = Instant::now();
    let outputs = model.infer(inputs)?;
    s.metrics.latency.observe(start.elapsed().as_secs_f64());
    respond(s, &request, outputs)
}

/// A request's inputs, checked against the model's declaration; the rest
/// of the request says which outputs to send, and how. Counts its rows.
fn decode(
    s: &AppState,
    model: &dyn Model,
    path: &ModelPath,
    body: &[u8],
    header_length: Option<usize>,
) -> Result<(InferenceRequest, Vec<inference_core::Tensor>), V2Failure> {
    let mut request: InferenceRequest = open_inference::decode_request(
        body,
        header_length,
        &s.served.name,
        path.version.as_deref(),
        &s.limits,
    )
    .map_err(|e| V2Failure::bad(e.0))?;
    // What is left of the request says which outputs to send in binary.
    let inputs = std::mem::take(&mut request.inputs);
    let rows = inputs
        .first()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(1) as u64;
    let inputs = check_inputs(model, inputs)?;
    s.metrics.rows.inc_by(rows);
    Ok((request, inputs))
}

/// The reply to `request`: the outputs it asks for, in the forms it asks.
fn respond(
    s: &AppState,
    request: &InferenceRequest,
    outputs: Vec<inference_core::Tensor>,
) -> Result<Response, V2Failure> {
    let response = InferenceResponse {
        model: s.served.name.clone(),
        version: Some(s.served.version.clone()),
        id: request.id.clone(),
        parameters: Default::default(),
        outputs,
    }
    .keep_requested(&request.outputs)
    .map_err(|e| V2Failure::bad(e.to_string()))?;
    let (body, header) = open_inference::encode_response_binary(&response, |o| {
        open_inference::wants_binary(request, o)
    })
    .map_err(|e| V2Failure::bad(e.0))?;
    let mut reply = ([(header::CONTENT_TYPE, content_type(header))], body).into_response();
    if let Some(n) = header {
        reply.headers_mut().insert(HEADER_LENGTH, n.into());
    }
    Ok(reply)
}

/// One inference with dynamic batching: decoded and encoded here (or on
/// the blocking pool when large), waiting for the batch without holding a
/// thread; a client that goes away leaves the batch queue.
async fn run_batched(
    s: Arc<AppState>,
    batcher: Arc<crate::batching::Batcher>,
    model: Arc<dyn Model>,
    path: ModelPath,
    bytes: axum::body::Bytes,
    header_length: Option<usize>,
) -> Result<Response, V2Failure> {
    let large = bytes.len() > crate::api::INLINE_BYTES;
    let state = Arc::clone(&s);
    let decoded = move || decode(&state, model.as_ref(), &path, &bytes, header_length);
    let (request, inputs) = if large {
        crate::compute::blocking(decoded).await?
    } else {
        decoded()?
    };
    let start = Instant::now();
    let outputs = batcher.submit(inputs)?.await?;
    s.metrics.latency.observe(start.elapsed().as_secs_f64());
    if large {
        crate::compute::blocking(move || respond(&s, &request, outputs)).await
    } else {
        respond(&s, &request, outputs)
    }
}

/// Model metadata of one version (see `model_metadata`).
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "open-inference",
    params(("model" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "The model's version")),
    responses(
        (status = 200, description = "The model's metadata", body = Object),
        (status = 404, description = "No such model or version", body = Object)))]
pub async fn model_version_metadata(
    state: State<Arc<AppState>>,
    path: Path<ModelPath>,
) -> Result<Json<Value>, V2Failure> {
    model_metadata(state, path).await
}

/// Readiness of one version of the model.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready", tag = "open-inference",
    params(("model" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "The model's version")),
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 404, description = "No such model or version", body = Object),
        (status = 503, description = "Shutting down", body = Object)))]
pub async fn model_version_ready(
    state: State<Arc<AppState>>,
    path: Path<ModelPath>,
    readiness: Option<Extension<Readiness>>,
) -> Result<(StatusCode, Json<Value>), V2Failure> {
    model_ready(state, path, readiness).await
}

/// Inference on one version of the model (see `infer`).
#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer", tag = "open-inference",
    params(("model" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "The model's version")),
    request_body(content = Object, description = "An inference request", content_type = "application/json"),
    responses(
        (status = 200, description = "The inference response", body = Object),
        (status = 400, description = "A request the model cannot take", body = Object),
        (status = 404, description = "No such model or version", body = Object),
        (status = 408, description = "The body did not arrive within BODY_READ_TIMEOUT_SECS", body = Object),
        (status = 413, description = "The body is larger than MAX_BODY_BYTES", body = Object),
        (status = 415, description = "Unsupported Content-Encoding", body = Object),
        (status = 503, description = "Shutting down", body = Object)))]
pub async fn infer_version(
    state: State<Arc<AppState>>,
    path: Path<ModelPath>,
    req: Request,
) -> Response {
    infer(state, path, req).await
}

/// A body that is all JSON is `application/json`; one with binary data
/// after its header is not (Triton answers `application/octet-stream`).
fn content_type(header: Option<usize>) -> &'static str {
    match header {
        None => "application/json",
        Some(_) => "application/octet-stream",
    }
}
