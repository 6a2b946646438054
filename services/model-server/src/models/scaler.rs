//! `ai.onnx.ml` `Scaler`, which tract does not ship: `Y = (X - offset) *
//! scale`, per column or one value for all (the ONNX-ML operator spec,
//! onnx/docs/Operators-ml.md#ai.onnx.ml.Scaler). skl2onnx writes one for
//! every StandardScaler, MinMaxScaler and MaxAbsScaler. Expanded into
//! tract's own Sub and Mul, so tract optimises it like any other node.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_core::ops::change_axes::wire_with_rank_broadcast;
use tract_onnx::tract_hir::tract_core::ops::math::{mul, sub};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", scaler);
}

#[derive(Debug, Clone, PartialEq)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node.get_attr_opt_vec("offset")?.unwrap_or_default();
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_default();
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        ensure!(
            fact.rank() == 2,
            "Scaler expects [N, C] input, got rank {}",
            fact.rank()
        );
        if fact.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_onnx::tract_hir::tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        // Shapes [1, C] (or [1, 1]) broadcast over the batch.
        let row = |v: &[f32], default: f32| -> TractResult<Arc<Tensor>> {
            let v = if v.is_empty() {
                vec![default]
            } else {
                v.to_vec()
            };
            Ok(tensor1(&v).into_shape(&[1, v.len()])?.into_arc_tensor())
        };
        let offset = model.add_const(format!("{prefix}.offset"), row(&self.offset, 0.0)?)?;
        let scale = model.add_const(format!("{prefix}.scale"), row(&self.scale, 1.0)?)?;
        let centred =
            wire_with_rank_broadcast(format!("{prefix}.sub"), model, sub(), &[x, offset])?[0];
        wire_with_rank_broadcast(format!("{prefix}.mul"), model, mul(), &[centred, scale])
    }
}
