//! `cargo xtask teardown`: stop what deploy started. Safe to repeat.
//! `--cluster` then deletes the cluster itself; `--seldon` removes the
//! SeldonDeployments (and with `--all`, Seldon Core).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::args::TargetArg;
use super::args::lock_target;
use super::args::seldon_target as kubernetes;
use super::invocation::Invocation;
use crate::ground::interrupt;
use crate::ground::lock::Kind;
use crate::ground::services;
use crate::targets::clusters;
use crate::targets::target::Target;

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
    /// Also delete the cluster (`cluster down`, on a cluster target)
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
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let _lock = lock_target(cx, name, Kind::Run)?;
        if self.seldon {
            let kube = kubernetes(cx, name)?;
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
        let cluster = cx.cluster_for(name)?;
        if self.cluster && cluster.is_none() {
            bail!(
                "--cluster: target {name} has no cluster; use it with {}",
                clusters::names()
            );
        }
        let target = cx.target_for(name)?;
        let session = target.open(cx)?;
        // A name the settings no longer have may still run there (its
        // table was removed): teardown stops such leftovers anyway, so it
        // is not refused; it is an error only if nothing of that name ran.
        let configured = services::names(&cx.config.services);
        let (known, unknown): (Vec<String>, Vec<String>) = self
            .services
            .iter()
            .cloned()
            .partition(|n| configured.contains(n));
        let specs = if !self.services.is_empty() && known.is_empty() {
            Vec::new()
        } else {
            cx.select(&known)?
        };
        // A Ctrl-C here leaves some services running: say how to finish.
        let _interrupted = interrupt::on_interrupt({
            let again = crate::ground::lock::command_line();
            move || {
                eprintln!(
                    "\n==> teardown interrupted: what the lines above say stopped is stopped; \
                     `{again}` finishes it (safe to repeat)"
                );
            }
        });
        let removed = target.teardown(cx, &session, &specs)?;
        if let Some(n) = unknown.iter().find(|n| !removed.contains(n)) {
            bail!(
                "unknown service `{n}`: the settings do not have it and nothing of that name \
                 runs on {name}; known services: {}",
                configured.join(", ")
            );
        }
        cx.emit(&serde_json::json!({ "target": name.as_str(), "services": removed }));
        cx.runner.unless_dry_run(|| {
            if cx.json() {
                return Ok(());
            }
            match (removed.is_empty(), self.services.is_empty()) {
                (true, _) => {
                    println!("Nothing of kube-mlops's runs on {name}: nothing to tear down.")
                }
                (false, true) => println!(
                    "Torn down on {name}: {} (none of kube-mlops's services is left there).",
                    removed.join(", ")
                ),
                (false, false) => println!("Torn down on {name}: {}.", removed.join(", ")),
            }
            Ok(())
        })?;
        if let Some(cluster) = cluster.filter(|_| self.cluster) {
            cluster.down(cx, self.yes)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
