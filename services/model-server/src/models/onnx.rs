//! An ONNX graph executed in pure Rust by tract: every input the graph
//! declares, by name, with its datatype and shape (variable dimensions
//! resolved per request), and every output it computes.

use inference_core::{Data, Dim, Tensor, TensorSpec};
use tract_onnx::prelude::*;

use super::{OnnxOptions, Runtime, onnx_graph};
use crate::model::{Labels, Model, ModelError};

/// Rows per model run for a batched graph; longer batches are split.
const CHUNK_ROWS: usize = 1024;

/// The most elements a request's outputs may hold together, by default:
/// as many as the largest request may send (`Limits::for_body` of the
/// default 1 MiB `MAX_BODY_BYTES`), which keeps a reply within the memory
/// bound its README's "Memory" section derives.
pub const MAX_OUTPUT_ELEMENTS: usize = 1 << 19;

pub struct OnnxModel {
    name: String,
    inputs: Vec<TensorSpec>,
    /// Per input, per axis: the symbol of a variable dimension.
    symbols: Vec<Vec<Option<String>>>,
    outputs: Vec<TensorSpec>,
    answer: String,
    labels: Labels,
    /// Whether every input and output has one batch dimension first (the
    /// same symbol): requests may be split or joined along it.
    batched: bool,
    /// The most elements a run may give back (see `MAX_OUTPUT_ELEMENTS`).
    max_output: usize,
    /// What a run may allocate, checked before it where a typed graph
    /// knows it (always on tract; on ONNX Runtime where tract can type
    /// the graph).
    bounds: Option<super::sizes::Bounds>,
    engine: Engine,
}

/// What computes the graph.
enum Engine {
    Tract(TractPlan),
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(super::onnx_ort::Sessions),
}

/// A graph as tract planned it.
struct TractPlan {
    plan: Arc<TypedRunnableModel>,
}

