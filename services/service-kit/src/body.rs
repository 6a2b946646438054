//! Reading a request's payload within bounds: admitted first (at most
//! `MAX_CONCURRENT_REQUESTS` at once, which bounds memory), refused above
//! `MAX_BODY_BYTES` (counted after gzip/deflate decompression, so a small
//! compressed bomb is refused too), cut off after `BODY_READ_TIMEOUT_SECS`,
//! and never waited for once shutdown stops reading.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::OwnedSemaphorePermit;

use crate::errors::ApiError;

/// Content encodings the server decompresses (tower-http, before the limit).
pub const ENCODINGS: [&str; 4] = ["gzip", "x-gzip", "deflate", "identity"];

/// Why a payload could not be read. Each maps to one 4xx (503 during shutdown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the request body is larger than {0} bytes (MAX_BODY_BYTES)")]
    TooLarge(usize),
    #[error("the request body did not arrive within {} s (BODY_READ_TIMEOUT_SECS)", .0.as_secs())]
    Timeout(Duration),
    #[error("the server is shutting down: retry on another replica")]
    ShuttingDown,
    #[error("Content-Encoding {0:?} is not supported: send the body uncompressed, gzip or deflate")]
    UnsupportedEncoding(String),
    #[error("the request body could not be read: {0}")]
    Unreadable(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unreadable(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

/// A request whose payload has been read.
pub struct Payload {
    pub parts: Parts,
    pub bytes: Bytes,
    /// Keep it until the response is built: it is what bounds how many
    /// payloads are in memory at once.
    pub admission: Admission,
}

/// A request's place among the `MAX_CONCURRENT_REQUESTS`; freed on drop.
pub struct Admission {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// Keeps the admission until `resp`'s body has been sent (or dropped),
    /// so that replies waiting for a slow reader count against the bound too.
    pub fn hold_until_sent(self, resp: Response) -> Response {
        resp.map(|inner| {
            Body::new(Held {
                inner,
                _admission: self,
            })
        })
    }
}

/// A response body that holds its request's admission.
struct Held {
    inner: Body,
    _admission: Admission,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Admits the request and reads its whole body. Call it from the request's
/// own task: requests outside a service-kit server (in-process tests) are
/// read with the default limits and no admission.
pub async fn read(req: Request) -> Result<Payload, BodyError> {
    let (parts, body) = req.into_parts();
    let Ok(life) = crate::lifecycle::CURRENT.try_with(|r| Arc::clone(r)) else {
        let d = crate::ServeEnv::default();
        let bytes = collect(body, d.max_body_bytes).await?;
        return Ok(Payload {
            parts,
            bytes,
            admission: Admission { _permit: None },
        });
    };
    if let Some(enc) = parts.headers.get(header::CONTENT_ENCODING) {
        let enc = String::from_utf8_lossy(enc.as_bytes())
            .trim()
            .to_ascii_lowercase();
        if !ENCODINGS.contains(&enc.as_str()) {
            return Err(BodyError::UnsupportedEncoding(enc));
        }
    }
    let limit = life.body.max_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // A declared length above the limit is refused before reading (for an
    // uncompressed body; a compressed one is judged after decompression).
    if parts.headers.get(header::CONTENT_ENCODING).is_none()
        && declared.is_some_and(|n| n > limit as u64)
    {
        return Err(BodyError::TooLarge(limit));
    }
    let work = async {
        let admission = Arc::clone(&life.admission)
            .acquire_owned()
            .await
            .map_err(|_| BodyError::ShuttingDown)?;
        let bytes = tokio::time::timeout(life.body.read_timeout, collect(body, limit))
            .await
            .map_err(|_| BodyError::Timeout(life.body.read_timeout))??;
        Ok(Payload {
            parts,
            bytes,
            admission: Admission {
                _permit: Some(admission),
            },
        })
    };
    tokio::select! {
        r = work => r,
        () = life.reading_stopped() => Err(BodyError::ShuttingDown),
    }
}

async fn collect(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Err(e) => {
            // axum wraps the transport's error; say what went wrong inside.
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&*e);
            while let Some(s) = src {
                msg = s.to_string();
                src = s.source();
            }
            Err(BodyError::Unreadable(msg))
        }
    }
}
