//! Wait for applied workloads like `kubectl rollout status`, under one
//! deadline, with a progress bar; explain failures instead of timing out mutely.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::apply::Applied;
use crate::explain;
use crate::manifest::kind_of;
use crate::resolve::Resolver;

/// Something that rolls out: a Deployment, or a SeldonDeployment (whose
/// operator reports `status.state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    SeldonDeployment,
}

pub const SELDON_API_VERSION: &str = "machinelearning.seldon.io/v1";

impl Workload {
    fn label(&self) -> String {
        match self.kind {
            WorkloadKind::Deployment => format!("deployment/{}", self.name),
            WorkloadKind::SeldonDeployment => format!("seldondeployment/{}", self.name),
        }
    }
}

/// The workloads among applied objects.
pub fn workloads(applied: &[Applied], default_ns: &str) -> Vec<Workload> {
    applied
        .iter()
        .filter_map(|a| {
            let kind = match kind_of(&a.object) {
                "Deployment" => WorkloadKind::Deployment,
                "SeldonDeployment" => WorkloadKind::SeldonDeployment,
                _ => return None,
            };
            Some(Workload {
                kind,
                namespace: a
                    .object
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| default_ns.to_string()),
                name: a.object.metadata.name.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// One look at a workload.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub ready: bool,
    pub available: i32,
    pub desired: i32,
    /// What it is waiting for, in words.
    pub waiting_for: String,
    /// The operator or controller gave up (ProgressDeadlineExceeded, Failed).
    pub failed: Option<String>,
    /// Label selector for its pods.
    pub selector: String,
}

pub async fn check(resolver: &mut Resolver, w: &Workload) -> Result<Progress> {
    match w.kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(resolver.client().clone(), &w.namespace);
            Ok(deployment_progress(&api.get(&w.name).await?))
        }
        WorkloadKind::SeldonDeployment => {
            let (ar, _) = resolver
                .resolve(SELDON_API_VERSION, "SeldonDeployment")
                .await?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(resolver.client().clone(), &w.namespace, &ar);
            let sdep = api.get(&w.name).await?;
            let deployments: Api<Deployment> =
                Api::namespaced(resolver.client().clone(), &w.namespace);
            let selector = format!("{SELDON_ID_LABEL}={}", w.name);
            let owned = deployments
                .list(&ListParams::default().labels(&selector))
                .await?
                .items;
            Ok(seldon_progress(&sdep, &owned))
        }
    }
}

/// The rules of `kubectl rollout status`.
pub fn deployment_progress(d: &Deployment) -> Progress {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    let (updated, total, available) = (
        st.updated_replicas.unwrap_or(0),
        st.replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
    );
    let mut p = Progress {
        available: available.min(desired),
        desired,
        selector,
        ..Progress::default()
    };
    let gave_up = st.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if let Some(c) = gave_up {
        p.failed = Some(format!(
            "ProgressDeadlineExceeded: {}",
            c.message.as_deref().unwrap_or("")
        ));
    }
    // The ReplicaSet controller cannot create pods (Pod Security admission,
    // a quota): waiting out the deadline would not help.
    let refused = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True");
    if let Some(c) = refused {
        p.failed = Some(format!(
            "its pods cannot be created ({}): {}",
            c.reason.as_deref().unwrap_or("ReplicaFailure"),
            c.message.as_deref().unwrap_or("")
        ));
    }
    let generation = d.metadata.generation.unwrap_or(0);
    p.waiting_for = if st.observed_generation.unwrap_or(0) < generation {
        "the controller to see the new spec".into()
    } else if updated < desired {
        format!("{updated} of {desired} replicas updated")
    } else if total > updated {
        format!("{} old replicas to terminate", total - updated)
    } else if available < updated {
        format!("{available} of {updated} updated replicas available")
    } else {
        p.ready = true;
        String::new()
    };
    p
}

/// The label Seldon Core's operator puts on the Deployments (and pods) it
/// makes of a SeldonDeployment, with its name.
pub const SELDON_ID_LABEL: &str = "seldon-deployment-id";

/// A SeldonDeployment's progress, from its operator's `status.state` and the
/// Deployments the operator made of it (`owned`). Seldon Core 1.18.2 writes
/// no `status.observedGeneration`, so right after a spec change its status
/// still reads `Available` for the old spec: the rollout counts as done only
/// when every container of the applied component specs runs, with the
/// applied image and environment, in a Deployment that is itself rolled out.
pub fn seldon_progress(sdep: &DynamicObject, owned: &[Deployment]) -> Progress {
    let name = sdep.metadata.name.clone().unwrap_or_default();
    let status = sdep.data.get("status").cloned().unwrap_or(Value::Null);
    let state = status.get("state").and_then(Value::as_str).unwrap_or("");
    let description = status
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let behind = not_rolled_out(&sdep.data["spec"], owned);
    let unready = owned
        .iter()
        .map(|d| {
            (
                d.metadata.name.clone().unwrap_or_default(),
                deployment_progress(d),
            )
        })
        .find(|(_, p)| !p.ready);
    let failed = if state == "Failed" {
        Some(format!("Seldon reports Failed: {description}"))
    } else {
        unready
            .as_ref()
            .and_then(|(n, p)| p.failed.as_ref().map(|f| format!("deployment/{n}: {f}")))
    };
    let waiting_for = if state.is_empty() {
        "the Seldon operator to pick it up".to_string()
    } else if let Some(container) = &behind {
        format!(
            "the Seldon operator to roll out the applied spec ({container} is not running it yet)"
        )
    } else if let Some((n, p)) = &unready {
        format!("deployment/{n}: {}", p.waiting_for)
    } else if state != "Available" {
        format!("state {state}")
    } else {
        String::new()
    };
    let ready = waiting_for.is_empty() && failed.is_none();
    Progress {
        ready,
        available: i32::from(ready),
        desired: 1,
        waiting_for,
        failed,
        selector: format!("{SELDON_ID_LABEL}={name}"),
    }
}

/// The first container of the component specs in `spec` that no Deployment
/// runs as specified (its image, and its env and resources where given),
/// named `container/<name>`; None when all are rolled out.
fn not_rolled_out(spec: &Value, owned: &[Deployment]) -> Option<String> {
    let running: Vec<Value> = owned
        .iter()
        .filter_map(|d| d.spec.as_ref()?.template.spec.as_ref())
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let wanted = spec["predictors"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["componentSpecs"].as_array().into_iter().flatten())
        .flat_map(|c| c["spec"]["containers"].as_array().into_iter().flatten());
    for want in wanted {
        let name = want["name"].as_str().unwrap_or_default();
        let runs = running.iter().any(|have| {
            have["name"] == want["name"]
                && have["image"] == want["image"]
                && want["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|e| have["env"].as_array().is_some_and(|h| h.contains(e)))
                && (want["resources"].is_null() || have["resources"] == want["resources"])
        });
        if !runs {
            return Some(format!("container/{name}"));
        }
    }
    None
}

pub struct WaitOptions {
    pub timeout: Duration,
    pub poll: Duration,
}

/// Block until every workload is ready; on failure or deadline, the error
/// explains each unready workload.
pub async fn wait(
    resolver: &mut Resolver,
    workloads: &[Workload],
    opts: &WaitOptions,
) -> Result<()> {
    if workloads.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + opts.timeout;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rollout [{bar:20}] {pos}/{len} ready {elapsed} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut done = vec![false; workloads.len()];
    let outcome = loop {
        let mut total = 0;
        let mut ready = 0;
        let mut message = String::new();
        let mut failure = None;
        for (w, done) in workloads.iter().zip(done.iter_mut()) {
            let p = check(resolver, w).await?;
            total += u64::try_from(p.desired.max(1)).unwrap_or(1);
            ready += u64::try_from(p.available).unwrap_or(0);
            if p.ready {
                if !*done {
                    let line = format!("{} ready ({}/{})", w.label(), p.available, p.desired);
                    // A hidden bar (no terminal: CI logs) would swallow the line.
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                    *done = true;
                }
                continue;
            }
            if let Some(why) = p.failed.clone() {
                failure = Some((w, why));
                break;
            }
            if let Some(problem) = hopeless_pod(resolver, w, &p.selector).await {
                failure = Some((w, format!("a pod is failing: {}", problem.reason)));
                break;
            }
            if message.is_empty() {
                message = format!("{}: waiting for {}", w.label(), p.waiting_for);
            }
        }
        bar.set_length(total);
        bar.set_position(ready);
        bar.set_message(message);
        if let Some(f) = failure {
            break Err(f);
        }
        if done.iter().all(|d| *d) {
            break Ok(());
        }
        if Instant::now() >= deadline {
            let w = workloads
                .iter()
                .zip(&done)
                .find(|(_, d)| !**d)
                .map(|(w, _)| w)
                .unwrap_or(&workloads[0]);
            break Err((w, format!("not ready within {}s", opts.timeout.as_secs())));
        }
        tokio::time::sleep(opts.poll).await;
    };
    bar.finish_and_clear();
    match outcome {
        Ok(()) => Ok(()),
        Err((w, why)) => {
            let p = check(resolver, w).await?;
            let report =
                explain::explain(resolver.client(), &w.namespace, &w.name, &p.selector).await;
            bail!(
                "{} in namespace {}: {why} (waiting for {}; {}/{} available)\n{report}",
                w.label(),
                w.namespace,
                p.waiting_for,
                p.available,
                p.desired
            )
        }
    }
}

/// The first pod of `w` that cannot start and will not by waiting. For a
/// Deployment only its current ReplicaSet's pods count: an old pod that
/// was failing goes away with its ReplicaSet, and before the controller
/// has seen the new spec no pod is this rollout's yet.
async fn hopeless_pod(
    resolver: &Resolver,
    w: &Workload,
    selector: &str,
) -> Option<explain::Problem> {
    let client = resolver.client();
    let current = match w.kind {
        WorkloadKind::Deployment => match current_template(client, w, selector).await? {
            Template::NotSeen => return None,
            Template::Hash(hash) => Some(hash),
            Template::Unknown => None,
        },
        WorkloadKind::SeldonDeployment => None,
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &w.namespace);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?;
    list.items
        .iter()
        .filter(|p| match &current {
            Some(hash) => {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(TEMPLATE_HASH))
                    == Some(hash)
            }
            None => true,
        })
        .filter(|p| !explain::is_ready(p))
        .filter_map(explain::problem)
        .find(explain::Problem::is_hopeless)
}

/// The label the Deployment controller puts on a ReplicaSet's pods.
const TEMPLATE_HASH: &str = "pod-template-hash";
/// The annotation that numbers a Deployment's ReplicaSets, newest highest.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// Which pods are the current rollout's.
enum Template {
    /// The controller has not seen the current spec yet.
    NotSeen,
    /// Those with this `pod-template-hash` (the newest ReplicaSet's).
    Hash(String),
    /// No ReplicaSet says: every pod of the selector.
    Unknown,
}

async fn current_template(client: &kube::Client, w: &Workload, selector: &str) -> Option<Template> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &w.namespace);
    let d = deployments.get(&w.name).await.ok()?;
    let observed = d.status.as_ref().and_then(|s| s.observed_generation);
    if observed.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Some(Template::NotSeen);
    }
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &w.namespace);
    let owned = sets
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(&o.uid) == d.metadata.uid.as_ref())
        });
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let newest = owned.max_by_key(revision);
    Some(
        match newest.and_then(|rs| rs.metadata.labels?.get(TEMPLATE_HASH).cloned()) {
            Some(hash) => Template::Hash(hash),
            None => Template::Unknown,
        },
    )
}
