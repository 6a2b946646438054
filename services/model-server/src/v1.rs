//! Seldon v1 payloads to and from the core's tensors.
//!
//! A model that declares its inputs gets the one it declares, typed as it
//! declares it (`data.tensor` / `data.ndarray` of any rank). A model that
//! declares none (the identity model) gets the payload itself, carried as
//! an opaque tensor, so that every literal comes back exactly as it was
//! written.

use std::sync::Arc;

use inference_core::{Data, Datatype, Dim, Opaque, Tensor};
use seldon_protocol::{Array, ArrayError, Element, Repr};

use crate::model::{Model, ModelError};

/// A prediction's input or output, one of the SeldonMessage payload kinds.
#[derive(Clone, Debug)]
pub enum Payload {
    /// `data.tensor` or `data.ndarray`, with the form it came in.
    Array(Array),
    /// `jsonData`, as the JSON text that was sent.
    Json(seldon_protocol::RawJson),
    Str(String),
    Bin(Vec<u8>),
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Array(a), Self::Array(b)) => a == b,
            (Self::Json(a), Self::Json(b)) => a.get() == b.get(),
            (Self::Str(a), Self::Str(b)) => a == b,
            (Self::Bin(a), Self::Bin(b)) => a == b,
            _ => false,
        }
    }
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Array(_) => "data",
            Self::Json(_) => "jsonData",
            Self::Str(_) => "strData",
            Self::Bin(_) => "binData",
        }
    }
}

/// The model's inputs for `payload`; `served` is the model's name on the
/// Open Inference Protocol, for the error that sends a client there.
///
/// # Errors
/// A `BadInput` when the model takes several inputs (v1 carries one: use
/// the v2 endpoint), when the payload is not an array, or when an element
/// is not a value of the input's datatype (its position and the range).
pub fn to_inputs(
    model: &dyn Model,
    served: &str,
    payload: Payload,
) -> Result<Vec<Tensor>, ModelError> {
    let specs = model.inputs();
    if specs.is_empty() {
        let (shape, len) = match &payload {
            Payload::Array(a) => (a.shape().to_vec(), a.len()),
            _ => (vec![1], 1),
        };
        let name = payload.kind();
        return Tensor::new(name, shape, Data::Opaque(Opaque::new(len, payload)))
            .map(|t| vec![t])
            .map_err(|e| ModelError::BadInput(e.to_string()));
    }
    let [spec] = specs else {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(ModelError::BadInput(format!(
            "the {} model has {} inputs ({}); Seldon's v1 protocol carries one: send them to \
             the Open Inference Protocol endpoint, POST /v2/models/{served}/infer",
            model.name(),
            specs.len(),
            names.join(", ")
        )));
    };
    let Payload::Array(a) = payload else {
        return Err(ModelError::BadInput(format!(
            "the {} model takes data.tensor or data.ndarray, not {}",
            model.name(),
            payload.kind()
        )));
    };
    // A tabular model ([N, features]) is told what it takes in its terms.
    let mut shape = a.shape().to_vec();
    if let [_, Dim::Fixed(width)] = spec.shape[..] {
        if shape.len() <= 2 && a.cols() != width {
            let named = model
                .labels()
                .feature_names
                .as_ref()
                .map(|n| format!(" ({})", n.join(", ")))
                .unwrap_or_default();
            return Err(ModelError::BadInput(format!(
                "the {} model takes {width} features per row{named}; got {}",
                model.name(),
                a.cols()
            )));
        }
        if shape.len() < 2 {
            shape = vec![1, a.len()];
        }
    }
    if a.is_empty() {
        return Err(ModelError::BadInput("the batch has no rows".into()));
    }
    let data = typed(&a, spec.datatype, model.name())?;
    Tensor::new(spec.name.clone(), shape, data)
        .map(|t| vec![t])
        .map_err(|e| ModelError::BadInput(e.to_string()))
}

/// Where element `i` of `a` is, for a message: `row r, column c` in a
/// matrix, its index path otherwise.
fn position(a: &Array, i: usize) -> String {
    let shape = a.shape();
    if shape.len() == 2 {
        let cols = a.cols().max(1);
        return format!("row {}, column {}", i / cols, i % cols);
    }
    let mut path = vec![0; shape.len()];
    let mut rest = i;
    for (k, d) in shape.iter().enumerate().rev() {
        let d = (*d).max(1);
        path[k] = rest % d;
        rest /= d;
    }
    format!("element {path:?}")
}

