//! Smoke tests: each service answers the way its settings say (the
//! tutorial's greeting, an HTTP check, an echo of the tutorial's tensor, a
//! contract test), once it reports ready.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use seldon_protocol::SeldonMessage;

use super::contract::{self, Endpoint};
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::services::{ServiceSpec, Smoke};
use crate::ground::settings::HttpSmoke;
use std::path::Path;

/// The tutorial's request to the Seldon model.
pub const TUTORIAL_PAYLOAD: &str =
    r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#;

/// Calls the service's main route and checks the answer.
pub fn check(cx: &Ctx, spec: &ServiceSpec, base_url: &str) -> Result<()> {
    match &spec.smoke {
        Smoke::Greeting => test_api(cx, base_url),
        Smoke::Http(h) => http_check(cx, spec, h, base_url),
        Smoke::Ready => {
            cx.runner.effect(
                format!(
                    "smoke test of {}: ready (no `smoke` in its settings)",
                    spec.name
                ),
                || Ok(()),
            )?;
            Ok(())
        }
        Smoke::Echo => echo(cx, spec, base_url),
        Smoke::Contract(None) => derived(cx, spec, base_url),
        Smoke::Contract(Some(path)) => contract_at(
            cx,
            &format!("smoke test of {}", spec.name),
            Some(path),
            &format!("{base_url}/predict"),
            &format!("{base_url}/metadata"),
        ),
    }
}

/// A model without a contract: a contract derived from its v1 metadata
/// when v1 can feed it (one `[N, features]` input), else an inference over
/// the Open Inference Protocol on zeros of every input it declares.
fn derived(cx: &Ctx, spec: &ServiceSpec, base: &str) -> Result<()> {
    let what = format!("smoke test of {}", spec.name);
    let v2 = format!("{base}/v2/models/{}", spec.name);
    let step = format!(
        "{what}: a contract derived from {base}/metadata, or, for a model Seldon v1 cannot \
         feed, POST zeros of every input {v2} declares to {v2}/infer"
    );
    cx.runner.effect(step, || {
        if derived_contract(&format!("{base}/metadata")).is_ok() {
            return contract_at(
                cx,
                &what,
                None,
                &format!("{base}/predict"),
                &format!("{base}/metadata"),
            );
        }
        let answer = v2_zeros(&v2).with_context(|| format!("{what} failed"))?;
        eprintln!("  ✓ {what}: POST {v2}/infer: {}", super::bounded(&answer));
        Ok(())
    })?;
    Ok(())
}

/// The most elements a smoke request may send (a fixed image input of
/// 3x1024x1024 is 3 million; say so rather than send megabytes of zeros).
const ZEROS_MAX: u64 = 1 << 20;

/// Reads the model's v2 metadata at `model_url` and POSTs an inference
/// of zeros (one for every variable dimension) to `model_url/infer`; the
/// answer must be 200 with every declared output.
pub fn v2_zeros(model_url: &str) -> Result<String> {
    let (status, body) = http::get(model_url, Duration::from_secs(5))?;
    if status != 200 {
        bail!(
            "GET {model_url} answered {status}: {}",
            super::bounded(&body)
        );
    }
    let meta: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("GET {model_url}: not JSON: {}", super::bounded(&body)))?;
    let mut inputs = Vec::new();
    for input in meta["inputs"].as_array().into_iter().flatten() {
        let shape: Vec<u64> = input["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_u64().unwrap_or(1))
            .collect();
        let n = shape
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(*d))
            .filter(|n| *n <= ZEROS_MAX)
            .with_context(|| {
                format!(
                    "input {} of shape {shape:?} is too large for a smoke request of zeros; \
                     set `contract` in the service's settings",
                    input["name"]
                )
            })?;
        let zero = match input["datatype"].as_str() {
            Some("BOOL") => serde_json::json!(false),
            Some("BYTES") => serde_json::json!(""),
            _ => serde_json::json!(0),
        };
        inputs.push(serde_json::json!({
            "name": input["name"],
            "datatype": input["datatype"],
            "shape": shape,
            "data": vec![zero; n as usize],
        }));
    }
    if inputs.is_empty() {
        bail!("GET {model_url} lists no inputs: {}", super::bounded(&body));
    }
    let url = format!("{model_url}/infer");
    let request = serde_json::json!({ "inputs": inputs }).to_string();
    let (status, answer) = http::post(&url, "application/json", &request, Duration::from_secs(10))?;
    if status != 200 {
        bail!("POST {url} answered {status}: {}", super::bounded(&answer));
    }
    let got: serde_json::Value = serde_json::from_str(&answer)
        .with_context(|| format!("POST {url}: not JSON: {}", super::bounded(&answer)))?;
    let names = |v: &serde_json::Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str().map(String::from))
            .collect()
    };
    let (declared, answered) = (names(&meta, "outputs"), names(&got, "outputs"));
    if declared != answered {
        bail!("POST {url} answered the outputs {answered:?}, but the model declares {declared:?}");
    }
    Ok(answer)
}

