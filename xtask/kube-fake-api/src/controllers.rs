//! The controllers the fake plays, so that what a cluster does after a
//! write happens here too: the Deployment controller (a ready pod per
//! Deployment; a refused pod becomes a `ReplicaFailure` condition and a
//! `FailedCreate` event, as the ReplicaSet controller reports it) and Seldon
//! Core's operator (a SeldonDeployment becomes one Deployment per component
//! spec, labelled `seldon-deployment-id`; its `status.state` goes `Creating`
//! on every spec change, then `Available` once they are, or `Failed`).
//! Seldon Core 1.18.2 writes no `status.observedGeneration`, and neither
//! does this operator. A garbage collector deletes what an owner or a
//! namespace took with it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::SeldonDeployment;

/// One pass of every controller: the Deployment controller, then the Seldon
/// operator when Seldon Core is installed.
pub async fn reconcile(client: &Client, seldon: Option<&mut SeldonOperator>) -> kube::Result<()> {
    collect_garbage(client, seldon.is_some()).await?;
    deployments(client).await?;
    if let Some(operator) = seldon {
        operator.reconcile(client).await?;
    }
    Ok(())
}

/// The garbage collector and the namespace controller in one: an object
/// whose owner (by `ownerReferences` uid) is gone, or whose namespace is,
/// is deleted, as a cluster deletes a Deployment's pods and a deleted
/// namespace's contents.
async fn collect_garbage(client: &Client, seldon: bool) -> kube::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let live: BTreeSet<String> = namespaces
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let mut uids = BTreeSet::new();
    let mut objects = Vec::new();
    for s in crate::discovery::all(seldon).filter(|s| s.namespaced) {
        let api_version = if s.group.is_empty() {
            s.version.to_string()
        } else {
            format!("{}/{}", s.group, s.version)
        };
        let ar = ApiResource {
            group: s.group.into(),
            version: s.version.into(),
            api_version,
            kind: s.kind.into(),
            plural: s.plural.into(),
        };
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        for obj in all.list(&ListParams::default()).await?.items {
            uids.extend(obj.metadata.uid.clone());
            objects.push((ar.clone(), obj));
        }
    }
    for (ar, obj) in objects {
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let orphaned = obj
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| !uids.contains(&o.uid));
        if orphaned || !live.contains(&ns) {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let name = obj.metadata.name.clone().unwrap_or_default();
            // Someone else may have deleted it meanwhile.
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
    Ok(())
}

/// The Deployment (and ReplicaSet) controller: a ready pod per Deployment
/// and a status for its generation, or a ReplicaFailure naming why its pod
/// could not be created.
async fn deployments(client: &Client) -> kube::Result<()> {
    let all: Api<Deployment> = Api::all(client.clone());
    for d in all.list(&ListParams::default()).await?.items {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let failing = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "ReplicaFailure"));
        match ensure_pod(client, &d).await {
            Ok(()) => {}
            // The ReplicaSet controller's refused pod: the Deployment says so
            // in a ReplicaFailure condition, and an Event records it.
            Err(kube::Error::Api(refusal)) if refusal.code == 403 => {
                if !failing {
                    let status = json!({"observedGeneration": d.metadata.generation, "replicas": 0,
                        "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0,
                        "unavailableReplicas": d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        "conditions": [
                            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                             "message": "Deployment does not have minimum availability."},
                            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                             "message": refusal.message}]});
                    api.patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": status })),
                    )
                    .await?;
                    let replica_set = format!("{name}-{}", template_hash(&d));
                    record_event(
                        client,
                        &ns,
                        &replica_set,
                        "FailedCreate",
                        &format!("Error creating: {}", refusal.message),
                    )
                    .await?;
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = json!({"observedGeneration": d.metadata.generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
        if failing || d.status.as_ref().and_then(|s| s.observed_generation) != d.metadata.generation
        {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        }
    }
    Ok(())
}

/// The `pod-template-hash` of a Deployment's template: ten hex digits.
fn template_hash(d: &Deployment) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&d.spec.as_ref().map(|s| &s.template))
        .unwrap_or_default()
        .hash(&mut h);
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

/// A Warning event about the ReplicaSet `name`, as the ReplicaSet
/// controller records a pod it could not create.
async fn record_event(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    message: &str,
) -> kube::Result<()> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{reason}").to_lowercase(), "namespace": ns},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "namespace": ns},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "source": {"component": "replicaset-controller"}});
    let event = serde_json::from_value(event).map_err(kube::Error::SerdeError)?;
    match events.create(&Default::default(), &event).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// One ready pod per Deployment, `<name>-0`, with its template's labels and
/// ports, owned by it.
async fn ensure_pod(client: &Client, d: &Deployment) -> kube::Result<()> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = format!("{}-0", d.metadata.name.clone().unwrap_or_default());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if pods.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": template.metadata.and_then(|m| m.labels),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.metadata.name, "uid": d.metadata.uid}]},
        "spec": template.spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let pod: Pod = serde_json::from_value(pod).map_err(kube::Error::SerdeError)?;
    pods.create(&Default::default(), &pod).await?;
    Ok(())
}

