//! The tutorial's TestModel: returns its inputs unchanged, as outputs of
//! the same names.

use inference_core::{Data, Tensor, TensorSpec};

use crate::model::{Labels, Model, ModelError};

#[derive(Default)]
pub struct Identity {
    labels: Labels,
}

impl Model for Identity {
    fn name(&self) -> &str {
        "identity"
    }

    fn platform(&self) -> &str {
        "rust"
    }

    fn inputs(&self) -> &[TensorSpec] {
        &[]
    }

    fn outputs(&self) -> &[TensorSpec] {
        &[]
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        Ok(inputs)
    }

    fn probe(&self) -> Vec<Tensor> {
        // One zero, as Seldon's wrapper probes with `[[0]]`.
        Tensor::new("input", vec![1, 1], Data::Int64(vec![0]))
            .map(|t| vec![t])
            .unwrap_or_default()
    }

    fn labels(&self) -> &Labels {
        &self.labels
    }
}
