//! One flat, row-major view of `data.tensor` and `data.ndarray` that keeps
//! every element exactly as the client wrote it.
//!
//! Elements are spans of JSON text: a number stays the literal that was sent
//! (`0` stays `0`, `7668.0` stays `7668.0`, `-0.0` keeps its sign, a 30-digit
//! id keeps every digit), and a string stays its quoted literal. Models read
//! numbers through [`Array::number`]; a reply built from a request's array
//! writes the same literals back. Every size derived from a request (each
//! dimension, the element count, the nesting depth) is checked against
//! [`Limits`] with checked arithmetic before anything is allocated for it.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::message::{DefaultData, Names, Tensor};

/// Which array form a message used; a response keeps its request's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    Tensor,
    Ndarray,
}

/// numpy's limit on dimensions (`NPY_MAXDIMS` in numpy 1.x, which Seldon
/// Core 1.18's wrapper uses): deeper ndarrays are refused.
pub const MAX_DIMS: usize = 32;

/// Bounds on what one request may describe: the same for every front end
/// (the model server's v1 and v2 APIs).
pub use inference_core::Limits;

/// A row-major array with its shape; elements are JSON literals.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub repr: Repr,
    shape: Vec<usize>,
    /// JSON text holding every element; `spans` index into it.
    text: String,
    spans: Vec<Span>,
    /// How many elements are not numbers (0: a numeric array).
    strings: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// One element, borrowed from the array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element<'a> {
    /// A JSON number literal, exactly as written.
    Number(&'a str),
    /// A JSON string literal, quotes and escapes included.
    String(&'a str),
    /// `true`, `false` or `null` (an ndarray may hold them, as numpy's
    /// object arrays do).
    Literal(&'a str),
}

impl Element<'_> {
    /// The element as a JSON value (numbers outside f64 and u64/i64 lose
    /// precision here; [`Array::to_data`] never does).
    pub fn to_value(self) -> Value {
        match self {
            Self::Number(lit) | Self::String(lit) | Self::Literal(lit) => {
                serde_json::from_str(lit).unwrap_or(Value::Null)
            }
        }
    }
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
        shape: Vec<i64>,
        expected: String,
        got: usize,
    },
    #[error("data.tensor: {0}")]
    BadShape(String),
    #[error("data.tensor.values{path}: {found} is not a number")]
    NotANumber { path: String, found: String },
    #[error("data.tensor.values must be a list of numbers, not {0}")]
    ValuesNotAList(&'static str),
    #[error("data.ndarray is ragged: {0}")]
    Ragged(String),
    #[error(
        "data.ndarray{path}: {found} is not allowed; elements must be numbers, strings, booleans or null"
    )]
    BadElement { path: String, found: &'static str },
    #[error("data.{0} has more than {MAX_DIMS} dimensions (numpy's limit)")]
    TooDeep(&'static str),
    #[error(
        "data.{form}: {what} is more than the {limit} elements a request may carry \
         (half of MAX_BODY_BYTES); send smaller batches"
    )]
    TooLarge {
        form: &'static str,
        what: String,
        limit: usize,
    },
    #[error("output value {index} is not a finite number ({value})")]
    NotFinite { index: usize, value: String },
}

impl Array {
    /// Reads `data.tensor` or `data.ndarray`, checking its sizes against `limits`.
    pub fn from_data(data: &DefaultData, limits: Limits) -> Result<Self, ArrayError> {
        match (&data.tensor, &data.ndarray, &data.tftensor) {
            (Some(_), Some(_), _) => Err(ArrayError::Both),
            (Some(t), None, _) => Self::from_tensor(t, limits),
            (None, Some(nd), _) => Self::from_ndarray(nd.get(), limits),
            (None, None, Some(_)) => Err(ArrayError::TfTensor),
            (None, None, None) => Err(ArrayError::Missing),
        }
    }

