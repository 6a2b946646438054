//! `cargo xtask teardown`: stop what deploy started. Safe to repeat.
//! `--cluster` then deletes the cluster itself; `--seldon` removes the
//! SeldonDeployments (and with `--all`, Seldon Core).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::args::TargetArg;
use super::args::lock_target;
use super::args::seldon_target as kubernetes;
use crate::ground::context::Ctx;
use crate::ground::lock::Kind;
use crate::ground::services;
use crate::targets::target::Target;
use crate::targets::{self, clusters};

#[derive(Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Only the SeldonDeployments `deploy --seldon` made
    #[arg(long)]
    pub seldon: bool,
    /// With --seldon: also uninstall Seldon Core, its ingress and namespaces
    #[arg(long, requires = "seldon")]
    pub all: bool,
    /// Also delete the cluster (`cluster down`; minikube, kind, gke)
    #[arg(long, conflicts_with = "seldon")]
    pub cluster: bool,
    /// With --cluster: do not ask before deleting a GKE cluster
    #[arg(long, requires = "cluster")]
    pub yes: bool,
    /// Only these services (default: all)
    #[arg(conflicts_with_all = ["cluster", "seldon"])]
    pub services: Vec<String>,
}

impl TeardownArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let _lock = lock_target(cx, name, Kind::Run)?;
        if self.seldon {
            let kube = kubernetes(name)?;
            let session = kube.open(cx)?;
            crate::seldon::deploy::teardown(cx, &kube, &session)?;
            if self.all {
                crate::seldon::install::uninstall(cx, &kube, &session)?;
            } else {
                cx.runner.unless_dry_run(|| {
                    println!("Torn down: no SeldonDeployment of kube-mlops is left on {name}.");
                    Ok(())
                })?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let cluster = clusters::for_name(name);
        if self.cluster && cluster.is_none() {
            bail!(
                "--cluster: target {name} has no cluster; use it with {}",
                clusters::names()
            );
        }
        let target = targets::for_name(name);
        let session = target.open(cx)?;
        let specs = services::select(&cx.config, &cx.root, &self.services)?;
        target.teardown(cx, &session, &specs)?;
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        cx.emit(&serde_json::json!({ "target": name.as_str(), "services": names }));
        cx.runner.unless_dry_run(|| {
            if cx.json() {
                return Ok(());
            }
            if self.services.is_empty() {
                println!(
                    "Torn down on {name}: {} (none of kube-mlops's services is left there).",
                    names.join(", ")
                );
            } else {
                println!("Torn down on {name}: {}.", names.join(", "));
            }
            Ok(())
        })?;
        if let Some(cluster) = cluster.filter(|_| self.cluster) {
            cluster.down(cx, self.yes)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
