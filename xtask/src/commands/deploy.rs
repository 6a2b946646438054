//! `cargo xtask deploy`: build, deliver, apply (and wait), smoke-test, print
//! URLs; with `--seldon`, the model as SeldonDeployments.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::args::ProfileArg;
use super::args::TargetArg;
use super::args::seldon_target as kubernetes;
use crate::build;
use crate::ground::context::Ctx;
use crate::ground::services;
use crate::targets;
use crate::targets::target::Target;
use crate::verify::smoke;

#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Deploy the model as SeldonDeployments instead (needs `seldon install`)
    #[arg(long, conflicts_with = "services")]
    pub seldon: bool,
    /// Services to deploy (default: all)
    pub services: Vec<String>,
    #[command(flatten)]
    pub profile: ProfileArg,
}

impl DeployArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        if self.seldon {
            let kube = kubernetes(name)?;
            let session = kube.open(cx)?;
            let profile = self.profile.or(kube.profile());
            let deployed = crate::seldon::deploy::deploy(cx, &kube, &session, profile)?;
            cx.runner.unless_dry_run(|| {
                println!("Deployed to Seldon Core on {name}:");
                for (model, url) in &deployed.models {
                    println!("  {model:<18} {url}");
                }
                Ok(())
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        let target = targets::for_name(name);
        let specs = services::select(&cx.config, &cx.root, &self.services)?;
        let session = target
            .open(cx)
            .and_then(|s| target.prepare(cx, &s).map(|()| s))
            .with_context(|| format!("preparing target {name}"))?;
        let built = build::build(cx, &specs, self.profile.or(target.profile()))?;
        let delivered = target
            .deliver(cx, &session, built)
            .with_context(|| format!("delivering to {name}"))?;
        target
            .apply(cx, &session, &delivered)
            .with_context(|| format!("deploying to {name}"))?;
        let urls = target.urls(cx, &session, &specs)?;
        for (spec, url) in specs.iter().zip(&urls) {
            smoke::check(cx, spec, url)?;
        }
        cx.runner.unless_dry_run(|| {
            println!("Deployed to {name}:");
            for (spec, url) in specs.iter().zip(&urls) {
                println!("  {:<14} {url}", spec.name);
            }
            Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
