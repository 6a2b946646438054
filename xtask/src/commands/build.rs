//! `cargo xtask build`: the service binaries, release, one cargo invocation.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::build;
use crate::ground::context::Ctx;
use crate::ground::services;

#[derive(Args)]
pub struct BuildArgs {
    /// Services to build (default: all)
    pub services: Vec<String>,
    #[command(flatten)]
    pub profile: super::args::ProfileArg,
}

impl BuildArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let specs = services::select(&cx.config, &cx.root, &self.services)?;
        for b in build::build(cx, &specs, self.profile.or(build::Profile::Release))? {
            println!("{}\t{}", b.spec.name, b.binary.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
