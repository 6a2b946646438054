//! The model server's OpenAPI document, generated from its handlers and the
//! protocol types. Seldon serves the same operation under several paths
//! (`/predict`, `/api/v1.0/predictions`, `/api/v0.1/predictions`); each
//! alias is a copy of the documented operation.

use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

use seldon_protocol::{
    DefaultData, Feedback, Meta, Metric, MetricType, SeldonMessage, Status, Tensor,
};

use crate::{api, v2};

/// `application/x-www-form-urlencoded`: the message as JSON text in `json`
/// (what seldon-core-tester sends).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct JsonForm {
    /// The SeldonMessage as JSON text.
    json: String,
}

/// `multipart/form-data`: one `json` part with the whole message, or parts
/// named after its keys, as Seldon's wrapper reads them. A part is bytes,
/// so no part has a JSON type here: the server reads each as described.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MultipartMessage {
    /// The whole SeldonMessage as JSON text (alone: no other part beside it).
    #[schema(value_type = Option<Value>)]
    json: Option<String>,
    /// `data` as JSON text.
    #[schema(value_type = Option<Value>)]
    data: Option<String>,
    /// `meta` as JSON text.
    #[schema(value_type = Option<Value>)]
    meta: Option<String>,
    /// `jsonData` as JSON text.
    #[schema(rename = "jsonData", value_type = Option<Value>)]
    json_data: Option<String>,
    /// `strData`: any UTF-8 text.
    #[schema(rename = "strData", value_type = Option<Value>)]
    str_data: Option<String>,
    /// `binData`: any bytes (base64-encoded for the model).
    #[schema(
        rename = "binData",
        value_type = Option<Value>,
        content_media_type = "application/octet-stream"
    )]
    bin_data: Option<Vec<u8>>,
}

/// `multipart/form-data` feedback: one `json` part with the whole
/// Feedback, or parts named after its keys, each JSON text.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MultipartFeedback {
    /// The whole Feedback as JSON text (alone: no other part beside it).
    #[schema(value_type = Option<Value>)]
    json: Option<String>,
    /// The SeldonMessage that was sent, as JSON text.
    #[schema(value_type = Option<Value>)]
    request: Option<String>,
    /// The SeldonMessage that came back, as JSON text.
    #[schema(value_type = Option<Value>)]
    response: Option<String>,
    /// The reward: a number, as text.
    #[schema(value_type = Option<Value>)]
    reward: Option<String>,
    /// The right answer, a SeldonMessage as JSON text.
    #[schema(value_type = Option<Value>)]
    truth: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    paths(
        api::predict,
        api::predict_query,
        api::feedback,
        api::feedback_query,
        api::health_ping,
        api::health_status,
        api::metadata,
        v2::server_metadata,
        v2::live,
        v2::ready,
        v2::model_metadata,
        v2::model_version_metadata,
        v2::model_ready,
        v2::model_version_ready,
        v2::infer,
        v2::infer_version
    ),
    components(schemas(
        SeldonMessage,
        DefaultData,
        Tensor,
        Meta,
        Metric,
        MetricType,
        Status,
        Feedback,
        JsonForm,
        MultipartMessage,
        MultipartFeedback
    )),
    tags(
        (name = "seldon", description = "Seldon Core v1 prediction protocol, as Seldon's Python wrapper serves it"),
        (name = "open-inference", description = "The Open Inference Protocol (v2) over REST, KServe's required_api.md, with Triton's binary tensor data extension")
    )
)]
struct ApiDoc;

/// Paths Seldon serves the documented operation under too.
const ALIASES: [(&str, &str); 6] = [
    ("/predict", "/api/v1.0/predictions"),
    ("/predict", "/api/v0.1/predictions"),
    ("/send-feedback", "/api/v1.0/feedback"),
    ("/send-feedback", "/api/v0.1/feedback"),
    ("/metadata", "/api/v1.0/metadata"),
    ("/health/status", "/api/v1.0/health/status"),
];

/// The document, every alias included.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    for (from, to) in ALIASES {
        let Some(mut item) = doc.paths.paths.get(from).cloned() else {
            continue;
        };
        // GET /predict and /send-feedback take the query form; their
        // aliases are POST only.
        if from == "/predict" || from == "/send-feedback" {
            item.get = None;
        }
        let suffix = to.trim_start_matches('/').replace(['/', '.'], "_");
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            op.operation_id = op.operation_id.take().map(|id| format!("{id}_{suffix}"));
        }
        doc.paths.paths.insert(to.to_string(), item);
    }
    doc
}

/// A SeldonMessage example: the tutorial's tensor.
pub fn tutorial() -> Value {
    serde_json::json!({"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}})
}
