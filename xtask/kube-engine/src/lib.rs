//! kube-mlops' Kubernetes engine: everything the xtask does through the
//! Kubernetes API (kubectl is used only to render kustomize overlays).
//!
//! Every function takes a [`kube::Client`], so the tests drive the same code
//! against a stateful in-memory API (kube-fake-client) that the binary drives
//! against a cluster.

pub mod apply;
pub mod cli;
pub mod explain;
pub mod expose;
pub mod logs;
pub mod manifest;
pub mod resolve;
pub mod rollout;
pub mod status;
pub mod teardown;

/// Field manager for server-side apply: every field we set is owned by it.
pub const FIELD_MANAGER: &str = "kube-mlops";
/// The label every object we create carries (set by `deploy/base`).
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=kube-mlops";
