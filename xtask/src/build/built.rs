//! What the other build modules share: a built service, and which cargo
//! builds it.

use std::path::PathBuf;

use crate::build::platform::Platform;
use crate::ground::services::ServiceSpec;

/// A service and the binary that was built for it.
#[derive(Clone, Debug)]
pub struct Built {
    pub spec: ServiceSpec,
    pub binary: PathBuf,
    /// The ONNX Runtime library the binary loads (`runtime =
    /// "onnxruntime"`; its image carries it too).
    pub runtime_library: Option<PathBuf>,
    /// The platform its image is for, which the binary (and library)
    /// must be built for.
    pub platform: Platform,
}

impl Built {
    /// `spec` for `platform` with no binary on this host: its image made
    /// elsewhere (inside `docker build`, or pinned by digest).
    pub fn elsewhere(spec: ServiceSpec, platform: Platform) -> Self {
        Self {
            spec,
            binary: PathBuf::new(),
            runtime_library: None,
            platform,
        }
    }
}

/// The cargo that runs us (`cargo xtask` sets $CARGO), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The cargo profile the services are built with (Cargo.toml says why each
/// is tuned as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `release`, tuned for build time: the inner loop (local, docker,
    /// minikube and kind targets, the dev loop).
    Release,
    /// `dist`, tuned for size: what is pushed to a registry (gke, `image
    /// push`, release scripting).
    Dist,
}

impl Profile {
    /// Cargo's name for it (`--profile NAME`, and the directory under
    /// target/).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Dist => "dist",
        }
    }
}
