//! The services' ONNX models, loaded by the model server just built
//! (`model-server inspect`, the very loader that will serve them) before
//! any image is made: a file that cannot be served, names that do not fit
//! it and a contract for another width are errors naming the key, the line
//! and the file.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::built::Built;
use super::workspace::located;
use crate::ground::context::Ctx;
use crate::ground::services::ServiceSpec;
use crate::ground::settings::{ModelName, ServiceKind};

/// What `model-server inspect` prints.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Inspection {
    /// Columns of a tabular input `[N, features]`; 0 when the model takes
    /// anything else (several inputs, images, sequences).
    pub features: usize,
    /// Columns of the Seldon v1 answer.
    pub outputs: usize,
    pub class_names: Option<Vec<String>>,
    pub feature_names: Option<Vec<String>>,
    /// Every input and output (the Open Inference Protocol's model
    /// metadata); empty for the built-in models.
    #[serde(default)]
    pub signature: Signature,
    /// The runtime that loaded it (`tract`, `onnxruntime`).
    #[serde(default)]
    pub runtime: String,
    /// Seconds one run on one row of zeros took there (a median).
    #[serde(default)]
    pub seconds_per_run: f64,
}

/// Inputs and outputs as `model-server inspect` lists them.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// One tensor: its name, datatype (`FP32`, `INT64`, …) and shape (`-1`
/// for a variable dimension).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

impl Signature {
    /// `input_ids INT64 [-1, -1], attention_mask INT64 [-1, -1]`.
    pub fn show(specs: &[TensorSpec]) -> String {
        specs
            .iter()
            .map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The iris model built into the server (scripts/train_iris.py): 4
/// features in, 3 class probabilities out.
const IRIS: Inspection = Inspection {
    features: 4,
    outputs: 3,
    class_names: None,
    feature_names: None,
    signature: Signature {
        inputs: Vec::new(),
        outputs: Vec::new(),
    },
    runtime: String::new(),
    seconds_per_run: 0.0,
};

/// Loads `file` with the model server binary `server` (choosing `output`),
/// on the runtime `env` names (`RUNTIME`, `ORT_DYLIB_PATH`; none: tract).
///
/// # Errors
/// Why the model server cannot serve it (its stderr), or unreadable output.
pub fn inspect(
    cx: &Ctx,
    server: &Path,
    file: &Path,
    output: Option<&str>,
    env: &[(String, String)],
) -> Result<Inspection> {
    let mut cmd = std::process::Command::new(server);
    cmd.arg("inspect").arg(file).args(output);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = cx.runner.probe(
        cmd,
        "loading the model as the model server will",
        std::time::Duration::from_secs(120),
    )?;
    if !out.success {
        bail!(
            "the model server cannot serve it: {}",
            out.stderr.trim().trim_start_matches("error: ")
        );
    }
    serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("model-server inspect printed {:?}", out.stdout))
}

/// Checks every ONNX model among `built` (a no-op under --dry-run, where
/// nothing was built).
///
/// # Errors
/// The first model that does not load or does not fit its settings.
pub fn check(cx: &Ctx, built: &[Built]) -> Result<()> {
    cx.runner.unless_dry_run(|| {
        for b in built {
            if let ServiceKind::Model(m) = &b.spec.settings.kind
                && m.model == ModelName::Iris
            {
                fits(&b.spec, &IRIS)?;
            }
            if let ServiceKind::Model(m) = &b.spec.settings.kind
                && m.model == ModelName::Onnx
                && let Some(file) = &m.model_path
            {
                let found = inspect(cx, &b.binary, file, m.output.as_deref(), &runtime_env(b))
                    .with_context(|| {
                        format!(
                            "services.{}.model_path = {:?} ({})",
                            b.spec.name,
                            file.display(),
                            located(&b.spec)
                        )
                    })?;
                fits(&b.spec, &found)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// What picks the runtime of `b`'s model server (RUNTIME, ORT_DYLIB_PATH).
fn runtime_env(b: &Built) -> Vec<(String, String)> {
    b.spec
        .host_env
        .iter()
        .filter(|(k, _)| k == "RUNTIME" || k == "ORT_DYLIB_PATH")
        .cloned()
        .collect()
}

/// The names and the contract the settings give fit what the model takes.
fn fits(spec: &ServiceSpec, found: &Inspection) -> Result<()> {
    let ServiceKind::Model(m) = &spec.settings.kind else {
        return Ok(());
    };
    let at = |key: &str| format!("services.{}.{key} ({})", spec.name, located(spec));
    if let Some(f) = &m.feature_names
        && f.len() != found.features
    {
        bail!(
            "{} has {} names, but the model takes {} features",
            at("feature_names"),
            f.len(),
            found.features
        );
    }
    if let Some(c) = &m.class_names
        && c.len() != found.outputs
    {
        bail!(
            "{} has {} names, but the model answers {} columns",
            at("class_names"),
            c.len(),
            found.outputs
        );
    }
    if let Some(path) = &m.contract {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read {}", at("contract"), path.display()))?;
        let contract = seldon_protocol::contract::Contract::parse(&text)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: invalid contract {}", at("contract"), path.display()))?;
        let (inputs, outputs) = widths(&contract);
        if inputs != found.features {
            bail!(
                "{} = {:?} describes {inputs} features, but the model takes {}",
                at("contract"),
                path.display(),
                found.features
            );
        }
        if outputs != 0 && outputs != found.outputs {
            bail!(
                "{} = {:?} expects {outputs} outputs, but the model answers {} columns",
                at("contract"),
                path.display(),
                found.outputs
            );
        }
    }
    Ok(())
}

/// Input and output columns a contract describes (`repeat` expanded; 0
/// outputs when it has no targets).
pub fn widths(contract: &seldon_protocol::contract::Contract) -> (usize, usize) {
    let sum = |cols: Vec<seldon_protocol::contract::Column>| cols.iter().map(|c| c.width).sum();
    (
        sum(contract.feature_columns()),
        sum(contract.target_columns()),
    )
}
