//! What a model says of its inputs and outputs (the protocol's model
//! metadata: name, datatype, shape with `-1` for a variable dimension).

use crate::tensor::{Datatype, Tensor};

/// One dimension of a declared shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// Exactly this many.
    Fixed(usize),
    /// Any count, decided per request (a batch, a sequence length); `-1` in
    /// the protocol's metadata.
    Any,
}

impl Dim {
    /// As the protocol writes it: the count, or `-1`.
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Fixed(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Self::Any => -1,
        }
    }
}

/// A declared input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// The shape as the protocol's metadata writes it (`[-1, 4]`).
    pub fn shape_i64(&self) -> Vec<i64> {
        self.shape.iter().map(|d| d.as_i64()).collect()
    }

    /// Whether `tensor` fits this declaration; if not, a sentence that
    /// names the input, what it takes and what came (for a 400).
    pub fn check(&self, tensor: &Tensor) -> Result<(), String> {
        let shown: Vec<String> = self
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Any => "-1".to_string(),
            })
            .collect();
        let wanted = format!("{} [{}]", self.datatype, shown.join(", "));
        let fits = tensor.datatype() == self.datatype
            && tensor.shape().len() == self.shape.len()
            && tensor
                .shape()
                .iter()
                .zip(&self.shape)
                .all(|(n, d)| matches!(d, Dim::Any) || *d == Dim::Fixed(*n));
        if fits {
            Ok(())
        } else {
            Err(format!(
                "input {:?} takes {wanted}; got {} {:?}",
                self.name,
                tensor.datatype(),
                tensor.shape()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Data;

    #[test]
    fn a_declaration_names_what_it_takes_when_a_tensor_does_not_fit() {
        let spec = TensorSpec {
            name: "input_ids".into(),
            datatype: Datatype::Int64,
            shape: vec![Dim::Any, Dim::Fixed(3)],
        };
        assert_eq!(spec.shape_i64(), [-1, 3]);
        let ok = Tensor::new("input_ids", vec![2, 3], Data::Int64(vec![0; 6])).expect("valid");
        assert_eq!(spec.check(&ok), Ok(()));
        let wrong_type =
            Tensor::new("input_ids", vec![2, 3], Data::Fp32(vec![0.0; 6])).expect("valid");
        assert_eq!(
            spec.check(&wrong_type).expect_err("refused"),
            "input \"input_ids\" takes INT64 [-1, 3]; got FP32 [2, 3]"
        );
        let wrong_dim =
            Tensor::new("input_ids", vec![3, 2], Data::Int64(vec![0; 6])).expect("valid");
        assert!(spec.check(&wrong_dim).is_err());
        let wrong_rank = Tensor::new("input_ids", vec![6], Data::Int64(vec![0; 6])).expect("valid");
        assert!(spec.check(&wrong_rank).is_err());
    }
}
