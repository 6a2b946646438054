//! Kube contexts: which one each target expects, the guard that refuses to
//! act on any other, and `cargo xtask context list|use|current`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{ContextArgs, ContextCommand};
use crate::context::Ctx;
use crate::runner::{Cmd, quote};
use crate::targets::TargetName;

/// The kube context a Kubernetes target must use, or None for targets
/// without a cluster.
pub fn expected(cx: &Ctx, target: TargetName) -> Result<Option<String>> {
    let c = &cx.config;
    Ok(match target {
        TargetName::Local | TargetName::Docker => None,
        TargetName::Minikube => Some(c.minikube.profile.clone()),
        TargetName::Kind => Some(format!("kind-{}", c.kind.cluster)),
        TargetName::Gke => {
            if c.gke.project.is_empty() {
                bail!(
                    "--target gke needs a Google Cloud project: set `project` under [gke] in xtask.toml"
                );
            }
            Some(format!(
                "gke_{}_{}_{}",
                c.gke.project, c.gke.zone, c.gke.cluster
            ))
        }
    })
}

fn kubectl(purpose: &str) -> Cmd {
    Cmd::new("kubectl", purpose)
}

/// The kubeconfig's current context, if one is set.
pub fn current(cx: &Ctx) -> Result<Option<String>> {
    let p = cx.runner.probe(
        &kubectl("reading the kube context").args(["config", "current-context"]),
        Duration::from_secs(15),
    )?;
    Ok(p.success
        .then(|| p.stdout.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// The context to act on: `explicit` (from --context) or the current one,
/// and only if it is the one `target` expects. Never another cluster.
pub fn guard(cx: &Ctx, target: TargetName, explicit: Option<&str>) -> Result<String> {
    let Some(want) = expected(cx, target)? else {
        bail!("target {target} has no kube context");
    };
    let have = match explicit {
        Some(c) => Some(c.to_string()),
        None => current(cx)?,
    };
    let w = quote(&want);
    match have {
        // A context named on the command line must also exist: a matching
        // name alone says nothing about the kubeconfig.
        Some(h) if h == want => {
            if explicit.is_some() && !cx.runner.is_dry_run() && !names(cx)?.contains(&h) {
                bail!(
                    "there is no kube context `{h}` in the kubeconfig: create it with \
                     `cargo xtask cluster up --target {target}`; `cargo xtask context list` \
                     shows the contexts there are"
                );
            }
            Ok(h)
        }
        Some(h) => bail!(
            "refusing to act on kube context `{h}`: --target {target} expects `{want}`.\n  \
             switch with `cargo xtask context use {w}` (or `kubectl config use-context {w}`), \
             or start it with `cargo xtask cluster up --target {target}`"
        ),
        None => bail!(
            "no kube context is selected; --target {target} expects `{want}`: \
             run `cargo xtask cluster up --target {target}` or `cargo xtask context use {w}`"
        ),
    }
}

/// All contexts in the kubeconfig.
fn names(cx: &Ctx) -> Result<Vec<String>> {
    let p = cx.runner.probe(
        &kubectl("listing kube contexts").args(["config", "get-contexts", "--output", "name"]),
        Duration::from_secs(15),
    )?;
    if !p.success {
        bail!("`kubectl config get-contexts` failed: {}", p.stderr.trim());
    }
    Ok(p.stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Which target a context belongs to, by the naming each tool uses.
fn target_of(cx: &Ctx, name: &str) -> Option<TargetName> {
    [TargetName::Minikube, TargetName::Kind, TargetName::Gke]
        .into_iter()
        .find(|t| expected(cx, *t).ok().flatten().as_deref() == Some(name))
}

impl ContextArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        match self.command {
            ContextCommand::List => {
                let current = current(cx)?;
                println!("{:<8} {:<50} TARGET", "CURRENT", "NAME");
                for n in names(cx)? {
                    let mark = if current.as_deref() == Some(n.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    let target = target_of(cx, &n).map_or("-".to_string(), |t| t.to_string());
                    println!("{mark:<8} {n:<50} {target}");
                }
            }
            ContextCommand::Current => match current(cx)? {
                Some(c) => {
                    let target = target_of(cx, &c)
                        .map_or("no target".to_string(), |t| format!("target {t}"));
                    println!("{c} ({target})");
                }
                None => bail!("no kube context is selected"),
            },
            ContextCommand::Check { target, context } => {
                let target = cx.target(target.target);
                let ok = guard(cx, target, context.as_deref())?;
                println!("{ok} is the context of target {target}");
            }
            ContextCommand::Use { name } => {
                if !cx.runner.is_dry_run() && !names(cx)?.contains(&name) {
                    bail!(
                        "there is no kube context `{name}`; `cargo xtask context list` shows them"
                    );
                }
                cx.runner.run(&kubectl("switching kube contexts").args([
                    "config",
                    "use-context",
                    &name,
                ]))?;
                if !cx.runner.is_dry_run() {
                    println!("switched to {name}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
