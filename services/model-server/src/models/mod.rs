//! The models that ship, and how `MODEL` picks one.

mod identity;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "onnx")]
mod onnx_graph;
#[cfg(feature = "onnxruntime")]
mod onnx_ort;
#[cfg(feature = "onnx")]
mod scaler;
#[cfg(feature = "onnx")]
mod sizes;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

pub use identity::Identity;
#[cfg(feature = "onnx")]
pub use onnx::OnnxModel;
#[cfg(feature = "onnxruntime")]
pub use onnx_ort::OrtSettings;

use crate::model::Model;

/// The iris classifier (services/model-server/scripts/train_iris.py), built
/// into the binary so that `MODEL=iris` needs no file.
#[cfg(feature = "onnx")]
const IRIS_ONNX: &[u8] = include_bytes!("../../models/iris.onnx");
#[cfg(not(feature = "onnx"))]
const IRIS_ONNX: &[u8] = &[];

/// What a deployment says about an ONNX model, beyond the file.
#[derive(Clone, Debug, Default)]
pub struct OnnxOptions {
    /// Output column names; win over the file's.
    pub class_names: Option<Vec<String>>,
    /// Input column names; win over the file's.
    pub feature_names: Option<Vec<String>>,
    /// The graph output to answer with (default: the probabilities, else
    /// the first floating-point output).
    pub output: Option<String>,
    /// The most elements a request's outputs may hold (default:
    /// `onnx::MAX_OUTPUT_ELEMENTS`).
    pub max_output_elements: Option<usize>,
    /// What computes the graph.
    pub runtime: Runtime,
}

/// The ONNX runtime that computes a graph (`RUNTIME`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Runtime {
    /// tract, in pure Rust, built in (the default).
    #[default]
    Tract,
    /// ONNX Runtime, its library loaded at start-up.
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(OrtSettings),
    /// ONNX Runtime asked of a server built without it (refused at load).
    #[cfg(not(feature = "onnxruntime"))]
    OnnxRuntime(()),
}

impl Runtime {
    /// `tract` or `onnxruntime`, as `RUNTIME` and xtask.toml name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::OnnxRuntime(_) => "onnxruntime",
        }
    }

    /// `RUNTIME` = `tract` (default) | `onnxruntime`; for ONNX Runtime,
    /// `ORT_DYLIB_PATH` (its library), `INTRA_OP_THREADS` and
    /// `MODEL_INSTANCES` (runs at once, as `compute::ComputeSettings`
    /// reads it: one session each).
    ///
    /// # Errors
    /// An unknown runtime; a count that is not a positive number or is
    /// above `compute::MAX_INSTANCES` (checked whatever the runtime; tract
    /// ignores `INTRA_OP_THREADS`).
    pub fn from_env(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let count = |key: &str| -> Result<Option<usize>> {
            match service_kit::env::parse::<usize>(lookup, key, "a count")? {
                Some(0) => bail!("{key}=0: give a count of at least 1"),
                Some(n) if n > crate::compute::MAX_INSTANCES => {
                    bail!("{key}={n}: at most {}", crate::compute::MAX_INSTANCES)
                }
                n => Ok(n),
            }
        };
        let intra_op_threads = count("INTRA_OP_THREADS")?;
        let instances = crate::compute::ComputeSettings::from_env(lookup)?.instances;
        let kind = lookup("RUNTIME").unwrap_or_default();
        match kind.trim() {
            "" | "tract" => {
                // Checked above all the same: a typo is refused whatever runs.
                let _ = (intra_op_threads, instances);
                Ok(Self::Tract)
            }
            #[cfg(feature = "onnxruntime")]
            "onnxruntime" => {
                let library = lookup("ORT_DYLIB_PATH")
                    .filter(|p| !p.trim().is_empty())
                    .map(PathBuf::from);
                Ok(Self::OnnxRuntime(OrtSettings {
                    library,
                    intra_op_threads: intra_op_threads.unwrap_or(1),
                    instances,
                }))
            }
            #[cfg(not(feature = "onnxruntime"))]
            "onnxruntime" => Ok(Self::OnnxRuntime(())),
            other => bail!("unknown RUNTIME={other:?}: expected tract or onnxruntime"),
        }
    }
}

/// Loads an ONNX graph (`bytes`, named `name`) as `OnnxModel::from_bytes`
/// does.
///
/// # Errors
/// What `OnnxModel::from_bytes` refuses; in a server built without the
/// `onnx` feature (tract), always, saying how to build one with it.
#[cfg(feature = "onnx")]
pub fn load_onnx(name: &str, bytes: &[u8], options: OnnxOptions) -> Result<Box<dyn Model>> {
    Ok(Box::new(caught(|| {
        OnnxModel::from_bytes(name, bytes, options)
    })?))
}

