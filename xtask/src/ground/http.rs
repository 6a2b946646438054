//! Small blocking HTTP helpers for readiness waits, smoke and contract tests.
//! Any status is a result; only a transport failure (refused, timed out) is
//! an error.

use std::time::Duration;

use anyhow::{Context, Result};

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn read(mut resp: ureq::http::Response<ureq::Body>, what: &str) -> Result<(u16, String)> {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the body of {what}"))?;
    Ok((status, body))
}

pub fn get(url: &str, timeout: Duration) -> Result<(u16, String)> {
    let what = format!("GET {url}");
    let resp = agent(timeout)
        .get(url)
        .call()
        .with_context(|| what.clone())?;
    read(resp, &what)
}

/// A POST of `body` with `content_type`.
pub fn post(url: &str, content_type: &str, body: &str, timeout: Duration) -> Result<(u16, String)> {
    let what = format!("POST {url}");
    let resp = agent(timeout)
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .with_context(|| what.clone())?;
    read(resp, &what)
}

/// Whether `base` answers `GET /readyz` with 200 (every service's
/// readiness probe) within two seconds.
pub fn ready(base: &str) -> bool {
    matches!(
        get(&format!("{base}/readyz"), Duration::from_secs(2)),
        Ok((200, _))
    )
}

/// How long one readiness probe may take: Kubernetes' default probe
/// `timeoutSeconds`, so that what is ready here is ready in a pod.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `GET <base>/readyz` says now: 200 is ready; anything else (an
/// answer, a refused connection, no answer within `PROBE_TIMEOUT`) is
/// described for the error when time runs out.
pub fn readiness(base: &str) -> super::poll::Check<()> {
    let url = format!("{base}/readyz");
    match get(&url, PROBE_TIMEOUT) {
        Ok((200, _)) => super::poll::Check::Done(()),
        Ok((code, body)) => super::poll::Check::NotYet(format!("{url} answered {code}: {body}")),
        Err(e) if format!("{e:#}").contains("timeout") => super::poll::Check::NotYet(format!(
            "GET {url} did not answer within {}s, the probe's timeout (as Kubernetes' default \
             timeoutSeconds): the service's /readyz itself is slow (ARTIFICIAL_LATENCY_MS? a \
             busy process?), which a longer deploy deadline does not change",
            PROBE_TIMEOUT.as_secs()
        )),
        Err(e) => super::poll::Check::NotYet(format!("{e:#}")),
    }
}
