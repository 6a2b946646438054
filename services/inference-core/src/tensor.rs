//! Typed tensors: a datatype, a shape and row-major elements in native
//! memory, checked to agree when built.

use std::any::Any;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A tensor element type, named as the Open Inference Protocol names them
/// (KServe's `required_api.md`, "Tensor Data Types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    /// IEEE 754 half precision.
    Fp16,
    Fp32,
    Fp64,
    /// Arbitrary byte strings, one per element.
    Bytes,
}

impl Datatype {
    /// Every datatype, in the protocol's order.
    pub const ALL: [Datatype; 13] = [
        Self::Bool,
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Fp16,
        Self::Fp32,
        Self::Fp64,
        Self::Bytes,
    ];

    /// The protocol's name: `BOOL`, `UINT8` … `FP64`, `BYTES`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp16 => "FP16",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Bytes => "BYTES",
        }
    }

    /// Bytes per element in the binary tensor form (Triton's
    /// `binary_tensor_data.md`: little-endian, BOOL one byte); `None` for
    /// BYTES, whose elements are each length-prefixed.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            Self::Bool | Self::Uint8 | Self::Int8 => 1,
            Self::Uint16 | Self::Int16 | Self::Fp16 => 2,
            Self::Uint32 | Self::Int32 | Self::Fp32 => 4,
            Self::Uint64 | Self::Int64 | Self::Fp64 => 8,
            Self::Bytes => return None,
        })
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the protocol's datatypes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown datatype {0:?}: expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES"
)]
pub struct UnknownDatatype(pub String);

impl FromStr for Datatype {
    type Err = UnknownDatatype;

    /// The protocol's names, exactly (they are upper case in every
    /// implementation: Triton, KServe, MLServer).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDatatype(s.to_string()))
    }
}

/// A tensor's elements, row-major, in native memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// Half-precision values as their IEEE 754 bits.
    Fp16(Vec<u16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
    /// Elements only the front end that made them can read, carried
    /// through a model that passes its inputs on untouched (the identity
    /// model): Seldon v1 literals, which must come back exactly as they
    /// were written (`7668.0`, `-0.0`, 2^53+1). A runtime that computes
    /// refuses them; no wire form encodes them.
    Opaque(Opaque),
}

/// A front end's own elements (see [`Data::Opaque`]): `len` of them, held
/// as whatever type the front end chose.
#[derive(Clone)]
pub struct Opaque {
    len: usize,
    value: Arc<dyn Any + Send + Sync>,
}

impl Opaque {
    /// `value`, counted as `len` elements.
    pub fn new<T: Any + Send + Sync>(len: usize, value: T) -> Self {
        Self {
            len,
            value: Arc::new(value),
        }
    }

    /// The value, if it is a `T` (the front end that made it reads it back).
    pub fn downcast<T: Any + Send + Sync>(self) -> Option<Arc<T>> {
        self.value.downcast().ok()
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opaque({} element(s))", self.len)
    }
}

impl PartialEq for Opaque {
    /// The same value, not an equal one: what is inside cannot be compared.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && Arc::ptr_eq(&self.value, &other.value)
    }
}

