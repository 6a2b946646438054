//! `cargo xtask teardown`: stop what deploy started. Safe to repeat.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::TeardownArgs;
use crate::context::Ctx;
use crate::{services, targets};

impl TeardownArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        targets::for_name(name)?.teardown(cx, &services::all(&cx.config))?;
        if !cx.runner.is_dry_run() {
            println!("Torn down: nothing of kube-mlops is running on {name}.");
        }
        Ok(ExitCode::SUCCESS)
    }
}
