//! The Open Inference Protocol ("v2", KServe's
//! `docs/predict-api/v2/required_api.md`, the same text in Triton's and
//! MLServer's docs) over REST, as JSON: an inference request decoded into
//! [`inference_core`]'s typed tensors, with every size checked against
//! [`Limits`] before it is allocated, and a response encoded back. Tensor
//! data comes flat (row-major) or nested, or in the binary tensor data
//! extension ([`binary`]); the datatypes are the protocol's thirteen.

pub mod binary;
mod flatten;
pub mod json;

pub use inference_core::Limits;
pub use json::{V2Error, decode_request, encode_response, encode_response_binary, wants_binary};
