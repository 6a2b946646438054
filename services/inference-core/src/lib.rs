//! The protocol-neutral core of inference, as the Open Inference Protocol
//! (KServe's `docs/predict-api/v2/required_api.md`) and MLServer's
//! `handlers/dataplane.py` shape it: a request is a model name, named
//! typed tensors whose elements live in native memory (`Vec<f32>`,
//! `Vec<i64>`, byte strings…) and parameters; a response likewise. The
//! front ends (Seldon v1 JSON, OIP v2 REST and gRPC) translate to and from
//! these types; runtimes take and return them and never see a wire form.

pub mod limits;
pub mod metadata;
pub mod request;
pub mod tensor;

pub use limits::Limits;
pub use metadata::{Dim, TensorSpec};
pub use request::{
    InferenceRequest, InferenceResponse, OutputError, Parameter, Parameters, RequestedOutput,
};
pub use tensor::{Data, Datatype, Opaque, Tensor, TensorError, element_count};
