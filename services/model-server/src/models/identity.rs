//! The tutorial's TestModel: returns its input unchanged.

use seldon_protocol::{Array, Names, Repr};

use crate::model::{Model, ModelError, Payload};

pub struct Identity;

impl Model for Identity {
    fn name(&self) -> &str {
        "identity"
    }

    fn predict(&self, input: Payload, _feature_names: &Names) -> Result<Payload, ModelError> {
        Ok(input)
    }

    fn probe(&self) -> Payload {
        Payload::Array(Array::from_values(
            Repr::Ndarray,
            vec![1, 1],
            &[serde_json::Value::from(0)],
        ))
    }

    fn platform(&self) -> &str {
        "rust"
    }
}
