//! `cargo xtask dev [--target T] [SERVICE…]`: the dev loop (see
//! `devloop`), with Ctrl-C tearing down what it started.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::args::{ProfileArg, TargetArg};
use crate::devloop;
use crate::ground::context::Ctx;
use crate::ground::interrupt;
use crate::ground::services;
use crate::ground::settings::TargetName;
use crate::targets;

#[derive(Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Services to run (default: all)
    pub services: Vec<String>,
    /// Do not stream the services' log lines
    #[arg(long)]
    pub no_logs: bool,
    /// Leave what the loop started running after Ctrl-C
    #[arg(long)]
    pub keep: bool,
    /// Milliseconds of quiet after a change before rebuilding
    #[arg(long, default_value_t = 300)]
    pub debounce_ms: u64,
    #[command(flatten)]
    pub profile: ProfileArg,
}

impl DevArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        if name == TargetName::Gke {
            anyhow::bail!(
                "the dev loop runs on local, docker, minikube and kind, not gke: every round \
                 would push images over the network and wait for a remote rollout. Iterate \
                 with `cargo xtask dev --target kind` (or minikube), then `cargo xtask deploy \
                 --target gke`"
            );
        }
        let target = targets::for_name(name);
        let specs = services::select(&cx.config, &cx.root, &self.services)?;
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        // Ctrl-C: the same teardown a user would run, by this very binary,
        // of the services this loop runs (others keep running). It runs in
        // a process group of its own, so that a second Ctrl-C does not cut
        // it short.
        let _guard = (!self.keep).then(|| {
            let exe = std::env::current_exe().unwrap_or_else(|_| "cargo-xtask".into());
            let config = cx.config_source.clone();
            interrupt::on_interrupt(move || {
                eprintln!(
                    "\n==> stopping: tearing down {} (a second Ctrl-C does not interrupt it)",
                    names.join(", ")
                );
                let mut cmd = std::process::Command::new(&exe);
                if let Some(c) = &config {
                    cmd.arg("--config").arg(c);
                }
                use std::os::unix::process::CommandExt;
                let status = cmd
                    .args(["--progress=never", "teardown", "--target", name.as_str()])
                    .args(&names)
                    .process_group(0)
                    .status();
                if !status.is_ok_and(|s| s.success()) {
                    eprintln!(
                        "==> teardown did not finish; run `cargo xtask teardown --target {} {}`",
                        name.as_str(),
                        names.join(" ")
                    );
                }
            })
        });
        let opts = devloop::Options {
            profile: self.profile.or(target.profile()),
            logs: !self.no_logs,
            debounce: Duration::from_millis(self.debounce_ms),
        };
        devloop::run(cx, target.as_ref(), &specs, &opts)?;
        Ok(ExitCode::SUCCESS)
    }
}
