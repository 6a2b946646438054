//! The contract tester: what seldon-core-tester does (random requests drawn
//! from contract.json), plus what it never did: every answer is checked
//! against the contract's targets, and each failure is reported.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use seldon_protocol::contract::{Contract, repr_of};
use seldon_protocol::{Feedback, SeldonMessage};

use crate::ground::http;

/// Which endpoint of the model server (or of a SeldonDeployment) to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Predict,
    SendFeedback,
}

/// How to call the server and what to send.
pub struct Options {
    pub endpoint: Endpoint,
    /// Over the Open Inference Protocol: the model's name (its service's);
    /// None: Seldon v1.
    pub v2_model: Option<String>,
    pub batch_size: usize,
    pub requests: usize,
    pub tensor: bool,
    pub print: bool,
    pub form: bool,
    pub seed: u64,
}

/// What went wrong in each failed request (1-based index).
pub struct Report {
    pub requests: usize,
    pub seed: u64,
    pub failures: Vec<(usize, Vec<String>)>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A readable account of the run.
    pub fn render(&self, url: &str) -> String {
        let ok = self.requests - self.failures.len();
        let mut out = format!(
            "contract test against {url}: {ok} of {} requests satisfied the contract (seed {})",
            self.requests, self.seed
        );
        for (i, problems) in &self.failures {
            out.push_str(&format!("\n  request {i}:"));
            for p in problems.iter().take(10) {
                out.push_str(&format!("\n    - {p}"));
            }
            if problems.len() > 10 {
                out.push_str(&format!("\n    - … and {} more", problems.len() - 10));
            }
        }
        if !self.passed() {
            out.push_str(&format!(
                "\n  rerun the same inputs with --seed {}",
                self.seed
            ));
        }
        out
    }
}

/// Reads and checks a contract file.
pub fn load(path: &Path) -> Result<Contract> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the contract {}", path.display()))?;
    Contract::parse(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("invalid contract {}", path.display()))
}

/// The model server's own endpoint, or the ingress path of a SeldonDeployment.
pub fn endpoint_url(
    host: &str,
    port: u16,
    api: Option<&str>,
    endpoint: Endpoint,
) -> Result<String> {
    let base = format!("http://{host}:{port}");
    Ok(match (api, endpoint) {
        (None, Endpoint::Predict) => format!("{base}/predict"),
        (None, Endpoint::SendFeedback) => format!("{base}/send-feedback"),
        (Some(api), endpoint) => {
            let Some((ns, name)) = api
                .split_once('/')
                .filter(|(n, d)| !n.is_empty() && !d.is_empty() && !d.contains('/'))
            else {
                bail!(
                    "--api takes NAMESPACE/DEPLOYMENT (e.g. seldon/seldon-test-model), not {api:?}"
                );
            };
            let tail = match endpoint {
                Endpoint::Predict => "predictions",
                Endpoint::SendFeedback => "feedback",
            };
            format!("{base}/seldon/{ns}/{name}/api/v1.0/{tail}")
        }
    })
}

