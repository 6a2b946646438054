//! `cargo xtask deploy`: build, deliver, apply, wait, smoke-test, print URLs.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::DeployArgs;
use crate::context::Ctx;
use crate::{build, services, smoke, targets};

impl DeployArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        if self.seldon {
            return crate::seldon::deploy(cx, name);
        }
        let target = targets::for_name(name)?;
        let specs = services::select(&cx.config, &self.services)?;
        target
            .ensure(cx)
            .with_context(|| format!("preparing target {name}"))?;
        let built = build::build(cx, &specs)?;
        target
            .deliver(cx, &built)
            .with_context(|| format!("delivering to {name}"))?;
        target
            .apply(cx, &built)
            .with_context(|| format!("deploying to {name}"))?;
        target.wait(cx, &specs)?;
        let urls = target.urls(cx, &specs)?;
        for (spec, url) in specs.iter().zip(&urls) {
            smoke::check(cx, spec, url)?;
        }
        if !cx.runner.is_dry_run() {
            println!("Deployed to {name}:");
            for (spec, url) in specs.iter().zip(&urls) {
                println!("  {:<14} {url}", spec.name);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
