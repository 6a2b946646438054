//! Seldon Core on the Kubernetes targets: `cargo xtask seldon
//! install|uninstall|status` (Helm), `deploy --seldon` (the model as
//! SeldonDeployments, called through the ingress) and `teardown --seldon`.

mod deploy;
mod install;

use std::process::ExitCode;

use anyhow::{Result, bail};

pub use deploy::{deploy, teardown};

use crate::cli::{SeldonArgs, SeldonCommand};
use crate::config::{Ingress, Seldon};
use crate::context::Ctx;
use crate::runner::Cmd;
use crate::targets::TargetName;

/// Key of the background port-forward to the ingress (minikube, kind).
pub const INGRESS_FORWARD: &str = "seldon-ingress";
/// What `deploy --seldon` creates (deploy/seldon's labels).
pub const SELDON_SELECTOR: &str =
    "app.kubernetes.io/managed-by=kube-mlops,kube-mlops.io/stack=seldon";
const CRD: &str = "seldondeployments.machinelearning.seldon.io";

impl SeldonArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let target = kubernetes_target(cx.target(self.target.target))?;
        match self.command {
            SeldonCommand::Install => install::install(cx, target),
            SeldonCommand::Uninstall => install::uninstall(cx, target),
            SeldonCommand::Status => install::status(cx, target),
        }
    }
}

pub fn kubernetes_target(target: TargetName) -> Result<TargetName> {
    if matches!(target, TargetName::Local | TargetName::Docker) {
        bail!("Seldon Core runs on Kubernetes: use --target minikube, kind or gke (not {target})");
    }
    Ok(target)
}

fn kubectl(context: &str, purpose: &str) -> Cmd {
    Cmd::new("kubectl", purpose).args(["--context", context])
}

fn helm(context: &str, purpose: &str) -> Cmd {
    Cmd::new("helm", purpose).args(["--kube-context", context])
}

/// Namespace, service and port of the ingress in front of the models.
fn ingress_service(s: &Seldon) -> (&'static str, &'static str, u16) {
    match s.ingress {
        Ingress::Ambassador => ("ambassador", "ambassador", 80),
        Ingress::Istio => ("istio-system", "istio-ingressgateway", 80),
    }
}
