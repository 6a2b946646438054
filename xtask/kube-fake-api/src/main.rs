//! `kube-fake-api --listen 127.0.0.1:0 --kubeconfig FILE [--seldon]`: the
//! API fake as a process of its own, for the real `kubectl` and
//! `kube-engine`. It writes a kubeconfig whose context `kube-fake` points at
//! it, prints the address it listens on (one line on standard output), plays
//! the controllers, and serves until SIGTERM or Ctrl-C.

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let fake = cluster(Setup {
        seldon_installed: args.seldon,
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
