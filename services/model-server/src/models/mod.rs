//! The models that ship, and how `MODEL` picks one.

mod identity;
mod onnx;
mod onnx_graph;
mod scaler;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

pub use identity::Identity;
pub use onnx::{OnnxModel, OnnxOptions};

use crate::model::Model;

/// The iris classifier (services/model-server/scripts/train_iris.py), built
/// into the binary so that `MODEL=iris` needs no file.
const IRIS_ONNX: &[u8] = include_bytes!("../../models/iris.onnx");

/// `MODEL` = `identity` (default) | `iris` | `onnx` (needs `MODEL_PATH`).
/// `CLASS_NAMES` / `FEATURE_NAMES` (comma-separated) override the names an
/// ONNX file carries in its metadata; `OUTPUT` names the graph output to
/// answer with.
pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Box<dyn Model>> {
    let names = |key: &str| {
        lookup(key).filter(|v| !v.trim().is_empty()).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
    };
    let options = || OnnxOptions {
        class_names: names("CLASS_NAMES"),
        feature_names: names("FEATURE_NAMES"),
        output: lookup("OUTPUT").filter(|v| !v.trim().is_empty()),
    };
    let kind = lookup("MODEL").unwrap_or_else(|| "identity".into());
    match kind.trim() {
        "identity" | "" => Ok(Box::new(Identity)),
        "iris" => Ok(Box::new(
            OnnxModel::from_bytes("iris", IRIS_ONNX, options())
                .context("loading the built-in iris model")?,
        )),
        "onnx" => {
            let path = PathBuf::from(lookup("MODEL_PATH").context(
                "MODEL=onnx needs MODEL_PATH, the path of an .onnx file (input [N, features] float32)",
            )?);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read MODEL_PATH={}", path.display()))?;
            let name = path
                .file_stem()
                .map_or("onnx".into(), |s| s.to_string_lossy().into_owned());
            Ok(Box::new(
                OnnxModel::from_bytes(&name, &bytes, options())
                    .with_context(|| format!("loading ONNX model {}", path.display()))?,
            ))
        }
        other => bail!("unknown MODEL={other:?}: expected identity, iris or onnx"),
    }
}
