//! The command line of the `kube-engine` binary (the xtask drives it; it is
//! usable on its own too).

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::apply::{ApplyOptions, apply_all};
use crate::manifest::{self, ImageOverride};
use crate::resolve::Resolver;
use crate::rollout::{self, WaitOptions};
use crate::{FIELD_MANAGER, MANAGED_SELECTOR, expose, logs, status, teardown};

/// kube-mlops' Kubernetes engine: server-side apply, rollout wait with
/// explanations, status, logs, port-forward and teardown.
#[derive(Parser, Debug)]
#[command(name = "kube-engine", version)]
pub struct Cli {
    /// Kubeconfig context to use. Without it, the current context (named on stderr).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Server-side apply every object of a manifest, then wait for rollouts.
    Apply(ApplyArgs),
    /// Our objects and their readiness (exit 1 unless all are ready).
    Status(StatusArgs),
    /// Logs of the pods matching a selector.
    Logs(LogsArgs),
    /// Forward a local port to a service until interrupted.
    PortForward(PortForwardArgs),
    /// Wait for a LoadBalancer service's external address and print it.
    LoadBalancer(LoadBalancerArgs),
    /// Delete everything carrying our managed-by label and wait until it is gone.
    Teardown(TeardownArgs),
    /// The nodes' platforms, `os/architecture` (status.nodeInfo), one per
    /// line, each once, sorted.
    Platforms,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Manifest file (multi-document YAML); `-` reads standard input.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Set containers using image NAME to REFERENCE (repeatable).
    #[arg(long = "image", value_name = "NAME=REFERENCE")]
    pub images: Vec<ImageOverride>,
    /// Annotate the pod templates whose containers use image NAME with its
    /// image ID (config digest), so that a rebuilt image under the same tag
    /// rolls out (repeatable).
    #[arg(long = "image-id", value_name = "NAME=ID")]
    pub image_ids: Vec<ImageOverride>,
    /// Apply only these services' objects (by app.kubernetes.io/name) and shared ones.
    #[arg(long = "only", value_name = "SERVICE")]
    pub only: Vec<String>,
    /// Namespace for namespaced objects that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value = FIELD_MANAGER)]
    pub field_manager: String,
    /// Take over fields another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Do not wait for Deployments and SeldonDeployments to become ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Rollout deadline in seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long, default_value = MANAGED_SELECTOR)]
    pub selector: String,
    /// One JSON array of rows instead of a table (exit 0 whatever they say).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[arg(short, long)]
    pub namespace: String,
    #[arg(short = 'l', long)]
    pub selector: String,
    /// Last N lines per pod.
    #[arg(long)]
    pub tail: Option<i64>,
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct PortForwardArgs {
    #[arg(short, long)]
    pub namespace: String,
    #[arg(long)]
    pub service: String,
    /// Service port (default: its first port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub local: SocketAddr,
}

#[derive(Args, Debug)]
pub struct LoadBalancerArgs {
    #[arg(short, long)]
    pub namespace: String,
    #[arg(long)]
    pub service: String,
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct TeardownArgs {
    #[arg(long, default_value = MANAGED_SELECTOR)]
    pub selector: String,
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

/// A client for exactly the named context; never another one.
pub async fn client(context: Option<&str>) -> Result<Client> {
    let config = match context {
        Some(name) => {
            let kubeconfig = Kubeconfig::read()
                .context("reading the kubeconfig (KUBECONFIG or ~/.kube/config)")?;
            if !kubeconfig.contexts.iter().any(|c| c.name == name) {
                let known: Vec<&str> = kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                bail!(
                    "kubeconfig has no context `{name}` (it has: {})",
                    known.join(", ")
                );
            }
            let options = KubeConfigOptions {
                context: Some(name.to_string()),
                ..KubeConfigOptions::default()
            };
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("loading kubeconfig context {name}"))?
        }
        None => Config::infer()
            .await
            .context("finding a kubeconfig or in-cluster config")?,
    };
    Client::try_from(config).context("creating the Kubernetes client")
}

impl Cli {
    /// Runs the command; false when it ran but the answer is "not ready"
    /// (the binary then exits 1).
    pub async fn run(self) -> Result<bool> {
        let client = client(self.context.as_deref()).await?;
        let mut resolver = Resolver::new(client.clone());
        match self.command {
            Command::Apply(a) => a.run(&mut resolver).await,
            Command::Status(s) => s.run(&mut resolver).await,
            Command::Logs(l) => {
                logs::print(&client, &l.namespace, &l.selector, l.tail, l.follow).await?;
                Ok(true)
            }
            Command::PortForward(p) => {
                expose::port_forward(client, p.namespace, p.service, p.port, p.local).await?;
                Ok(true)
            }
            Command::LoadBalancer(l) => l.run(&client).await,
            Command::Teardown(t) => t.run(&mut resolver).await,
            Command::Platforms => {
                for platform in status::platforms(&client).await? {
                    println!("{platform}");
                }
                Ok(true)
            }
        }
    }
}

impl ApplyArgs {
    async fn run(self, resolver: &mut Resolver) -> Result<bool> {
        let text = if self.file.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the manifest from stdin")?;
            s
        } else {
            std::fs::read_to_string(&self.file)
                .with_context(|| format!("reading {}", self.file.display()))?
        };
        let mut objects = manifest::select(manifest::parse(&text)?, &self.only);
        manifest::set_images(&mut objects, &self.images)?;
        manifest::set_image_ids(&mut objects, &self.image_ids);
        let opts = ApplyOptions {
            field_manager: &self.field_manager,
            force_conflicts: self.force_conflicts,
            default_namespace: &self.namespace,
        };
        let applied = apply_all(resolver, objects, &opts).await?;
        if !self.no_wait {
            let workloads = rollout::workloads(&applied, &self.namespace);
            let opts = WaitOptions {
                timeout: Duration::from_secs(self.timeout),
                poll: Duration::from_secs(1),
            };
            rollout::wait(resolver, &workloads, &opts).await?;
        }
        Ok(true)
    }
}

impl StatusArgs {
    async fn run(self, resolver: &mut Resolver) -> Result<bool> {
        let rows = status::collect(resolver, &self.selector).await?;
        if self.json {
            println!("{}", serde_json::to_string(&rows)?);
        } else if rows.is_empty() {
            println!("nothing labelled {} is deployed", self.selector);
        } else {
            for r in &rows {
                let state = if r.ready { "ready" } else { "NOT READY" };
                println!(
                    "{:<18} {:<12} {:<20} {:<10} {}",
                    r.kind, r.namespace, r.name, state, r.detail
                );
            }
        }
        // With --json the caller judges the rows; the table's exit code does.
        Ok(self.json || (!rows.is_empty() && rows.iter().all(|r| r.ready)))
    }
}

impl LoadBalancerArgs {
    async fn run(self, client: &Client) -> Result<bool> {
        let address = expose::load_balancer_address(
            client,
            &self.namespace,
            &self.service,
            Duration::from_secs(self.timeout),
        )
        .await?;
        println!("{address}");
        Ok(true)
    }
}

impl TeardownArgs {
    async fn run(self, resolver: &mut Resolver) -> Result<bool> {
        let report =
            teardown::teardown(resolver, &self.selector, Duration::from_secs(self.timeout)).await?;
        if report.deleted.is_empty() {
            println!("nothing labelled {} to delete", self.selector);
        }
        for kept in &report.kept {
            println!("kept {kept}");
        }
        Ok(true)
    }
}
