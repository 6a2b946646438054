//! OIP v2 JSON: `POST /v2/models/{model}[/versions/{v}]/infer` bodies to
//! [`InferenceRequest`], and [`InferenceResponse`] to the answer's body.

use std::collections::HashSet;
use std::fmt;

use inference_core::{
    Data, Datatype, InferenceRequest, InferenceResponse, Limits, Parameter, Parameters,
    RequestedOutput, Tensor, element_count,
};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::flatten::{Flatten, Leaf};

/// The most inputs one request may name (Triton and MLServer models take a
/// handful; a body of a million tiny inputs is refused as it is read).
pub const MAX_INPUTS: usize = 256;

/// A request the protocol's rules refuse: a 400 with this message as
/// `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct V2Error(pub String);

#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow, deserialize_with = "bounded_inputs")]
    inputs: Vec<WireInput<'a>>,
    #[serde(default)]
    outputs: Option<Vec<WireOutput>>,
}

#[derive(Deserialize)]
struct WireInput<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// `inputs`, read one at a time and refused past [`MAX_INPUTS`].
fn bounded_inputs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WireInput<'de>>, D::Error> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<WireInput<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of input tensors")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut inputs = Vec::new();
            while let Some(input) = seq.next_element()? {
                if inputs.len() == MAX_INPUTS {
                    return Err(serde::de::Error::custom(format!(
                        "a request names at most {MAX_INPUTS} inputs"
                    )));
                }
                inputs.push(input);
            }
            Ok(inputs)
        }
    }
    d.deserialize_seq(Bounded)
}

/// Decodes an infer request's JSON body for `model` (and `version`, from
/// the path), every tensor checked against its shape and datatype, and
/// all of them against `limits` before anything is allocated for them.
///
/// # Errors
/// A body that is not the protocol's request (its message names the
/// input and what was wrong): the server answers 400 with it.
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
    model: &str,
    version: Option<&str>,
    limits: &Limits,
) -> Result<InferenceRequest, V2Error> {
    let (header, mut binary) = match header_length {
        Some(n) if n > body.len() => {
            return Err(V2Error(format!(
                "Inference-Header-Content-Length is {n}, but the body has {} bytes",
                body.len()
            )));
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let framed = header_length.is_some();
    let wire: WireRequest<'_> = serde_json::from_slice(header)
        .map_err(|e| V2Error(format!("the request is not an inference request: {e}")))?;
    if wire.inputs.is_empty() {
        return Err(V2Error("the request has no inputs".into()));
    }
    let mut names = HashSet::new();
    let mut total = 0usize;
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    for input in wire.inputs {
        if !names.insert(input.name.clone()) {
            return Err(V2Error(format!("input {:?} is given twice", input.name)));
        }
        let tensor = decode_input(input, &mut total, limits, framed.then_some(&mut binary))?;
        inputs.push(tensor);
    }
    if !binary.is_empty() {
        return Err(V2Error(format!(
            "{} byte(s) of binary data follow the JSON header that no input's binary_data_size claims",
            binary.len()
        )));
    }
    let outputs = wire
        .outputs
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            Ok(RequestedOutput {
                parameters: parameters(o.parameters, &format!("output {:?}", o.name))?,
                name: o.name,
            })
        })
        .collect::<Result<Vec<_>, V2Error>>()?;
    Ok(InferenceRequest {
        model: model.to_string(),
        version: version.map(str::to_string),
        id: wire.id,
        parameters: parameters(wire.parameters, "the request")?,
        inputs,
        outputs,
    })
}

