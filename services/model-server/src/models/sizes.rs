//! How many elements a run of a plan will allocate, known before the run
//! where the plan derives its tensors' shapes from the inputs' shapes: a
//! request of a few bytes must not make a graph allocate gigabytes (a
//! [15000, 0] by [0, 15000] product, an outer product of an input with
//! itself, a Tile by constants). Shapes that depend on values (`Range`,
//! `Tile` of a computed count) are not known before the run.
//!
//! tract's own `TDim::eval` multiplies in `i64` and wraps (N^4 at N =
//! 65536 is 0), so the shapes are evaluated here in `f64`.

use inference_core::{Tensor, TensorSpec};
use tract_onnx::prelude::*;

use crate::model::ModelError;

/// How many times the output limit any one tensor computed on the way may
/// hold (a CNN's feature maps outgrow its input several times over).
const INTERMEDIATE_FACTOR: usize = 8;

/// A dimension's value for the inputs' symbols, or `None` when it depends
/// on something else (a value computed in the graph).
fn approx(d: &TDim, values: &[(Symbol, f64)]) -> Option<f64> {
    let all = |t: &[TDim]| {
        t.iter()
            .map(|d| approx(d, values))
            .collect::<Option<Vec<f64>>>()
    };
    Some(match d {
        TDim::Val(v) => *v as f64,
        TDim::Sym(s) => values.iter().find(|(k, _)| k == s)?.1,
        TDim::Add(t) => all(t)?.iter().sum(),
        TDim::Mul(t) => all(t)?.iter().product(),
        TDim::MulInt(k, t) => *k as f64 * approx(t, values)?,
        TDim::Div(t, q) => (approx(t, values)? / *q as f64).floor(),
        TDim::Broadcast(t) | TDim::Max(t) => all(t)?.into_iter().fold(f64::MIN, f64::max),
        TDim::Min(t) => all(t)?.into_iter().fold(f64::MAX, f64::min),
        TDim::Ge(a, b) => f64::from(u8::from(approx(a, values)? >= approx(b, values)?)),
        TDim::Eq(a, b) => f64::from(u8::from(approx(a, values)? == approx(b, values)?)),
    })
}

/// The elements of a tensor of `shape`, or `None` when not known.
pub fn elements(shape: &[TDim], values: &[(Symbol, f64)]) -> Option<f64> {
    shape
        .iter()
        .map(|d| approx(d, values))
        .try_fold(1.0, |n, d| Some(n * d?))
}

/// The shapes of the tensors a run of `model` computes that vary with its
/// inputs (constants and fixed shapes, which the load already ran, are
/// left out), each with the name of the node that makes it.
pub fn varying(model: &TypedModel) -> Vec<(String, TVec<TDim>)> {
    model
        .nodes()
        .iter()
        .flat_map(|n| {
            n.outputs
                .iter()
                .map(move |o| (n.name.clone(), o.fact.shape.to_tvec()))
        })
        .filter(|(_, shape)| shape.iter().any(|d| d.to_i64().is_err()))
        .collect()
}

/// What a run of a graph may allocate, as a typed graph knows it: each
/// output's shape and each varying tensor's, in terms of the inputs'
/// symbols, evaluated per request before the run.
pub struct Bounds {
    symbols: SymbolScope,
    outputs: Vec<(String, TVec<TDim>)>,
    intermediates: Vec<(String, TVec<TDim>)>,
}

impl Bounds {
    /// The bounds of `model`, whose outputs are the served ones in order.
    ///
    /// # Errors
    /// An output the model does not have.
    pub fn of(model: &TypedModel, outputs: &[TensorSpec]) -> TractResult<Self> {
        Ok(Self {
            symbols: model.symbols.clone(),
            outputs: outputs
                .iter()
                .enumerate()
                .map(|(i, spec)| Ok((spec.name.clone(), model.output_fact(i)?.shape.to_tvec())))
                .collect::<TractResult<_>>()?,
            intermediates: varying(model),
        })
    }

    /// Refuses `inputs` (checked, in the declared order; `symbols` per
    /// input, per axis) when the run would give back more than
    /// `max_output` elements in all, or compute any tensor of more than
    /// `INTERMEDIATE_FACTOR` times that, before the run allocates them
    /// (a [10000, 0] by [0, 10000] product is 10^8 elements from a
    /// request of a few bytes).
    ///
    /// # Errors
    /// A `BadInput` naming the input shapes, what they would make, and
    /// the limit.
    pub fn check(
        &self,
        model: &str,
        inputs: &[Tensor],
        symbols: &[Vec<Option<String>>],
        max_output: usize,
    ) -> Result<(), ModelError> {
        let mut values: Vec<(Symbol, f64)> = Vec::new();
        for (t, symbols) in inputs.iter().zip(symbols) {
            for (n, s) in t.shape().iter().zip(symbols) {
                if let Some(s) = s {
                    values.push((self.symbols.sym(s), *n as f64));
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
                "for inputs of shapes {}, the {model} model would compute {what}, more than the \
                 {limit} elements a request may (MAX_BODY_BYTES sets the limits); send smaller \
                 inputs",
                shown(),
            ))
        };
        let mut total = 0.0;
        for (name, shape) in &self.outputs {
            total += elements(shape, &values).unwrap_or(0.0);
            if total > max_output as f64 {
                return Err(refuse(
                    format!("outputs of {total:.0} elements (up to {name:?})"),
                    max_output,
                ));
            }
        }
        let limit = max_output.saturating_mul(INTERMEDIATE_FACTOR);
        for (node, shape) in &self.intermediates {
            let n = elements(shape, &values).unwrap_or(0.0);
            if n > limit as f64 {
                return Err(refuse(
                    format!("a tensor of {n:.0} elements in {node:?}"),
                    limit,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_evaluated_without_wrapping() {
        let scope = SymbolScope::default();
        let n = scope.sym("N");
        let values = [(n.clone(), 65536.0)];
        let fourth: TVec<TDim> = tvec![TDim::Mul(vec![
            n.to_dim(),
            n.to_dim(),
            n.to_dim(),
            n.to_dim()
        ])];
        assert_eq!(elements(&fourth, &values), Some(65536f64.powi(4)));
        let outer: TVec<TDim> = tvec![n.to_dim(), TDim::MulInt(3, Box::new(n.to_dim()))];
        assert_eq!(elements(&outer, &values), Some(65536.0 * 3.0 * 65536.0));
        // A symbol the inputs do not give: not known before the run.
        let m = scope.sym("M");
        assert_eq!(elements(&[m.to_dim()], &values), None);
    }
}