/// Sends the requests and checks each answer.
pub fn run(url: &str, contract: &Contract, opts: &Options) -> Result<Report> {
    if opts.v2_model.is_some() {
        return run_v2(url, contract, opts);
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut failures = Vec::new();
    for i in 1..=opts.requests {
        let request = contract
            .request(opts.batch_size, opts.tensor, &mut rng)
            .map_err(anyhow::Error::msg)?;
        let repr = request
            .data
            .as_ref()
            .map(repr_of)
            .unwrap_or(seldon_protocol::Repr::Ndarray);
        let body = match opts.endpoint {
            Endpoint::Predict => serde_json::to_string(&request)?,
            Endpoint::SendFeedback => serde_json::to_string(&Feedback {
                request: Some(request),
                reward: Some(1.0),
                ..Feedback::default()
            })?,
        };
        if opts.print {
            println!("request {i}: {body}");
        }
        let (status, text) = send(url, &body, opts.form)?;
        if opts.print {
            println!("response {i}: HTTP {status} {text}");
        }
        let problems = check(contract, opts, repr, status, &text);
        if !problems.is_empty() {
            failures.push((i, problems));
        }
    }
    Ok(Report {
        requests: opts.requests,
        seed: opts.seed,
        failures,
    })
}

/// The model's one input (its metadata entry) and the name of the output
/// checked against the targets: the floating-point one whose name says
/// probabilities, else the first floating-point one; read from `url`, the
/// model's OIP v2 metadata.
///
/// # Errors
/// The metadata not there or not JSON, several inputs, no floating-point
/// output.
fn v2_input_and_answer(url: &str) -> Result<(serde_json::Value, String)> {
    let (status, body) =
        http::get(url, Duration::from_secs(30)).map_err(|e| unreachable(e, url))?;
    if status != 200 {
        bail!("GET {url} answered {status}: {}", super::bounded(&body));
    }
    let meta: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("GET {url}: not JSON: {}", super::bounded(&body)))?;
    let inputs = meta["inputs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [input] = inputs else {
        bail!(
            "a contract describes one input of features; the model at {url} takes {} \
             input(s): {}",
            inputs.len(),
            super::bounded(&meta["inputs"].to_string())
        );
    };
    let floats =
        |o: &&serde_json::Value| matches!(o["datatype"].as_str(), Some("FP16" | "FP32" | "FP64"));
    let outputs = meta["outputs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let answer = outputs
        .iter()
        .filter(floats)
        .find(|o| {
            o["name"]
                .as_str()
                .is_some_and(|n| n.to_ascii_lowercase().contains("prob"))
        })
        .or_else(|| outputs.iter().find(floats))
        .and_then(|o| o["name"].as_str())
        .with_context(|| format!("the model at {url} has no floating-point output"))?
        .to_string();
    Ok((input.clone(), answer))
}

/// The contract over the Open Inference Protocol: each request's rows
/// sent as the model's one input (named and typed as its metadata at `url`
/// says), and the output a v1 client would get (the one named like
/// probabilities, else the first floating-point one) checked against the
/// targets as v1 checks them.
fn run_v2(url: &str, contract: &Contract, opts: &Options) -> Result<Report> {
    let (input, answer) = v2_input_and_answer(url)?;
    let infer = format!("{url}/infer");
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut failures = Vec::new();
    for i in 1..=opts.requests {
        let request = contract
            .request(opts.batch_size, true, &mut rng)
            .map_err(anyhow::Error::msg)?;
        let tensor = request
            .data
            .as_ref()
            .and_then(|d| d.tensor.as_ref())
            .context("the contract made no tensor")?;
        let body = serde_json::json!({
            "id": i.to_string(),
            "inputs": [{
                "name": input["name"],
                "datatype": input["datatype"],
                "shape": tensor.shape,
                "data": serde_json::from_str::<serde_json::Value>(tensor.values.get())?,
            }],
            "outputs": [{"name": answer}],
        })
        .to_string();
        if opts.print {
            println!("request {i}: {body}");
        }
        let (status, text) = http::post(&infer, "application/json", &body, Duration::from_secs(30))
            .map_err(|e| unreachable(e, &infer))?;
        if opts.print {
            println!("response {i}: HTTP {status} {text}");
        }
        let problems = if status == 200 {
            v1_view(&text).map_or_else(
                |e| vec![format!("the answer is not an inference response: {e}")],
                |m| contract.check_response(opts.batch_size, seldon_protocol::Repr::Tensor, &m),
            )
        } else {
            vec![format!("HTTP {status}: {}", super::bounded(&text))]
        };
        if !problems.is_empty() {
            failures.push((i, problems));
        }
    }
    Ok(Report {
        requests: opts.requests,
        seed: opts.seed,
        failures,
    })
}

/// An inference response's one output as the SeldonMessage a v1 client
/// would get (`data.tensor`), so that the targets are checked alike.
fn v1_view(text: &str) -> Result<SeldonMessage> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let output = &v["outputs"][0];
    let message = serde_json::json!({
        "data": {"tensor": {"shape": output["shape"], "values": output["data"]}}
    });
    seldon_protocol::message::from_json(&message.to_string()).map_err(anyhow::Error::msg)
}

fn send(url: &str, body: &str, form: bool) -> Result<(u16, String)> {
    let timeout = Duration::from_secs(30);
    let result = if form {
        let encoded = form_encode("json", body);
        http::post(url, "application/x-www-form-urlencoded", &encoded, timeout)
    } else {
        http::post(url, "application/json", body, timeout)
    };
    result.map_err(|e| unreachable(e, url))
}

