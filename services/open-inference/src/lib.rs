//! The Open Inference Protocol ("v2", KServe's
//! `docs/predict-api/v2/required_api.md`, the same text in Triton's and
//! MLServer's docs) over REST, as JSON: an inference request decoded into
//! [`inference_core`]'s typed tensors, with every size checked against
//! [`Limits`] before it is allocated, and a response encoded back. Tensor
//! data comes flat (row-major) or nested; the datatypes are the protocol's
//! thirteen.

mod flatten;
pub mod json;

pub use json::{Limits, V2Error, decode_request, encode_response};
