//! `cargo xtask doctor`: which tools are here, their versions, what needs
//! them and how to install the missing ones. Exit 0 when the target in
//! question has everything it needs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::Value;
use xshell::cmd;

use super::args::TargetArg;
use super::invocation::Invocation;
use crate::build::platform::Platform;
use crate::build::toolchain::{self, Host, Installed, Missing, Toolchain};
use crate::ground::runner::shown;
use crate::ground::settings::TargetName;
use crate::ground::tools::{Tool, hint};
use crate::targets;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: TargetArg,
}

struct Row {
    tool: &'static Tool,
    ok: bool,
    status: &'static str,
    version: String,
    details: String,
}

impl DoctorArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let target = cx.target(self.target.target);
        let rows: Vec<Row> = cx.runner.tools().iter().map(|t| check(cx, t)).collect();
        if cx.json() {
            return json(cx, target, &rows);
        }
        match &cx.config_source {
            Some(p) => println!("settings: {}", p.display()),
            None => println!("settings: built-in defaults (no xtask.toml)"),
        }
        print_table(&rows);
        println!();
        for (platform, toolchain) in platforms() {
            match toolchain {
                Ok(t) => println!("images for {platform}: {t}"),
                Err(missing) => println!(
                    "images for {platform}: not on this host ({}) yet: {}",
                    missing.host,
                    missing.remedy()
                ),
            }
        }
        let names = crate::ground::services::names(&cx.config.services);
        println!("\nservices: {}", names.join(", "));
        let all = cx.all_services();
        for line in crate::build::workspace::undeployed_lines(cx, &all, cx.config_source.as_deref())
        {
            println!("{line}");
        }
        let t = cx.target_for(target)?;
        let needs = t.tools();
        let missing: Vec<&str> = rows
            .iter()
            .filter(|r| !r.ok && needs.contains(&r.tool.name))
            .map(|r| r.tool.name)
            .collect();
        let blockers = blockers(cx, target, t.as_ref());
        println!();
        if missing.is_empty() && blockers.is_empty() {
            let answers = if cx.cluster_for(target)?.is_some() {
                ", its kube context is there and its API server answers"
            } else {
                ""
            };
            println!("target {target}: ready (the tools it needs are here{answers})");
            return Ok(ExitCode::SUCCESS);
        }
        if missing.is_empty() {
            println!("target {target}: NOT ready:");
        } else {
            println!(
                "target {target}: NOT ready; missing or broken: {}",
                missing.join(", ")
            );
        }
        for b in &blockers {
            println!("  - {b}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// `doctor --output json`: `{"settings", "tools": [{"name", "status",
/// "version", "details", "needed_by"}], "services", "platforms":
/// [{"platform", "toolchain", "triple"} or {"platform", "missing": [the
/// commands that install it], "error"}], "target": {"name", "ready",
/// "missing", "blockers"}}`.
fn json(cx: &Invocation, target: TargetName, rows: &[Row]) -> Result<ExitCode> {
    let t = cx.target_for(target)?;
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok && t.tools().contains(&r.tool.name))
        .map(|r| r.tool.name)
        .collect();
    let blockers = blockers(cx, target, t.as_ref());
    let ready = missing.is_empty() && blockers.is_empty();
    let doc = serde_json::json!({
        "settings": cx.config_source.as_ref().map(|p| p.display().to_string()),
        "tools": rows.iter().map(|r| serde_json::json!({
            "name": r.tool.name,
            "status": r.status,
            "version": (r.version != "-").then_some(&r.version),
            "details": r.details,
            "needed_by": needed(r.tool),
        })).collect::<Vec<_>>(),
        "services": crate::ground::services::names(&cx.config.services),
        "platforms": platforms().into_iter().map(|(platform, toolchain)| match toolchain {
            Ok(t) => serde_json::json!({
                "platform": platform.to_string(),
                "toolchain": t.to_string(),
                "triple": t.triple(),
            }),
            Err(missing) => serde_json::json!({
                "platform": platform.to_string(),
                "missing": missing.zigbuild,
                "error": missing.to_string(),
            }),
        }).collect::<Vec<_>>(),
        "target": {
            "name": target.as_str(),
            "ready": ready,
            "missing": missing,
            "blockers": blockers,
        },
    });
    cx.emit(&doc);
    Ok(if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(cx: &Invocation, tool: &'static Tool) -> Row {
    let mut row = Row {
        tool,
        ok: false,
        status: "missing",
        version: "-".into(),
        details: String::new(),
    };
    if !cx.runner.on_path(tool.name) {
        row.details = format!("install: {}", hint(tool));
        return row;
    }
    let (name, args) = (tool.name, tool.version_args);
    let version = || cmd!(cx.sh, "{name} {args...}");
    match cx.runner.probe(version(), "doctor", TIMEOUT) {
        Ok(p) if p.success || (!tool.version_exits_0 && !p.stdout.trim().is_empty()) => {
            row.ok = true;
            row.status = "ok";
            row.version = first_line(&p.stdout)
                .or_else(|| first_line(&p.stderr))
                .unwrap_or("(no version printed)")
                .to_string();
            row.details = extra_details(cx, tool.name);
        }
        Ok(p) => {
            row.status = "broken";
            row.details = format!(
                "`{}` failed: {}",
                shown(&version().into()),
                first_line(&p.stderr)
                    .or_else(|| first_line(&p.stdout))
                    .unwrap_or("no output")
            );
        }
        Err(e) => {
            row.status = "broken";
            row.details = format!("{e:#}");
        }
    }
    row
}

/// What else matters about a tool: is an engine behind docker, which kube
/// context is current, which Google account and project are active.
fn extra_details(cx: &Invocation, name: &str) -> String {
    let query = |args: &[&str]| {
        cx.runner
            .probe(cmd!(cx.sh, "{name} {args...}"), "doctor", TIMEOUT)
            .ok()
            .filter(|p| p.success)
            .map(|p| p.stdout.trim().to_string())
    };
    match name {
        "docker" => match query(&["version", "--format", "{{.Server.Version}}"]) {
            Some(v) if !v.is_empty() => format!("engine answers (server {v})"),
            _ => "no engine answers (start Docker, or podman's socket and set DOCKER_HOST)".into(),
        },
        "kubectl" => match query(&["config", "current-context"]) {
            Some(c) if !c.is_empty() => format!("current context: {c}"),
            _ => "no current context".into(),
        },
        "gcloud" => {
            let config: Value = query(&["config", "list", "--format=json"])
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Value::Null);
            let account = config["core"]["account"]
                .as_str()
                .unwrap_or("none (run `gcloud auth login`)");
            let project = config["core"]["project"]
                .as_str()
                .unwrap_or("none (run `gcloud config set project ID`)");
            format!("account: {account}; project: {project}")
        }
        _ => String::new(),
    }
}

/// How this host builds each platform's binaries, or what it lacks.
/// What stops this host from building for the platform `target`'s
/// machines run (its engine's or nodes', as deploy asks them), with the
/// commands that would let it; None when it can, or when the machines
/// cannot be asked (the target's other blockers say why).
/// What keeps `target` from working beyond its tools; its machines'
/// platform is asked only of a target that answers (on a cluster that
/// reads the nodes, through kube-engine, built for it).
fn blockers(
    cx: &Invocation,
    name: TargetName,
    target: &dyn targets::target::Target,
) -> Vec<String> {
    let mut found = target.blockers(cx);
    if found.is_empty() {
        found.extend(platform_blocker(cx, name, target));
    }
    found
}

fn platform_blocker(
    cx: &Invocation,
    name: TargetName,
    target: &dyn targets::target::Target,
) -> Option<String> {
    let machines = target.machines_run()?;
    let runs_on = cx.machines_platform(name).ok()??;
    let e = crate::build::Destination::pick(Some(runs_on), toolchain::Kind::Auto, None).err()?;
    Some(format!("{machines} {runs_on}: {e:#}"))
}

fn platforms() -> Vec<(Platform, Result<Toolchain, Missing>)> {
    let installed = Installed::detect();
    Platform::ALL
        .into_iter()
        .map(|p| (p, toolchain::choose(Host::here(), p, &installed)))
        .collect()
}

fn first_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).find(|l| !l.is_empty())
}