/// One input; `binary` is what follows the JSON header (None without the
/// Inference-Header-Content-Length header), its claimed bytes taken.
fn decode_input(
    input: WireInput<'_>,
    total: &mut usize,
    limits: &Limits,
    binary: Option<&mut &[u8]>,
) -> Result<Tensor, V2Error> {
    let name = input.name;
    let datatype: Datatype = input
        .datatype
        .parse()
        .map_err(|e| V2Error(format!("input {name:?}: {e}")))?;
    let shape = input
        .shape
        .iter()
        .map(|d| usize::try_from(*d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            V2Error(format!(
                "input {name:?}: shape {:?} has a negative dimension; a request's shape counts elements",
                input.shape
            ))
        })?;
    // Each dimension is bounded too, as for v1: a zero elsewhere in the
    // shape would otherwise let one dimension ask a model for anything.
    if let Some(d) = shape.iter().find(|d| **d > limits.max_elements) {
        return Err(V2Error(format!(
            "input {name:?}: dimension {d} of shape {shape:?} is more than the {} elements a \
             request may carry",
            limits.max_elements
        )));
    }
    let count = element_count(&shape)
        .filter(|n| total.checked_add(*n).is_some_and(|t| t <= limits.max_elements))
        .ok_or_else(|| {
            V2Error(format!(
                "input {name:?}: shape {shape:?} makes the request hold more than {} elements, the server's limit",
                limits.max_elements
            ))
        })?;
    *total += count;
    let params = parameters(input.parameters, &format!("input {name:?}"))?;
    let data = match (params.get("binary_data_size"), input.data, binary) {
        (Some(_), Some(_), _) => {
            return Err(V2Error(format!(
                "input {name:?} has both data and binary_data_size: send one"
            )));
        }
        (Some(_), None, None) => {
            return Err(V2Error(format!(
                "input {name:?}: binary_data_size needs the Inference-Header-Content-Length header"
            )));
        }
        (Some(size), None, Some(binary)) => {
            let size = match size {
                Parameter::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            }
            .ok_or_else(|| {
                V2Error(format!(
                    "input {name:?}: binary_data_size must be a byte count"
                ))
            })?;
            if size > binary.len() {
                return Err(V2Error(format!(
                    "input {name:?}: binary_data_size says {size} bytes, but {} remain",
                    binary.len()
                )));
            }
            let (bytes, rest) = binary.split_at(size);
            *binary = rest;
            crate::binary::read(bytes, datatype, count)
                .map_err(|e| V2Error(format!("input {name:?}: {e}")))?
        }
        (None, Some(raw), _) => {
            read_data(raw, datatype, count).map_err(|e| V2Error(format!("input {name:?}: {e}")))?
        }
        (None, None, _) => return Err(V2Error(format!("input {name:?} has no data"))),
    };
    Tensor::new(name, shape, data).map_err(|e| V2Error(e.to_string()))
}

