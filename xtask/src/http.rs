//! Small blocking HTTP helpers for readiness waits and smoke tests.

use std::time::Duration;

use anyhow::{Context, Result};

/// A GET that returns the status and body; any status is a result, only a
/// transport failure (refused, timed out) is an error.
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the body of GET {url}"))?;
    Ok((status, body))
}

/// A POST of `body` with `content_type`; like [`get`], any status is a result.
pub fn post(url: &str, content_type: &str, body: &str, timeout: Duration) -> Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the body of POST {url}"))?;
    Ok((status, text))
}
