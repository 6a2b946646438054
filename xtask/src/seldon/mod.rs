//! Seldon Core on the Kubernetes targets: installing it with Helm
//! (`install.rs`), its state (`status.rs`), and the model as
//! SeldonDeployments called through the ingress (`deploy.rs`).

pub mod common;
pub mod deploy;
pub mod install;
pub mod status;
