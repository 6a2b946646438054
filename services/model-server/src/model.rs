//! What a model is to the server: named typed tensors in, named typed
//! tensors out (`inference_core`), whatever protocol carried them. Models
//! are chosen at start-up (`MODEL`); the front ends (`v1`, `v2`) translate
//! their wire forms to and from tensors and never let a model see them.

use inference_core::{Tensor, TensorSpec};

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum ModelError {
    /// The caller sent something this model cannot take (a 400).
    #[error("{0}")]
    BadInput(String),
    /// The model itself failed (a 500).
    #[error("the model failed: {0}")]
    Internal(String),
    /// The model's queue is past its bounds (a 503 with `Retry-After`).
    #[error("{why}")]
    Overloaded { retry_after_secs: u64, why: String },
}

/// Names a model gives the columns of its tabular input and output
/// (Seldon v1's `data.names`; scikit-learn's feature and class names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels {
    /// Names of the answer's columns (class names), when known.
    pub class_names: Option<Vec<String>>,
    /// Names of the input's columns, when known.
    pub feature_names: Option<Vec<String>>,
}

pub trait Model: Send + Sync + 'static {
    /// Short name, for metadata, metrics and logs (`iris`, a file's stem).
    fn name(&self) -> &str;

    /// Where the model runs, for metadata (`onnx (tract)`, `rust`).
    fn platform(&self) -> &str;

    /// The inputs the model declares, in its order. Empty: it takes any
    /// tensors (the identity model).
    fn inputs(&self) -> &[TensorSpec];

    /// The outputs it declares, in its order (empty for the identity
    /// model, whose outputs are its inputs).
    fn outputs(&self) -> &[TensorSpec];

    /// Runs on `inputs`, which `check_inputs` accepted (one tensor per
    /// declared input, in the declared order), and returns every output.
    ///
    /// # Errors
    /// `BadInput` for values the model cannot compute with (a shape that
    /// disagrees with another input's), `Internal` when it fails.
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError>;

    /// Inputs the model must accept, for readiness (`/health/status`).
    fn probe(&self) -> Vec<Tensor>;

    /// The output Seldon v1 answers with (it carries one); `None`: the
    /// first.
    fn v1_output(&self) -> Option<&str> {
        None
    }

    /// Column names, when the model has them.
    fn labels(&self) -> &Labels;

    /// Whether every input and output has one batch dimension first, so
    /// that requests may be joined along it (dynamic batching).
    fn batched(&self) -> bool {
        false
    }
}

/// Puts `inputs` in the model's declared order after checking each against
/// its declaration; a model that declares none takes them as they are.
///
/// # Errors
/// A `BadInput` naming an input that is missing, unknown, given twice, or
/// of another datatype or shape than declared (what it takes and what
/// came).
pub fn check_inputs(model: &dyn Model, mut inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
    let specs = model.inputs();
    if specs.is_empty() {
        return Ok(inputs);
    }
    let declared = || {
        specs
            .iter()
            .map(|s| {
                let dims: Vec<String> = s.shape_i64().iter().map(i64::to_string).collect();
                format!("{} ({} [{}])", s.name, s.datatype, dims.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(unknown) = inputs
        .iter()
        .find(|t| !specs.iter().any(|s| s.name == t.name()))
    {
        return Err(ModelError::BadInput(format!(
            "the {} model has no input {:?}; its inputs are {}",
            model.name(),
            unknown.name(),
            declared()
        )));
    }
    let mut ordered = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some(i) = inputs.iter().position(|t| t.name() == spec.name) else {
            return Err(ModelError::BadInput(format!(
                "input {:?} is missing; the {} model's inputs are {}",
                spec.name,
                model.name(),
                declared()
            )));
        };
        let tensor = inputs.swap_remove(i);
        spec.check(&tensor).map_err(ModelError::BadInput)?;
        ordered.push(tensor);
    }
    if let Some(twice) = inputs.first() {
        return Err(ModelError::BadInput(format!(
            "input {:?} is given twice",
            twice.name()
        )));
    }
    Ok(ordered)
}