    /// As [`Self::from_data`], taking the array's text over instead of
    /// copying it (what a server does with a request it will not keep).
    pub fn take_data(data: DefaultData, limits: Limits) -> Result<Self, ArrayError> {
        match (data.tensor, data.ndarray, data.tftensor) {
            (Some(_), Some(_), _) => Err(ArrayError::Both),
            (Some(t), None, _) => {
                let values: Box<str> = t.values.into();
                Self::tensor(&t.shape, String::from(values), limits)
            }
            (None, Some(nd), _) => {
                let text: Box<str> = nd.into();
                Self::ndarray(String::from(text), limits)
            }
            (None, None, Some(_)) => Err(ArrayError::TfTensor),
            (None, None, None) => Err(ArrayError::Missing),
        }
    }

    /// `np.array(values).reshape(shape)`, as Seldon's wrapper reads a
    /// tensor: one dimension may be `-1` and is inferred.
    pub fn from_tensor(t: &Tensor, limits: Limits) -> Result<Self, ArrayError> {
        Self::tensor(&t.shape, t.values.get().to_owned(), limits)
    }

    fn tensor(shape: &[i64], text: String, limits: Limits) -> Result<Self, ArrayError> {
        let mut scan = Scanner::new(&text, limits, "tensor");
        scan.flat_numbers()?;
        let spans = scan.spans;
        let shape = reshape(shape, spans.len(), limits)?;
        Ok(Self {
            repr: Repr::Tensor,
            shape,
            text,
            spans,
            strings: 0,
        })
    }

    /// Reads nested JSON lists of numbers and strings (`data.ndarray`).
    pub fn from_ndarray(json: &str, limits: Limits) -> Result<Self, ArrayError> {
        Self::ndarray(json.to_owned(), limits)
    }

    fn ndarray(text: String, limits: Limits) -> Result<Self, ArrayError> {
        let mut scan = Scanner::new(&text, limits, "ndarray");
        let shape = scan.nested(0, &mut Vec::new())?;
        let (spans, strings) = (scan.spans, scan.strings);
        Ok(Self {
            repr: Repr::Ndarray,
            shape,
            text,
            spans,
            strings,
        })
    }