/// The targets that need `tool`, in `targets::all` order.
fn needed_by(tool: &Tool) -> Vec<String> {
    targets::all()
        .into_iter()
        .map(|(t, _)| t)
        // What a target needs does not depend on its settings.
        .filter(|t| {
            targets::for_name(
                *t,
                &crate::ground::settings::Config::default(),
                &Default::default(),
            )
            .is_ok_and(|t| t.tools().contains(&tool.name))
        })
        .map(|t| t.to_string())
        .collect()
}

/// The targets and tasks that need `tool`, the same in the table and JSON.
fn needed(tool: &Tool) -> Vec<String> {
    let mut v = needed_by(tool);
    if !tool.also_for.is_empty() {
        v.push(tool.also_for.to_string());
    }
    v
}

fn print_table(rows: &[Row]) {
    let vw = rows
        .iter()
        .map(|r| r.version.len())
        .max()
        .unwrap_or(7)
        .clamp(7, 40);
    // As wide as the longest entry: DETAILS never runs into it.
    let nw = rows
        .iter()
        .map(|r| needed(r.tool).join(", ").chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:<9} {:<8} {:<vw$} {:<nw$}  DETAILS",
        "TOOL", "STATUS", "VERSION", "NEEDED BY"
    );
    for r in rows {
        let version: String = r.version.chars().take(vw).collect();
        println!(
            "{:<9} {:<8} {:<vw$} {:<nw$}  {}",
            r.tool.name,
            r.status,
            version,
            needed(r.tool).join(", "),
            r.details
        );
    }
}
