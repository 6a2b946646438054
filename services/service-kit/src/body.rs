//! Reading a request's payload within bounds: admitted first (at most
//! `MAX_CONCURRENT_REQUESTS` at once, which bounds memory), refused above
//! `MAX_BODY_BYTES` (as sent, and again after decompression, so a small
//! compressed bomb is refused too), cut off after `BODY_READ_TIMEOUT_SECS`,
//! and not waited for long once shutdown stops reading.
//!
//! Compressed bodies (`Content-Encoding`, RFC 9110 §8.4) are decoded with
//! flate2: `gzip` (every member, as gunzip reads them; `x-gzip` is its
//! alias) and `deflate` (the zlib format, RFC 1950), names matched without
//! regard to case, a list of codings undone last first. Data after the
//! compressed stream is an error, as data after a JSON message is.
//! (tower-http's request decompression read only the first gzip member,
//! accepted what followed, and matched names case-sensitively.)

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::OwnedSemaphorePermit;

use crate::errors::ApiError;

/// Content codings the server decodes (RFC 9110 §8.4.1; case-insensitive).
pub const ENCODINGS: [&str; 4] = ["gzip", "x-gzip", "deflate", "identity"];

/// Once shutdown has stopped reading, how long a body read may still take:
/// enough for a body that has arrived, not for a client that stalls.
pub const LAST_CALL: Duration = Duration::from_millis(200);

/// Why a payload could not be read. Each maps to one 4xx (503 during shutdown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the request body is larger than {0} bytes (MAX_BODY_BYTES)")]
    TooLarge(usize),
    #[error("the request body decompresses to more than {0} bytes (MAX_BODY_BYTES)")]
    DecompressesTooLarge(usize),
    #[error("the request body did not arrive within {} s (BODY_READ_TIMEOUT_SECS)", .0.as_secs())]
    Timeout(Duration),
    #[error(
        "the server is shutting down and the request body had not arrived: retry on another replica"
    )]
    ShuttingDown,
    #[error("Content-Encoding {0:?} is not supported: send the body uncompressed, gzip or deflate")]
    UnsupportedEncoding(String),
    #[error("the {coding} request body cannot be decoded: {reason}")]
    Undecodable {
        coding: &'static str,
        reason: String,
    },
    #[error("the request body could not be read: {0}")]
    Unreadable(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) | Self::DecompressesTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Undecodable { .. } | Self::Unreadable(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

/// A decoding step, from the request's `Content-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
}

/// The codings to undo, in the order they were applied (identity dropped).
fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, BodyError> {
    let mut out = Vec::new();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "gzip" | "x-gzip" => out.push(Coding::Gzip),
                "deflate" => out.push(Coding::Deflate),
                "identity" => {}
                other => return Err(BodyError::UnsupportedEncoding(other.into())),
            }
        }
    }
    Ok(out)
}

/// Undoes `codings` (last applied first), the output bounded by `limit`.
fn decode(mut bytes: Bytes, codings: &[Coding], limit: usize) -> Result<Bytes, BodyError> {
    for coding in codings.iter().rev() {
        let mut out = Vec::new();
        let bound = limit as u64 + 1;
        let (name, read) = match coding {
            Coding::Gzip => (
                "gzip",
                flate2::bufread::MultiGzDecoder::new(&bytes[..])
                    .take(bound)
                    .read_to_end(&mut out)
                    .map(|_| 0),
            ),
            Coding::Deflate => {
                let mut d = flate2::bufread::ZlibDecoder::new(&bytes[..]);
                let read = (&mut d).take(bound).read_to_end(&mut out);
                let rest = d.into_inner().len();
                ("deflate", read.map(|_| rest))
            }
        };
        let undecodable = |reason: String| BodyError::Undecodable {
            coding: name,
            reason,
        };
        if out.len() > limit {
            return Err(BodyError::DecompressesTooLarge(limit));
        }
        match read {
            Ok(0) => {}
            Ok(rest) => {
                return Err(undecodable(format!(
                    "{rest} bytes follow the compressed data"
                )));
            }
            Err(e) if *coding == Coding::Deflate => {
                return Err(undecodable(format!(
                    "{e} (HTTP's deflate is the zlib format, RFC 9110 §8.4.1.2, not raw deflate)"
                )));
            }
            Err(e) => return Err(undecodable(e.to_string())),
        }
        bytes = Bytes::from(out);
    }
    Ok(bytes)
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
        let codings = codings(&parts.headers)?;
        let bytes = decode(
            collect(body, d.max_body_bytes).await?,
            &codings,
            d.max_body_bytes,
        )?;
        return Ok(Payload {
            parts,
            bytes,
            admission: Admission { _permit: None },
        });
    };
    let codings = codings(&parts.headers)?;
    let limit = life.body.max_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // A declared length above the limit is refused before reading.
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    // A request admitted is always handled: shutdown does not abort the
    // wait for admission, only a read the client does not complete.
    let admission = Arc::clone(&life.admission)
        .acquire_owned()
        .await
        .map_err(|_| BodyError::ShuttingDown)?;
    let read = tokio::time::timeout(life.body.read_timeout, collect(body, limit));
    let last_call = async {
        life.reading_stopped().await;
        tokio::time::sleep(LAST_CALL).await;
    };
    let bytes = tokio::select! {
        r = read => r.map_err(|_| BodyError::Timeout(life.body.read_timeout))??,
        () = last_call => return Err(BodyError::ShuttingDown),
    };
    let bytes = if codings.is_empty() {
        bytes
    } else if bytes.len() <= INLINE_DECODE_BYTES {
        decode(bytes, &codings, limit)?
    } else {
        // Decoding a large body takes milliseconds: off the I/O threads.
        tokio::task::spawn_blocking(move || decode(bytes, &codings, limit))
            .await
            .map_err(|e| BodyError::Unreadable(e.to_string()))??
    };
    Ok(Payload {
        parts,
        bytes,
        admission: Admission {
            _permit: Some(admission),
        },
    })
}

/// Compressed bodies up to this size are decoded on the I/O thread.
const INLINE_DECODE_BYTES: usize = 16 * 1024;

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
