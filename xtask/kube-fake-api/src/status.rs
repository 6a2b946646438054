//! Refusals in the API server's `Status` shape (`meta/v1 Status`), with the
//! reasons and codes it uses, so clients decode them as they would a real
//! server's (kube's `Error::Api`, kubectl's `Error from server (Invalid)`).

use std::fmt;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// What was wrong with one field, as `k8s.io/apimachinery/pkg/util/validation/field.Error`
/// words it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub kind: CauseKind,
    /// The field path, `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The refused value (`Invalid`, `Duplicate`, `NotSupported`).
    pub value: Option<Value>,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseKind {
    Required,
    Invalid,
    Duplicate,
    NotSupported,
    Forbidden,
    TooLong,
}

impl CauseKind {
    /// `metav1.CauseType`.
    fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Duplicate => "FieldValueDuplicate",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
        }
    }
}

impl Cause {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(CauseKind::Required, field, None, detail)
    }
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(CauseKind::Invalid, field, Some(value), detail)
    }
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(CauseKind::Duplicate, field, Some(value), "")
    }
    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[&str]) -> Self {
        let detail = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            CauseKind::NotSupported,
            field,
            Some(value),
            format!("supported values: {detail}"),
        )
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(CauseKind::Forbidden, field, None, detail)
    }
    /// `field.TooLong`: the value is not shown.
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Self::new(
            CauseKind::TooLong,
            field,
            None,
            format!("must have at most {max_bytes} bytes"),
        )
    }

    fn new(
        kind: CauseKind,
        field: impl Into<String>,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.into(),
            value,
            detail: detail.into(),
        }
    }

    /// The cause's own message, without the field: `Invalid value: 70000: must be …`.
    fn message(&self) -> String {
        let value = self.value.as_ref().map(go_value).unwrap_or_default();
        let head = match self.kind {
            CauseKind::Required => "Required value".to_string(),
            CauseKind::Invalid => format!("Invalid value: {value}"),
            CauseKind::Duplicate => format!("Duplicate value: {value}"),
            CauseKind::NotSupported => format!("Unsupported value: {value}"),
            CauseKind::Forbidden => "Forbidden".to_string(),
            CauseKind::TooLong => "Too long".to_string(),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

/// A value as Go's `%#v`/`%q` prints the simple ones: strings quoted, numbers bare.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// What a kind is called in messages: `Deployment.apps`, `Service`.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// 422 Invalid: `Deployment.apps "x" is invalid: [a: …, b: …]`.
pub fn invalid(group: &str, kind: &str, name: &str, causes: &[Cause]) -> Response<Full<Bytes>> {
    let listed = match causes {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(Cause::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.kind.reason(), "message": c.message(), "field": c.field}))
        .collect();
    respond(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!(
            "{} {name:?} is invalid: {listed}",
            qualified_kind(group, kind)
        ),
        json!({"name": name, "group": group, "kind": kind, "causes": causes}),
    )
}

pub fn bad_request(message: &str) -> Response<Full<Bytes>> {
    respond(StatusCode::BAD_REQUEST, "BadRequest", message, Value::Null)
}

pub fn not_found(message: &str) -> Response<Full<Bytes>> {
    respond(StatusCode::NOT_FOUND, "NotFound", message, Value::Null)
}

/// An object that does not exist, with the details kubectl prints
/// (`Error from server (NotFound): …`).
pub fn not_found_object(
    message: &str,
    group: &str,
    kind: &str,
    name: &str,
) -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        "NotFound",
        message,
        json!({"name": name, "group": group, "kind": kind}),
    )
}

pub fn forbidden(message: &str, kind: &str, name: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::FORBIDDEN,
        "Forbidden",
        message,
        json!({"name": name, "kind": kind}),
    )
}

/// A server-side apply conflict (409 Conflict, `errors.NewApplyConflict`):
/// the message lists the conflicts, `details.causes` carries one
/// `FieldManagerConflict` per field.
pub fn conflict(
    message: &str,
    kind: &str,
    name: &str,
    causes: Vec<Value>,
) -> Response<Full<Bytes>> {
    respond(
        StatusCode::CONFLICT,
        "Conflict",
        message,
        json!({"name": name, "kind": kind, "causes": causes}),
    )
}

/// A body over the API server's limit (413).
pub fn too_large(limit: usize) -> Response<Full<Bytes>> {
    respond(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Request entity too large: limit is {limit}"),
        Value::Null,
    )
}

/// A body in a format the server does not take (415).
pub fn unsupported_media_type(message: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        message,
        Value::Null,
    )
}

/// A write that lost a race with another (409 Conflict), as the API
/// server words it.
pub fn modified(resource: &str, group: &str, name: &str) -> Response<Full<Bytes>> {
    let what = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    respond(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {what} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
        ),
        json!({"name": name, "group": group, "kind": resource}),
    )
}

pub fn method_not_allowed(message: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        message,
        Value::Null,
    )
}

/// A 500 without a reason, as the API server answers errors that are not a
/// `Status` of their own (server-side apply's typed-patch failures are one:
/// kubernetes/kubernetes#122480).
pub fn internal(message: &str) -> Response<Full<Bytes>> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "code": 500});
    json_response(StatusCode::INTERNAL_SERVER_ERROR, &body)
}

fn respond(
    status: StatusCode,
    reason: &str,
    message: &str,
    details: Value,
) -> Response<Full<Bytes>> {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": status.as_u16()});
    if !details.is_null() {
        body["details"] = details;
    }
    json_response(status, &body)
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
