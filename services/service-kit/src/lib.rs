//! What every kube-mlops service shares: settings from the environment, the
//! server bootstrap (bind, HTTP/1 with bounded connections and timeouts,
//! probes, metrics, JSON errors, request decompression), bounded payload
//! reading, and graceful shutdown.

pub mod addrs;
pub mod body;
pub mod env;
pub mod errors;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod probes;
mod server;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;

pub use addrs::ConnAddrs;
pub use env::ServeEnv;
pub use errors::ApiError;
pub use server::{Service, main, run};
