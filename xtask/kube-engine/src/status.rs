//! What we deployed, as the cluster sees it.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;

use crate::resolve::Resolver;
use crate::rollout::{SELDON_API_VERSION, SELDON_ID_LABEL, deployment_progress, seldon_progress};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    pub detail: String,
}

/// The platforms of the cluster's nodes, `os/architecture` as each
/// reports it (`status.nodeInfo`: `linux/amd64`), each once, sorted.
///
/// # Errors
/// The nodes cannot be listed (the API's own error, a 403 naming the
/// missing `list nodes` permission included).
pub async fn platforms(client: &kube::Client) -> Result<Vec<String>> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("listing the cluster's nodes: {e}"))?;
    let platforms: std::collections::BTreeSet<String> = nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.node_info.as_ref())
        .map(|i| format!("{}/{}", i.operating_system, i.architecture))
        .collect();
    Ok(platforms.into_iter().collect())
}

pub async fn collect(resolver: &mut Resolver, selector: &str) -> Result<Vec<Row>> {
    let client = resolver.client().clone();
    let params = ListParams::default().labels(selector);
    let mut rows = Vec::new();
    for d in Api::<Deployment>::all(client.clone())
        .list(&params)
        .await?
        .items
    {
        let p = deployment_progress(&d);
        let image = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        rows.push(row(
            "deployment",
            &d.metadata,
            p.ready,
            format!("{}/{} available, image {image}", p.available, p.desired),
        ));
    }
    for s in Api::<Service>::all(client.clone())
        .list(&params)
        .await?
        .items
    {
        let spec = s.spec.clone().unwrap_or_default();
        let ports: Vec<String> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| p.port.to_string())
            .collect();
        let ty = spec.type_.unwrap_or_else(|| "ClusterIP".into());
        let ingress = s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .and_then(|i| i.first())
            .and_then(|i| i.ip.clone().or_else(|| i.hostname.clone()));
        let external = match (&ty[..], ingress) {
            ("LoadBalancer", Some(a)) => format!(", external {a}"),
            ("LoadBalancer", None) => ", external address pending".into(),
            _ => String::new(),
        };
        rows.push(row(
            "service",
            &s.metadata,
            // A pending external address is normal on minikube and kind (no
            // cloud load balancer): it is shown, not counted as unready.
            true,
            format!("{ty}, port {}{external}", ports.join(",")),
        ));
    }
    if let Some((ar, _)) = resolver
        .resolve_if_served(SELDON_API_VERSION, "SeldonDeployment")
        .await?
    {
        for sdep in Api::<DynamicObject>::all_with(client.clone(), &ar)
            .list(&params)
            .await?
            .items
        {
            let ns = sdep.metadata.namespace.clone().unwrap_or_default();
            let selector = format!(
                "{SELDON_ID_LABEL}={}",
                sdep.metadata.name.as_deref().unwrap_or_default()
            );
            let owned = Api::<Deployment>::namespaced(client.clone(), &ns)
                .list(&ListParams::default().labels(&selector))
                .await?
                .items;
            let p = seldon_progress(&sdep, &owned);
            let detail = if p.ready {
                "Available".to_string()
            } else {
                p.failed.clone().unwrap_or(p.waiting_for.clone())
            };
            rows.push(row("seldondeployment", &sdep.metadata, p.ready, detail));
        }
    }
    Ok(rows)
}

fn row(kind: &str, meta: &kube::api::ObjectMeta, ready: bool, detail: String) -> Row {
    Row {
        kind: kind.into(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        ready,
        detail,
    }
}
