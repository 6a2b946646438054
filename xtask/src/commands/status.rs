//! `cargo xtask status`: each service's state on the target; exit 1 when any
//! is not running and ready, so scripts can gate on it.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::args::TargetArg;
use super::invocation::Invocation;
use crate::ground::settings::ServiceKind;

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArg,
}

impl StatusArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let target = cx.target_for(cx.target(self.target.target))?;
        let session = target.open(cx)?;
        let specs = cx.all_services();
        let rows = target.status(cx, &session, &specs)?;
        let mut notes = target.notes(cx, &session);
        notes.extend(crate::build::workspace::undeployed_lines(
            cx,
            &cx.all_services(),
            cx.config_source.as_deref(),
        ));
        let healthy = rows.iter().all(|r| r.healthy);
        // A dry run's verdict is its plan (blockers included), not health.
        let code = match cx.runner.unless_dry_run(|| Ok(healthy))? {
            Some(false) => ExitCode::FAILURE,
            Some(true) | None => ExitCode::SUCCESS,
        };
        if cx.json() {
            // `{"target", "healthy", "services": [{"name", "healthy", "url",
            // "v2_url", "state"}], "notes": [...]}`: the table's facts, and
            // for a model its Open Inference Protocol URL (its name is the
            // service's).
            let services: Vec<serde_json::Value> =
                rows.iter()
                    .map(|r| {
                        let model = specs.iter().any(|s| {
                            s.name == r.service && matches!(s.settings.kind, ServiceKind::Model(_))
                        });
                        let v2_url = r.url.as_deref().filter(|_| model).map(|u| {
                            format!("{}/v2/models/{}", u.trim_end_matches('/'), r.service)
                        });
                        serde_json::json!({
                            "name": r.service,
                            "healthy": r.healthy,
                            "url": r.url,
                            "v2_url": v2_url,
                            "state": r.state,
                        })
                    })
                    .collect();
            cx.emit(&serde_json::json!({
                "target": cx.target(self.target.target).as_str(),
                "healthy": healthy,
                "services": services,
                "notes": notes,
            }));
            return Ok(code);
        }
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
        for line in notes {
            println!("{line}");
        }
        Ok(code)
    }
}
