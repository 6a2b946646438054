//! An ONNX graph executed in pure Rust by tract: every input the graph
//! declares, by name, with its datatype and shape (variable dimensions
//! resolved per request), and every output it computes.

use inference_core::{Data, Dim, Tensor, TensorSpec};
use tract_onnx::prelude::*;

use super::{OnnxOptions, onnx_graph};
use crate::model::{Labels, Model, ModelError};

/// Rows per model run for a batched graph; longer batches are split.
const CHUNK_ROWS: usize = 1024;

/// The most elements a request's outputs may hold together, by default:
/// as many as the largest request may send (`Limits::for_body` of the
/// default 1 MiB `MAX_BODY_BYTES`), which keeps a reply within the memory
/// bound the README's "Memory" section derives.
pub const MAX_OUTPUT_ELEMENTS: usize = 1 << 19;

/// How many times the output limit any one tensor computed on the way may
/// hold (a CNN's feature maps outgrow its input several times over).
const INTERMEDIATE_FACTOR: usize = 8;

pub struct OnnxModel {
    name: String,
    plan: Arc<TypedRunnableModel>,
    /// Each output's shape as the plan knows it, in terms of the inputs'
    /// symbols: evaluated per request to bound what a run may allocate.
    output_shapes: Vec<TVec<TDim>>,
    /// Likewise every tensor the run computes whose shape varies.
    intermediate_shapes: Vec<(String, TVec<TDim>)>,
    /// The most elements a run may give back (see `MAX_OUTPUT_ELEMENTS`).
    max_output: usize,
    inputs: Vec<TensorSpec>,
    /// Per input, per axis: the symbol of a variable dimension.
    symbols: Vec<Vec<Option<String>>>,
    outputs: Vec<TensorSpec>,
    answer: String,
    batched: bool,
    labels: Labels,
}

