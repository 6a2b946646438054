//! `cargo xtask seldon install|uninstall|status --target minikube|kind|k3d|gke`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::args::{TargetArg, lock_target, seldon_target};
use super::invocation::Invocation;
use crate::seldon;
use crate::targets::target::Target;

#[derive(Args)]
pub struct SeldonArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(subcommand)]
    pub command: SeldonCommand,
}

#[derive(Subcommand)]
pub enum SeldonCommand {
    /// The RBAC preamble, the ingress, the operator (pinned chart), the models' namespace; idempotent
    Install,
    /// Remove the operator, the ingress kube-mlops installed, their namespaces and the RBAC binding
    Uninstall,
    /// Operator version and readiness, CRD, ingress, namespace (exit 1 unless all are there)
    Status,
}

impl SeldonArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let kube = seldon_target(cx, name)?;
        let _lock = match self.command {
            SeldonCommand::Status => None,
            _ => lock_target(cx, name, crate::ground::lock::Kind::Run)?,
        };
        let session = kube.open(cx)?;
        match self.command {
            SeldonCommand::Install => seldon::install::install(cx, &kube, &session)?,
            SeldonCommand::Uninstall => seldon::install::uninstall(cx, &kube, &session)?,
            SeldonCommand::Status => {
                let rows = seldon::status::status(cx, &kube, &session)?;
                for r in &rows {
                    println!(
                        "{:<10} {:<4} {}",
                        r.what,
                        if r.ok { "ok" } else { "NO" },
                        r.detail
                    );
                }
                if !rows.iter().all(|r| r.ok) {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
