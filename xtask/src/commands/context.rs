//! `cargo xtask context list|use|current|check`: kube contexts, with the
//! target each belongs to, and the guard every Kubernetes action goes through.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use xshell::cmd;

use super::args::TargetArg;
use super::invocation::Invocation;
use crate::ground::kubecontext;
use crate::ground::settings::TargetName;

#[derive(Args)]
pub struct ContextArgs {
    #[command(subcommand)]
    pub command: ContextCommand,
}

#[derive(Subcommand)]
pub enum ContextCommand {
    /// Every context, the current one marked, with the target it matches
    List,
    /// Switch the kubeconfig's current context
    Use {
        /// A context from `context list`, e.g. kind-dev
        name: String,
    },
    /// The current context and its target
    Current,
    /// Exit 0 only if the context (current, or --context) is the target's own
    Check {
        #[command(flatten)]
        target: TargetArg,
        /// Check this context instead of the current one
        #[arg(long)]
        context: Option<String>,
    },
}

/// Which target a context belongs to, by the naming each cluster's tool uses.
fn target_of(cx: &Invocation, name: &str) -> Option<TargetName> {
    cx.clusters()
        .ok()?
        .into_iter()
        .find(|c| c.context(cx).ok().as_deref() == Some(name))
        .map(|c| c.name())
}

impl ContextArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        match self.command {
            ContextCommand::List => {
                let current = kubecontext::current(cx)?;
                println!("{:<8} {:<50} TARGET", "CURRENT", "NAME");
                for n in kubecontext::names(cx)? {
                    let mark = if current.as_deref() == Some(n.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    let target = target_of(cx, &n).map_or("-".to_string(), |t| t.to_string());
                    println!("{mark:<8} {n:<50} {target}");
                }
            }
            ContextCommand::Current => match kubecontext::current(cx)? {
                Some(c) => {
                    let target = target_of(cx, &c)
                        .map_or("no target".to_string(), |t| format!("target {t}"));
                    println!("{c} ({target})");
                }
                None => bail!("no kube context is selected"),
            },
            ContextCommand::Check { target, context } => {
                let name = cx.target(target.target);
                let Some(cluster) = cx.cluster_for(name)? else {
                    bail!("target {name} has no kube context");
                };
                let want = cluster.context(cx)?;
                let ok = kubecontext::guard(cx, name.as_str(), &want, context.as_deref())?;
                println!("{} is the context of target {name}", ok.context);
            }
            ContextCommand::Use { name } => {
                let exists = cx
                    .runner
                    .unless_dry_run(|| Ok(kubecontext::names(cx)?.contains(&name)))?;
                if exists == Some(false) {
                    bail!(
                        "there is no kube context `{name}`; `cargo xtask context list` shows them"
                    );
                }
                cx.runner.run(
                    cmd!(cx.sh, "kubectl config use-context {name}"),
                    "switching kube contexts",
                )?;
                cx.runner.unless_dry_run(|| {
                    println!("switched to {name}");
                    Ok(())
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