impl OnnxModel {
    /// Loads a model as the common exporters write it (see `onnx_graph`),
    /// on the runtime `options.runtime` names. Names come from `options`,
    /// else the file's `class_names` / `feature_names` metadata
    /// (comma-separated, as train_iris.py writes), else the class labels
    /// of a ZipMap.
    ///
    /// # Errors
    /// What `onnx_graph::load` (tract) or `onnx_ort::load` (ONNX Runtime)
    /// refuses; feature names for a model that is not tabular or whose
    /// count does not match the input's width; class names that do not
    /// match the answer's columns; a graph that fails on zeros.
    pub fn from_bytes(name: &str, bytes: &[u8], options: OnnxOptions) -> anyhow::Result<Self> {
        let (declared, outputs, batched, bounds, engine) = match &options.runtime {
            Runtime::Tract => {
                let graph = onnx_graph::load(bytes, options.output.as_deref())?;
                let bounds = super::sizes::Bounds::of(&graph.plan, &graph.outputs)?;
                let engine = Engine::Tract(TractPlan {
                    plan: graph.plan.into_runnable()?,
                });
                (
                    graph.declared,
                    graph.outputs,
                    graph.batched,
                    Some(bounds),
                    engine,
                )
            }
            #[cfg(feature = "onnxruntime")]
            Runtime::OnnxRuntime(settings) => {
                let declared = onnx_graph::read(bytes, options.output.as_deref())?;
                let mut loaded = super::onnx_ort::load(&declared, settings)?;
                let bounds = caught_quietly(|| {
                    let typed = onnx_graph::typed(&declared)?;
                    // ONNX Runtime knows no shape for an output whose
                    // declaration has none (a ZipMap's input, once the
                    // ZipMap is cut); tract infers it.
                    let shapes = onnx_graph::output_shapes(&typed)?;
                    for (spec, shape) in loaded.outputs.iter_mut().zip(shapes) {
                        if spec.shape.is_empty() && !shape.is_empty() {
                            spec.shape = shape;
                        }
                    }
                    super::sizes::Bounds::of(&typed, &loaded.outputs)
                });
                let bounds = match bounds {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(
                            model = name,
                            why = format!("{e:#}"),
                            "tract cannot type the graph, so what a run allocates is bounded \
                             only after it (its outputs)"
                        );
                        None
                    }
                };
                (
                    declared,
                    loaded.outputs,
                    loaded.batched,
                    bounds,
                    Engine::OnnxRuntime(loaded.sessions),
                )
            }
            #[cfg(not(feature = "onnxruntime"))]
            Runtime::OnnxRuntime(_) => anyhow::bail!(
                "RUNTIME=onnxruntime: this model server was built without ONNX Runtime (the \
                 `onnxruntime` feature); build it with `cargo build -p model-server --features \
                 onnxruntime`, or serve with RUNTIME=tract"
            ),
        };
        let prop = |key: &str| {
            declared
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        };
        let class_names = options
            .class_names
            .or_else(|| prop("class_names"))
            .or(declared.zipmap_labels);
        let feature_names = options.feature_names.or_else(|| prop("feature_names"));
        let shown: Vec<String> = declared
            .inputs
            .iter()
            .zip(&declared.symbols)
            .map(|(s, y)| onnx_graph::shown(s, y))
            .collect();
        tracing::info!(
            model = name,
            runtime = options.runtime.as_str(),
            inputs = shown.join(", "),
            v1_output = %declared.answer,
            "ONNX graph loaded"
        );
        if let Some(f) = &feature_names {
            let width = match declared.inputs.as_slice() {
                [one] => match one.shape.as_slice() {
                    [_, Dim::Fixed(w)] => Some(*w),
                    _ => None,
                },
                _ => None,
            };
            match width {
                Some(w) if w == f.len() => {}
                Some(w) => anyhow::bail!(
                    "{} feature names ({}) for a model whose input has {w} columns",
                    f.len(),
                    f.join(", ")
                ),
                None => anyhow::bail!(
                    "feature names ({}) are for a model with one [N, features] input; this \
                     one takes {}",
                    f.join(", "),
                    shown.join(", ")
                ),
            }
        }
        let model = Self {
            name: name.to_string(),
            inputs: declared.inputs,
            symbols: declared.symbols,
            outputs,
            answer: declared.answer,
            labels: Labels {
                class_names,
                feature_names,
            },
            batched,
            max_output: options.max_output_elements.unwrap_or(MAX_OUTPUT_ELEMENTS),
            bounds,
            engine,
        };
        // It must run: on zeros, one for every variable dimension (what
        // `inspect` runs), at start-up as after a reload of the file; a
        // graph a runtime plans but cannot compute is refused here, not
        // answered with a 500 on every request.
        let outputs = model
            .infer(model.probe())
            .map_err(|e| anyhow::anyhow!("the model fails on an input of zeros: {e}"))?;
        // Class names name the answer's columns: as many as it has (a new
        // file may answer another width).
        if let Some(c) = &model.labels.class_names
            && let Some(answer) = outputs.iter().find(|t| t.name() == model.answer)
        {
            let cols: usize = answer.shape().iter().skip(1).product();
            if cols != c.len() {
                anyhow::bail!(
                    "{} class names ({}) for a model that answers {cols} column(s) per row",
                    c.len(),
                    c.join(", "),
                );
            }
        }
        Ok(model)
    }

    /// A run on tract, a long batch in pieces.
    fn infer_tract(
        &self,
        tract: &TractPlan,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>, ModelError> {
        let rows = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        if !self.batched || rows <= CHUNK_ROWS {
            let tensors = inputs
                .into_iter()
                .map(to_tract)
                .collect::<Result<TVec<_>, _>>()?;
            return self.run(tract, tensors);
        }
        // A long batch runs in pieces of CHUNK_ROWS: the model's
        // intermediate tensors stay small whatever the request's batch
        // size, which keeps the heap from fragmenting under a stream of
        // large requests.
        let whole = inputs
            .into_iter()
            .map(to_tract)
            .collect::<Result<Vec<_>, _>>()?;
        let mut pieces: Vec<Vec<Tensor>> = Vec::new();
        for start in (0..rows).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS).min(rows);
            let slices = whole
                .iter()
                .map(|t| t.slice(0, start, end).map(TValue::from))
                .collect::<TractResult<TVec<_>>>()
                .map_err(|e| ModelError::Internal(format!("{e:#}")))?;
            pieces.push(self.run(tract, slices)?);
        }
        concat_rows(pieces)
    }

    /// Variable dimensions that share a symbol must agree across inputs
    /// (tract would fail the run with less to say).
    fn check_symbols(&self, inputs: &[Tensor]) -> Result<(), ModelError> {
        let mut seen: Vec<(&str, usize, &str)> = Vec::new();
        for (t, symbols) in inputs.iter().zip(&self.symbols) {
            for (n, s) in t.shape().iter().zip(symbols) {
                let Some(s) = s else { continue };
                match seen.iter().find(|(name, _, _)| name == s) {
                    Some((_, m, other)) if m != n => {
                        return Err(ModelError::BadInput(format!(
                            "inputs {other:?} and {:?} must agree on their dimension {s:?}: \
                             {m} and {n}",
                            t.name()
                        )));
                    }
                    Some(_) => {}
                    None => seen.push((s, *n, t.name())),
                }
            }
        }
        Ok(())
    }

    /// One run of the plan. tract panics on some inputs it cannot compute
    /// (a token id past an embedding's end, in Gather): the panic is
    /// caught here and answered as bad input, so one request cannot take
    /// the server down (the profiles unwind; see Cargo.toml).
    fn run(&self, tract: &TractPlan, inputs: TVec<TValue>) -> Result<Vec<Tensor>, ModelError> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tract.plan.run(inputs)));
        let out = match ran {
            Ok(out) => out.map_err(|e| ModelError::Internal(format!("{e:#}")))?,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no reason given");
                return Err(ModelError::BadInput(format!(
                    "the {} model cannot compute this input (is an index past the end of a \
                     table, e.g. a token id outside the vocabulary?): the ONNX runtime \
                     stopped with: {why}",
                    self.name
                )));
            }
        };
        out.iter()
            .zip(&self.outputs)
            .map(|(t, spec)| from_tract(&spec.name, t))
            .collect()
    }
}