    /// A numeric array from float32 values (what models compute in), each
    /// written in its shortest exact form. Non-finite values are refused.
    pub fn from_f32(repr: Repr, shape: Vec<usize>, values: &[f32]) -> Result<Self, ArrayError> {
        let mut buf = ryu::Buffer::new();
        // Measured first, so that the text is allocated once, at its size.
        let mut len = 0;
        for (index, v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(ArrayError::NotFinite {
                    index,
                    value: v.to_string(),
                });
            }
            len += buf.format_finite(*v).len();
        }
        let mut b = Builder {
            text: String::with_capacity(len),
            spans: Vec::with_capacity(values.len()),
            strings: 0,
        };
        for v in values {
            b.push(buf.format_finite(*v), false);
        }
        Ok(b.finish(repr, shape))
    }

    /// An array of float64 numbers written as their shortest round-trip
    /// literals.
    ///
    /// # Errors
    /// A NaN or infinity (JSON has no literal for them), with its index.
    pub fn from_f64(repr: Repr, shape: Vec<usize>, values: &[f64]) -> Result<Self, ArrayError> {
        let mut buf = ryu::Buffer::new();
        let mut b = Builder::with_capacity(values.len());
        for (index, v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(ArrayError::NotFinite {
                    index,
                    value: v.to_string(),
                });
            }
            b.push(buf.format_finite(*v), false);
        }
        Ok(b.finish(repr, shape))
    }

    /// An array of integers (numbers) or booleans (`numeric` false: the
    /// literals `true` and `false`), each written with its `Display`.
    pub fn from_display<T: std::fmt::Display>(
        repr: Repr,
        shape: Vec<usize>,
        values: &[T],
        numeric: bool,
    ) -> Self {
        let mut b = Builder::with_capacity(values.len());
        let mut lit = String::new();
        for v in values {
            use std::fmt::Write;
            lit.clear();
            let _ = write!(lit, "{v}");
            b.push(&lit, !numeric);
        }
        b.finish(repr, shape)
    }

    /// An array from JSON values (anything but a number is written as its
    /// JSON text and counted as not numeric).
    pub fn from_values(repr: Repr, shape: Vec<usize>, values: &[Value]) -> Self {
        let mut b = Builder::with_capacity(values.len());
        for v in values {
            b.push(&v.to_string(), !v.is_number());
        }
        b.finish(repr, shape)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Whether every element is a number.
    pub fn is_numeric(&self) -> bool {
        self.strings == 0
    }

    /// Rows of the batch: the first dimension (a 0-D or 1-D array is one row).
    pub fn rows(&self) -> usize {
        match self.shape.len() {
            0 | 1 => 1,
            _ => self.shape[0],
        }
    }

    /// Elements per row: the product of the dimensions after the first.
    /// (Bounded: every dimension and the element count are within the limits.)
    pub fn cols(&self) -> usize {
        match self.shape.len() {
            0 => 1,
            1 => self.shape[0],
            _ => self.shape[1..].iter().product(),
        }
    }

    pub fn element(&self, i: usize) -> Option<Element<'_>> {
        let s = self.spans.get(i)?;
        let lit = &self.text[s.start as usize..(s.start + s.len) as usize];
        Some(match lit.as_bytes().first() {
            Some(b'"') => Element::String(lit),
            Some(b't' | b'f' | b'n') => Element::Literal(lit),
            _ => Element::Number(lit),
        })
    }

    pub fn elements(&self) -> impl Iterator<Item = Element<'_>> {
        (0..self.len()).filter_map(|i| self.element(i))
    }

    /// Element `i` as f64 (`None` for anything but a number). A literal beyond f64's
    /// range reads as an infinity: callers that compute check finiteness.
    pub fn number(&self, i: usize) -> Option<f64> {
        match self.element(i)? {
            Element::Number(lit) => lit.parse().ok(),
            Element::String(_) | Element::Literal(_) => None,
        }
    }

    /// Back to `data`, in the form the request used, every element written
    /// exactly as it was read.
    pub fn to_data(&self, names: impl Into<Names>) -> DefaultData {
        let mut data = DefaultData {
            names: names.into(),
            ..DefaultData::default()
        };
        if self.repr == Repr::Tensor && self.is_numeric() {
            let mut out = String::with_capacity(self.text_len() + 2);
            out.push('[');
            self.write_flat(&mut out);
            out.push(']');
            data.tensor = Some(Tensor {
                shape: self.shape.iter().map(|d| *d as i64).collect(),
                values: raw(out),
            });
        } else {
            // Exactly the text's length, so that wrapping it copies nothing:
            // the literals, a separator after each, and a pair of brackets
            // per list (one list per index prefix of the shape).
            let lists: usize = (0..self.shape.len())
                .map(|k| self.shape[..k].iter().product::<usize>())
                .sum();
            let mut out = String::with_capacity(self.text_len() + 2 * lists);
            let mut next = 0;
            self.write_nested(&self.shape, &mut next, &mut out);
            data.ndarray = Some(raw(out));
        }
        data
    }

    fn text_len(&self) -> usize {
        self.spans.iter().map(|s| s.len as usize + 1).sum()
    }

    fn literal(&self, s: Span) -> &str {
        &self.text[s.start as usize..(s.start + s.len) as usize]
    }

    fn write_flat(&self, out: &mut String) {
        for (i, s) in self.spans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(self.literal(*s));
        }
    }

    fn write_nested(&self, shape: &[usize], next: &mut usize, out: &mut String) {
        match shape.split_first() {
            None => {
                match self.spans.get(*next) {
                    Some(s) => out.push_str(self.literal(*s)),
                    None => out.push_str("null"),
                }
                *next += 1;
            }
            Some((n, rest)) => {
                out.push('[');
                for i in 0..*n {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_nested(rest, next, out);
                }
                out.push(']');
            }
        }
    }
}

/// Wraps text made of brackets, commas and literals that were read from
/// validated JSON (or written by ryu / serde_json), so it is valid JSON.
fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("array text is built from valid JSON literals")
}

/// Appends literals to one text buffer.
struct Builder {
    text: String,
    spans: Vec<Span>,
    strings: usize,
}