/// `smoke = { path, status, json, contains }` from the service's settings.
fn http_check(cx: &Ctx, spec: &ServiceSpec, h: &HttpSmoke, base: &str) -> Result<()> {
    let url = format!("{base}{}", h.path);
    let mut what = format!(
        "smoke test of {}: GET {url} must answer {}",
        spec.name, h.status
    );
    if let Some(field) = &h.json {
        what.push_str(&format!(" with a JSON field {field:?}"));
    }
    if let Some(c) = &h.contains {
        what.push_str(&format!(" containing {c:?}"));
    }
    cx.runner.effect(what.clone(), || {
        let (status, body) = http::get(&url, Duration::from_secs(5))?;
        let shown = super::bounded(&body);
        if status != h.status {
            bail!("{what}; it answered {status}: {shown}");
        }
        let text = match &h.json {
            None => body.clone(),
            Some(field) => {
                let v: serde_json::Value = serde_json::from_str(&body)
                    .with_context(|| format!("{what}; the body is not JSON: {shown}"))?;
                match v.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => bail!("{what}; the body has no field {field:?}: {shown}"),
                }
            }
        };
        if let Some(c) = &h.contains
            && !text.contains(c.as_str())
        {
            bail!(
                "{what}; it does not contain {c:?}: {}",
                super::bounded(&text)
            );
        }
        eprintln!("  ✓ smoke test GET {url}: {}", super::bounded(&text));
        Ok(())
    })?;
    Ok(())
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

/// A contract.json (or, for None, one derived from the model's Seldon
/// metadata at `metadata_url`: every input a float in [0, 1]), 3 requests
/// of 5 rows, against `url`; `what` names the check in the plan, the
/// failure and the success line.
pub fn contract_at(
    cx: &Ctx,
    what: &str,
    path: Option<&Path>,
    url: &str,
    metadata_url: &str,
) -> Result<()> {
    let shown = path.map_or_else(
        || "derived from the model's /metadata".to_string(),
        |p| p.display().to_string(),
    );
    let step = format!("{what}: contract test {shown} against {url} (3 requests of 5 rows)");
    cx.runner.effect(step, || {
        let contract = match path {
            Some(p) => contract::load(p)?,
            None => derived_contract(metadata_url).with_context(|| format!("{what} failed"))?,
        };
        let opts = contract::Options {
            endpoint: Endpoint::Predict,
            v2_model: None,
            batch_size: 5,
            requests: 3,
            tensor: false,
            print: false,
            form: false,
            seed: rand::random(),
        };
        let report = contract::run(url, &contract, &opts)?;
        if !report.passed() {
            bail!("{what} failed:\n{}", report.render(url));
        }
        eprintln!("  ✓ {what}: {}", report.render(url));
        Ok(())
    })?;
    Ok(())
}

/// A contract for a model whose `/metadata` gives its input width (Seldon's
/// metadata: `inputs[0].schema.shape`, or the names' count): each input a
/// continuous float in [0, 1], named as the model names them.
fn derived_contract(url: &str) -> Result<seldon_protocol::contract::Contract> {
    let (status, body) = http::get(url, Duration::from_secs(5))?;
    if status != 200 {
        bail!("GET {url} answered {status}: {}", super::bounded(&body));
    }
    let meta: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("GET {url}: not JSON: {}", super::bounded(&body)))?;
    let schema = &meta["inputs"][0]["schema"];
    let names: Vec<String> = match (schema["names"].as_array(), schema["shape"][0].as_u64()) {
        (Some(n), _) => n
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        (None, Some(w)) => (0..w).map(|i| format!("f{i}")).collect(),
        (None, None) => bail!(
            "GET {url} gives no input width, so no contract can be derived; set `contract` in \
             the service's settings"
        ),
    };
    let features: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({"name": n, "dtype": "FLOAT", "ftype": "continuous", "range": [0, 1]}))
        .collect();
    let text = serde_json::json!({ "features": features }).to_string();
    seldon_protocol::contract::Contract::parse(&text).map_err(anyhow::Error::msg)
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
