//! Seldon Core's v1 prediction protocol, shared by the model server and the
//! xtask's contract tester: the JSON messages, a codec between their array
//! forms (`tensor`, `ndarray`) and one flat representation, and contract.json.

pub mod array;
pub mod contract;
pub mod message;
pub mod range;
pub mod raw;

pub use array::{Array, ArrayError, Element, Limits, Repr};
pub use message::{
    DefaultData, Feedback, Meta, Metric, MetricType, Names, SeldonMessage, Status, Tensor,
};
pub use raw::{RawJson, RawObject};