/// `a`'s elements as `datatype`.
fn typed(a: &Array, datatype: Datatype, model: &str) -> Result<Data, ModelError> {
    let not_a_number = |i: usize, s: &str| {
        ModelError::BadInput(format!(
            "the {model} model takes numbers; {} is {s}",
            position(a, i)
        ))
    };
    let out_of_range = |i: usize, lit: &str, what: &str| {
        ModelError::BadInput(format!("{}: {lit} is {what}", position(a, i)))
    };
    let numbers = |each: &mut dyn FnMut(usize, &str) -> Result<(), ModelError>| {
        for (i, e) in a.elements().enumerate() {
            match e {
                Element::Number(lit) => each(i, lit)?,
                Element::String(s) | Element::Literal(s) => return Err(not_a_number(i, s)),
            }
        }
        Ok(())
    };
    macro_rules! floats {
        ($variant:ident, $convert:expr, $range:expr) => {{
            let what = format!("outside the {} the {model} model computes in", $range);
            let mut v = Vec::with_capacity(a.len());
            numbers(&mut |i, lit| {
                let x = $convert(lit.parse::<f64>().unwrap_or(f64::INFINITY));
                match x {
                    Some(x) => {
                        v.push(x);
                        Ok(())
                    }
                    None => Err(out_of_range(i, lit, &what)),
                }
            })?;
            Data::$variant(v)
        }};
    }
    macro_rules! integers {
        ($variant:ident, $t:ty) => {{
            let what = format!(
                "not an integer {} holds, which the {model} model takes ({}..={})",
                datatype,
                <$t>::MIN,
                <$t>::MAX
            );
            let mut v = Vec::with_capacity(a.len());
            numbers(
                &mut |i, lit| match integer(lit).and_then(|n| <$t>::try_from(n).ok()) {
                    Some(n) => {
                        v.push(n);
                        Ok(())
                    }
                    None => Err(out_of_range(i, lit, &what)),
                },
            )?;
            Data::$variant(v)
        }};
    }
    Ok(match datatype {
        Datatype::Fp32 => floats!(
            Fp32,
            |x: f64| Some(x as f32).filter(|x| x.is_finite()),
            "float32 range (|x| <= 3.4028235e38)"
        ),
        Datatype::Fp64 => floats!(
            Fp64,
            |x: f64| Some(x).filter(|x| x.is_finite()),
            "float64 range"
        ),
        Datatype::Fp16 => floats!(
            Fp16,
            |x: f64| Some(half::f16::from_f64(x))
                .filter(|x| x.is_finite())
                .map(half::f16::to_bits),
            "float16 range (|x| <= 65504)"
        ),
        Datatype::Int8 => integers!(Int8, i8),
        Datatype::Int16 => integers!(Int16, i16),
        Datatype::Int32 => integers!(Int32, i32),
        Datatype::Int64 => integers!(Int64, i64),
        Datatype::Uint8 => integers!(Uint8, u8),
        Datatype::Uint16 => integers!(Uint16, u16),
        Datatype::Uint32 => integers!(Uint32, u32),
        Datatype::Uint64 => integers!(Uint64, u64),
        Datatype::Bool => {
            let mut v = Vec::with_capacity(a.len());
            for (i, e) in a.elements().enumerate() {
                v.push(match e {
                    Element::Literal("true") | Element::Number("1") => true,
                    Element::Literal("false") | Element::Number("0") => false,
                    Element::Number(s) | Element::String(s) | Element::Literal(s) => {
                        return Err(ModelError::BadInput(format!(
                            "the {model} model takes booleans (true, false, 1 or 0); {} is {s}",
                            position(a, i)
                        )));
                    }
                });
            }
            Data::Bool(v)
        }
        Datatype::Bytes => Data::Bytes(
            a.elements()
                .map(|e| match e {
                    Element::String(lit) => serde_json::from_str::<String>(lit)
                        .unwrap_or_default()
                        .into_bytes(),
                    Element::Number(lit) | Element::Literal(lit) => lit.as_bytes().to_vec(),
                })
                .collect(),
        ),
    })
}

/// A JSON number literal as an integer, when it is one (`3`, `3.0`, `3e2`).
fn integer(lit: &str) -> Option<i128> {
    if let Ok(n) = lit.parse::<i128>() {
        return Some(n);
    }
    let x = lit.parse::<f64>().ok()?;
    // Beyond 2^64 an f64 integer is no longer exact; no integer type
    // holds it anyway.
    (x.fract() == 0.0 && x.abs() < 1.9e19).then_some(x as i128)
}

