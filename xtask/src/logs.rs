//! `cargo xtask logs <service>`: the service's output on the target.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::LogsArgs;
use crate::context::Ctx;
use crate::{services, targets};

impl LogsArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let spec = services::select(&cx.config, std::slice::from_ref(&self.service))?;
        targets::for_name(name)?.logs(cx, &spec[0], self.tail, self.follow)?;
        Ok(ExitCode::SUCCESS)
    }
}
