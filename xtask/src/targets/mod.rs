//! Where services run. Each target implements [`Target`]; the tasks (deploy,
//! status, logs, teardown) drive any of them the same way, so adding a target
//! is one file here.

mod docker;
pub mod kube;
mod local;

use std::fmt;

use anyhow::Result;
use clap::ValueEnum;
use serde::Deserialize;

use crate::build::Built;
use crate::context::Ctx;
use crate::services::ServiceSpec;

#[derive(ValueEnum, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TargetName {
    /// Background processes on this machine
    Local,
    /// Containers through the docker CLI (Docker Engine or podman)
    Docker,
    /// A local minikube cluster
    Minikube,
    /// A local kind cluster
    Kind,
    /// A GKE cluster on Google Cloud
    Gke,
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Docker => "docker",
            Self::Minikube => "minikube",
            Self::Kind => "kind",
            Self::Gke => "gke",
        })
    }
}

/// One service as a target sees it right now.
pub struct StatusRow {
    pub service: &'static str,
    pub state: String,
    pub healthy: bool,
    pub url: Option<String>,
}

/// The steps of a deployment, in the order the deploy task calls them.
pub trait Target {
    /// Make sure the engine or cluster exists and answers.
    fn ensure(&self, cx: &Ctx) -> Result<()>;
    /// Make the built artefacts reachable by the target (load, push, or
    /// nothing), saying which before it happens.
    fn deliver(&self, cx: &Ctx, built: &[Built]) -> Result<()>;
    /// Start or update the services; leave unchanged ones alone.
    fn apply(&self, cx: &Ctx, built: &[Built]) -> Result<()>;
    /// Block until every service is ready, or explain why not.
    fn wait(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()>;
    /// The base URL of each service, as reachable from this machine.
    fn urls(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<String>>;
    fn status(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<StatusRow>>;
    fn logs(&self, cx: &Ctx, spec: &ServiceSpec, tail: Option<usize>, follow: bool) -> Result<()>;
    /// Stop and remove what `apply` started. Idempotent.
    fn teardown(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()>;
}

pub fn for_name(name: TargetName) -> Result<Box<dyn Target>> {
    match name {
        TargetName::Local => Ok(Box::new(local::Local)),
        TargetName::Docker => Ok(Box::new(docker::Docker::default())),
        k8s => Ok(Box::new(kube::Kube::new(k8s))),
    }
}
