//! Smoke tests: each service answers its main route the way the tutorial says.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::context::Ctx;
use crate::http;
use crate::services::ServiceSpec;

/// Calls the service's main route and checks the answer.
pub fn check(cx: &Ctx, spec: &ServiceSpec, base_url: &str) -> Result<()> {
    match spec.name {
        "test-api" => test_api(cx, base_url),
        other => bail!("no smoke test is defined for `{other}`"),
    }
}

fn test_api(cx: &Ctx, base: &str) -> Result<()> {
    let url = format!("{base}/test_api");
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "smoke test: GET {url} must answer 200 {{\"message\":\"Hello <client ip>, you've reached <server ip>\"}}"
        ));
        return Ok(());
    }
    let (status, body) = http::get(&url, Duration::from_secs(5))?;
    if status != 200 {
        bail!("smoke test failed: GET {url} answered {status}: {body}");
    }
    let message = parse_greeting(&body).with_context(|| format!("smoke test failed: GET {url}"))?;
    eprintln!("  ✓ smoke test GET {url}: {message}");
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Greeting {
    message: String,
}

/// Checks `{"message":"Hello <ip>, you've reached <ip>"}` and returns the message.
pub fn parse_greeting(body: &str) -> Result<String> {
    let g: Greeting = serde_json::from_str(body)
        .with_context(|| format!("expected {{\"message\": ...}}, got {body:?}"))?;
    let rest = g
        .message
        .strip_prefix("Hello ")
        .with_context(|| format!("message does not start with \"Hello \": {:?}", g.message))?;
    let (client, server) = rest
        .split_once(", you've reached ")
        .with_context(|| format!("message lacks \", you've reached \": {:?}", g.message))?;
    client
        .parse::<IpAddr>()
        .with_context(|| format!("client {client:?} is not an IP address"))?;
    let server_ip: IpAddr = server
        .parse()
        .with_context(|| format!("server {server:?} is not an IP address"))?;
    if server_ip.is_unspecified() {
        bail!("server ip is {server_ip}: the service reports its bind address, not its own");
    }
    Ok(g.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_tutorial_format() -> Result<()> {
        let m = parse_greeting(r#"{"message":"Hello 127.0.0.1, you've reached 10.0.0.7"}"#)?;
        assert_eq!(m, "Hello 127.0.0.1, you've reached 10.0.0.7");
        Ok(())
    }

    #[test]
    fn rejects_wrong_answers() {
        for body in [
            r#"{"msg":"Hello 1.2.3.4, you've reached 1.2.3.4"}"#,
            r#"{"message":"Hi 1.2.3.4, you've reached 1.2.3.4"}"#,
            r#"{"message":"Hello you, you've reached 1.2.3.4"}"#,
            r#"{"message":"Hello 1.2.3.4, you've reached 0.0.0.0"}"#,
            "not json",
        ] {
            assert!(parse_greeting(body).is_err(), "{body} should be rejected");
        }
    }
}
