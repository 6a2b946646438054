//! `kube-fake-api --listen 127.0.0.1:0 --kubeconfig FILE [--seldon]`: the
//! API fake as a process of its own, for the real `kubectl` and
//! `kube-engine`. It writes a kubeconfig whose context `kube-fake` points at
//! it, prints the address it listens on (one line on standard output), plays
//! the controllers, and serves until SIGTERM or Ctrl-C. `--node-images`,
//! `--node-architecture` and `--load-balancer-ip` model a node's images
//! and CPU and a cloud's load balancer (see `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kube_fake_api::{Setup, cluster, kubeconfig};

/// The context the written kubeconfig names.
const CONTEXT: &str = "kube-fake";

#[derive(Parser)]
#[command(about = "A stateful in-memory Kubernetes API server, for tests")]
struct Args {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig here whose context `kube-fake` is this server.
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// Serve Seldon Core's SeldonDeployment kind, as if Seldon Core were installed.
    #[arg(long)]
    seldon: bool,
    /// Model the node's images: this file lists those loaded, one reference
    /// per line (append to it as `minikube image load` would); a pod whose
    /// image is missing then waits with ErrImageNeverPull or ImagePullBackOff.
    #[arg(long, value_name = "FILE")]
    node_images: Option<PathBuf>,
    /// A registry host the node can pull from (repeatable; with --node-images).
    #[arg(long = "registry", value_name = "HOST")]
    registries: Vec<String>,
    /// The node's CPU as it reports it (status.nodeInfo.architecture:
    /// amd64, arm64) [default: this host's]
    #[arg(long, value_name = "GOARCH")]
    node_architecture: Option<String>,
    /// Give LoadBalancer services this external address (default: they stay pending).
    #[arg(long, value_name = "IP")]
    load_balancer_ip: Option<std::net::IpAddr>,
    /// Seconds before a LoadBalancer service gets its address.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    load_balancer_after: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match kube_fake_api::schema::load() {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "kube-fake-api: {} is unset: writes are held to the API server's own rules, not to \
             the 1.32 schemas (pip install kubernetes-validate, and point it at its \
             kubernetes-json-schema/v1.32.0-local-strict directory)",
            kube_fake_api::schema::SCHEMAS_ENV
        ),
        Err(e) => {
            eprintln!("kube-fake-api: {e}");
            return ExitCode::from(2);
        }
    }
    if !args.registries.is_empty() && args.node_images.is_none() {
        eprintln!(
            "kube-fake-api: --registry names what a modelled node reaches: it needs --node-images FILE"
        );
        return ExitCode::from(2);
    }
    let fake = cluster(Setup {
        seldon_installed: args.seldon,
        node: kube_fake_api::controllers::Node {
            images: args.node_images,
            registries: args.registries,
            architecture: args.node_architecture,
        },
        load_balancer: args.load_balancer_ip.map(|ip| {
            (
                ip.to_string(),
                std::time::Duration::from_secs(args.load_balancer_after),
            )
        }),
        ..Setup::default()
    })
    .await;
    let addr = match fake.serve_on(args.listen).await {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("kube-fake-api: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&args.kubeconfig, kubeconfig(addr, CONTEXT)) {
        eprintln!(
            "kube-fake-api: cannot write the kubeconfig {}: {e}",
            args.kubeconfig.display()
        );
        return ExitCode::FAILURE;
    }
    fake.start_controller();
    println!("{addr}");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("kube-fake-api: cannot wait for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
