//! What the model-server tests share: starting the real binary, the
//! tutorial's payload, form encoding and Seldon failure checks.
#![allow(dead_code)]

use serde_json::Value;
use service_kit::testing::{Result, Server};

pub const TUTORIAL: &str =
    r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#;

pub fn identity() -> Result<Server> {
    Server::start(env!("CARGO_BIN_EXE_model-server"), &[("MODEL", "identity")])
}

pub fn iris() -> Result<Server> {
    Server::start(env!("CARGO_BIN_EXE_model-server"), &[("MODEL", "iris")])
}

pub fn form(field: &str, value: &str) -> String {
    let mut s = String::from(field);
    s.push('=');
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => s.push(b as char),
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

/// Asserts a Seldon FAILURE with `code` whose info contains `info`.
pub fn assert_failure((status, body): (u16, Value), code: u16, info: &str) {
    assert_eq!(status, code, "{body}");
    assert_eq!(body["status"]["status"], "FAILURE", "{body}");
    assert_eq!(body["status"]["code"], code, "{body}");
    // Seldon's reason for bad data; the status's own name for the others.
    let reason = match code {
        400 => "MICROSERVICE_BAD_DATA",
        408 => "REQUEST_TIMEOUT",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        503 => "SERVICE_UNAVAILABLE",
        _ => "?",
    };
    assert_eq!(body["status"]["reason"], reason, "{body}");
    let text = body["status"]["info"].as_str().unwrap_or_default();
    assert!(text.contains(info), "info {text:?} lacks {info:?}");
}