/// `raw` as `count` elements of `datatype`.
fn read_data(raw: &RawValue, datatype: Datatype, count: usize) -> Result<Data, String> {
    fn read<T>(
        raw: &RawValue,
        max: usize,
        leaf: fn(Leaf<'_>) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        // Never more than the text could hold: a shape cannot reserve memory.
        let mut out = Vec::with_capacity(max.min(raw.get().len() / 2 + 1));
        let mut de = serde_json::Deserializer::from_str(raw.get());
        Flatten {
            out: &mut out,
            max,
            leaf,
            depth: 0,
        }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
        Ok(out)
    }
    fn unsigned<T: TryFrom<u64>>(l: Leaf<'_>, name: &str) -> Result<T, String> {
        match l {
            Leaf::U64(v) => T::try_from(v).map_err(|_| format!("{v} is out of {name}'s range")),
            Leaf::I64(v) => Err(format!("{v} is out of {name}'s range")),
            _ => Err(format!("{name} takes integers")),
        }
    }
    fn signed<T: TryFrom<i64>>(l: Leaf<'_>, name: &str) -> Result<T, String> {
        let v = match l {
            Leaf::U64(v) => {
                i64::try_from(v).map_err(|_| format!("{v} is out of {name}'s range"))?
            }
            Leaf::I64(v) => v,
            _ => return Err(format!("{name} takes integers")),
        };
        T::try_from(v).map_err(|_| format!("{v} is out of {name}'s range"))
    }
    fn float(l: Leaf<'_>, name: &str, max: f64) -> Result<f64, String> {
        let v = match l {
            #[allow(clippy::cast_precision_loss)]
            Leaf::U64(v) => v as f64,
            #[allow(clippy::cast_precision_loss)]
            Leaf::I64(v) => v as f64,
            Leaf::F64(v) => v,
            _ => return Err(format!("{name} takes numbers")),
        };
        if v.abs() > max {
            return Err(format!("{v} is out of {name}'s range"));
        }
        Ok(v)
    }
    Ok(match datatype {
        Datatype::Bool => Data::Bool(read(raw, count, |l| match l {
            Leaf::Bool(b) => Ok(b),
            _ => Err("BOOL takes true or false".into()),
        })?),
        Datatype::Uint8 => Data::Uint8(read(raw, count, |l| unsigned(l, "UINT8"))?),
        Datatype::Uint16 => Data::Uint16(read(raw, count, |l| unsigned(l, "UINT16"))?),
        Datatype::Uint32 => Data::Uint32(read(raw, count, |l| unsigned(l, "UINT32"))?),
        Datatype::Uint64 => Data::Uint64(read(raw, count, |l| unsigned(l, "UINT64"))?),
        Datatype::Int8 => Data::Int8(read(raw, count, |l| signed(l, "INT8"))?),
        Datatype::Int16 => Data::Int16(read(raw, count, |l| signed(l, "INT16"))?),
        Datatype::Int32 => Data::Int32(read(raw, count, |l| signed(l, "INT32"))?),
        Datatype::Int64 => Data::Int64(read(raw, count, |l| signed(l, "INT64"))?),
        Datatype::Fp16 => Data::Fp16(read(raw, count, |l| {
            float(l, "FP16", f64::from(half::f16::MAX)).map(|v| half::f16::from_f64(v).to_bits())
        })?),
        #[allow(clippy::cast_possible_truncation)]
        Datatype::Fp32 => Data::Fp32(read(raw, count, |l| {
            float(l, "FP32", f64::from(f32::MAX)).map(|v| v as f32)
        })?),
        Datatype::Fp64 => Data::Fp64(read(raw, count, |l| float(l, "FP64", f64::MAX))?),
        Datatype::Bytes => Data::Bytes(read(raw, count, |l| match l {
            Leaf::Str(s) => Ok(s.as_bytes().to_vec()),
            _ => Err("BYTES takes strings".into()),
        })?),
    })
    .and_then(|data| {
        if data.len() == count {
            Ok(data)
        } else {
            Err(format!(
                "data holds {} element(s) where its shape says {count}",
                data.len()
            ))
        }
    })
}

/// The protocol's parameters: booleans, integers, doubles and strings.
fn parameters(map: Option<Map<String, Value>>, whose: &str) -> Result<Parameters, V2Error> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let p = match v {
                Value::Bool(b) => Parameter::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Parameter::Int(i),
                    None => Parameter::Double(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => Parameter::String(s),
                _ => {
                    return Err(V2Error(format!(
                        "{whose}: parameter {k:?} must be a boolean, a number or a string"
                    )));
                }
            };
            Ok((k, p))
        })
        .collect()
}

#[derive(Serialize)]
struct WireResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    parameters: Map<String, Value>,
    outputs: Vec<WireTensor<'a>>,
}

#[derive(Serialize)]
struct WireTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Map::is_empty")]
    parameters: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<WireData<'a>>,
}

/// Elements as JSON: FP16 as the numbers they are, BYTES as strings.
enum WireData<'a> {
    Native(&'a Data),
}

impl Serialize for WireData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let WireData::Native(data) = self;
        match data {
            Data::Bool(v) => v.serialize(s),
            Data::Uint8(v) => v.serialize(s),
            Data::Uint16(v) => v.serialize(s),
            Data::Uint32(v) => v.serialize(s),
            Data::Uint64(v) => v.serialize(s),
            Data::Int8(v) => v.serialize(s),
            Data::Int16(v) => v.serialize(s),
            Data::Int32(v) => v.serialize(s),
            Data::Int64(v) => v.serialize(s),
            Data::Fp16(v) => s.collect_seq(v.iter().map(|b| half::f16::from_bits(*b).to_f32())),
            Data::Fp32(v) => v.serialize(s),
            Data::Fp64(v) => v.serialize(s),
            // UTF-8 only: encode_response_binary refuses other bytes in
            // JSON (the binary form carries them as they are).
            Data::Bytes(v) => s.collect_seq(v.iter().map(|b| String::from_utf8_lossy(b))),
            Data::Opaque(_) => Err(serde::ser::Error::custom(
                "an opaque tensor has no Open Inference Protocol form",
            )),
        }
    }
}

