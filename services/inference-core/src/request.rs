//! Inference requests and responses, whatever protocol carried them.

use std::collections::BTreeMap;

use crate::tensor::Tensor;

/// A parameter's value: the protocol allows booleans, integers, doubles
/// and strings (KServe's `required_api.md`, "Parameters").
#[derive(Clone, Debug, PartialEq)]
pub enum Parameter {
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
}

/// Named parameters of a request, a response or a tensor.
pub type Parameters = BTreeMap<String, Parameter>;

/// An output the client asked for, by name, with its parameters (the
/// binary tensor extension's `binary_data` is one).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    pub parameters: Parameters,
}

/// One inference request to one model.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InferenceRequest {
    /// The model's name (a service's name, `[services.<name>]`).
    pub model: String,
    /// The version asked for, if any.
    pub version: Option<String>,
    /// The client's id, echoed in the response.
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for; empty: every output.
    pub outputs: Vec<RequestedOutput>,
}

impl InferenceRequest {
    /// The input called `name`.
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|t| t.name() == name)
    }
}

/// An output asked for that the model does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output {name:?}: the model's outputs are {known}")]
pub struct OutputError {
    pub name: String,
    /// The outputs there are, comma-separated.
    pub known: String,
}

/// One model's answer to one request.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InferenceResponse {
    pub model: String,
    pub version: Option<String>,
    /// The request's id.
    pub id: Option<String>,
    pub parameters: Parameters,
    pub outputs: Vec<Tensor>,
}

impl InferenceResponse {
    /// Only the outputs `requested` names, in the order asked (all of them
    /// when it names none), as the protocol's `outputs` field says.
    ///
    /// # Errors
    /// A requested name the response has no output for.
    pub fn keep_requested(mut self, requested: &[RequestedOutput]) -> Result<Self, OutputError> {
        if requested.is_empty() {
            return Ok(self);
        }
        let mut kept = Vec::with_capacity(requested.len());
        for r in requested {
            match self.outputs.iter().position(|t| t.name() == r.name) {
                Some(i) => kept.push(self.outputs.swap_remove(i)),
                None => {
                    let known = self
                        .outputs
                        .iter()
                        .chain(&kept)
                        .map(|t| t.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(OutputError {
                        name: r.name.clone(),
                        known,
                    });
                }
            }
        }
        self.outputs = kept;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Data;

    fn out(name: &str) -> Tensor {
        Tensor::new(name, vec![1], Data::Fp32(vec![0.5])).expect("valid")
    }

    fn ask(name: &str) -> RequestedOutput {
        RequestedOutput {
            name: name.into(),
            parameters: Parameters::new(),
        }
    }

    #[test]
    fn requested_outputs_are_kept_in_the_order_asked() {
        let response = InferenceResponse {
            model: "m".into(),
            outputs: vec![out("label"), out("probabilities"), out("logits")],
            ..Default::default()
        };
        let all = response.clone().keep_requested(&[]).expect("valid");
        assert_eq!(all.outputs.len(), 3);
        let two = response
            .clone()
            .keep_requested(&[ask("logits"), ask("label")])
            .expect("valid");
        let names: Vec<&str> = two.outputs.iter().map(Tensor::name).collect();
        assert_eq!(names, ["logits", "label"]);
        let err = response
            .keep_requested(&[ask("nope")])
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "unknown output \"nope\": the model's outputs are label, probabilities, logits"
        );
    }

    #[test]
    fn inputs_are_found_by_name() {
        let request = InferenceRequest {
            model: "m".into(),
            inputs: vec![out("a"), out("b")],
            ..Default::default()
        };
        assert_eq!(request.input("b").map(Tensor::name), Some("b"));
        assert!(request.input("c").is_none());
    }
}