impl Builder {
    fn with_capacity(n: usize) -> Self {
        Self {
            text: String::with_capacity(n * 8),
            spans: Vec::with_capacity(n),
            strings: 0,
        }
    }

    fn push(&mut self, lit: &str, string: bool) {
        let start = self.text.len() as u32;
        self.text.push_str(lit);
        self.spans.push(Span {
            start,
            len: lit.len() as u32,
        });
        self.strings += usize::from(string);
    }

    fn finish(self, repr: Repr, shape: Vec<usize>) -> Array {
        Array {
            repr,
            shape,
            text: self.text,
            spans: self.spans,
            strings: self.strings,
        }
    }
}

/// numpy's reshape of `len` values into `shape` (one `-1` inferred), with
/// checked arithmetic and every dimension within the limits.
fn reshape(shape: &[i64], len: usize, limits: Limits) -> Result<Vec<usize>, ArrayError> {
    let too_large = |what: String| ArrayError::TooLarge {
        form: "tensor",
        what,
        limit: limits.max_elements,
    };
    if shape.len() > MAX_DIMS {
        return Err(ArrayError::TooDeep("tensor.shape"));
    }
    let mut inferred = None;
    let mut known: usize = 1;
    for (i, d) in shape.iter().enumerate() {
        match *d {
            -1 if inferred.is_none() => inferred = Some(i),
            -1 => {
                return Err(ArrayError::BadShape(format!(
                    "shape {shape:?} has more than one -1; only one dimension can be inferred"
                )));
            }
            d if d < 0 => {
                return Err(ArrayError::BadShape(format!(
                    "shape {shape:?} has the negative dimension {d}"
                )));
            }
            d => {
                let d = usize::try_from(d)
                    .ok()
                    .filter(|d| *d <= limits.max_elements)
                    .ok_or_else(|| too_large(format!("dimension {i} of shape {shape:?}")))?;
                known = known
                    .checked_mul(d)
                    .filter(|n| *n <= limits.max_elements)
                    .ok_or_else(|| too_large(format!("shape {shape:?}")))?;
            }
        }
    }
    let mut dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    match inferred {
        Some(i) => {
            if known == 0 {
                return Err(ArrayError::BadShape(format!(
                    "shape {shape:?} cannot infer its -1: the other dimensions multiply to 0 \
                     (numpy cannot reshape that either)"
                )));
            }
            if !len.is_multiple_of(known) {
                return Err(ArrayError::ShapeMismatch {
                    shape: shape.to_vec(),
                    expected: format!("a multiple of {known}"),
                    got: len,
                });
            }
            dims[i] = len / known;
        }
        None if known != len => {
            return Err(ArrayError::ShapeMismatch {
                shape: shape.to_vec(),
                expected: known.to_string(),
                got: len,
            });
        }
        None => {}
    }
    Ok(dims)
}

