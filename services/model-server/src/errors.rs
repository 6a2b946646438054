//! Errors in Seldon's shape: `{"status":{"code":400,"info":"...",
//! "reason":"MICROSERVICE_BAD_DATA","status":"FAILURE"}}`. Every client
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
}

impl SeldonError {
    pub fn bad_data(info: impl Into<String>) -> Self {
        Self {
            http: StatusCode::BAD_REQUEST,
            reason: "MICROSERVICE_BAD_DATA",
            info: info.into(),
        }
    }

    /// A client-side failure with another status (413, 408, 415, ...).
    pub fn with_status(http: StatusCode, info: impl Into<String>) -> Self {
        Self {
            http,
            reason: "MICROSERVICE_BAD_DATA",
            info: info.into(),
        }
    }

    pub fn unsupported_media(info: impl Into<String>) -> Self {
        Self::with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE, info)
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
        (self.http, Json(body)).into_response()
    }
}
