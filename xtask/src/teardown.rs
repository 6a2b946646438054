//! `cargo xtask teardown`: stop what deploy started. Safe to repeat.
//! `--cluster` then deletes the cluster itself.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::TeardownArgs;
use crate::context::Ctx;
use crate::targets::TargetName;
use crate::{cluster, services, targets};

impl TeardownArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        if self.seldon {
            return crate::seldon::teardown(cx, name, self.all);
        }
        if self.cluster && matches!(name, TargetName::Local | TargetName::Docker) {
            anyhow::bail!(
                "--cluster: target {name} has no cluster; use it with minikube, kind or gke"
            );
        }
        targets::for_name(name)?.teardown(cx, &services::all(&cx.config))?;
        if !cx.runner.is_dry_run() {
            println!("Torn down: nothing of kube-mlops is running on {name}.");
        }
        if self.cluster {
            return cluster::down(cx, name, self.yes);
        }
        Ok(ExitCode::SUCCESS)
    }
}