/// Walks JSON text that serde_json has already validated, recording the
/// span of every scalar. Only arrays, numbers, strings, booleans and null
/// are accepted.
struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
    limits: Limits,
    form: &'static str,
    spans: Vec<Span>,
    strings: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, limits: Limits, form: &'static str) -> Self {
        Self {
            s: text.as_bytes(),
            pos: 0,
            limits,
            form,
            spans: Vec::new(),
            strings: 0,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    /// Consumes `,` (true) or `]` (false) after a list element.
    fn list_next(&mut self) -> bool {
        let more = self.peek() == Some(b',');
        self.pos += 1;
        more
    }

    /// Opens a list; true when it is empty (and already closed).
    fn open(&mut self) -> bool {
        self.pos += 1;
        if self.peek() == Some(b']') {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn push_span(&mut self, start: usize) -> Result<(), ArrayError> {
        if self.spans.len() >= self.limits.max_elements {
            return Err(ArrayError::TooLarge {
                form: self.form,
                what: "the number of elements".into(),
                limit: self.limits.max_elements,
            });
        }
        self.spans.push(Span {
            start: start as u32,
            len: (self.pos - start) as u32,
        });
        Ok(())
    }

    fn number(&mut self) -> Result<(), ArrayError> {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.s.get(self.pos) {
            self.pos += 1;
        }
        self.push_span(start)
    }

    /// Moves past a string literal; returns where it started.
    fn skip_string(&mut self) -> usize {
        let start = self.pos;
        self.pos += 1;
        while let Some(b) = self.s.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => break,
                _ => {}
            }
        }
        start
    }

    fn string(&mut self) -> Result<(), ArrayError> {
        let start = self.skip_string();
        self.strings += 1;
        self.push_span(start)
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self) -> Result<(), ArrayError> {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_lowercase) {
            self.pos += 1;
        }
        self.strings += 1;
        self.push_span(start)
    }

    /// What the value at the current position is, for error messages.
    fn kind(&self) -> &'static str {
        match self.s.get(self.pos) {
            Some(b'n') => "null",
            Some(b't' | b'f') => "a boolean",
            Some(b'{') => "an object",
            Some(b'"') => "a string",
            Some(b'[') => "a list",
            _ => "a number",
        }
    }

    /// `values`: a flat list of numbers.
    fn flat_numbers(&mut self) -> Result<(), ArrayError> {
        if self.peek() != Some(b'[') {
            return Err(ArrayError::ValuesNotAList(self.kind()));
        }
        if self.open() {
            return Ok(());
        }
        loop {
            match self.peek() {
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => {
                    let found = match self.kind() {
                        "a string" => {
                            let start = self.skip_string();
                            String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
                        }
                        other => other.to_string(),
                    };
                    return Err(ArrayError::NotANumber {
                        path: format!("[{}]", self.spans.len()),
                        found,
                    });
                }
            }
            if !self.list_next() {
                return Ok(());
            }
        }
    }

    /// One ndarray value at `depth`; returns its shape. `at` is the index
    /// path, for error messages.
    fn nested(&mut self, depth: usize, at: &mut Vec<usize>) -> Result<Vec<usize>, ArrayError> {
        let path = |at: &[usize]| at.iter().map(|i| format!("[{i}]")).collect::<String>();
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Ok(Vec::new())
            }
            Some(b'"') => {
                self.string()?;
                Ok(Vec::new())
            }
            Some(b't' | b'f' | b'n') => {
                self.literal()?;
                Ok(Vec::new())
            }
            Some(b'[') => {
                if depth >= MAX_DIMS {
                    return Err(ArrayError::TooDeep("ndarray"));
                }
                if self.open() {
                    return Ok(vec![0]);
                }
                let mut first: Option<Vec<usize>> = None;
                let mut n = 0usize;
                loop {
                    at.push(n);
                    let shape = self.nested(depth + 1, at)?;
                    at.pop();
                    match &first {
                        None => first = Some(shape),
                        Some(f) if *f != shape => {
                            let mut this = at.clone();
                            this.push(n);
                            let mut zero = at.clone();
                            zero.push(0);
                            return Err(ArrayError::Ragged(format!(
                                "{} has shape {shape:?} but {} has shape {f:?}",
                                path(&this),
                                path(&zero)
                            )));
                        }
                        Some(_) => {}
                    }
                    n += 1;
                    if n > self.limits.max_elements {
                        return Err(ArrayError::TooLarge {
                            form: self.form,
                            what: format!("a list of more than {n} items"),
                            limit: self.limits.max_elements,
                        });
                    }
                    if !self.list_next() {
                        break;
                    }
                }
                let mut shape = vec![n];
                shape.extend(first.unwrap_or_default());
                Ok(shape)
            }
            _ => Err(ArrayError::BadElement {
                path: path(at),
                found: self.kind(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_elements: 1 << 20,
    };

    #[test]
    fn typed_outputs_are_written_as_json_literals() {
        let ints =
            Array::from_display(Repr::Tensor, vec![2], &[-3i64, 9_007_199_254_740_993], true);
        assert_eq!(
            serde_json::to_string(&ints.to_data(Names::default())).expect("JSON"),
            r#"{"names":[],"tensor":{"shape":[2],"values":[-3,9007199254740993]}}"#
        );
        let bools = Array::from_display(Repr::Ndarray, vec![1, 2], &[true, false], false);
        assert!(!bools.is_numeric());
        assert_eq!(
            serde_json::to_string(&bools.to_data(Names::default())).expect("JSON"),
            r#"{"names":[],"ndarray":[[true,false]]}"#
        );
        let doubles = Array::from_f64(Repr::Ndarray, vec![2], &[0.1, -0.0]).expect("finite");
        assert_eq!(doubles.element(0), Some(Element::Number("0.1")));
        assert_eq!(doubles.element(1), Some(Element::Number("-0.0")));
        assert!(matches!(
            Array::from_f64(Repr::Ndarray, vec![1], &[f64::NAN]),
            Err(ArrayError::NotFinite { index: 0, .. })
        ));
    }

    fn nd(v: Value) -> Result<Array, ArrayError> {
        Array::from_ndarray(&v.to_string(), LIMITS)
    }

    fn tensor(shape: &[i64], values: &str) -> Result<Array, ArrayError> {
        let t = Tensor {
            shape: shape.to_vec(),
            values: RawValue::from_string(values.into()).map_err(|_| ArrayError::Missing)?,
        };
        Array::from_tensor(&t, LIMITS)
    }

    fn echo(a: &Array) -> String {
        serde_json::to_string(&a.to_data(vec![])).unwrap_or_default()
    }

    #[test]
    fn tensor_shape_must_fit_values() {
        let e = tensor(&[2, 2], "[0,0,1]").expect_err("3 values for 4 slots");
        assert_eq!(
            e.to_string(),
            "data.tensor: shape [2, 2] holds 4 values, but 3 were sent"
        );
    }

    #[test]
    fn numbers_come_back_exactly_as_sent() -> Result<(), ArrayError> {
        let a = tensor(&[2, 2], "[0, 0, 1, 1]")?;
        assert_eq!(
            echo(&a),
            r#"{"names":[],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}"#
        );
        let a = tensor(
            &[5],
            "[9007199254740993,7668.0,-0.0,123456789012345678901234567890,1E+2]",
        )?;
        assert!(
            echo(&a).contains("[9007199254740993,7668.0,-0.0,123456789012345678901234567890,1E+2]"),
            "{}",
            echo(&a)
        );
        assert_eq!(a.number(1), Some(7668.0));
        assert!(
            a.number(2)
                .is_some_and(|z| z == 0.0 && z.is_sign_negative())
        );
        Ok(())
    }

    #[test]
    fn one_dimension_can_be_inferred() -> Result<(), ArrayError> {
        assert_eq!(tensor(&[-1, 2], "[1,2,3,4,5,6]")?.shape(), [3, 2]);
        assert_eq!(tensor(&[-1], "[]")?.shape(), [0]);
        let e = tensor(&[-1, 4], "[1,2,3,4,5,6]").expect_err("6 is not a multiple of 4");
        assert!(e.to_string().contains("a multiple of 4"), "{e}");
        assert!(tensor(&[-1, -1], "[1]").is_err());
        assert!(tensor(&[-2], "[1]").is_err());
        Ok(())
    }

    #[test]
    fn sizes_are_bounded_before_anything_is_allocated() {
        // Shapes whose product is 0, or wraps around, used to pass.
        let e = tensor(&[0, 4_611_686_018_427_387_904], "[]").expect_err("huge dim");
        assert!(matches!(e, ArrayError::TooLarge { .. }), "{e}");
        let e = tensor(&[4_294_967_296, 4_294_967_296], "[]").expect_err("wraps");
        assert!(matches!(e, ArrayError::TooLarge { .. }), "{e}");
        let small = Limits { max_elements: 4 };
        let t = Tensor {
            shape: vec![5],
            values: raw("[1,2,3,4,5]".into()),
        };
        assert!(matches!(
            Array::from_tensor(&t, small),
            Err(ArrayError::TooLarge { .. })
        ));
        assert!(matches!(
            Array::from_ndarray("[1,2,3,4,5]", small),
            Err(ArrayError::TooLarge { .. })
        ));
        let deep = format!("{}1{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(
            Array::from_ndarray(&deep, LIMITS),
            Err(ArrayError::TooDeep("ndarray"))
        );
        let shape = vec![1; 33];
        assert_eq!(
            tensor(&shape, "[1]"),
            Err(ArrayError::TooDeep("tensor.shape"))
        );
        assert!(tensor(&shape[1..], "[1]").is_ok());
    }

    #[test]
    fn ndarray_numbers_and_strings() -> Result<(), ArrayError> {
        let a = nd(json!([[1, 2.5], [3, 4]]))?;
        assert_eq!(a.shape(), [2, 2]);
        assert!(a.is_numeric());
        assert_eq!((a.rows(), a.cols()), (2, 2));
        assert_eq!(a.number(1), Some(2.5));
        let s = nd(json!([["a", 1], ["b\"q", 2]]))?;
        assert!(!s.is_numeric());
        assert_eq!(s.element(2), Some(Element::String(r#""b\"q""#)));
        assert_eq!(s.element(2).map(Element::to_value), Some(json!("b\"q")));
        Ok(())
    }

    #[test]
    fn ndarray_booleans_and_null_as_numpy_object_arrays() -> Result<(), ArrayError> {
        let a = nd(json!([[true, null], [false, 1]]))?;
        assert_eq!(a.shape(), [2, 2]);
        assert!(!a.is_numeric());
        assert_eq!(a.element(1), Some(Element::Literal("null")));
        assert_eq!(a.number(3), Some(1.0));
        assert_eq!(a.number(0), None);
        assert_eq!(
            echo(&a),
            r#"{"names":[],"ndarray":[[true,null],[false,1]]}"#
        );
        Ok(())
    }

    #[test]
    fn an_inferred_dimension_beside_a_zero_is_refused() {
        let e = tensor(&[-1, 0], "[]").expect_err("ambiguous");
        assert!(e.to_string().contains("cannot infer its -1"), "{e}");
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
        let e = nd(json!([[1, {"a": 1}]])).expect_err("an object");
        assert_eq!(
            e.to_string(),
            "data.ndarray[0][1]: an object is not allowed; elements must be numbers, strings, booleans or null"
        );
        let e = tensor(&[2], r#"[1,"x"]"#).expect_err("string");
        assert_eq!(
            e.to_string(),
            r#"data.tensor.values[1]: "x" is not a number"#
        );
    }

    #[test]
    fn round_trips_keep_the_form() -> Result<(), ArrayError> {
        for v in [
            json!([[0, 0], [1, 1]]),
            json!([["a", 1.5]]),
            json!(5),
            json!([]),
            json!([[], []]),
        ] {
            let a = nd(v.clone())?;
            let back: Value = serde_json::from_str(&echo(&a)).unwrap_or_default();
            assert_eq!(back["ndarray"], v);
        }
        Ok(())
    }

    #[test]
    fn outputs_must_be_finite() {
        let e = Array::from_f32(Repr::Tensor, vec![2], &[1.0, f32::NAN]).expect_err("NaN");
        assert_eq!(e.to_string(), "output value 1 is not a finite number (NaN)");
        let ok = Array::from_f32(Repr::Tensor, vec![2], &[0.9, 1.0]).map(|a| echo(&a));
        assert_eq!(
            ok.ok().as_deref(),
            Some(r#"{"names":[],"tensor":{"shape":[2],"values":[0.9,1.0]}}"#)
        );
    }

    #[test]
    fn missing_and_both_are_refused() {
        assert_eq!(
            Array::from_data(&DefaultData::default(), LIMITS),
            Err(ArrayError::Missing)
        );
        let both = DefaultData {
            tensor: Some(Tensor {
                shape: vec![0],
                values: raw("[]".into()),
            }),
            ndarray: Some(raw("[]".into())),
            ..Default::default()
        };
        assert_eq!(Array::from_data(&both, LIMITS), Err(ArrayError::Both));
    }
}
