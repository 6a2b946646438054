//! An ONNX classifier or regressor executed in pure Rust by tract: input
//! float32 `[N, features]`, first output `[N, outputs]`.

use seldon_protocol::{Array, ArrayError, Element, Names, Repr};
use tract_onnx::prelude::*;

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
    /// Loads a model; names given here win over the file's `class_names` /
    /// `feature_names` metadata (comma-separated, as train_iris.py writes).
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        class_names: Option<Vec<String>>,
        feature_names: Option<Vec<String>>,
    ) -> anyhow::Result<Self> {
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut &bytes[..])?;
        let prop = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.split(',').map(str::to_string).collect::<Vec<_>>())
        };
        let class_names = class_names.or_else(|| prop("class_names"));
        let feature_names = feature_names.or_else(|| prop("feature_names"));
        let typed = onnx.model_for_proto_model(&proto)?.into_optimized()?;
        let shape = &typed.input_fact(0)?.shape;
        let features = match shape.len() {
            2 => shape[1]
                .as_i64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| anyhow::anyhow!("the input's second dimension must be fixed"))?,
            n => anyhow::bail!("the model's input must be [N, features]; it has {n} dimensions"),
        };
        if let Some(f) = &feature_names
            && f.len() != features
        {
            anyhow::bail!(
                "{} feature names for a model with {features} inputs",
                f.len()
            );
        }
        Ok(Self {
            name: name.to_string(),
            plan: typed.into_runnable()?,
            features,
            class_names,
            feature_names,
        })
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
