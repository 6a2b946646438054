//! One flat, row-major representation of `data.tensor` and `data.ndarray`,
//! validated on the way in (shape fits values, no ragged rows) and turned
//! back into the form the request used on the way out.

use serde_json::{Number, Value};

use crate::message::{DefaultData, Tensor};

/// Which array form a message used; a response keeps its request's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    Tensor,
    Ndarray,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Elements {
    Numbers(Vec<f64>),
    /// An ndarray holding strings (or strings and numbers).
    Values(Vec<Value>),
}

impl Elements {
    pub fn len(&self) -> usize {
        match self {
            Self::Numbers(v) => v.len(),
            Self::Values(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A row-major array with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub repr: Repr,
    pub shape: Vec<usize>,
    pub elements: Elements,
}

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum ArrayError {
    #[error(
        "data has neither tensor nor ndarray: send data.tensor {{\"shape\":[...],\"values\":[...]}} or data.ndarray [[...]]"
    )]
    Missing,
    #[error("data has both tensor and ndarray: send one of them")]
    Both,
    #[error("data.tftensor is not supported: send data.tensor or data.ndarray")]
    TfTensor,
    #[error("data.tensor: shape {shape:?} holds {expected} values, but {got} were sent")]
    ShapeMismatch {
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    #[error("data.ndarray is ragged: {0}")]
    Ragged(String),
    #[error("data.ndarray{path}: {found} is not allowed; elements must be numbers or strings")]
    BadElement { path: String, found: &'static str },
}

impl Array {
    /// Reads `data.tensor` or `data.ndarray`.
    pub fn from_data(data: &DefaultData) -> Result<Self, ArrayError> {
        match (&data.tensor, &data.ndarray, &data.tftensor) {
            (Some(_), Some(_), _) => Err(ArrayError::Both),
            (Some(t), None, _) => Self::from_tensor(t),
            (None, Some(nd), _) => Self::from_ndarray(nd),
            (None, None, Some(_)) => Err(ArrayError::TfTensor),
            (None, None, None) => Err(ArrayError::Missing),
        }
    }

    pub fn from_tensor(t: &Tensor) -> Result<Self, ArrayError> {
        let expected = t.shape.iter().product::<usize>();
        if expected != t.values.len() {
            return Err(ArrayError::ShapeMismatch {
                shape: t.shape.clone(),
                expected,
                got: t.values.len(),
            });
        }
        Ok(Self {
            repr: Repr::Tensor,
            shape: t.shape.clone(),
            elements: Elements::Numbers(t.values.clone()),
        })
    }

    pub fn from_ndarray(v: &Value) -> Result<Self, ArrayError> {
        let shape = shape_of(v, &mut String::new())?;
        let mut flat = Vec::with_capacity(shape.iter().product());
        flatten(v, &mut flat);
        let elements = if flat.iter().all(Value::is_number) {
            Elements::Numbers(flat.iter().filter_map(Value::as_f64).collect())
        } else {
            Elements::Values(flat)
        };
        Ok(Self {
            repr: Repr::Ndarray,
            shape,
            elements,
        })
    }

    /// A numeric array from a `rows x cols` matrix.
    pub fn matrix(repr: Repr, rows: usize, cols: usize, values: Vec<f64>) -> Self {
        Self {
            repr,
            shape: vec![rows, cols],
            elements: Elements::Numbers(values),
        }
    }

    /// Rows of the batch: the first dimension (a 1-D array is one row).
    pub fn rows(&self) -> usize {
        match self.shape.len() {
            0 | 1 => 1,
            _ => self.shape[0],
        }
    }

    /// Columns per row: everything after the first dimension.
    pub fn cols(&self) -> usize {
        match self.shape.len() {
            0 => 1,
            1 => self.shape[0],
            _ => self.shape[1..].iter().product(),
        }
    }

    /// Back to `data`, in the form the request used.
    pub fn to_data(&self, names: Vec<String>) -> DefaultData {
        let mut data = DefaultData {
            names,
            ..DefaultData::default()
        };
        match (&self.repr, &self.elements) {
            (Repr::Tensor, Elements::Numbers(v)) => {
                data.tensor = Some(Tensor {
                    shape: self.shape.clone(),
                    values: v.clone(),
                });
            }
            (_, elements) => {
                let flat: Vec<Value> = match elements {
                    Elements::Numbers(v) => v.iter().map(|x| number(*x)).collect(),
                    Elements::Values(v) => v.clone(),
                };
                data.ndarray = Some(nest(&self.shape, &mut flat.into_iter()));
            }
        }
        data
    }
}

/// Numbers as JSON, keeping integers integral (`1`, not `1.0`) as numpy does
/// for integer arrays; non-finite values (not JSON) become null.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        // Exact: |x| < 2^53 and integral.
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn shape_of(v: &Value, path: &mut String) -> Result<Vec<usize>, ArrayError> {
    match v {
        Value::Number(_) | Value::String(_) => Ok(Vec::new()),
        Value::Array(items) => {
            let mut inner: Option<Vec<usize>> = None;
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let s = shape_of(item, path)?;
                path.truncate(len);
                match &inner {
                    None => inner = Some(s),
                    Some(first) if *first != s => {
                        return Err(ArrayError::Ragged(format!(
                            "{path}[{i}] has shape {s:?} but {path}[0] has shape {first:?}"
                        )));
                    }
                    Some(_) => {}
                }
            }
            let mut shape = vec![items.len()];
            shape.extend(inner.unwrap_or_default());
            Ok(shape)
        }
        Value::Null => Err(bad(path, "null")),
        Value::Bool(_) => Err(bad(path, "a boolean")),
        Value::Object(_) => Err(bad(path, "an object")),
    }
}

fn bad(path: &str, found: &'static str) -> ArrayError {
    ArrayError::BadElement {
        path: path.to_string(),
        found,
    }
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        leaf => out.push(leaf.clone()),
    }
}

fn nest(shape: &[usize], flat: &mut impl Iterator<Item = Value>) -> Value {
    match shape.split_first() {
        None => flat.next().unwrap_or(Value::Null),
        Some((n, rest)) => Value::Array((0..*n).map(|_| nest(rest, flat)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nd(v: Value) -> Result<Array, ArrayError> {
        Array::from_ndarray(&v)
    }

    #[test]
    fn tensor_shape_must_fit_values() {
        let t = Tensor {
            shape: vec![2, 2],
            values: vec![0.0, 0.0, 1.0],
        };
        let e = Array::from_tensor(&t).expect_err("3 values for 4 slots");
        assert_eq!(
            e.to_string(),
            "data.tensor: shape [2, 2] holds 4 values, but 3 were sent"
        );
    }

    #[test]
    fn ndarray_numbers_and_strings() -> Result<(), ArrayError> {
        let a = nd(json!([[1, 2.5], [3, 4]]))?;
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.elements, Elements::Numbers(vec![1.0, 2.5, 3.0, 4.0]));
        assert_eq!((a.rows(), a.cols()), (2, 2));
        let s = nd(json!([["a", 1], ["b", 2]]))?;
        assert!(matches!(s.elements, Elements::Values(_)));
        Ok(())
    }

    #[test]
    fn ragged_ndarray_is_refused_with_where() {
        let e = nd(json!([[1, 2], [3]])).expect_err("ragged");
        assert_eq!(
            e.to_string(),
            "data.ndarray is ragged: [1] has shape [1] but [0] has shape [2]"
        );
        let e = nd(json!([[1, 2], [3, [4]]])).expect_err("ragged deeper");
        assert!(e.to_string().contains("ragged"), "{e}");
    }

    #[test]
    fn bad_elements_are_named() {
        let e = nd(json!([[1, null]])).expect_err("null");
        assert_eq!(
            e.to_string(),
            "data.ndarray[0][1]: null is not allowed; elements must be numbers or strings"
        );
        assert!(nd(json!([{"a": 1}])).is_err());
        assert!(nd(json!([true])).is_err());
    }

    #[test]
    fn round_trips_keep_the_form() -> Result<(), ArrayError> {
        let v = json!([[0, 0], [1, 1]]);
        let a = nd(v.clone())?;
        assert_eq!(a.to_data(vec![]).ndarray, Some(v));
        let t = Tensor {
            shape: vec![2, 2],
            values: vec![0.0, 0.0, 1.0, 1.0],
        };
        assert_eq!(Array::from_tensor(&t)?.to_data(vec![]).tensor, Some(t));
        let s = json!([["a", 1.5]]);
        assert_eq!(nd(s.clone())?.to_data(vec![]).ndarray, Some(s));
        Ok(())
    }

    #[test]
    fn missing_and_both_are_refused() {
        assert_eq!(
            Array::from_data(&DefaultData::default()),
            Err(ArrayError::Missing)
        );
        let both = DefaultData {
            tensor: Some(Tensor::default()),
            ndarray: Some(json!([])),
            ..Default::default()
        };
        assert_eq!(Array::from_data(&both), Err(ArrayError::Both));
    }
}