/// A failed call to the model at `url`: a server that took the request
/// and did not answer is slow, not missing.
fn unreachable(e: anyhow::Error, url: &str) -> anyhow::Error {
    if http::timed_out(&e) {
        e.context(format!(
            "the model server at {url} took the request and did not answer: is it busy or stuck?"
        ))
    } else {
        e.context(format!(
            "cannot reach {url}: is the model server running? (cargo xtask deploy, or set \
             --host/--port)"
        ))
    }
}

fn check(
    contract: &Contract,
    opts: &Options,
    repr: seldon_protocol::Repr,
    status: u16,
    text: &str,
) -> Vec<String> {
    if status != 200 {
        return vec![format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        )];
    }
    let response: SeldonMessage = match seldon_protocol::message::from_json(text) {
        Ok(m) => m,
        Err(e) => return vec![format!("the answer is not a SeldonMessage: {e}")],
    };
    match opts.endpoint {
        Endpoint::Predict => contract.check_response(opts.batch_size, repr, &response),
        Endpoint::SendFeedback => match response.status {
            Some(s) if s.status == "FAILURE" => {
                vec![format!("status FAILURE {}: {}", s.code, s.info)]
            }
            _ => Vec::new(),
        },
    }
}

fn form_encode(key: &str, value: &str) -> String {
    let mut out = format!("{key}=");
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_the_microservice_and_the_ingress() -> Result<()> {
        assert_eq!(
            endpoint_url("h", 5, None, Endpoint::Predict)?,
            "http://h:5/predict"
        );
        assert_eq!(
            endpoint_url("h", 5, None, Endpoint::SendFeedback)?,
            "http://h:5/send-feedback"
        );
        assert_eq!(
            endpoint_url(
                "h",
                8003,
                Some("seldon/seldon-test-model"),
                Endpoint::Predict
            )?,
            "http://h:8003/seldon/seldon/seldon-test-model/api/v1.0/predictions"
        );
        for bad in ["seldon", "/x", "a/", "a/b/c"] {
            assert!(
                endpoint_url("h", 1, Some(bad), Endpoint::Predict).is_err(),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn form_encoding_escapes_json() {
        assert_eq!(
            form_encode("json", r#"{"a": 1}"#),
            "json=%7B%22a%22%3A%201%7D"
        );
    }

    #[test]
    fn the_shipped_contract_is_the_tutorials() -> Result<()> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/model-server/contract.json");
        let c = load(&path)?;
        let names: Vec<String> = c.feature_columns().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["x1", "x2", "x3", "x4"]);
        let targets: Vec<String> = c.target_columns().into_iter().map(|c| c.name).collect();
        assert_eq!(targets, ["class:0", "class:1", "class:2"]);
        Ok(())
    }

    #[test]
    fn a_broken_contract_names_the_file_and_field() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("contract.json");
        std::fs::write(
            &path,
            r#"{"features":[{"name":"a","dtype":"FLOAT","ftype":"continuous","repeat":0}]}"#,
        )?;
        let e = format!("{:#}", load(&path).expect_err("repeat 0"));
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("features[0] (a): repeat is 0"), "{e}");
        Ok(())
    }

    #[test]
    fn the_report_lists_each_failure_and_the_seed() {
        let r = Report {
            requests: 3,
            seed: 42,
            failures: vec![(2, vec!["HTTP 500: boom".into()])],
        };
        let text = r.render("http://x/predict");
        assert!(
            text.contains("2 of 3 requests satisfied the contract (seed 42)"),
            "{text}"
        );
        assert!(text.contains("request 2:\n    - HTTP 500: boom"), "{text}");
        assert!(text.contains("--seed 42"), "{text}");
    }

    #[test]
    fn a_server_that_takes_the_request_and_stays_silent_is_called_slow() -> Result<()> {
        let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/predict", silent.local_addr()?);
        let e = http::get(&url, Duration::from_millis(200))
            .err()
            .context("answered")?;
        let said = format!("{:#}", unreachable(e, &url));
        assert!(
            said.contains("took the request and did not answer"),
            "{said}"
        );
        assert!(said.contains("no answer within 0.2s"), "{said}");
        assert_eq!(said.matches(&url).count(), 2, "{said}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let url = format!("http://{closed}/predict");
        let e = http::get(&url, Duration::from_secs(5))
            .err()
            .context("answered")?;
        let said = format!("{:#}", unreachable(e, &url));
        assert!(said.contains("is the model server running?"), "{said}");
        Ok(())
    }
}
