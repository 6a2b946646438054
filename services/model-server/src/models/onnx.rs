//! An ONNX classifier or regressor executed in pure Rust by tract: input
//! float32 `[N, features]`, first output `[N, outputs]`.

use seldon_protocol::{Array, Elements, Repr};
use serde_json::Value;
use tract_onnx::prelude::*;

use crate::model::{Model, ModelError, Payload};

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

    fn matrix(&self, a: &Array) -> Result<Vec<f32>, ModelError> {
        let values = match &a.elements {
            Elements::Numbers(v) => v,
            Elements::Values(v) => {
                let (i, bad) = v
                    .iter()
                    .enumerate()
                    .find(|(_, x)| !x.is_number())
                    .unwrap_or((0, &Value::Null));
                let cols = a.cols().max(1);
                return Err(ModelError::BadInput(format!(
                    "the {} model takes numbers; row {}, column {} is {bad}",
                    self.name,
                    i / cols,
                    i % cols
                )));
            }
        };
        if a.shape.len() > 2 {
            return Err(ModelError::BadInput(format!(
                "the {} model takes rows of {} features ([N, {}]); got shape {:?}",
                self.name, self.features, self.features, a.shape
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
        Ok(values.iter().map(|x| *x as f32).collect())
    }
}

impl Model for OnnxModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, input: Payload, _feature_names: &[String]) -> Result<Payload, ModelError> {
        let Payload::Array(a) = input else {
            return Err(ModelError::BadInput(format!(
                "the {} model takes data.tensor or data.ndarray, not {}",
                self.name,
                input.kind()
            )));
        };
        let rows = a.rows();
        let x = self.matrix(&a)?;
        let tensor = tract_ndarray::Array2::from_shape_vec((rows, self.features), x)
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
        let cols = view.len() / rows.max(1);
        let values = view.iter().map(|v| f64::from(*v)).collect();
        Ok(Payload::Array(Array::matrix(a.repr, rows, cols, values)))
    }

    fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    fn probe(&self) -> Payload {
        Payload::Array(Array::matrix(
            Repr::Ndarray,
            1,
            self.features,
            vec![0.0; self.features],
        ))
    }

    fn platform(&self) -> &str {
        "onnx (tract)"
    }
}