/// `load` with a panic in tract (it panics on some graphs while folding
/// their constants: a Gather past a constant table's end) made an error,
/// so that a bad file is refused, at start-up or on reload, not a crash.
#[cfg(feature = "onnx")]
fn caught<T>(load: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        Err(anyhow::anyhow!(
            "the ONNX runtime cannot load the graph: it stopped with: {why}"
        ))
    })
}

/// See the `onnx` build: this server has no ONNX runtime.
///
/// # Errors
/// Always: the binary was built without the `onnx` feature.
#[cfg(not(feature = "onnx"))]
pub fn load_onnx(name: &str, _bytes: &[u8], _options: OnnxOptions) -> Result<Box<dyn Model>> {
    Err(no_runtime(name))
}

/// Why a server without the `onnx` feature cannot load `name`.
#[cfg(not(feature = "onnx"))]
fn no_runtime(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot load the ONNX model {name:?}: this model server was built without its ONNX \
         runtime (the `onnx` feature, on by default; `cargo xtask` leaves it out when no service \
         uses model = \"iris\" or \"onnx\"). Build it with `cargo build -p model-server --features onnx`"
    )
}

/// `MODEL` = `identity` (default) | `iris` | `onnx` (needs `MODEL_PATH`).
/// `CLASS_NAMES` / `FEATURE_NAMES` (comma-separated) override the names an
/// ONNX file carries in its metadata; `OUTPUT` names the graph output to
/// answer with.
/// `max_output` bounds what an ONNX model's outputs may hold per request
/// (the element limit of `MAX_BODY_BYTES`).
pub fn from_env(
    lookup: impl Fn(&str) -> Option<String>,
    max_output: usize,
) -> Result<Box<dyn Model>> {
    let options = || onnx_options(&lookup, max_output);
    let kind = lookup("MODEL").unwrap_or_else(|| "identity".into());
    match kind.trim() {
        "identity" | "" => Ok(Box::new(Identity::default())),
        "iris" => {
            load_onnx("iris", IRIS_ONNX, options()?).context("loading the built-in iris model")
        }
        "onnx" => {
            let path = PathBuf::from(
                lookup("MODEL_PATH")
                    .context("MODEL=onnx needs MODEL_PATH, the path of an .onnx file")?,
            );
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read MODEL_PATH={}", path.display()))?;
            let name = path
                .file_stem()
                .map_or("onnx".into(), |s| s.to_string_lossy().into_owned());
            load_onnx(&name, &bytes, options()?)
                .with_context(|| format!("loading ONNX model {}", path.display()))
        }
        other => bail!("unknown MODEL={other:?}: expected identity, iris or onnx"),
    }
}

/// What an ONNX file takes and gives, as the server loads it.
#[derive(serde::Serialize, Debug, PartialEq)]
pub struct Inspection {
    /// Columns of a tabular input `[N, features]`; 0 when the model takes
    /// anything else (several inputs, images, sequences).
    pub features: usize,
    /// Columns of the Seldon v1 answer for one input of zeros.
    pub outputs: usize,
    /// Output column names (the file's metadata or its ZipMap's labels).
    pub class_names: Option<Vec<String>>,
    /// Input column names (the file's metadata).
    pub feature_names: Option<Vec<String>>,
    /// Every input and output, as the Open Inference Protocol's model
    /// metadata lists them.
    pub signature: Signature,
    /// The runtime that loaded it (`tract`, `onnxruntime`).
    pub runtime: String,
    /// Seconds one run of the probe (an input of zeros, one row) takes on
    /// that runtime: the median of up to 200 runs within about a second.
    pub seconds_per_run: f64,
}

/// Inputs and outputs, each `{"name", "datatype", "shape"}` with `-1` for
/// a variable dimension (the protocol's `metadata_tensor`).
#[derive(serde::Serialize, Debug, PartialEq)]
pub struct Signature {
    pub inputs: Vec<SpecJson>,
    pub outputs: Vec<SpecJson>,
}

