//! Reads a request the ways Seldon's clients send it (the wrapper's
//! `get_request`, seldon_core/flask_utils.py, v1.18): a JSON body; the
//! form-encoded `json=<SeldonMessage>` field of a POST body, or the `json`
//! query parameter on any method (seldon-core-tester and older clients);
//! multipart/form-data where every part is one key of the message (`data`,
//! `meta`, `jsonData` as JSON text, `strData` as text, `binData` as raw
//! bytes) or, as kube-mlops also accepts, one `json` part holding the whole
//! message.
//!
//! Where Seldon silently prefers one of two messages (a `json` query
//! parameter beside a JSON body), the request is refused instead: nothing
//! the client sent is dropped unread.
//!
//! The payload is read by `service_kit::body` (admission, size limits,
//! decompression, read timeout).

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
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
    let in_query = match parts.uri.query() {
        Some(q) => form_field(q.as_bytes(), "the `json` query parameter")?,
        None => None,
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    let form_of_json = form && bytes.trim_ascii_start().starts_with(b"{");
    // The body is moved, not copied, into the message text.
    let in_body = if bytes.is_empty() {
        None
    } else if content_type.starts_with("multipart/form-data") {
        Some(multipart(Request::from_parts(parts, Body::from(bytes))).await?)
    } else if form {
        form_field(&bytes, "the form field `json`")?
    } else if content_type.starts_with("application/json") || content_type.starts_with("text/plain")
    {
        Some(json_text(bytes, "the request body")?)
    } else {
        return Err(SeldonError::unsupported_media(format!(
            "content type {content_type} is not supported: send application/json, \
             application/x-www-form-urlencoded (json=...) or multipart/form-data"
        )));
    };
    let text = match (in_body, in_query) {
        (Some(_), Some(_)) => {
            return Err(SeldonError::bad_data(
                "the request carries a message in its body and another in the `json` query \
                 parameter: send one",
            ));
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) if form => {
            let mut e =
                String::from("a form-encoded request needs the message in the `json` field");
            if form_of_json {
                e.push_str(
                    "; the body looks like JSON: send it with Content-Type: application/json \
                     (curl -d sends a form unless told otherwise)",
                );
            }
            return Err(SeldonError::bad_data(e));
        }
        (None, None) => {
            return Err(SeldonError::bad_data(
                "the request has no message: send a SeldonMessage as the JSON body, \
                 or in the `json` query parameter (?json={...})",
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(SeldonError::bad_data(
            "the message is empty: send a SeldonMessage such as {\"data\":{\"ndarray\":[[1]]}}",
        ));
    }
    Ok((text, admission))
}

/// The payload errors of `service_kit::body`, in Seldon's shape.
pub fn body_error(e: BodyError) -> SeldonError {
    SeldonError::with_status(e.status(), e.to_string())
}

/// JSON text from raw bytes: UTF-8, a leading byte order mark dropped (as
/// Python's `json.loads` does with bytes, and so Flask's `get_json`).
fn json_text(bytes: Bytes, what: &str) -> Result<String, SeldonError> {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => Bytes::copy_from_slice(rest),
        None => bytes,
    };
    utf8(bytes, what)
}

fn utf8(bytes: Bytes, what: &str) -> Result<String, SeldonError> {
    let compressed = matches!(
        bytes.as_ref(),
        [0x1f, 0x8b, ..] | [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..]
    );
    String::from_utf8(bytes.into()).map_err(|e| {
        let mut msg = format!(
            "{what} is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        );
        if compressed {
            msg.push_str(
                "; it looks compressed: a compressed body needs its Content-Encoding header \
                 (gzip or deflate)",
            );
        }
        SeldonError::bad_data(msg)
    })
}

/// The `json` field of a form-encoded body or query (WHATWG URL's
/// application/x-www-form-urlencoded): `+` is a space, `%XX` a byte, and
/// the decoded bytes must be UTF-8 (no silent replacement characters).
fn form_field(bytes: &[u8], what: &str) -> Result<Option<String>, SeldonError> {
    let mut found = None;
    for pair in bytes.split(|b| *b == b'&') {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if form_decode(key).as_deref() != Ok("json") {
            continue;
        }
        if found.is_some() {
            return Err(SeldonError::bad_data(format!(
                "{what} appears more than once: send one message"
            )));
        }
        found = Some(form_decode(value).map_err(|offset| {
            SeldonError::bad_data(format!(
                "{what} is not UTF-8 once percent-decoded (invalid byte at offset {offset})"
            ))
        })?);
    }
    Ok(found)
}

/// Percent-decodes one form component; the error is the offset of the
/// first byte that is not UTF-8.
fn form_decode(raw: &[u8]) -> Result<String, usize> {
    let spaced: Cow<[u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|e| e.utf8_error().valid_up_to())
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
    let mut seen: Vec<String> = Vec::new();
    let mut whole: Option<String> = None;
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(malformed)?;
        if seen.contains(&name) {
            return Err(SeldonError::bad_data(format!(
                "the multipart part `{name}` appears more than once: send each key once"
            )));
        }
        let value: Box<RawValue> = match name.as_str() {
            "json" => {
                whole = Some(json_text(bytes, "the multipart `json` part")?);
                seen.push(name);
                continue;
            }
            "binData" => raw_string(&base64::engine::general_purpose::STANDARD.encode(&bytes))?,
            "strData" => raw_string(&utf8(bytes, "the multipart `strData` part")?)?,
            "" => {
                return Err(SeldonError::bad_data(
                    "a multipart part has no name: name each part after a SeldonMessage key",
                ));
            }
            _ => {
                let text = json_text(bytes, &format!("the multipart `{name}` part"))?;
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
        seen.push(name);
    }
    match whole {
        Some(_) if seen.len() > 1 => Err(SeldonError::bad_data(format!(
            "the multipart `json` part holds the whole message, but the request also has the \
             parts {}: send the `json` part alone, or only parts named after SeldonMessage keys",
            seen.iter()
                .filter(|n| *n != "json")
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Some(text) => Ok(text),
        None if message.len() == 1 => Err(SeldonError::bad_data(
            "a multipart request needs parts named after SeldonMessage keys \
             (data, meta, jsonData, strData, binData) or one `json` part",
        )),
        None => {
            message.push('}');
            Ok(message)
        }
    }
}

fn raw_string(s: &str) -> Result<Box<RawValue>, SeldonError> {
    serde_json::value::to_raw_value(s).map_err(|e| SeldonError::bad_data(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded_strictly() {
        let ok = |b: &str| form_field(b.as_bytes(), "f").map_err(|e| e.info);
        assert_eq!(
            ok("a=1&json=%7B%22x%22%3A+1%7D"),
            Ok(Some(r#"{"x": 1}"#.into()))
        );
        assert_eq!(ok("a=1"), Ok(None));
        assert_eq!(ok("json"), Ok(Some(String::new())));
        let e = ok("json=%7B%22strData%22%3A%22%FF%22%7D").expect_err("not UTF-8");
        assert!(
            e.contains("not UTF-8 once percent-decoded (invalid byte at offset 12)"),
            "{e}"
        );
        let e = ok("json=1&json=2").expect_err("twice");
        assert!(e.contains("appears more than once"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_dropped_from_json_bodies() -> Result<(), String> {
        let t = json_text(Bytes::from_static(b"\xEF\xBB\xBF{}"), "b").map_err(|e| e.info)?;
        assert_eq!(t, "{}");
        Ok(())
    }

    #[test]
    fn only_bytes_that_look_compressed_get_the_encoding_hint() {
        let e = utf8(Bytes::from_static(b"\x1f\x8b\x08\x00\xff"), "b").expect_err("gzip");
        assert!(e.info.contains("Content-Encoding"), "{}", e.info);
        let e = utf8(Bytes::from_static(b"{\"a\":\"\xff\"}"), "b").expect_err("latin-1");
        assert!(!e.info.contains("Content-Encoding"), "{}", e.info);
    }
}
