//! Smoke tests: each service answers its main route the way the tutorial says.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use seldon_protocol::SeldonMessage;

use super::contract::{self, Endpoint};
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::services::{ServiceSpec, Smoke};

/// The tutorial's request to the Seldon model.
pub const TUTORIAL_PAYLOAD: &str =
    r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#;

/// Calls the service's main route and checks the answer.
pub fn check(cx: &Ctx, spec: &ServiceSpec, base_url: &str) -> Result<()> {
    match spec.smoke {
        Smoke::Greeting => test_api(cx, base_url),
        Smoke::Echo => echo(cx, spec, base_url),
        Smoke::Contract => contract(cx, spec, base_url),
    }
}

/// The identity model must return the tutorial's tensor unchanged.
fn echo(cx: &Ctx, spec: &ServiceSpec, base: &str) -> Result<()> {
    let url = format!("{base}/api/v1.0/predictions");
    let what = format!("smoke test: POST {TUTORIAL_PAYLOAD} to {url} must return the same tensor");
    cx.runner.effect(what, || {
        let (status, body) = http::post(
            &url,
            "application/json",
            TUTORIAL_PAYLOAD,
            Duration::from_secs(5),
        )?;
        if status != 200 {
            bail!(
                "smoke test of {} failed: POST {url} answered {status}: {body}",
                spec.name
            );
        }
        check_echo(&body)
            .with_context(|| format!("smoke test of {} failed: POST {url}", spec.name))?;
        eprintln!("  ✓ smoke test POST {url}: {body}");
        Ok(())
    })?;
    Ok(())
}

/// The answer carries the tutorial's tensor back, in tensor form, every
/// value as it was sent.
pub fn check_echo(body: &str) -> Result<()> {
    let got: SeldonMessage =
        seldon_protocol::message::from_json(body).map_err(anyhow::Error::msg)?;
    let echoed = got
        .data
        .as_ref()
        .and_then(|d| d.tensor.as_ref())
        .is_some_and(|t| {
            t.shape == [2, 2]
                && serde_json::from_str::<Vec<serde_json::Value>>(t.values.get())
                    .is_ok_and(|v| v == [0, 0, 1, 1])
        });
    if !echoed {
        bail!("expected the tensor {{shape [2,2], values [0,0,1,1]}} back, got {body}");
    }
    Ok(())
}

/// The shipped contract must hold for the model.
fn contract(cx: &Ctx, spec: &ServiceSpec, base: &str) -> Result<()> {
    contract_at(
        cx,
        &format!("smoke test of {}", spec.name),
        &format!("{base}/predict"),
    )
}

/// The shipped contract.json, 3 requests of 5 rows, against `url`; `what`
/// names the check in the plan, the failure and the success line.
pub fn contract_at(cx: &Ctx, what: &str, url: &str) -> Result<()> {
    let path = cx.root.join("services/model-server/contract.json");
    let step = format!(
        "{what}: contract test {} against {url} (3 requests of 5 rows)",
        path.display()
    );
    cx.runner.effect(step, || {
        let opts = contract::Options {
            endpoint: Endpoint::Predict,
            batch_size: 5,
            requests: 3,
            tensor: false,
            print: false,
            form: false,
            seed: rand::random(),
        };
        let report = contract::run(url, &contract::load(&path)?, &opts)?;
        if !report.passed() {
            bail!("{what} failed:\n{}", report.render(url));
        }
        eprintln!("  ✓ {what}: {}", report.render(url));
        Ok(())
    })?;
    Ok(())
}

fn test_api(cx: &Ctx, base: &str) -> Result<()> {
    let url = format!("{base}/test_api");
    let what = format!(
        "smoke test: GET {url} must answer 200 {{\"message\":\"Hello <client ip>, you've reached <server ip>\"}}"
    );
    cx.runner.effect(what, || {
        let (status, body) = http::get(&url, Duration::from_secs(5))?;
        if status != 200 {
            bail!("smoke test failed: GET {url} answered {status}: {body}");
        }
        let message =
            parse_greeting(&body).with_context(|| format!("smoke test failed: GET {url}"))?;
        eprintln!("  ✓ smoke test GET {url}: {message}");
        Ok(())
    })?;
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
    fn echo_must_return_the_tensor() -> Result<()> {
        check_echo(
            r#"{"meta":{},"data":{"names":["t:0","t:1"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#,
        )?;
        // The identity model returns numbers as they were sent, as Seldon does.
        assert!(
            check_echo(r#"{"data":{"tensor":{"shape":[2,2],"values":[0.0,0.0,1.0,1.0]}}}"#)
                .is_err()
        );
        assert!(check_echo(r#"{"data":{"ndarray":[[0,0],[1,1]]}}"#).is_err());
        assert!(check_echo(r#"{"data":{"tensor":{"shape":[4],"values":[0,0,1,1]}}}"#).is_err());
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