/// One tensor's declaration, as the protocol writes it.
#[derive(serde::Serialize, Debug, PartialEq)]
pub struct SpecJson {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

impl From<&inference_core::TensorSpec> for SpecJson {
    fn from(s: &inference_core::TensorSpec) -> Self {
        Self {
            name: s.name.clone(),
            datatype: s.datatype.as_str().to_string(),
            shape: s.shape_i64(),
        }
    }
}

/// Loads `path` as `MODEL=onnx` would, on `runtime`, runs it on zeros
/// (one for every variable dimension) and times that run.
///
/// # Errors
/// What loading refuses (see `OnnxModel::from_bytes`), or a model that
/// fails on zeros.
#[cfg(feature = "onnx")]
pub fn inspect(
    path: &std::path::Path,
    output: Option<&str>,
    runtime: Runtime,
) -> Result<Inspection> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let runtime_name = runtime.as_str().to_string();
    let options = OnnxOptions {
        output: output.map(String::from),
        runtime,
        ..OnnxOptions::default()
    };
    let model = caught(|| OnnxModel::from_bytes("inspect", &bytes, options))?;
    let features = match model.inputs() {
        [one] => match one.shape[..] {
            [_, inference_core::Dim::Fixed(w)] => w,
            _ => 0,
        },
        _ => 0,
    };
    let outputs = model
        .infer(model.probe())
        .map_err(|e| anyhow::anyhow!("the model fails on an input of zeros: {e}"))?;
    let answer = outputs
        .iter()
        .find(|t| Some(t.name()) == model.v1_output())
        .context("the model computes no answer for Seldon v1")?;
    let labels = model.labels();
    let seconds_per_run = time_runs(|| {
        let _ = model.infer(model.probe());
    });
    Ok(Inspection {
        features,
        outputs: answer.shape().iter().skip(1).product(),
        class_names: labels.class_names.clone(),
        feature_names: labels.feature_names.clone(),
        signature: Signature {
            inputs: model.inputs().iter().map(SpecJson::from).collect(),
            outputs: model.outputs().iter().map(SpecJson::from).collect(),
        },
        runtime: runtime_name,
        seconds_per_run,
    })
}

/// The median seconds of `run`, over up to 200 runs within about a second
/// (at least 5).
#[cfg(feature = "onnx")]
fn time_runs(mut run: impl FnMut()) -> f64 {
    let budget = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let mut times = Vec::new();
    while times.len() < 200 && (times.len() < 5 || started.elapsed() < budget) {
        let t = std::time::Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// See the `onnx` build: without an ONNX runtime nothing can be inspected.
///
/// # Errors
/// Always, as `load_onnx` does.
#[cfg(not(feature = "onnx"))]
pub fn inspect(
    path: &std::path::Path,
    output: Option<&str>,
    runtime: Runtime,
) -> Result<Inspection> {
    let _ = (output, runtime);
    Err(no_runtime(&path.display().to_string()))
}

/// What `MODEL=onnx` and `MODEL=iris` are loaded with: `CLASS_NAMES` /
/// `FEATURE_NAMES` (comma-separated), `OUTPUT`, the runtime
/// (`Runtime::from_env`), and `max_output`.
///
/// # Errors
/// What `Runtime::from_env` refuses.
pub fn onnx_options(
    lookup: &impl Fn(&str) -> Option<String>,
    max_output: usize,
) -> Result<OnnxOptions> {
    let names = |key: &str| {
        lookup(key).filter(|v| !v.trim().is_empty()).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
    };
    Ok(OnnxOptions {
        class_names: names("CLASS_NAMES"),
        feature_names: names("FEATURE_NAMES"),
        output: lookup("OUTPUT").filter(|v| !v.trim().is_empty()),
        max_output_elements: Some(max_output),
        runtime: Runtime::from_env(lookup)?,
    })
}

/// The file to watch for `MODEL=onnx`, and how to load it again.
///
/// # Errors
/// What `onnx_options` refuses.
pub fn reload_source(
    lookup: impl Fn(&str) -> Option<String>,
    max_output: usize,
) -> Result<Option<(PathBuf, OnnxOptions)>> {
    if lookup("MODEL").is_none_or(|m| m.trim() != "onnx") {
        return Ok(None);
    }
    let Some(path) = lookup("MODEL_PATH") else {
        return Ok(None);
    };
    Ok(Some((
        PathBuf::from(path),
        onnx_options(&lookup, max_output)?,
    )))
}

/// What identifies a file's version: modification time, length, inode (a
/// rename over it, as `kubectl cp`, ConfigMap updates and editors do,
/// changes the inode).
fn version(path: &std::path::Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Watches `path` every `every` on a thread of its own, and when it changes
/// loads it and puts the new model in `slot`. A file that does not load
/// (half written, corrupt, another width of input is fine) keeps the old
/// model and logs why; the next change is tried again.
pub fn watch(
    path: PathBuf,
    options: OnnxOptions,
    slot: std::sync::Arc<crate::api::ModelSlot>,
    every: std::time::Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("model-reload".into())
        .spawn(move || {
            let mut seen = version(&path);
            loop {
                std::thread::sleep(every);
                let now = version(&path);
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                let name = path
                    .file_stem()
                    .map_or("onnx".into(), |s| s.to_string_lossy().into_owned());
                let loaded = std::fs::read(&path)
                    .map_err(anyhow::Error::from)
                    .and_then(|bytes| load_onnx(&name, &bytes, options.clone()));
                match loaded {
                    Ok(model) => {
                        slot.replace(Arc::from(model));
                        tracing::info!(path = %path.display(), "model reloaded");
                    }
                    Err(e) => tracing::warn!(
                        path = %path.display(),
                        error = format!("{e:#}"),
                        "the changed model file does not load; still serving the previous model"
                    ),
                }
            }
        })
}