/// How long the operator stays `Creating` at least, as a real one takes a while.
const CREATING_FOR: Duration = Duration::from_millis(600);
/// The field manager the operator applies its Deployments with.
const OPERATOR: &str = "seldon-manager";

/// Seldon Core's operator: what it last rolled out, per SeldonDeployment.
#[derive(Default)]
pub struct SeldonOperator {
    /// `namespace/name` → (the spec it rolled out, when it started).
    rolled: HashMap<String, (Value, Instant)>,
}

impl SeldonOperator {
    async fn reconcile(&mut self, client: &Client) -> kube::Result<()> {
        let all: Api<SeldonDeployment> = Api::all(client.clone());
        for sd in all.list(&ListParams::default()).await?.items {
            let ns = sd.metadata.namespace.clone().unwrap_or_default();
            let name = sd.metadata.name.clone().unwrap_or_default();
            let api: Api<SeldonDeployment> = Api::namespaced(client.clone(), &ns);
            let key = format!("{ns}/{name}");
            let state = sd
                .status
                .as_ref()
                .and_then(|s| s["state"].as_str())
                .unwrap_or_default()
                .to_string();
            let started = match self.rolled.get(&key) {
                Some((spec, started)) if *spec == sd.spec => *started,
                _ => {
                    // A new spec: roll it out as Deployments, and say so.
                    let uid = sd.metadata.uid.clone().unwrap_or_default();
                    let deployments = component_deployments(&ns, &name, &uid, &sd.spec);
                    let applied = apply_all(client, &ns, &deployments).await;
                    let status = match applied {
                        Ok(()) => json!({"state": "Creating", "description": ""}),
                        Err(e) => json!({"state": "Failed", "description": e.to_string()}),
                    };
                    set_status(&api, &name, status).await?;
                    self.rolled.insert(key, (sd.spec.clone(), Instant::now()));
                    continue;
                }
            };
            if state != "Creating" {
                continue;
            }
            let selector = format!("seldon-deployment-id={name}");
            let owned: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let owned = owned
                .list(&ListParams::default().labels(&selector))
                .await?
                .items;
            let failure = owned.iter().find_map(|d| {
                d.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
                    .map(|c| c.message.clone().unwrap_or_default())
            });
            if let Some(why) = failure {
                set_status(&api, &name, json!({"state": "Failed", "description": why})).await?;
                continue;
            }
            let available = owned.iter().all(|d| {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.clone().unwrap_or_default();
                st.observed_generation == d.metadata.generation
                    && st.available_replicas.unwrap_or(0) >= want
            });
            if available && started.elapsed() >= CREATING_FOR {
                let statuses: serde_json::Map<String, Value> = owned
                    .iter()
                    .map(|d| {
                        let n = d.metadata.name.clone().unwrap_or_default();
                        let st = d.status.clone().unwrap_or_default();
                        (
                            n.clone(),
                            json!({"name": n, "replicas": st.replicas,
                            "availableReplicas": st.available_replicas}),
                        )
                    })
                    .collect();
                set_status(
                    &api,
                    &name,
                    json!({"state": "Available", "description": "", "deploymentStatus": statuses}),
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn set_status(api: &Api<SeldonDeployment>, name: &str, status: Value) -> kube::Result<()> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
}

/// The Deployments Seldon's operator makes of a SeldonDeployment `spec`:
/// one per predictor component spec, `<name>-<predictor>-<i>-<container>`,
/// running that pod spec, labelled with the SeldonDeployment's id and owned
/// by it (`uid`), so that they go with it.
pub fn component_deployments(ns: &str, name: &str, uid: &str, spec: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for predictor in spec["predictors"].as_array().into_iter().flatten() {
        let predictor_name = predictor["name"].as_str().unwrap_or("default");
        let replicas = predictor["replicas"].as_i64().unwrap_or(1);
        for (i, component) in predictor["componentSpecs"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let pod_spec = &component["spec"];
            let first = pod_spec["containers"][0]["name"]
                .as_str()
                .unwrap_or("model");
            let deployment = format!("{name}-{predictor_name}-{i}-{first}");
            let labels = json!({"seldon-deployment-id": name, "seldon-app": format!("{name}-{predictor_name}"),
                "app.kubernetes.io/managed-by": "seldon-core"});
            let owner = json!({"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
                "name": name, "uid": uid, "controller": true});
            out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": deployment, "namespace": ns, "labels": labels, "ownerReferences": [owner]},
                "spec": {"replicas": replicas,
                    "selector": {"matchLabels": {"seldon-deployment-id": name, "seldon-app": format!("{name}-{predictor_name}")}},
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}));
        }
    }
    out
}

async fn apply_all(client: &Client, ns: &str, deployments: &[Value]) -> kube::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(
            name,
            &PatchParams::apply(OPERATOR).force(),
            &Patch::Apply(d),
        )
        .await?;
    }
    Ok(())
}
