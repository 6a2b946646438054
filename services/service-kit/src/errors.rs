//! Client mistakes become a 4xx with a JSON body that says what was wrong.

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON error: `{"error": {"status": 404, "reason": "...", "hint": "..."}}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    #[schema(ignore)]
    pub status: StatusCode,
    /// What was wrong with the request.
    pub reason: String,
    /// What to do about it, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The longest reason an error carries, in bytes: messages quote what the
/// client sent (a path, a literal), and an echo must not be a way to make
/// the server write megabytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to at most [`MAX_REASON_BYTES`] (at a character boundary),
/// saying how much was cut.
pub fn bounded(mut text: String) -> String {
    if text.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES - 40;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = text.len() - end;
        text.truncate(end);
        text.push_str(&format!("… ({cut} more bytes)"));
    }
    text
}

impl ApiError {
    /// An error with `status` and a reason (cut to [`MAX_REASON_BYTES`]).
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: bounded(reason.into()),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A client error: `{"error": {"status": 404, "reason": "no route for GET /x",
/// "hint": "..."}}`: what was wrong, and where there is one, what to do.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub struct Body<'a> {
    error: BodyInner<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BodyInner<'a> {
    /// The HTTP status, repeated.
    status: u16,
    #[serde(flatten)]
    err: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: BodyInner {
                status: self.status.as_u16(),
                err: &self,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Fallback for paths no route matches.
pub async fn not_found(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", target(&uri)),
    )
    .with_hint("see the service's README or /openapi.json for its endpoints")
}

/// The path, or the whole request target when it has none (CONNECT's
/// `host:port`).
fn target(uri: &Uri) -> String {
    match uri.path() {
        "" => uri.to_string(),
        p => p.to_string(),
    }
}

/// Fallback for a known path called with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", target(&uri)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let r = bounded("é".repeat(2000));
        assert!(r.len() <= MAX_REASON_BYTES + 30, "{}", r.len());
        assert!(r.ends_with("more bytes)"), "{r}");
        assert_eq!(bounded("short".into()), "short");
    }
}