fn parameters_json(p: &Parameters) -> Map<String, Value> {
    p.iter()
        .map(|(k, v)| {
            let v = match v {
                Parameter::Bool(b) => Value::Bool(*b),
                Parameter::Int(i) => Value::from(*i),
                Parameter::Double(d) => Value::from(*d),
                Parameter::String(s) => Value::String(s.clone()),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The infer response's JSON body.
///
/// # Errors
/// What [`encode_response_binary`] refuses.
pub fn encode_response(response: &InferenceResponse) -> Result<Vec<u8>, V2Error> {
    Ok(encode_response_binary(response, |_| false)?.0)
}

/// Whether the client asked for `output` in the binary form: the requested
/// output's `binary_data` parameter, else the request's
/// `binary_data_output` (Triton's extension; false when neither is set).
pub fn wants_binary(request: &InferenceRequest, output: &str) -> bool {
    let flag = |p: Option<&Parameter>| match p {
        Some(Parameter::Bool(b)) => Some(*b),
        _ => None,
    };
    request
        .outputs
        .iter()
        .find(|o| o.name == output)
        .and_then(|o| flag(o.parameters.get("binary_data")))
        .or_else(|| flag(request.parameters.get("binary_data_output")))
        .unwrap_or(false)
}

/// The infer response's body with the outputs `binary` picks in the binary
/// form after the JSON header, and the header's length for
/// `Inference-Header-Content-Length` (None when every output is JSON).
///
/// # Errors
/// An output JSON cannot carry: a floating-point NaN or infinity in the
/// JSON form (JSON has no literal for them; the binary form carries them
/// as they are), or an opaque tensor (no wire form has one).
pub fn encode_response_binary(
    response: &InferenceResponse,
    binary: impl Fn(&str) -> bool,
) -> Result<(Vec<u8>, Option<usize>), V2Error> {
    for t in &response.outputs {
        if let Data::Opaque(_) = t.data() {
            return Err(V2Error(format!(
                "output {:?} has no Open Inference Protocol form",
                t.name()
            )));
        }
        if !binary(t.name())
            && let Data::Bytes(v) = t.data()
            && let Some(index) = v.iter().position(|b| std::str::from_utf8(b).is_err())
        {
            return Err(V2Error(format!(
                "output {:?} element {index} is not UTF-8 text, which JSON cannot carry \
                 unchanged: ask for the output with \"binary_data\": true to receive its bytes",
                t.name()
            )));
        }
        if !binary(t.name())
            && let Some(index) = first_non_finite(t.data())
        {
            return Err(V2Error(format!(
                "output {:?} element {index} is not a finite number, which JSON cannot \
                 carry: the input is outside what the model can compute (ask for the \
                 output with \"binary_data\": true to receive it as it is)",
                t.name()
            )));
        }
    }
    let mut tail = Vec::new();
    let outputs = response
        .outputs
        .iter()
        .map(|t| {
            let mut parameters = Map::new();
            let data = if binary(t.name()) {
                let before = tail.len();
                crate::binary::write(t.data(), &mut tail);
                parameters.insert("binary_data_size".into(), Value::from(tail.len() - before));
                None
            } else {
                Some(WireData::Native(t.data()))
            };
            WireTensor {
                name: t.name(),
                datatype: t.datatype().as_str(),
                shape: t.shape(),
                parameters,
                data,
            }
        })
        .collect();
    let wire = WireResponse {
        model_name: &response.model,
        model_version: response.version.as_deref(),
        id: response.id.as_deref(),
        parameters: parameters_json(&response.parameters),
        outputs,
    };
    let mut body = serde_json::to_vec(&wire).map_err(|e| V2Error(e.to_string()))?;
    if tail.is_empty() {
        return Ok((body, None));
    }
    let header = body.len();
    body.extend_from_slice(&tail);
    Ok((body, Some(header)))
}

/// The index of the first NaN or infinity among floating-point elements.
fn first_non_finite(data: &Data) -> Option<usize> {
    match data {
        Data::Fp32(v) => v.iter().position(|x| !x.is_finite()),
        Data::Fp64(v) => v.iter().position(|x| !x.is_finite()),
        Data::Fp16(v) => v.iter().position(|b| !half::f16::from_bits(*b).is_finite()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_elements: 1 << 20,
    };

    fn decode(body: &str) -> Result<InferenceRequest, V2Error> {
        decode_request(body.as_bytes(), None, "m", None, &LIMITS)
    }

    fn refused(body: &str) -> String {
        decode(body).expect_err("refused").0
    }

    #[test]
    fn flat_and_nested_data_decode_to_the_same_tensor() {
        let flat = decode(
            r#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[0,0,1,1]}]}"#,
        )
        .expect("flat");
        let nested = decode(
            r#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[0,0],[1,1]]}]}"#,
        )
        .expect("nested");
        assert_eq!(flat, nested);
        assert_eq!(flat.id.as_deref(), Some("7"));
        assert_eq!(flat.inputs[0].data(), &Data::Fp32(vec![0.0, 0.0, 1.0, 1.0]));
    }

    #[test]
    fn every_datatype_decodes_into_its_native_type() {
        let one = |datatype: &str, data: &str| {
            decode(&format!(
                r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"{datatype}","data":{data}}}]}}"#
            ))
            .map(|r| r.inputs[0].data().clone())
        };
        assert_eq!(
            one("BOOL", "[true,false]"),
            Ok(Data::Bool(vec![true, false]))
        );
        assert_eq!(one("UINT8", "[0,255]"), Ok(Data::Uint8(vec![0, 255])));
        assert_eq!(one("INT8", "[-128,127]"), Ok(Data::Int8(vec![-128, 127])));
        assert_eq!(
            one("UINT64", "[0,18446744073709551615]"),
            Ok(Data::Uint64(vec![0, u64::MAX]))
        );
        assert_eq!(
            one("INT64", "[-9007199254740993,9007199254740993]"),
            Ok(Data::Int64(vec![
                -9_007_199_254_740_993,
                9_007_199_254_740_993
            ]))
        );
        assert_eq!(
            one("FP16", "[1.5,-2]"),
            Ok(Data::Fp16(vec![
                half::f16::from_f32(1.5).to_bits(),
                half::f16::from_f32(-2.0).to_bits()
            ]))
        );
        assert_eq!(one("FP64", "[0.1,-0.0]"), Ok(Data::Fp64(vec![0.1, -0.0])));
        assert_eq!(
            one("BYTES", r#"["a","é"]"#),
            Ok(Data::Bytes(vec![b"a".to_vec(), "é".as_bytes().to_vec()]))
        );
        // Out of range or of the wrong kind: named.
        assert!(
            one("UINT8", "[0,256]")
                .expect_err("range")
                .0
                .contains("256 is out of UINT8's range")
        );
        assert!(one("UINT8", "[0,-1]").is_err());
        assert!(
            one("INT32", "[0,1.5]")
                .expect_err("float")
                .0
                .contains("INT32 takes integers")
        );
        assert!(
            one("FP16", "[0,70000]")
                .expect_err("range")
                .0
                .contains("out of FP16's range")
        );
        assert!(one("FP32", "[0,1e300]").is_err());
        assert!(
            one("BOOL", "[0,1]")
                .expect_err("bool")
                .0
                .contains("BOOL takes true or false")
        );
        assert!(one("BYTES", "[1,2]").is_err());
        assert!(
            one("fp32", "[1,2]")
                .expect_err("name")
                .0
                .contains("unknown datatype")
        );
    }

    #[test]
    fn hostile_shapes_and_data_are_refused_with_a_reason() {
        let x = |shape: &str, data: &str| {
            refused(&format!(
                r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"FP32","data":{data}}}]}}"#
            ))
        };
        assert!(
            x("[1099511627776,1099511627776]", "[]").contains("more than the 1048576 elements")
        );
        assert!(x("[1024,2048]", "[]").contains("more than 1048576 elements"));
        assert!(x("[2,-1]", "[1,2]").contains("negative dimension"));
        assert!(x("[2,2]", "[1,2,3]").contains("holds 3 element(s) where its shape says 4"));
        assert!(x("[2]", "[1,2,3]").contains("more than the 2 element(s)"));
        assert!(x("[1]", "1").contains("must be an array"));
        assert!(x("[1]", "[null]").contains("null"));
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(x("[1]", &deep).contains("nested deeper"));
        // Inputs: none, twice, too many, without data.
        assert!(refused(r#"{"inputs":[]}"#).contains("no inputs"));
        let twice = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#;
        assert!(refused(twice).contains("given twice"));
        let many: Vec<String> = (0..=MAX_INPUTS)
            .map(|i| format!(r#"{{"name":"x{i}","shape":[1],"datatype":"FP32","data":[1]}}"#))
            .collect();
        assert!(
            refused(&format!(r#"{{"inputs":[{}]}}"#, many.join(",")))
                .contains("at most 256 inputs")
        );
        assert!(
            refused(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#)
                .contains("has no data")
        );
        assert!(refused("{").contains("not an inference request"));
    }

    #[test]
    fn parameters_and_requested_outputs_are_kept() {
        let r = decode(
            r#"{"parameters":{"a":true,"b":3,"c":0.5,"d":"s"},"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1]}],"outputs":[{"name":"y","parameters":{"binary_data":false}}]}"#,
        )
        .expect("decoded");
        assert_eq!(r.parameters.get("a"), Some(&Parameter::Bool(true)));
        assert_eq!(r.parameters.get("b"), Some(&Parameter::Int(3)));
        assert_eq!(r.parameters.get("c"), Some(&Parameter::Double(0.5)));
        assert_eq!(r.parameters.get("d"), Some(&Parameter::String("s".into())));
        assert_eq!(r.outputs[0].name, "y");
        assert!(refused(r#"{"parameters":{"a":[1]},"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1]}]}"#).contains("must be a boolean, a number or a string"));
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_decoded_or_refused_and_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)
        ) {
            let _ = decode_request(&body, None, "m", None, &LIMITS);
            let split = body.len() / 2;
            let _ = decode_request(&body, Some(split), "m", None, &LIMITS);
        }

        #[test]
        fn fp32_and_int64_data_come_back_as_sent(
            eighths in proptest::collection::vec(-8000i32..8000, 0..64),
            ints in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..64),
        ) {
            #[allow(clippy::cast_precision_loss)]
            let floats: Vec<f32> = eighths.iter().map(|i| *i as f32 / 8.0).collect();
            let body = serde_json::json!({"inputs": [
                {"name": "f", "shape": [floats.len()], "datatype": "FP32", "data": floats},
                {"name": "i", "shape": [1, ints.len()], "datatype": "INT64", "data": [ints]}]});
            let r = decode_request(body.to_string().as_bytes(), None, "m", None, &LIMITS)
                .expect("a valid request");
            proptest::prop_assert_eq!(r.inputs[0].data(), &Data::Fp32(floats));
            proptest::prop_assert_eq!(r.inputs[1].data(), &Data::Int64(ints));
        }
    }

    /// A request as tritonclient sends it by default: the JSON header,
    /// then each input's bytes.
    fn framed(inputs: &[(&str, &str, &[usize], Data)]) -> (Vec<u8>, usize) {
        let mut tail = Vec::new();
        let described: Vec<Value> = inputs
            .iter()
            .map(|(name, datatype, shape, data)| {
                let before = tail.len();
                crate::binary::write(data, &mut tail);
                serde_json::json!({"name": name, "datatype": datatype, "shape": shape,
                    "parameters": {"binary_data_size": tail.len() - before}})
            })
            .collect();
        let mut body = serde_json::json!({"inputs": described})
            .to_string()
            .into_bytes();
        let header = body.len();
        body.extend_from_slice(&tail);
        (body, header)
    }

    #[test]
    fn binary_inputs_decode_and_sizes_that_lie_are_refused() {
        let ids = Data::Int64(vec![101, 2023, 102, 0]);
        let text = Data::Bytes(vec![b"hello".to_vec()]);
        let (body, header) = framed(&[
            ("input_ids", "INT64", &[1, 4], ids.clone()),
            ("text", "BYTES", &[1], text.clone()),
        ]);
        let r = decode_request(&body, Some(header), "m", None, &LIMITS).expect("decoded");
        assert_eq!(r.inputs[0].data(), &ids);
        assert_eq!(r.inputs[1].data(), &text);
        // The header length past the body; bytes nobody claims; no header.
        let err =
            decode_request(&body, Some(body.len() + 1), "m", None, &LIMITS).expect_err("past");
        assert!(err.0.contains("but the body has"), "{err}");
        let mut longer = body.clone();
        longer.push(0);
        let err = decode_request(&longer, Some(header), "m", None, &LIMITS).expect_err("left over");
        assert!(err.0.contains("1 byte(s) of binary data"), "{err}");
        let err = decode_request(&body[..header], None, "m", None, &LIMITS).expect_err("no header");
        assert!(
            err.0
                .contains("needs the Inference-Header-Content-Length header"),
            "{err}"
        );
        // binary_data_size larger than what follows.
        let err = decode_request(&body[..body.len() - 1], Some(header), "m", None, &LIMITS)
            .expect_err("short");
        assert!(err.0.contains("remain"), "{err}");
    }

    #[test]
    fn outputs_asked_for_in_binary_follow_the_json_header() {
        let request = decode(
            r#"{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false}}]}"#,
        )
        .expect("decoded");
        assert!(wants_binary(&request, "y"));
        assert!(!wants_binary(&request, "z"));
        let response = InferenceResponse {
            model: "m".into(),
            outputs: vec![
                Tensor::new("y", vec![2], Data::Fp32(vec![0.5, 1.5])).expect("valid"),
                Tensor::new("z", vec![1], Data::Int64(vec![3])).expect("valid"),
            ],
            ..Default::default()
        };
        let (body, header) =
            encode_response_binary(&response, |o| wants_binary(&request, o)).expect("encodes");
        let header = header.expect("binary outputs");
        let json: Value = serde_json::from_slice(&body[..header]).expect("JSON header");
        assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(json["outputs"][0].get("data").is_none(), "{json}");
        assert_eq!(json["outputs"][1]["data"], serde_json::json!([3]));
        assert_eq!(
            crate::binary::read(&body[header..], Datatype::Fp32, 2),
            Ok(Data::Fp32(vec![0.5, 1.5]))
        );
        assert_eq!(
            encode_response_binary(&response, |_| false)
                .expect("encodes")
                .1,
            None
        );
    }

    #[test]
    fn a_dimension_is_bounded_even_when_another_is_zero() {
        let err = refused(
            r#"{"inputs":[{"name":"x","shape":[4611686018427387904,0],"datatype":"FP32","data":[]}]}"#,
        );
        assert!(err.contains("dimension 4611686018427387904"), "{err}");
        let ok =
            decode(r#"{"inputs":[{"name":"x","shape":[1000,0],"datatype":"FP32","data":[]}]}"#);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn json_refuses_what_it_cannot_carry_and_binary_carries_it() {
        let response = InferenceResponse {
            model: "m".into(),
            outputs: vec![
                Tensor::new("y", vec![3], Data::Fp32(vec![0.5, f32::NAN, 1.0])).expect("valid"),
            ],
            ..Default::default()
        };
        let err = encode_response(&response).expect_err("NaN in JSON");
        assert!(
            err.0.contains("output \"y\" element 1 is not a finite"),
            "{err}"
        );
        let (body, header) = encode_response_binary(&response, |_| true).expect("binary");
        let header = header.expect("binary outputs");
        let Ok(Data::Fp32(v)) = crate::binary::read(&body[header..], Datatype::Fp32, 3) else {
            panic!("three floats follow the header");
        };
        assert!(v[1].is_nan());
        let opaque = InferenceResponse {
            model: "m".into(),
            outputs: vec![
                Tensor::new(
                    "data",
                    vec![1],
                    Data::Opaque(inference_core::Opaque::new(1, ())),
                )
                .expect("valid"),
            ],
            ..Default::default()
        };
        assert!(encode_response_binary(&opaque, |_| true).is_err());
        let bytes = InferenceResponse {
            model: "m".into(),
            outputs: vec![
                Tensor::new(
                    "b",
                    vec![2],
                    Data::Bytes(vec![b"ok".to_vec(), vec![0xff, 0xfe]]),
                )
                .expect("valid"),
            ],
            ..Default::default()
        };
        let err = encode_response(&bytes).expect_err("not UTF-8");
        assert!(err.0.contains("element 1 is not UTF-8"), "{err}");
        assert!(encode_response_binary(&bytes, |_| true).is_ok());
    }

    #[test]
    fn a_response_is_the_protocols_json() {
        let response = InferenceResponse {
            model: "m".into(),
            version: None,
            id: Some("7".into()),
            parameters: Parameters::new(),
            outputs: vec![
                Tensor::new("y", vec![2, 2], Data::Fp32(vec![0.0, 0.0, 1.0, 1.0])).expect("valid"),
                Tensor::new(
                    "h",
                    vec![1],
                    Data::Fp16(vec![half::f16::from_f32(1.5).to_bits()]),
                )
                .expect("valid"),
            ],
        };
        let v: Value =
            serde_json::from_slice(&encode_response(&response).expect("encodes")).expect("JSON");
        assert_eq!(
            v,
            serde_json::json!({"model_name": "m", "id": "7", "outputs": [
                {"name": "y", "datatype": "FP32", "shape": [2, 2], "data": [0.0, 0.0, 1.0, 1.0]},
                {"name": "h", "datatype": "FP16", "shape": [1], "data": [1.5]}]})
        );
    }
}
