//! Errors in Seldon's shape: `{"status":{"code":400,"info":"...",
//! "reason":"MICROSERVICE_BAD_DATA","status":"FAILURE"}}`, the proto's JSON
//! form (prediction.proto's `Status`), as Seldon's executor writes its own
//! errors. (The Python wrapper writes the same fields as numbers,
//! `"status": 1, "code": -1`; a protobuf reader takes either.) Every client
//! mistake is a 4xx (Seldon answers some with 500; we do not).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use seldon_protocol::{SeldonMessage, Status};

use crate::model::ModelError;

#[derive(Debug)]
pub struct SeldonError {
    pub http: StatusCode,
    pub reason: &'static str,
    pub info: String,
    /// `Retry-After` seconds, for a 503 of a busy model.
    pub retry_after: Option<u64>,
}

impl SeldonError {
    /// A 400: the message is malformed or the model cannot take it
    /// (Seldon's reason for it). `info` is cut to
    /// `service_kit::errors::MAX_REASON_BYTES`.
    pub fn bad_data(info: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, info)
    }

    /// A failure with another status (408, 413, 415, 503, ...); the reason
    /// is the status's name (`PAYLOAD_TOO_LARGE`), Seldon's own for a 400.
    pub fn with_status(http: StatusCode, info: impl Into<String>) -> Self {
        Self {
            http,
            reason: reason_of(http),
            info: service_kit::errors::bounded(info.into()),
            retry_after: None,
        }
    }

    pub fn unsupported_media(info: impl Into<String>) -> Self {
        Self::with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE, info)
    }
}

fn reason_of(http: StatusCode) -> &'static str {
    match http {
        StatusCode::BAD_REQUEST => "MICROSERVICE_BAD_DATA",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
        s if s.is_server_error() => "MICROSERVICE_INTERNAL_ERROR",
        _ => "MICROSERVICE_BAD_DATA",
    }
}

impl From<ModelError> for SeldonError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::BadInput(info) => Self::bad_data(info),
            ModelError::Internal(_) => Self {
                http: StatusCode::INTERNAL_SERVER_ERROR,
                reason: "MICROSERVICE_INTERNAL_ERROR",
                info: e.to_string(),
                retry_after: None,
            },
            ModelError::Overloaded {
                retry_after_secs,
                why,
            } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::with_status(StatusCode::SERVICE_UNAVAILABLE, why)
            },
        }
    }
}

impl IntoResponse for SeldonError {
    fn into_response(self) -> Response {
        let body = SeldonMessage {
            status: Some(Status::failure(self.http.as_u16(), self.reason, self.info)),
            ..SeldonMessage::default()
        };
        let mut response = (self.http, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
