//! `cargo xtask cluster up|down|status --target minikube|kind|gke`: the
//! tutorial's `minikube start --memory 4096`, `kind create cluster` and
//! `gcloud container clusters create ... --num-nodes 3`, with a preflight for
//! GKE, a wait until the API server answers, and cluster-info facts.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::{ClusterArgs, ClusterCommand};
use crate::context::Ctx;
use crate::kubecontext;
use crate::runner::Cmd;
use crate::targets::TargetName;

/// How long `up` waits for the API server after the cluster tool returns.
const API_DEADLINE: Duration = Duration::from_secs(300);

impl ClusterArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let target = cx.target(self.target.target);
        if matches!(target, TargetName::Local | TargetName::Docker) {
            bail!("--target {target} has no cluster; use minikube, kind or gke");
        }
        match self.command {
            ClusterCommand::Up => up(cx, target),
            ClusterCommand::Down { yes } => down(cx, target, yes),
            ClusterCommand::Status => status(cx, target),
        }
    }
}

fn gcloud(purpose: &str) -> Cmd {
    Cmd::new("gcloud", purpose)
}

/// gcloud's location flags for the configured cluster.
fn gke_where(cx: &Ctx) -> Vec<String> {
    let g = &cx.config.gke;
    vec![
        "--zone".into(),
        g.zone.clone(),
        "--project".into(),
        g.project.clone(),
    ]
}

/// What GKE needs before anything is created: gcloud, an account, a
/// project, and the Kubernetes Engine API enabled. Each gap is named.
fn gke_preflight(cx: &Ctx) -> Result<()> {
    let purpose = "creating a GKE cluster";
    cx.runner.locate("gcloud", purpose)?;
    let ask = |args: &[&str]| -> Result<String> {
        let p = cx
            .runner
            .probe(&gcloud(purpose).args(args), Duration::from_secs(60))?;
        if !p.success {
            bail!("`gcloud {}` failed: {}", args.join(" "), p.stderr.trim());
        }
        Ok(p.stdout.trim().to_string())
    };
    let account = ask(&["config", "get-value", "account"])?;
    if account.is_empty() || account == "(unset)" {
        bail!(
            "gcloud has no active account: run `gcloud auth login` (or activate a service account)"
        );
    }
    if cx.config.gke.project.is_empty() {
        bail!(
            "no Google Cloud project: set `project` under [gke] in xtask.toml (gcloud's own default is not used, so a deploy never lands in a project by accident)"
        );
    }
    let api = ask(&[
        "services",
        "list",
        "--enabled",
        "--project",
        &cx.config.gke.project,
        "--filter=config.name=container.googleapis.com",
        "--format=value(config.name)",
    ])?;
    if api.is_empty() {
        bail!(
            "the Kubernetes Engine API is not enabled in project {}: run `gcloud services enable container.googleapis.com --project {}`",
            cx.config.gke.project,
            crate::runner::quote(&cx.config.gke.project)
        );
    }
    eprintln!(
        "==> gcloud: account {account}, project {}",
        cx.config.gke.project
    );
    Ok(())
}

fn up(cx: &Ctx, target: TargetName) -> Result<ExitCode> {
    let c = &cx.config;
    match target {
        TargetName::Minikube => {
            cx.runner
                .run(&Cmd::new("minikube", "starting minikube").args([
                    "start".to_string(),
                    "--profile".into(),
                    c.minikube.profile.clone(),
                    "--memory".into(),
                    c.minikube.memory_mb.to_string(),
                    "--cpus".into(),
                    c.minikube.cpus.to_string(),
                ]))?;
        }
        TargetName::Kind => {
            let exists = cx
                .runner
                .probe(
                    &Cmd::new("kind", "listing kind clusters").args(["get", "clusters"]),
                    Duration::from_secs(30),
                )
                .ok()
                .is_some_and(|p| p.stdout.lines().any(|l| l.trim() == c.kind.cluster));
            if exists {
                eprintln!("==> kind cluster {} exists already", c.kind.cluster);
            } else {
                cx.runner
                    .run(&Cmd::new("kind", "creating a kind cluster").args([
                        "create",
                        "cluster",
                        "--name",
                        &c.kind.cluster,
                    ]))?;
            }
        }
        TargetName::Gke => {
            gke_preflight(cx)?;
            let g = &c.gke;
            cx.runner.run(
                &gcloud("creating a GKE cluster")
                    .args(["container", "clusters", "create", &g.cluster])
                    .args(["--num-nodes".to_string(), g.num_nodes.to_string()])
                    .args(["--machine-type", &g.machine_type])
                    .args(gke_where(cx)),
            )?;
            cx.runner.run(
                &gcloud("fetching GKE credentials")
                    .args(["container", "clusters", "get-credentials", &g.cluster])
                    .args(gke_where(cx)),
            )?;
        }
        TargetName::Local | TargetName::Docker => unreachable_target(target)?,
    }
    let context = kubecontext::expected(cx, target)?.context("no context")?;
    wait_for_api(cx, &context)?;
    Ok(ExitCode::SUCCESS)
}