/// The v1 answer among `outputs` (the model's `v1_output`, else the
/// first), in the request's array form `repr`.
///
/// # Errors
/// A floating-point answer that is not finite (a `BadInput`: the input is
/// outside what the model can compute), or no output at all.
pub fn to_payload(
    model: &dyn Model,
    outputs: Vec<Tensor>,
    repr: Repr,
) -> Result<Payload, ModelError> {
    let wanted = model.v1_output();
    let Some(answer) = outputs
        .into_iter()
        .find(|t| wanted.is_none_or(|w| t.name() == w))
    else {
        return Err(ModelError::Internal(format!(
            "the {} model returned no output{}",
            model.name(),
            wanted.map(|w| format!(" {w:?}")).unwrap_or_default()
        )));
    };
    let (_, mut shape, data) = answer.into_parts();
    // A tabular model's 1-D answer (a regressor's) is one column per row,
    // as Seldon's wrapper answers; other models' answers keep their shape.
    let tabular = matches!(model.inputs(), [one] if matches!(one.shape[..], [_, Dim::Fixed(_)]));
    if tabular {
        match shape.len() {
            0 => shape = vec![1, 1],
            1 => shape.push(1),
            _ => {}
        }
    }
    let cols: usize = shape.iter().skip(1).product();
    let not_finite = |e: ArrayError| match e {
        ArrayError::NotFinite { index, value } => ModelError::BadInput(format!(
            "the {} model's output for row {} is {value}, not a finite number: the input is \
             outside what the model can compute",
            model.name(),
            index / cols.max(1)
        )),
        other => ModelError::Internal(other.to_string()),
    };
    let array = match data {
        Data::Opaque(o) => {
            let payload = o.downcast::<Payload>().ok_or_else(|| {
                ModelError::Internal("an opaque output that is not a v1 payload".into())
            })?;
            return Ok(Arc::try_unwrap(payload).unwrap_or_else(|shared| (*shared).clone()));
        }
        Data::Fp32(v) => Array::from_f32(repr, shape, &v).map_err(not_finite)?,
        Data::Fp64(v) => Array::from_f64(repr, shape, &v).map_err(not_finite)?,
        Data::Fp16(v) => {
            let wide: Vec<f32> = v
                .into_iter()
                .map(|b| half::f16::from_bits(b).to_f32())
                .collect();
            Array::from_f32(repr, shape, &wide).map_err(not_finite)?
        }
        Data::Bool(v) => Array::from_display(repr, shape, &v, false),
        Data::Uint8(v) => Array::from_display(repr, shape, &v, true),
        Data::Uint16(v) => Array::from_display(repr, shape, &v, true),
        Data::Uint32(v) => Array::from_display(repr, shape, &v, true),
        Data::Uint64(v) => Array::from_display(repr, shape, &v, true),
        Data::Int8(v) => Array::from_display(repr, shape, &v, true),
        Data::Int16(v) => Array::from_display(repr, shape, &v, true),
        Data::Int32(v) => Array::from_display(repr, shape, &v, true),
        Data::Int64(v) => Array::from_display(repr, shape, &v, true),
        Data::Bytes(v) => {
            let values: Vec<serde_json::Value> = v
                .iter()
                .map(|b| serde_json::Value::from(String::from_utf8_lossy(b)))
                .collect();
            Array::from_values(repr, shape, &values)
        }
    };
    Ok(Payload::Array(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Identity;

    #[test]
    fn integers_are_read_exactly_and_refused_past_their_range() {
        assert_eq!(integer("9007199254740993"), Some(9_007_199_254_740_993));
        assert_eq!(integer("3.0"), Some(3));
        assert_eq!(integer("3e2"), Some(300));
        assert_eq!(integer("3.5"), None);
        assert_eq!(integer("1e300"), None);
    }

    #[test]
    fn the_identity_model_gets_the_payload_itself() {
        let model = Identity::default();
        let inputs = to_inputs(&model, "identity", Payload::Str("hello".into())).expect("carried");
        assert_eq!(inputs[0].name(), "strData");
        let back = to_payload(&model, inputs, Repr::Ndarray).expect("returned");
        assert_eq!(back, Payload::Str("hello".into()));
    }
}
