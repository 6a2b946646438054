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
        let target = targets::for_name(name);
        target.dev_loop()?;
        let specs = services::select(&cx.config, &cx.root, &self.services)?;
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let _lock = cx
            .runner
            .unless_dry_run(|| Lock::take(&cx.config.local.run_dir.join("dev.lock")))?;
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
        if devloop::run(cx, target.as_ref(), &specs, &opts)? == devloop::Ended::SettingsChanged {
            // The same command again, in this process (same pid: the lock,
            // the terminal's Ctrl-C and a supervisor's kill still reach
            // it), reading the new settings; what runs is kept, and its
            // first round changes only what the settings change.
            use std::os::unix::process::CommandExt;
            let exe = std::env::current_exe()?;
            let err = std::process::Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .exec();
            anyhow::bail!("cannot start {} again: {err}", exe.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One dev loop per checkout (its run directory): a second one would
/// watch, rebuild and tear down the same services. The file holds the
/// owner's pid; a file whose process is gone is taken over.
struct Lock {
    path: std::path::PathBuf,
    _cleanup: interrupt::Guard,
}

impl Lock {
    fn take(path: &std::path::Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse::<u32>()
            && pid != std::process::id()
            && std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            anyhow::bail!(
                "another `cargo xtask dev` (pid {pid}) runs in this checkout ({} holds its pid): \
                 stop it first (Ctrl-C in its terminal, or `kill -INT {pid}`)",
                path.display()
            );
        }
        std::fs::write(path, std::process::id().to_string())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        let owned = path.to_path_buf();
        Ok(Self {
            path: path.to_path_buf(),
            _cleanup: interrupt::on_interrupt(move || {
                let _ = std::fs::remove_file(&owned);
            }),
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
