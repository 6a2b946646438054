//! `cargo xtask dev [--target T] [SERVICE…]`: the dev loop (see
//! `devloop`), with Ctrl-C tearing down what it started.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::args::{ProfileArg, TargetArg, lock_target};
use super::invocation::Invocation;
use crate::devloop;
use crate::ground::interrupt;
use crate::ground::lock;
use crate::ground::services;
use crate::ground::settings::Loaded;

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
    /// The loop's options: the target's `profile` unless --profile, and
    /// the settings file it reads again when it changes.
    fn options(&self, cx: &Invocation, profile: crate::build::Profile) -> devloop::Options {
        let (file, root) = (cx.config_source.clone(), cx.root.clone());
        devloop::Options {
            profile: self.profile.or(profile),
            logs: !self.no_logs,
            debounce: Duration::from_millis(self.debounce_ms),
            settings: cx.config_source.clone(),
            reload: Box::new(move || {
                let loaded = Loaded::load(file.as_deref(), &root)?;
                Ok(services::names(&loaded.config.services))
            }),
            keep_dir: cx.config.local.run_dir.join("dev"),
        }
    }

    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let target = cx.target_for(name)?;
        target.dev_loop()?;
        let specs = cx.select(&self.services)?;
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let _lock = lock_target(cx, name, lock::Kind::Loop)?;
        let _kept = self.keep.then(|| {
            let (names, target) = (names.clone(), name.as_str());
            interrupt::on_interrupt(move || {
                eprintln!(
                    "\n==> left running (--keep): {}; `cargo xtask teardown --target {target} {}` stops them",
                    names.join(", "),
                    names.join(" ")
                );
            })
        });
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
                // It acts for this loop, which holds the target's lock.
                let status = cmd
                    .env(lock::HELD_BY, std::process::id().to_string())
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
        let opts = self.options(cx, target.profile());
        if let devloop::Ended::SettingsChanged { removed } =
            devloop::run(cx, target.as_ref(), &specs, &opts)?
        {
            if !self.services.is_empty() && self.services.iter().all(|s| removed.contains(s)) {
                eprintln!("==> every service this loop ran left the settings: nothing left to run");
                return Ok(ExitCode::SUCCESS);
            }
            // The same command again, in this process (same pid: the lock,
            // the terminal's Ctrl-C and a supervisor's kill still reach
            // it), reading the new settings, without the services that
            // left them; what runs is kept, and its first round changes
            // only what the settings change.
            use std::os::unix::process::CommandExt;
            let exe = std::env::current_exe()?;
            let args = std::env::args_os()
                .skip(1)
                .filter(|a| !removed.iter().any(|r| a == r.as_str()));
            let err = std::process::Command::new(&exe).args(args).exec();
            anyhow::bail!("cannot start {} again: {err}", exe.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
