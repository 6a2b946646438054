//! Reads a request the ways Seldon's clients send it: a JSON body; the
//! form-encoded `json=<SeldonMessage>` field in a POST body or a GET query
//! (seldon-core-tester and older clients); a multipart `json` field (or
//! `strData` / `binData` parts).

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{Method, header};
use base64::Engine;
use serde::de::DeserializeOwned;

use crate::errors::SeldonError;

/// The request's message as JSON text (or a message built from multipart
/// `strData`/`binData` parts), then parsed into `T`.
pub async fn read<T: DeserializeOwned>(req: Request, limit: usize) -> Result<T, SeldonError> {
    let text = read_text(req, limit).await?;
    seldon_protocol::message::from_json(&text)
        .map_err(|e| SeldonError::bad_data(format!("invalid JSON message: {e}")))
}

async fn read_text(req: Request, limit: usize) -> Result<String, SeldonError> {
    if req.method() == Method::GET {
        let query = req.uri().query().unwrap_or_default();
        return form_field(query.as_bytes())?.ok_or_else(|| {
            SeldonError::bad_data(
                "GET needs the message in the `json` query parameter: ?json={...}",
            )
        });
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return multipart(req).await;
    }
    let body = Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            SeldonError::too_large(limit)
        } else {
            SeldonError::bad_data(e.body_text())
        }
    })?;
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return form_field(&body)?.ok_or_else(|| {
            SeldonError::bad_data("a form-encoded request needs the message in the `json` field")
        });
    }
    if content_type.starts_with("application/json") || content_type.starts_with("text/plain") {
        return String::from_utf8(body.to_vec())
            .map_err(|_| SeldonError::bad_data("the request body is not UTF-8"));
    }
    Err(SeldonError::unsupported_media(format!(
        "content type {content_type} is not supported: send application/json, \
         application/x-www-form-urlencoded (json=...) or multipart/form-data"
    )))
}

/// The `json` field of a form-encoded body or query.
fn form_field(bytes: &[u8]) -> Result<Option<String>, SeldonError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| SeldonError::bad_data(format!("malformed form data: {e}")))?;
    Ok(pairs.into_iter().find(|(k, _)| k == "json").map(|(_, v)| v))
}

async fn multipart(req: Request) -> Result<String, SeldonError> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| SeldonError::bad_data(format!("malformed multipart body: {e}")))?;
    let mut message = serde_json::Map::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| SeldonError::bad_data(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| SeldonError::bad_data(format!("multipart field {name}: {e}")))?;
        match name.as_str() {
            "json" => {
                return String::from_utf8(bytes.to_vec())
                    .map_err(|_| SeldonError::bad_data("the multipart `json` field is not UTF-8"));
            }
            "strData" => {
                let s = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    SeldonError::bad_data("the multipart `strData` field is not UTF-8")
                })?;
                message.insert(name, s.into());
            }
            "binData" => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
                message.insert(name, b64.into());
            }
            _ => {}
        }
    }
    if message.is_empty() {
        return Err(SeldonError::bad_data(
            "a multipart request needs a `json`, `strData` or `binData` field",
        ));
    }
    Ok(serde_json::Value::Object(message).to_string())
}
