//! Delete what carries our managed-by label, wait until it is gone. A
//! namespace of ours is kept while it holds objects we did not create.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::Scope;

use crate::resolve::Resolver;

/// Kinds we may create, deleted in this order (namespaces last). Kinds the
/// cluster does not serve (e.g. SeldonDeployment without Seldon) are skipped.
pub const KINDS: &[(&str, &str)] = &[
    ("machinelearning.seldon.io/v1", "SeldonDeployment"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
];

/// Workload kinds that make a namespace "not only ours".
const FOREIGN_CHECK: &[(&str, &str)] = &[
    ("machinelearning.seldon.io/v1", "SeldonDeployment"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
];

#[derive(Debug, Default)]
pub struct Report {
    /// `kind/namespace/name` of everything deleted.
    pub deleted: Vec<String>,
    /// Namespaces kept, with why.
    pub kept: Vec<String>,
}

struct Doomed {
    api: Api<DynamicObject>,
    name: String,
    label: String,
}

pub async fn teardown(
    resolver: &mut Resolver,
    selector: &str,
    timeout: Duration,
) -> Result<Report> {
    let mut report = Report::default();
    let mut doomed = Vec::new();
    let labels = ListParams::default().labels(selector);
    for (api_version, kind) in KINDS {
        let Some((ar, _)) = resolver.resolve_if_served(api_version, kind).await? else {
            continue;
        };
        let all: Api<DynamicObject> = Api::all_with(resolver.client().clone(), &ar);
        let found = all
            .list(&labels)
            .await
            .with_context(|| format!("listing {kind}s labelled {selector}"))?;
        for obj in found.items {
            let ns = obj.metadata.namespace.clone().unwrap_or_default();
            let name = obj.metadata.name.clone().unwrap_or_default();
            let api = Api::namespaced_with(resolver.client().clone(), &ns, &ar);
            doomed.push(
                delete(
                    api,
                    name,
                    format!(
                        "{}/{ns}/{}",
                        kind.to_lowercase(),
                        obj.metadata.name.as_deref().unwrap_or("")
                    ),
                )
                .await?,
            );
        }
    }
    if let Some((ar, _)) = resolver.resolve_if_served("v1", "Namespace").await? {
        let namespaces: Api<DynamicObject> = Api::all_with(resolver.client().clone(), &ar);
        for ns in namespaces
            .list(&labels)
            .await
            .context("listing namespaces")?
            .items
        {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let foreign = foreign_objects(resolver, &name, selector).await?;
            if foreign.is_empty() {
                doomed.push(
                    delete(
                        namespaces.clone(),
                        name.clone(),
                        format!("namespace/{name}"),
                    )
                    .await?,
                );
            } else {
                report.kept.push(format!(
                    "namespace/{name} (it also holds {} that kube-mlops did not create)",
                    foreign.join(", ")
                ));
            }
        }
    }
    wait_gone(&doomed, timeout).await?;
    report.deleted = doomed.into_iter().map(|d| d.label).collect();
    Ok(report)
}

async fn delete(api: Api<DynamicObject>, name: String, label: String) -> Result<Doomed> {
    // Foreground: the object stays until its pods are gone, so "gone" means gone.
    match api.delete(&name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e).with_context(|| format!("deleting {label}")),
    }
    println!("{label} deleted");
    Ok(Doomed { api, name, label })
}

async fn foreign_objects(
    resolver: &mut Resolver,
    namespace: &str,
    selector: &str,
) -> Result<Vec<String>> {
    let mut foreign = Vec::new();
    for (api_version, kind) in FOREIGN_CHECK {
        let Some((ar, caps)) = resolver.resolve_if_served(api_version, kind).await? else {
            continue;
        };
        if caps.scope != Scope::Namespaced {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(resolver.client().clone(), namespace, &ar);
        for obj in api.list(&ListParams::default()).await?.items {
            let ours = selected(obj.metadata.labels.as_ref(), selector);
            if !ours && obj.metadata.deletion_timestamp.is_none() {
                foreign.push(format!(
                    "{}/{}",
                    kind.to_lowercase(),
                    obj.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
    Ok(foreign)
}

/// Whether labels satisfy a `k=v,k2=v2` selector (the form we use).
fn selected(labels: Option<&std::collections::BTreeMap<String, String>>, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        labels
            .and_then(|l| l.get(k.trim()))
            .is_some_and(|have| have == v.trim())
    })
}

async fn wait_gone(doomed: &[Doomed], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    loop {
        let mut left = Vec::new();
        for d in doomed {
            if d.api.get_opt(&d.name).await?.is_some() {
                left.push(d.label.as_str());
            }
        }
        if left.is_empty() {
            spinner.finish_and_clear();
            return Ok(());
        }
        if Instant::now() >= deadline {
            spinner.finish_and_clear();
            anyhow::bail!(
                "still present after {}s: {} (finalizers or stuck pods? see `kubectl describe` for each)",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        spinner.set_message(format!(
            "waiting for {} objects to go: {}",
            left.len(),
            left.join(", ")
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