impl OnnxModel {
    /// Loads a model as the common exporters write it (see `onnx_graph`).
    /// Names come from `options`, else the file's `class_names` /
    /// `feature_names` metadata (comma-separated, as train_iris.py writes),
    /// else the class labels of a ZipMap.
    ///
    /// # Errors
    /// What `onnx_graph::load` refuses; feature names for a model that is
    /// not tabular or whose count does not match the input's width; class
    /// names that do not match the answer's columns.
    pub fn from_bytes(name: &str, bytes: &[u8], options: OnnxOptions) -> anyhow::Result<Self> {
        let graph = onnx_graph::load(bytes, options.output.as_deref())?;
        let prop = |key: &str| {
            graph
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        };
        let class_names = options
            .class_names
            .or_else(|| prop("class_names"))
            .or(graph.zipmap_labels);
        let feature_names = options.feature_names.or_else(|| prop("feature_names"));
        let shown: Vec<String> = graph
            .inputs
            .iter()
            .map(|s| format!("{} {} {:?}", s.name, s.datatype, s.shape_i64()))
            .collect();
        tracing::info!(
            model = name,
            inputs = shown.join(", "),
            v1_output = %graph.answer,
            "ONNX graph planned"
        );
        if let Some(f) = &feature_names {
            let width = match graph.inputs.as_slice() {
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
        let output_shapes = (0..graph.outputs.len())
            .map(|i| graph.plan.output_fact(i).map(|f| f.shape.to_tvec()))
            .collect::<TractResult<Vec<_>>>()?;
        let model = Self {
            name: name.to_string(),
            output_shapes,
            intermediate_shapes: super::sizes::varying(&graph.plan),
            max_output: options.max_output_elements.unwrap_or(MAX_OUTPUT_ELEMENTS),
            plan: graph.plan.into_runnable()?,
            inputs: graph.inputs,
            symbols: graph.symbols,
            outputs: graph.outputs,
            answer: graph.answer,
            batched: graph.batched,
            labels: Labels {
                class_names,
                feature_names,
            },
        };
        // It must run: on zeros, one for every variable dimension (what
        // `inspect` runs), at start-up as after a reload of the file; a
        // graph tract plans but cannot compute is refused here, not
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

    /// What the run will allocate for `inputs`, where the plan knows it
    /// from their shapes: outputs of more than `max_output` elements in
    /// all, or any tensor of more than `INTERMEDIATE_FACTOR` times that,
    /// are refused before the run allocates them (a [10000, 0] by
    /// [0, 10000] product is 10^8 elements from a request of a few bytes).
    fn check_sizes(&self, inputs: &[Tensor]) -> Result<(), ModelError> {
        let mut values: Vec<(Symbol, f64)> = Vec::new();
        for (t, symbols) in inputs.iter().zip(&self.symbols) {
            for (n, s) in t.shape().iter().zip(symbols) {
                if let Some(s) = s {
                    values.push((self.plan.model().symbols.sym(s), *n as f64));
                }
            }
        }
        let shown = || {
            inputs
                .iter()
                .map(|t| format!("{} {:?}", t.name(), t.shape()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let refuse = |what: String, limit: usize| {
            ModelError::BadInput(format!(
                "for inputs of shapes {}, the {} model would compute {what}, more than the \
                 {limit} elements a request may (MAX_BODY_BYTES sets the limits); send smaller \
                 inputs",
                shown(),
                self.name
            ))
        };
        let mut total = 0.0;
        for (shape, spec) in self.output_shapes.iter().zip(&self.outputs) {
            total += super::sizes::elements(shape, &values).unwrap_or(0.0);
            if total > self.max_output as f64 {
                return Err(refuse(
                    format!("outputs of {total:.0} elements (up to {:?})", spec.name),
                    self.max_output,
                ));
            }
        }
        let limit = self.max_output.saturating_mul(INTERMEDIATE_FACTOR);
        for (node, shape) in &self.intermediate_shapes {
            let n = super::sizes::elements(shape, &values).unwrap_or(0.0);
            if n > limit as f64 {
                return Err(refuse(
                    format!("a tensor of {n:.0} elements in {node:?}"),
                    limit,
                ));
            }
        }
        Ok(())
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
    fn run(&self, inputs: TVec<TValue>) -> Result<Vec<Tensor>, ModelError> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.plan.run(inputs)));
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
        "onnx (tract)"
    }

    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        self.check_symbols(&inputs)?;
        self.check_sizes(&inputs)?;
        let rows = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        if !self.batched || rows <= CHUNK_ROWS {
            let tensors = inputs
                .into_iter()
                .map(to_tract)
                .collect::<Result<TVec<_>, _>>()?;
            return self.run(tensors);
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
            pieces.push(self.run(slices)?);
        }
        concat_rows(pieces)
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
            append(data, more)?;
        }
    }
    joined
        .into_iter()
        .map(|(name, shape, data)| {
            Tensor::new(name, shape, data).map_err(|e| ModelError::Internal(e.to_string()))
        })
        .collect()
}

fn append(to: &mut Data, more: Data) -> Result<(), ModelError> {
    match (to, more) {
        (Data::Bool(a), Data::Bool(b)) => a.extend(b),
        (Data::Uint8(a), Data::Uint8(b)) => a.extend(b),
        (Data::Uint16(a), Data::Uint16(b)) | (Data::Fp16(a), Data::Fp16(b)) => a.extend(b),
        (Data::Uint32(a), Data::Uint32(b)) => a.extend(b),
        (Data::Uint64(a), Data::Uint64(b)) => a.extend(b),
        (Data::Int8(a), Data::Int8(b)) => a.extend(b),
        (Data::Int16(a), Data::Int16(b)) => a.extend(b),
        (Data::Int32(a), Data::Int32(b)) => a.extend(b),
        (Data::Int64(a), Data::Int64(b)) => a.extend(b),
        (Data::Fp32(a), Data::Fp32(b)) => a.extend(b),
        (Data::Fp64(a), Data::Fp64(b)) => a.extend(b),
        (a, b) => {
            return Err(ModelError::Internal(format!(
                "pieces of one output differ in type: {} and {}",
                a.datatype(),
                b.datatype()
            )));
        }
    }
    Ok(())
}
