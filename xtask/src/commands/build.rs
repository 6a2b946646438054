//! `cargo xtask build`: the service binaries, release, one cargo invocation;
//! this host's own, or another platform's (`--platform`, `--toolchain`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::invocation::Invocation;
use crate::build;

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
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let specs = cx.select(&self.services)?;
        let profile = self.profile.or(build::Profile::Release);
        // Several different ones (`linux/amd64,linux/amd64` is one).
        let several = {
            let mut given = self.platform.platform.clone();
            given.sort_unstable();
            given.dedup();
            given.len() > 1
        };
        // A dry run lists what this host lacks and plans the build it
        // would make once installed.
        let mut binaries = Vec::new();
        let all = cx.all_services();
        for to in self.platform.destinations_or_planned(&cx.runner)? {
            for b in build::build_for(cx, &all, &specs, profile, &to)? {
                if cx.json() {
                    binaries.push(serde_json::json!({
                        "service": b.spec.name,
                        "platform": b.platform.to_string(),
                        "binary": b.binary,
                    }));
                } else if several {
                    println!("{}\t{}\t{}", b.spec.name, b.platform, b.binary.display());
                } else {
                    println!("{}\t{}", b.spec.name, b.binary.display());
                }
            }
        }
        // `{"binaries": [{"service", "platform", "binary"}]}`.
        cx.emit(&serde_json::json!({ "binaries": binaries }));
        Ok(ExitCode::SUCCESS)
    }
}
