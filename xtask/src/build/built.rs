//! What the other build modules share: a built service, and which cargo
//! builds it.

use std::path::PathBuf;

use crate::ground::services::ServiceSpec;

/// A service and the binary that was built for it.
#[derive(Clone, Debug)]
pub struct Built {
    pub spec: ServiceSpec,
    pub binary: PathBuf,
}

/// The cargo that runs us (`cargo xtask` sets $CARGO), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
