//! `cargo xtask build`: the service binaries, release, one cargo invocation;
//! this host's own, or another platform's (`--platform`, `--toolchain`).

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
    #[command(flatten)]
    pub platform: super::args::PlatformArg,
}

impl BuildArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let specs = services::select(&cx.config, &cx.root, &self.services)?;
        let profile = self.profile.or(build::Profile::Release);
        let several = self.platform.platform.len() > 1;
        // A dry run lists what this host lacks and plans the build it
        // would make once installed.
        for to in self.platform.destinations_or_planned(&cx.runner)? {
            for b in build::build_for(cx, &specs, profile, &to)? {
                if several {
                    println!("{}\t{}\t{}", b.spec.name, b.platform, b.binary.display());
                } else {
                    println!("{}\t{}", b.spec.name, b.binary.display());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
