//! An ONNX classifier or regressor executed in pure Rust by tract: input
//! float32 `[N, features]`, output `[N, outputs]` (or `[N]`, one column).

use seldon_protocol::{Array, ArrayError, Element, Names, Repr};
use tract_onnx::prelude::*;

use super::{OnnxOptions, onnx_graph};
use crate::model::{Model, ModelError, Payload};

/// Rows per model run; larger batches are split.
const CHUNK_ROWS: usize = 1024;

pub struct OnnxModel {
    name: String,
    plan: Arc<TypedRunnableModel>,
    features: usize,
    class_names: Option<Vec<String>>,
    feature_names: Option<Vec<String>>,
}

impl OnnxModel {
    /// Loads a model as the common exporters write it (see `onnx_graph`).
    /// Names come from `options`, else the file's `class_names` /
    /// `feature_names` metadata (comma-separated, as train_iris.py writes),
    /// else the class labels of a ZipMap.
    ///
    /// # Errors
    /// What `onnx_graph::load` refuses; names whose count does not match the
    /// input's width.
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
        let features = graph.features;
        tracing::info!(
            model = name,
            output = %graph.output,
            features,
            "ONNX graph planned for float32 [N, {features}]"
        );
        if let Some(f) = &feature_names
            && f.len() != features
        {
            anyhow::bail!(
                "{} feature names ({}) for a model whose input has {features} columns",
                f.len(),
                f.join(", ")
            );
        }
        let model = Self {
            name: name.to_string(),
            plan: graph.plan.into_runnable()?,
            features,
            class_names,
            feature_names,
        };
        // Class names name the answer's columns: as many as it has, at
        // start-up as after a reload of the file (a new file may answer
        // another width).
        if let Some(c) = &model.class_names {
            let probe = model.predict(model.probe(), &Names::default());
            if let Ok(Payload::Array(answer)) = probe
                && answer.cols() != c.len()
            {
                anyhow::bail!(
                    "{} class names ({}) for a model that answers {} column(s) per row",
                    c.len(),
                    c.join(", "),
                    answer.cols()
                );
            }
        }
        Ok(model)
    }

    /// The input as float32, row-major; every value must be a number that
    /// float32 can hold (the model computes in float32).
    fn matrix(&self, a: &Array) -> Result<Vec<f32>, ModelError> {
        if a.shape().len() > 2 {
            return Err(ModelError::BadInput(format!(
                "the {} model takes rows of {} features ([N, {}]); got shape {:?}",
                self.name,
                self.features,
                self.features,
                a.shape()
            )));
        }
        if a.cols() != self.features {
            let named = self
                .feature_names
                .as_ref()
                .map(|n| format!(" ({})", n.join(", ")))
                .unwrap_or_default();
            return Err(ModelError::BadInput(format!(
                "the {} model takes {} features per row{named}; got {}",
                self.name,
                self.features,
                a.cols()
            )));
        }
        if a.rows() == 0 {
            return Err(ModelError::BadInput("the batch has no rows".into()));
        }
        let cols = a.cols().max(1);
        a.elements()
            .enumerate()
            .map(|(i, e)| {
                let at = || format!("row {}, column {}", i / cols, i % cols);
                let lit = match e {
                    Element::Number(lit) => lit,
                    Element::String(s) | Element::Literal(s) => {
                        return Err(ModelError::BadInput(format!(
                            "the {} model takes numbers; {} is {s}",
                            self.name,
                            at()
                        )));
                    }
                };
                let x = lit.parse::<f64>().unwrap_or(f64::INFINITY) as f32;
                if x.is_finite() {
                    Ok(x)
                } else {
                    Err(ModelError::BadInput(format!(
                        "{}: {lit} is outside the float32 range the {} model computes in \
                         (|x| <= 3.4028235e38)",
                        at(),
                        self.name
                    )))
                }
            })
            .collect()
    }
}

impl Model for OnnxModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, input: Payload, _feature_names: &Names) -> Result<Payload, ModelError> {
        let Payload::Array(a) = input else {
            return Err(ModelError::BadInput(format!(
                "the {} model takes data.tensor or data.ndarray, not {}",
                self.name,
                input.kind()
            )));
        };
        let (rows, repr) = (a.rows(), a.repr);
        let x = self.matrix(&a)?;
        drop(a);
        // Run in batches of CHUNK_ROWS: the model's intermediate tensors stay
        // small whatever the request's batch size, which keeps the heap from
        // fragmenting under a stream of large requests.
        let mut values: Vec<f32> = Vec::new();
        let mut cols = 0;
        for chunk in x.chunks(CHUNK_ROWS * self.features) {
            let n = chunk.len() / self.features;
            let tensor = tract_ndarray::Array2::from_shape_vec((n, self.features), chunk.to_vec())
                .map_err(|e| ModelError::Internal(e.to_string()))?;
            let out = self
                .plan
                .run(tvec!(Tensor::from(tensor).into()))
                .map_err(|e| ModelError::Internal(format!("{e:#}")))?;
            let first = out
                .first()
                .ok_or_else(|| ModelError::Internal("no output".into()))?;
            let view = first
                .to_plain_array_view::<f32>()
                .map_err(|e| ModelError::Internal(format!("{e:#}")))?;
            cols = view.len() / n.max(1);
            if values.capacity() == 0 {
                values.reserve_exact(rows * cols);
            }
            values.extend(view.iter().copied());
        }
        drop(x);
        let out = Array::from_f32(repr, vec![rows, cols], &values).map_err(|e| match e {
            ArrayError::NotFinite { index, value } => ModelError::BadInput(format!(
                "the {} model's output for row {} is {value}, not a finite number: \
                 the input is outside what the model can compute",
                self.name,
                index / cols.max(1)
            )),
            other => ModelError::Internal(other.to_string()),
        })?;
        Ok(Payload::Array(out))
    }

    fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    fn input_width(&self) -> Option<usize> {
        Some(self.features)
    }

    fn probe(&self) -> Payload {
        Payload::Array(Array::from_values(
            Repr::Ndarray,
            vec![1, self.features],
            &vec![serde_json::Value::from(0); self.features],
        ))
    }

    fn platform(&self) -> &str {
        "onnx (tract)"
    }

    fn datatype(&self) -> Option<&str> {
        Some("FP32")
    }
}