fn unreachable_target(target: TargetName) -> Result<()> {
    bail!("--target {target} has no cluster")
}

/// Polls the API server's /readyz under a deadline, then prints cluster-info.
fn wait_for_api(cx: &Ctx, context: &str) -> Result<()> {
    let readyz = Cmd::new("kubectl", "waiting for the API server").args([
        "--context",
        context,
        "get",
        "--raw",
        "/readyz",
    ]);
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "wait up to {}s until `{}` answers ok",
            API_DEADLINE.as_secs(),
            readyz.display()
        ));
        cx.runner.run(&Cmd::new("kubectl", "cluster facts").args([
            "--context",
            context,
            "cluster-info",
        ]))?;
        return Ok(());
    }
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < API_DEADLINE {
        match cx.runner.probe(&readyz, Duration::from_secs(15)) {
            Ok(p) if p.success => {
                eprintln!(
                    "  ✓ API server of {context} ready after {:.0}s",
                    start.elapsed().as_secs_f64()
                );
                let info = cx.runner.run(&Cmd::new("kubectl", "cluster facts").args([
                    "--context",
                    context,
                    "cluster-info",
                ]))?;
                println!("context {context}\n{}", info.stdout.trim_end());
                return Ok(());
            }
            Ok(p) => last = p.stderr.trim().to_string(),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    bail!(
        "the API server of {context} did not answer within {}s (last: {last})",
        API_DEADLINE.as_secs()
    )
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub fn down(cx: &Ctx, target: TargetName, yes: bool) -> Result<ExitCode> {
    let c = &cx.config;
    match target {
        TargetName::Minikube => {
            cx.runner
                .run(&Cmd::new("minikube", "deleting minikube").args([
                    "delete",
                    "--profile",
                    &c.minikube.profile,
                ]))?;
        }
        TargetName::Kind => {
            cx.runner
                .run(&Cmd::new("kind", "deleting a kind cluster").args([
                    "delete",
                    "cluster",
                    "--name",
                    &c.kind.cluster,
                ]))?;
        }
        TargetName::Gke => {
            if c.gke.project.is_empty() {
                bail!("no Google Cloud project: set `project` under [gke] in xtask.toml");
            }
            let what = format!(
                "GKE cluster {} in {} ({})",
                c.gke.cluster, c.gke.project, c.gke.zone
            );
            if !yes && !cx.runner.is_dry_run() && !confirm(&format!("Delete the {what}?"))? {
                bail!("not deleting the {what} without confirmation: pass --yes");
            }
            cx.runner.run(
                &gcloud("deleting a GKE cluster")
                    .args(["container", "clusters", "delete", &c.gke.cluster])
                    .args(gke_where(cx))
                    .arg("--quiet"),
            )?;
        }
        TargetName::Local | TargetName::Docker => unreachable_target(target)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn status(cx: &Ctx, target: TargetName) -> Result<ExitCode> {
    let c = &cx.config;
    let cmd = match target {
        TargetName::Minikube => Cmd::new("minikube", "cluster status").args([
            "status",
            "--profile",
            &c.minikube.profile,
        ]),
        TargetName::Kind => Cmd::new("kind", "cluster status").args(["get", "clusters"]),
        TargetName::Gke => gcloud("cluster status")
            .args(["container", "clusters", "describe", &c.gke.cluster])
            .args(gke_where(cx))
            .arg("--format=value(status,currentNodeCount,currentMasterVersion)"),
        TargetName::Local | TargetName::Docker => {
            unreachable_target(target)?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let p = cx.runner.probe(&cmd, Duration::from_secs(60))?;
    print!("{}", p.stdout);
    if !p.success {
        eprint!("{}", p.stderr);
        return Ok(ExitCode::FAILURE);
    }
    let context = kubecontext::expected(cx, target)?.context("no context")?;
    let api = cx
        .runner
        .probe(
            &Cmd::new("kubectl", "cluster status").args([
                "--context",
                &context,
                "get",
                "--raw",
                "/readyz",
            ]),
            Duration::from_secs(15),
        )
        .is_ok_and(|p| p.success);
    println!(
        "context {context}: API server {}",
        if api { "ready" } else { "not answering" }
    );
    Ok(if api {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
