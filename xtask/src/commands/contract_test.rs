//! `cargo xtask contract-test`: what seldon-core-tester does (random
//! requests drawn from contract.json), plus what it never did: every answer
//! is checked against the contract's targets (see `verify::contract`), and
//! any failure is reported and fails the command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::invocation::Invocation;
use crate::verify::contract::{self, Endpoint, Options};

#[derive(Args)]
pub struct ContractTestArgs {
    /// The contract: features (what to send) and targets (what must come back)
    pub contract: PathBuf,
    /// Host of the model server (or of the Seldon ingress, with --api)
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// Port (default: services.iris-model.port in xtask.toml)
    #[arg(long)]
    pub port: Option<u16>,
    /// Which endpoint to call
    #[arg(long, value_enum, default_value_t = EndpointArg::Predict)]
    pub endpoint: EndpointArg,
    /// Rows per request
    #[arg(short = 'b', long = "batch-size", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Number of requests
    #[arg(short = 'n', long = "n-requests", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub n_requests: u32,
    /// Send data.tensor instead of data.ndarray
    #[arg(long)]
    pub tensor: bool,
    /// Print each request and response
    #[arg(short = 'p', long)]
    pub print: bool,
    /// Call a SeldonDeployment through its ingress: NAMESPACE/DEPLOYMENT
    #[arg(long, value_name = "NAMESPACE/DEPLOYMENT")]
    pub api: Option<String>,
    /// Send the message form-encoded (json=...), as seldon-core-tester does
    #[arg(long)]
    pub form: bool,
    /// Seed for the random inputs, to repeat a run exactly
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seldon v1 (/predict), or the Open Inference Protocol v2
    /// (/v2/models/MODEL/infer: the rows as the model's one input, the
    /// probabilities output checked)
    #[arg(long, value_enum, default_value_t = Protocol::V1)]
    pub protocol: Protocol,
    /// The model's v2 name (its service's name); default: the service on
    /// --port in xtask.toml
    #[arg(long)]
    pub model: Option<String>,
}

/// `--protocol`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

/// `--endpoint`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointArg {
    Predict,
    SendFeedback,
}

impl From<EndpointArg> for Endpoint {
    fn from(e: EndpointArg) -> Self {
        match e {
            EndpointArg::Predict => Endpoint::Predict,
            EndpointArg::SendFeedback => Endpoint::SendFeedback,
        }
    }
}

impl ContractTestArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let contract = contract::load(&self.contract)?;
        let port = match self.port {
            Some(p) => p,
            None => iris_port(cx)?,
        };
        let endpoint = Endpoint::from(self.endpoint);
        let v2_model = match self.protocol {
            Protocol::V1 => None,
            Protocol::V2 => Some(v2_model(cx, port, &self)?),
        };
        let url = match &v2_model {
            Some(m) => format!("http://{}:{port}/v2/models/{m}", self.host),
            None => contract::endpoint_url(&self.host, port, self.api.as_deref(), endpoint)?,
        };
        let opts = Options {
            endpoint,
            v2_model,
            batch_size: self.batch_size as usize,
            requests: self.n_requests as usize,
            tensor: self.tensor,
            print: self.print,
            form: self.form,
            seed: self.seed.unwrap_or_else(rand::random),
        };
        let what = format!(
            "send {} request(s) of {} row(s) drawn from {} to POST {url} and check each answer",
            opts.requests,
            opts.batch_size,
            self.contract.display()
        );
        let passed = cx.runner.effect(what, || {
            let report = contract::run(&url, &contract, &opts)?;
            println!("{}", report.render(&url));
            Ok(report.passed())
        })?;
        Ok(if passed == Some(false) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// The model's v2 name: `--model`, else the name of the service on
/// `port`. Only predictions go over v2, and only straight to the server.
fn v2_model(cx: &Invocation, port: u16, args: &ContractTestArgs) -> Result<String> {
    if args.endpoint != EndpointArg::Predict || args.api.is_some() || args.form {
        anyhow::bail!(
            "--protocol v2 sends predictions straight to the model server: it does not go with \
             --endpoint send-feedback, --api or --form (Seldon v1 forms)"
        );
    }
    if let Some(m) = &args.model {
        return Ok(m.clone());
    }
    cx.config
        .services
        .0
        .iter()
        .find(|s| s.port == port)
        .map(|s| s.name.clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no service in the settings has port {port}, so the model's name is unknown: \
                 give --model NAME"
            )
        })
}

/// The default port: the first service running the iris model.
fn iris_port(cx: &Invocation) -> Result<u16> {
    use crate::ground::settings::{ModelName, ServiceKind};
    cx.config
        .services
        .0
        .iter()
        .find(|s| matches!(&s.kind, ServiceKind::Model(m) if m.model == ModelName::Iris))
        .map(|s| s.port)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no service runs the iris model, so there is no default port: give --port"
            )
        })
}