impl Data {
    /// The datatype these elements are.
    pub fn datatype(&self) -> Datatype {
        match self {
            Self::Bool(_) => Datatype::Bool,
            Self::Uint8(_) => Datatype::Uint8,
            Self::Uint16(_) => Datatype::Uint16,
            Self::Uint32(_) => Datatype::Uint32,
            Self::Uint64(_) => Datatype::Uint64,
            Self::Int8(_) => Datatype::Int8,
            Self::Int16(_) => Datatype::Int16,
            Self::Int32(_) => Datatype::Int32,
            Self::Int64(_) => Datatype::Int64,
            Self::Fp16(_) => Datatype::Fp16,
            Self::Fp32(_) => Datatype::Fp32,
            Self::Fp64(_) => Datatype::Fp64,
            // Each element is a piece of a front end's own encoding.
            Self::Bytes(_) | Self::Opaque(_) => Datatype::Bytes,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::Bool(v) => v.len(),
            Self::Uint8(v) => v.len(),
            Self::Uint16(v) | Self::Fp16(v) => v.len(),
            Self::Uint32(v) => v.len(),
            Self::Uint64(v) => v.len(),
            Self::Int8(v) => v.len(),
            Self::Int16(v) => v.len(),
            Self::Int32(v) => v.len(),
            Self::Int64(v) => v.len(),
            Self::Fp32(v) => v.len(),
            Self::Fp64(v) => v.len(),
            Self::Bytes(v) => v.len(),
            Self::Opaque(o) => o.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `more`'s elements (joining tensors along their first
    /// dimension, row-major).
    ///
    /// # Errors
    /// `more` is of another datatype, or either is opaque (a front end's
    /// own elements, which cannot be joined); the elements are unchanged.
    pub fn extend(&mut self, more: Data) -> Result<(), String> {
        match (self, more) {
            (Self::Bool(a), Self::Bool(b)) => a.extend(b),
            (Self::Uint8(a), Self::Uint8(b)) => a.extend(b),
            (Self::Uint16(a), Self::Uint16(b)) | (Self::Fp16(a), Self::Fp16(b)) => a.extend(b),
            (Self::Uint32(a), Self::Uint32(b)) => a.extend(b),
            (Self::Uint64(a), Self::Uint64(b)) => a.extend(b),
            (Self::Int8(a), Self::Int8(b)) => a.extend(b),
            (Self::Int16(a), Self::Int16(b)) => a.extend(b),
            (Self::Int32(a), Self::Int32(b)) => a.extend(b),
            (Self::Int64(a), Self::Int64(b)) => a.extend(b),
            (Self::Fp32(a), Self::Fp32(b)) => a.extend(b),
            (Self::Fp64(a), Self::Fp64(b)) => a.extend(b),
            (Self::Bytes(a), Self::Bytes(b)) => a.extend(b),
            (a, b) => {
                return Err(format!(
                    "cannot join {} elements with {} elements{}",
                    a.datatype(),
                    b.datatype(),
                    if matches!(a, Self::Opaque(_)) || matches!(b, Self::Opaque(_)) {
                        " (opaque)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(())
    }

    /// Elements `start..end`, or `None` when out of range or opaque.
    pub fn slice(&self, start: usize, end: usize) -> Option<Data> {
        Some(match self {
            Self::Bool(v) => Self::Bool(v.get(start..end)?.to_vec()),
            Self::Uint8(v) => Self::Uint8(v.get(start..end)?.to_vec()),
            Self::Uint16(v) => Self::Uint16(v.get(start..end)?.to_vec()),
            Self::Uint32(v) => Self::Uint32(v.get(start..end)?.to_vec()),
            Self::Uint64(v) => Self::Uint64(v.get(start..end)?.to_vec()),
            Self::Int8(v) => Self::Int8(v.get(start..end)?.to_vec()),
            Self::Int16(v) => Self::Int16(v.get(start..end)?.to_vec()),
            Self::Int32(v) => Self::Int32(v.get(start..end)?.to_vec()),
            Self::Int64(v) => Self::Int64(v.get(start..end)?.to_vec()),
            Self::Fp16(v) => Self::Fp16(v.get(start..end)?.to_vec()),
            Self::Fp32(v) => Self::Fp32(v.get(start..end)?.to_vec()),
            Self::Fp64(v) => Self::Fp64(v.get(start..end)?.to_vec()),
            Self::Bytes(v) => Self::Bytes(v.get(start..end)?.to_vec()),
            Self::Opaque(_) => return None,
        })
    }
}

/// The number of elements a shape holds, or `None` when the product does
/// not fit a `usize` (a hostile shape such as `[2^40, 2^40]`).
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d))
}

/// Why a tensor cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("input {name:?}: shape {shape:?} holds more elements than can be counted")]
    ShapeOverflow { name: String, shape: Vec<usize> },
    #[error("input {name:?}: shape {shape:?} holds {expected} element(s), but {got} were given")]
    LengthMismatch {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
}

/// A named tensor whose shape and elements agree.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: Data,
}

impl Tensor {
    /// A tensor of `shape` (each dimension a count, row-major) holding
    /// `data`.
    ///
    /// # Errors
    /// The shape's element count overflows, or differs from the number of
    /// elements given.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Data,
    ) -> Result<Self, TensorError> {
        let name = name.into();
        let Some(expected) = element_count(&shape) else {
            return Err(TensorError::ShapeOverflow { name, shape });
        };
        if expected != data.len() {
            return Err(TensorError::LengthMismatch {
                name,
                shape,
                expected,
                got: data.len(),
            });
        }
        Ok(Self { name, shape, data })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each dimension, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn datatype(&self) -> Datatype {
        self.data.datatype()
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The name, shape and elements, taken apart.
    pub fn into_parts(self) -> (String, Vec<usize>, Data) {
        (self.name, self.shape, self.data)
    }

    /// The same tensor under another name (a runtime's output named as its
    /// model declares it).
    pub fn renamed(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn datatypes_are_named_as_the_protocol_names_them() {
        for d in Datatype::ALL {
            assert_eq!(d.as_str().parse::<Datatype>(), Ok(d));
        }
        assert_eq!(Datatype::Fp32.to_string(), "FP32");
        let err = "fp32".parse::<Datatype>().expect_err("refused");
        assert!(
            err.to_string().contains("unknown datatype \"fp32\""),
            "{err}"
        );
        assert_eq!(Datatype::Bool.size(), Some(1));
        assert_eq!(Datatype::Fp16.size(), Some(2));
        assert_eq!(Datatype::Int64.size(), Some(8));
        assert_eq!(Datatype::Bytes.size(), None);
    }

    #[test]
    fn a_tensor_holds_what_its_shape_says() {
        let t = Tensor::new("x", vec![2, 2], Data::Fp32(vec![0.0, 0.0, 1.0, 1.0])).expect("valid");
        assert_eq!(t.datatype(), Datatype::Fp32);
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.clone().renamed("y").name(), "y");
        let err = Tensor::new("x", vec![2, 3], Data::Int64(vec![1, 2])).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "input \"x\": shape [2, 3] holds 6 element(s), but 2 were given"
        );
        // A scalar is one element; an empty dimension none.
        assert!(Tensor::new("s", vec![], Data::Bool(vec![true])).is_ok());
        assert!(Tensor::new("e", vec![0, 5], Data::Bytes(vec![])).is_ok());
    }

    #[test]
    fn an_opaque_value_comes_back_to_the_front_end_that_made_it() {
        let literals = Opaque::new(2, String::from("[7668.0,-0.0]"));
        let t = Tensor::new("data", vec![2], Data::Opaque(literals.clone())).expect("valid");
        assert_eq!(t.data(), &Data::Opaque(literals.clone()));
        assert_ne!(
            t.data(),
            &Data::Opaque(Opaque::new(2, String::from("[7668.0,-0.0]")))
        );
        assert!(literals.clone().downcast::<u32>().is_none());
        assert_eq!(
            literals.downcast::<String>().as_deref().map(String::as_str),
            Some("[7668.0,-0.0]")
        );
    }

    #[test]
    fn a_shape_whose_product_overflows_is_refused_before_anything_is_allocated() {
        let huge = 1usize << 40;
        assert_eq!(element_count(&[huge, huge]), None);
        let err = Tensor::new("x", vec![huge, huge], Data::Fp32(vec![])).expect_err("refused");
        assert!(matches!(err, TensorError::ShapeOverflow { .. }), "{err}");
    }

    proptest! {
        #[test]
        fn element_count_is_the_checked_product(shape in proptest::collection::vec(0usize..1 << 20, 0..6)) {
            let wide: Option<u128> = shape.iter().try_fold(1u128, |n, d| n.checked_mul(*d as u128));
            let expected = wide.and_then(|n| usize::try_from(n).ok());
            prop_assert_eq!(element_count(&shape), expected);
        }
    }
}