impl Model for OnnxModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn platform(&self) -> &str {
        match self.engine {
            Engine::Tract(_) => "onnx (tract)",
            #[cfg(feature = "onnxruntime")]
            Engine::OnnxRuntime(_) => "onnx (onnxruntime)",
        }
    }

    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        self.check_symbols(&inputs)?;
        if let Some(bounds) = &self.bounds {
            bounds.check(&self.name, &inputs, &self.symbols, self.max_output)?;
        }
        match &self.engine {
            Engine::Tract(tract) => self.infer_tract(tract, inputs),
            #[cfg(feature = "onnxruntime")]
            Engine::OnnxRuntime(sessions) => {
                let outputs = sessions.run(&self.name, inputs)?;
                // ONNX Runtime sizes its outputs as it runs: the bound is
                // kept on what it gives back (see its README's "Memory").
                let total: usize = outputs.iter().map(|t| t.data().len()).sum();
                if total > self.max_output {
                    return Err(ModelError::BadInput(format!(
                        "the {} model computed outputs of {total} elements for this input, more \
                         than the {} elements a request may (MAX_BODY_BYTES sets the limits); \
                         send smaller inputs",
                        self.name, self.max_output
                    )));
                }
                Ok(outputs)
            }
        }
    }

    fn probe(&self) -> Vec<Tensor> {
        // Zeros, one for every variable dimension.
        self.inputs
            .iter()
            .filter_map(|s| {
                let shape: Vec<usize> = s
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => *n,
                        Dim::Any => 1,
                    })
                    .collect();
                let n = inference_core::element_count(&shape)?;
                Tensor::new(s.name.clone(), shape, zeros(s.datatype, n)).ok()
            })
            .collect()
    }

    fn v1_output(&self) -> Option<&str> {
        Some(&self.answer)
    }

    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn batched(&self) -> bool {
        self.batched
    }
}

/// `work`, a panic in it made an error (tract panics on some graphs it
/// types; for ONNX Runtime's bounds that only means there are none).
#[cfg(feature = "onnxruntime")]
fn caught_quietly<T>(work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("tract stopped while typing the graph")))
}

/// `n` zeros of `datatype` (empty byte strings for BYTES).
fn zeros(datatype: inference_core::Datatype, n: usize) -> Data {
    use inference_core::Datatype as D;
    match datatype {
        D::Bool => Data::Bool(vec![false; n]),
        D::Uint8 => Data::Uint8(vec![0; n]),
        D::Uint16 => Data::Uint16(vec![0; n]),
        D::Uint32 => Data::Uint32(vec![0; n]),
        D::Uint64 => Data::Uint64(vec![0; n]),
        D::Int8 => Data::Int8(vec![0; n]),
        D::Int16 => Data::Int16(vec![0; n]),
        D::Int32 => Data::Int32(vec![0; n]),
        D::Int64 => Data::Int64(vec![0; n]),
        D::Fp16 => Data::Fp16(vec![0; n]),
        D::Fp32 => Data::Fp32(vec![0.0; n]),
        D::Fp64 => Data::Fp64(vec![0.0; n]),
        D::Bytes => Data::Bytes(vec![Vec::new(); n]),
    }
}

