//! `cargo xtask logs <service>`: the service's output on the target.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::args::TargetArg;
use super::invocation::Invocation;

#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// The service whose log to show
    pub service: String,
    /// Show only the last N lines
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<usize>,
    /// Keep printing new lines until interrupted
    #[arg(long, short = 'f')]
    pub follow: bool,
}

impl LogsArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let target = cx.target_for(cx.target(self.target.target))?;
        let spec = cx.select(std::slice::from_ref(&self.service))?;
        let session = target.open(cx)?;
        target.logs(cx, &session, &spec[0], self.tail, self.follow)?;
        Ok(ExitCode::SUCCESS)
    }
}
