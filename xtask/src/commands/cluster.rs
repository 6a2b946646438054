//! `cargo xtask cluster up|down|status --target minikube|kind|k3d|gke`: what
//! each cluster kind's tool does (see targets/clusters), then a wait until
//! the API server answers, and cluster-info facts.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::args::{TargetArg, lock_target};
use super::invocation::Invocation;
use crate::targets::clusters::{self, api};

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Create or start the cluster, wait for its API server, print cluster-info
    Up,
    /// Delete the cluster (GKE asks first, unless --yes)
    Down {
        /// Do not ask before deleting a GKE cluster
        #[arg(long)]
        yes: bool,
    },
    /// The cluster's state and whether its API server answers
    Status,
}

impl ClusterArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let Some(cluster) = cx.cluster_for(name)? else {
            bail!("--target {name} has no cluster; use {}", clusters::names());
        };
        // Up and down change what runs there: one at a time, as deploy.
        let _lock = match self.command {
            ClusterCommand::Status => None,
            _ => lock_target(cx, name, crate::ground::lock::Kind::Run)?,
        };
        match self.command {
            ClusterCommand::Up => {
                cluster.up(cx)?;
                let context = match cluster.context(cx) {
                    Ok(c) => c,
                    Err(e) => {
                        // Listed by the dry run's preflight already.
                        cx.runner.precondition(e)?;
                        "<context>".to_string()
                    }
                };
                api::wait_ready(cx, &context)?;
            }
            ClusterCommand::Down { yes } => cluster.down(cx, yes)?,
            ClusterCommand::Status => {
                let p = cluster.status(cx)?;
                print!("{}", p.stdout);
                if !p.success {
                    eprint!("{}", p.stderr);
                    return Ok(ExitCode::FAILURE);
                }
                let context = cluster.context(cx)?;
                let ready = api::ready(cx, &context, "cluster status");
                println!(
                    "context {context}: API server {}",
                    if ready { "ready" } else { "not answering" }
                );
                if !ready {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
