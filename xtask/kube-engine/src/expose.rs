//! Reaching a Service from this machine: a port-forward (kind, minikube's
//! Seldon ingress) or the LoadBalancer's external address (GKE).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};

use crate::explain::is_ready;

/// A ready pod behind the service and the container port its `port` maps to.
pub async fn backend(
    client: &Client,
    namespace: &str,
    service: &str,
    port: Option<u16>,
) -> Result<(String, u16)> {
    let svc = Api::<Service>::namespaced(client.clone(), namespace)
        .get(service)
        .await
        .with_context(|| format!("reading service {namespace}/{service}"))?;
    let spec = svc.spec.unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let sp = match port {
        Some(p) => ports.iter().find(|sp| sp.port == i32::from(p)),
        None => ports.first(),
    }
    .ok_or_else(|| {
        anyhow!(
            "service {namespace}/{service} has no port {}",
            port.map_or("at all".into(), |p| p.to_string())
        )
    })?;
    let selector = spec
        .selector
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if selector.is_empty() {
        bail!("service {namespace}/{service} has no selector, so no pod to forward to");
    }
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    let pod =
        pods.items.into_iter().find(is_ready).ok_or_else(|| {
            anyhow!("no ready pod behind service {namespace}/{service} ({selector})")
        })?;
    let target = match &sp.target_port {
        None => sp.port,
        Some(IntOrString::Int(p)) => *p,
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| {
                anyhow!("no container port named {name} in the pods of {namespace}/{service}")
            })?,
    };
    let target =
        u16::try_from(target).with_context(|| format!("port {target} of {namespace}/{service}"))?;
    Ok((pod.metadata.name.unwrap_or_default(), target))
}

/// Forward `local` to the service until interrupted. Each connection picks a
/// ready pod afresh, so the forward survives pod restarts and rollouts.
pub async fn port_forward(
    client: Client,
    namespace: String,
    service: String,
    port: Option<u16>,
    local: SocketAddr,
) -> Result<()> {
    let (pod, target) = backend(&client, &namespace, &service, port).await?;
    let listener = TcpListener::bind(local)
        .await
        .with_context(|| format!("listening on {local} (is the port in use?)"))?;
    println!(
        "Forwarding {} -> {namespace}/{service} (pod {pod}, port {target})",
        listener.local_addr()?
    );
    loop {
        let (conn, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let (client, namespace, service) = (client.clone(), namespace.clone(), service.clone());
        tokio::spawn(async move {
            if let Err(e) = forward_one(client, &namespace, &service, port, conn).await {
                eprintln!("port-forward to {namespace}/{service}: {e:#}");
            }
        });
    }
}

async fn forward_one(
    client: Client,
    namespace: &str,
    service: &str,
    port: Option<u16>,
    mut conn: TcpStream,
) -> Result<()> {
    let (pod, target) = backend(&client, namespace, service, port).await?;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut forwarder = pods.portforward(&pod, &[target]).await?;
    let mut upstream = forwarder
        .take_stream(target)
        .ok_or_else(|| anyhow!("port-forward to pod {pod} gave no stream for port {target}"))?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    drop(upstream);
    forwarder.join().await?;
    Ok(())
}

/// The external address of a LoadBalancer service, once the cloud assigns it.
pub async fn load_balancer_address(
    client: &Client,
    namespace: &str,
    service: &str,
    timeout: Duration,
) -> Result<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner.set_message(format!(
        "waiting for an external address for {namespace}/{service}"
    ));
    loop {
        let svc = api
            .get(service)
            .await
            .with_context(|| format!("reading service {namespace}/{service}"))?;
        let ty = svc
            .spec
            .as_ref()
            .and_then(|s| s.type_.clone())
            .unwrap_or_default();
        if ty != "LoadBalancer" {
            spinner.finish_and_clear();
            bail!("service {namespace}/{service} is of type {ty}, not LoadBalancer");
        }
        let address = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().next())
            .and_then(|i| i.ip.or(i.hostname));
        if let Some(address) = address {
            spinner.finish_and_clear();
            return Ok(address);
        }
        if Instant::now() >= deadline {
            spinner.finish_and_clear();
            bail!(
                "service {namespace}/{service} got no external address within {}s; \
                 check the cloud's load-balancer quota and `kubectl describe service -n {namespace} {service}`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
