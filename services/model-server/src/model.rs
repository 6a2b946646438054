//! What a model is to the server: predict on a batch, optionally name its
//! outputs and describe itself. Models are chosen at start-up (`MODEL`).

use seldon_protocol::{Array, Names, RawJson};

/// A prediction's input or output, one of the SeldonMessage payload kinds.
#[derive(Clone, Debug)]
pub enum Payload {
    /// `data.tensor` or `data.ndarray`, with the form it came in.
    Array(Array),
    /// `jsonData`, as the JSON text that was sent (a model that reads it
    /// parses it: `serde_json::from_str(raw.get())`).
    Json(RawJson),
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

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum ModelError {
    /// The caller sent something this model cannot take (a 400).
    #[error("{0}")]
    BadInput(String),
    /// The model itself failed (a 500).
    #[error("the model failed: {0}")]
    Internal(String),
}

pub trait Model: Send + Sync + 'static {
    /// Short name, for metadata, metrics and logs.
    fn name(&self) -> &str;

    /// Predicts on a batch. `feature_names` are the request's `data.names`
    /// (advisory; `feature_names.to_vec()` reads them).
    fn predict(&self, input: Payload, feature_names: &Names) -> Result<Payload, ModelError>;

    /// Names of the output columns, when the model has them.
    fn class_names(&self) -> Option<&[String]> {
        None
    }

    /// Names of the input columns, when the model has them.
    fn feature_names(&self) -> Option<&[String]> {
        None
    }

    /// Columns of the input, when the model fixes them.
    fn input_width(&self) -> Option<usize> {
        None
    }

    /// An input the model must accept, for `/health/status`.
    fn probe(&self) -> Payload;

    /// Where the model runs, for `/metadata`.
    fn platform(&self) -> &str;

    /// The element type the model computes in, as Seldon's metadata names
    /// tensor types (`FP32`, `FP64`, ...); `None` when it passes values
    /// through untouched.
    fn datatype(&self) -> Option<&str> {
        None
    }
}