/// A tensor as tract holds it (its elements moved, not copied).
fn to_tract(t: Tensor) -> Result<TValue, ModelError> {
    let (name, shape, data) = t.into_parts();
    fn array<T: Datum>(shape: &[usize], v: Vec<T>) -> TractResult<tract_onnx::prelude::Tensor> {
        Ok(tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into())
    }
    let tensor = match data {
        Data::Bool(v) => array(&shape, v),
        Data::Uint8(v) => array(&shape, v),
        Data::Uint16(v) => array(&shape, v),
        Data::Uint32(v) => array(&shape, v),
        Data::Uint64(v) => array(&shape, v),
        Data::Int8(v) => array(&shape, v),
        Data::Int16(v) => array(&shape, v),
        Data::Int32(v) => array(&shape, v),
        Data::Int64(v) => array(&shape, v),
        Data::Fp16(v) => array(&shape, v.into_iter().map(f16::from_bits).collect()),
        Data::Fp32(v) => array(&shape, v),
        Data::Fp64(v) => array(&shape, v),
        Data::Bytes(_) | Data::Opaque(_) => {
            return Err(ModelError::BadInput(format!(
                "input {name:?}: the ONNX runtime computes on numbers and booleans, not BYTES"
            )));
        }
    };
    tensor
        .map(TValue::from)
        .map_err(|e| ModelError::Internal(format!("input {name:?}: {e:#}")))
}

/// tract's output `t` as the output `name`.
fn from_tract(name: &str, t: &tract_onnx::prelude::Tensor) -> Result<Tensor, ModelError> {
    let fail = |e: anyhow::Error| ModelError::Internal(format!("output {name:?}: {e:#}"));
    // tract plans some int64 outputs as its symbolic integers.
    let t = if t.datum_type() == DatumType::TDim {
        std::borrow::Cow::Owned(t.cast_to::<i64>().map_err(fail)?.into_owned())
    } else {
        std::borrow::Cow::Borrowed(t)
    };
    let view = t.try_as_plain_ram().map_err(fail)?;
    fn copy<T: Datum + Copy>(v: &PlainView<'_>) -> TractResult<Vec<T>> {
        Ok(v.as_slice::<T>()?.to_vec())
    }
    let data = match t.datum_type() {
        DatumType::Bool => Data::Bool(copy(&view).map_err(fail)?),
        DatumType::U8 => Data::Uint8(copy(&view).map_err(fail)?),
        DatumType::U16 => Data::Uint16(copy(&view).map_err(fail)?),
        DatumType::U32 => Data::Uint32(copy(&view).map_err(fail)?),
        DatumType::U64 => Data::Uint64(copy(&view).map_err(fail)?),
        DatumType::I8 => Data::Int8(copy(&view).map_err(fail)?),
        DatumType::I16 => Data::Int16(copy(&view).map_err(fail)?),
        DatumType::I32 => Data::Int32(copy(&view).map_err(fail)?),
        DatumType::I64 => Data::Int64(copy(&view).map_err(fail)?),
        DatumType::F16 => Data::Fp16(
            copy::<f16>(&view)
                .map_err(fail)?
                .into_iter()
                .map(f16::to_bits)
                .collect(),
        ),
        DatumType::F32 => Data::Fp32(copy(&view).map_err(fail)?),
        DatumType::F64 => Data::Fp64(copy(&view).map_err(fail)?),
        other => {
            return Err(ModelError::Internal(format!(
                "output {name:?} holds {other:?}, which no protocol carries"
            )));
        }
    };
    Tensor::new(name, t.shape().to_vec(), data).map_err(|e| ModelError::Internal(e.to_string()))
}

/// The outputs of runs on consecutive pieces of a batch, joined along
/// their first dimension.
fn concat_rows(pieces: Vec<Vec<Tensor>>) -> Result<Vec<Tensor>, ModelError> {
    let mut pieces = pieces.into_iter();
    let Some(first) = pieces.next() else {
        return Ok(Vec::new());
    };
    let mut joined: Vec<(String, Vec<usize>, Data)> =
        first.into_iter().map(Tensor::into_parts).collect();
    for piece in pieces {
        for ((_, shape, data), t) in joined.iter_mut().zip(piece) {
            let (_, more_shape, more) = t.into_parts();
            if let (Some(rows), Some(more_rows)) = (shape.first_mut(), more_shape.first()) {
                *rows += more_rows;
            }
            data.extend(more).map_err(ModelError::Internal)?;
        }
    }
    joined
        .into_iter()
        .map(|(name, shape, data)| {
            Tensor::new(name, shape, data).map_err(|e| ModelError::Internal(e.to_string()))
        })
        .collect()
}
