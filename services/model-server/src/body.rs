//! Reads a request the ways Seldon's clients send it (the wrapper's
//! `get_request`, seldon_core/flask_utils.py, v1.18): a JSON body; the
//! form-encoded `json=<SeldonMessage>` field in a POST body or a GET query
//! (seldon-core-tester and older clients); multipart/form-data where every
//! part is one key of the message (`data`, `meta`, `jsonData` as JSON text,
//! `strData` as text, `binData` as raw bytes) or, as kube-mlops also
//! accepts, one `json` part holding the whole message.
//!
//! The payload is read by `service_kit::body` (admission, size limit after
//! gzip/deflate decompression, read timeout).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{Method, header};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use service_kit::body::{self, Admission, BodyError};

use crate::errors::SeldonError;

/// The request's message parsed into `T`, and its admission (keep it until
/// the reply is built).
pub async fn read<T: DeserializeOwned>(req: Request) -> Result<(T, Admission), SeldonError> {
    let (text, admission) = read_text(req).await?;
    Ok((parse(&text)?, admission))
}

/// Parses a message's JSON text.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, SeldonError> {
    seldon_protocol::message::from_json(text)
        .map_err(|e| SeldonError::bad_data(format!("invalid JSON message: {e}")))
}

/// The request's message as JSON text, and its admission.
pub async fn read_text(req: Request) -> Result<(String, Admission), SeldonError> {
    let payload = body::read(req).await.map_err(body_error)?;
    let (parts, bytes, admission) = (payload.parts, payload.bytes, payload.admission);
    if parts.method == Method::GET {
        let query = parts.uri.query().unwrap_or_default();
        let text = form_field(query.as_bytes())?.ok_or_else(|| {
            SeldonError::bad_data(
                "GET needs the message in the `json` query parameter: ?json={...}",
            )
        })?;
        return Ok((text, admission));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let text = if content_type.starts_with("multipart/form-data") {
        multipart(Request::from_parts(parts, Body::from(bytes))).await?
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        form_field(&bytes)?.ok_or_else(|| {
            SeldonError::bad_data("a form-encoded request needs the message in the `json` field")
        })?
    } else if content_type.starts_with("application/json") || content_type.starts_with("text/plain")
    {
        utf8(bytes, "the request body")?
    } else {
        return Err(SeldonError::unsupported_media(format!(
            "content type {content_type} is not supported: send application/json, \
             application/x-www-form-urlencoded (json=...) or multipart/form-data"
        )));
    };
    Ok((text, admission))
}

/// The payload errors of `service_kit::body`, in Seldon's shape.
pub fn body_error(e: BodyError) -> SeldonError {
    SeldonError::with_status(e.status(), e.to_string())
}

fn utf8(bytes: Bytes, what: &str) -> Result<String, SeldonError> {
    String::from_utf8(bytes.into()).map_err(|e| {
        SeldonError::bad_data(format!(
            "{what} is not UTF-8 (invalid byte at offset {}); \
             a compressed body needs its Content-Encoding header",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The `json` field of a form-encoded body or query.
fn form_field(bytes: &[u8]) -> Result<Option<String>, SeldonError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| SeldonError::bad_data(format!("malformed form data: {e}")))?;
    Ok(pairs.into_iter().find(|(k, _)| k == "json").map(|(_, v)| v))
}

async fn multipart(req: Request) -> Result<String, SeldonError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        SeldonError::bad_data(format!("malformed multipart body: {}", e.body_text()))
    };
    let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
        SeldonError::bad_data(format!("malformed multipart body: {}", e.body_text()))
    })?;
    // The message is written as JSON text part by part, so that numbers in
    // a `data` part keep their exact literals.
    let mut message = String::from("{");
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(malformed)?;
        let value: Box<RawValue> = match name.as_str() {
            "json" => return utf8(bytes, "the multipart `json` part"),
            "binData" => raw_string(&base64::engine::general_purpose::STANDARD.encode(&bytes))?,
            "strData" => raw_string(&utf8(bytes, "the multipart `strData` part")?)?,
            "" => {
                return Err(SeldonError::bad_data(
                    "a multipart part has no name: name each part after a SeldonMessage key",
                ));
            }
            _ => {
                let text = utf8(bytes, &format!("the multipart `{name}` part"))?;
                seldon_protocol::message::from_json(&text).map_err(|e| {
                    SeldonError::bad_data(format!("the multipart `{name}` part is not JSON: {e}"))
                })?
            }
        };
        if message.len() > 1 {
            message.push(',');
        }
        message.push_str(&raw_string(&name)?.to_string());
        message.push(':');
        message.push_str(value.get());
    }
    if message.len() == 1 {
        return Err(SeldonError::bad_data(
            "a multipart request needs parts named after SeldonMessage keys \
             (data, meta, jsonData, strData, binData) or one `json` part",
        ));
    }
    message.push('}');
    Ok(message)
}

fn raw_string(s: &str) -> Result<Box<RawValue>, SeldonError> {
    serde_json::value::to_raw_value(s).map_err(|e| SeldonError::bad_data(e.to_string()))
}
