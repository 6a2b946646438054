//! `cargo xtask status`: each service's state on the target; exit 1 when any
//! is not running and ready, so scripts can gate on it.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::{services, targets};

impl StatusArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let rows = targets::for_name(name)?.status(cx, &services::all(&cx.config))?;
        println!("{:<14} {:<8} {:<28} STATE", "SERVICE", "HEALTHY", "URL");
        for r in &rows {
            println!(
                "{:<14} {:<8} {:<28} {}",
                r.service,
                if r.healthy { "yes" } else { "no" },
                r.url.as_deref().unwrap_or("-"),
                r.state
            );
        }
        Ok(if rows.iter().all(|r| r.healthy) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
