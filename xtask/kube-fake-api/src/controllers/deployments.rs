//! The Deployment and ReplicaSet controllers, as far as a rollout shows
//! them: a ReplicaSet per pod template (`<deployment>-<pod-template-hash>`),
//! pods `<replicaset>-<suffix>` whose status the kubelet gives, the old
//! ReplicaSets scaled to zero once the new one's pods are available (so a
//! rollout replaces the pods, and a new pod that cannot start leaves the
//! old ones serving), and the statuses with their `Available`,
//! `Progressing` and `ReplicaFailure` conditions. A pod the API server
//! refuses (Pod Security admission) becomes a `ReplicaFailure` condition
//! and a `FailedCreate` event, as the ReplicaSet controller reports it.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::kubelet::Kubelet;
use super::record_event;

/// The label a ReplicaSet's selector, template and pods carry.
const HASH_LABEL: &str = "pod-template-hash";
/// How the controller manager writes (its field manager).
fn controller() -> PatchParams {
    PatchParams {
        field_manager: Some("kube-controller-manager".into()),
        ..PatchParams::default()
    }
}

/// The annotation that numbers a Deployment's ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// One pass of both controllers over every Deployment and ReplicaSet.
pub async fn reconcile(client: &Client, kubelet: &mut Kubelet) -> kube::Result<()> {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let all = deployments.list(&ListParams::default()).await?.items;
    let known = sets.list(&ListParams::default()).await?.items;
    for d in &all {
        roll(client, d, &owned(&known, d)).await?;
    }
    for rs in sets.list(&ListParams::default()).await?.items {
        replicate(client, &rs, kubelet).await?;
    }
    kubelet.sync(client).await?;
    let known = sets.list(&ListParams::default()).await?.items;
    for d in &all {
        let status = deployment_status(d, &owned(&known, d));
        write_status(client, d, status).await?;
    }
    Ok(())
}

/// The ReplicaSets `d` owns.
fn owned(sets: &[ReplicaSet], d: &Deployment) -> Vec<ReplicaSet> {
    sets.iter()
        .filter(|rs| owned_by(&rs.metadata.owner_references, &d.metadata.uid))
        .cloned()
        .collect()
}

fn owned_by(
    refs: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    uid: &Option<String>,
) -> bool {
    refs.iter().flatten().any(|o| Some(&o.uid) == uid.as_ref())
}

/// The name of the ReplicaSet for `d`'s current template.
pub fn replica_set_name(d: &Deployment) -> String {
    format!(
        "{}-{}",
        d.metadata.name.as_deref().unwrap_or_default(),
        template_hash(d)
    )
}

/// The `pod-template-hash` of a Deployment's template: ten characters
/// from the alphabet Kubernetes uses for generated names.
fn template_hash(d: &Deployment) -> String {
    let template = serde_json::to_string(&d.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
    safe_encode(fnv(template.as_bytes()), 10)
}

/// FNV-1a, 64 bits, as Kubernetes hashes templates with FNV.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `n` characters of apimachinery's `rand.SafeEncodeString` alphabet (no
/// vowels, no look-alikes).
pub(crate) fn safe_encode(mut x: u64, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize];
            x /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// The Deployment controller's step: a ReplicaSet for the current
/// template with the desired replicas; the others scaled to zero once
/// that one's pods are all available.
async fn roll(client: &Client, d: &Deployment, owned: &[ReplicaSet]) -> kube::Result<()> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let name = replica_set_name(d);
    let current = owned
        .iter()
        .find(|rs| rs.metadata.name.as_ref() == Some(&name));
    match current {
        None => {
            let rs = new_replica_set(d, &name, desired, owned.len() + 1)?;
            match api.create(&Default::default(), &rs).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Some(rs) if rs.spec.as_ref().and_then(|s| s.replicas) != Some(desired) => {
            scale(&api, &name, desired).await?;
        }
        Some(_) => {}
    }
    // The Deployment carries its current revision (`kubectl rollout undo`
    // and `history` read it).
    let revision = current
        .and_then(|rs| rs.metadata.annotations.as_ref()?.get(REVISION).cloned())
        .unwrap_or_else(|| (owned.len() + 1).to_string());
    let noted = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION));
    if noted != Some(&revision) {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
        match deployments
            .patch(
                d.metadata.name.as_deref().unwrap_or_default(),
                &controller(),
                &Patch::Merge(patch),
            )
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            other => {
                other?;
            }
        }
    }
    let available = current
        .and_then(|rs| rs.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if available >= desired {
        for old in owned
            .iter()
            .filter(|rs| rs.metadata.name.as_ref() != Some(&name))
        {
            if old.spec.as_ref().and_then(|s| s.replicas) != Some(0) {
                scale(&api, old.metadata.name.as_deref().unwrap_or_default(), 0).await?;
            }
        }
    }
    Ok(())
}

async fn scale(api: &Api<ReplicaSet>, name: &str, replicas: i32) -> kube::Result<()> {
    api.patch(
        name,
        &controller(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map(|_| ())
}

/// The ReplicaSet for `d`'s template: its selector and template labels
/// carry the template hash, and `d` owns it.
fn new_replica_set(
    d: &Deployment,
    name: &str,
    replicas: i32,
    revision: usize,
) -> kube::Result<ReplicaSet> {
    let spec = d.spec.clone().unwrap_or_default();
    let hash = template_hash(d);
    let mut template = serde_json::to_value(&spec.template).map_err(kube::Error::SerdeError)?;
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = serde_json::to_value(&spec.selector).map_err(kube::Error::SerdeError)?;
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": d.metadata.namespace,
            "labels": template["metadata"]["labels"],
            "annotations": {REVISION: revision.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": d.metadata.name, "uid": d.metadata.uid,
                "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": replicas, "selector": selector, "template": template}});
    serde_json::from_value(rs).map_err(kube::Error::SerdeError)
}

/// The ReplicaSet controller's step: its pods, `<name>-<suffix>`, created
/// or deleted to match `spec.replicas`, and its status.
async fn replicate(client: &Client, rs: &ReplicaSet, kubelet: &mut Kubelet) -> kube::Result<()> {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let wanted: Vec<String> = (0..want)
        .map(|i| {
            format!(
                "{name}-{}",
                safe_encode(fnv(format!("{name}/{i}").as_bytes()), 5)
            )
        })
        .collect();
    let mut mine: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| owned_by(&p.metadata.owner_references, &rs.metadata.uid))
        .collect();
    let mut refusal = None;
    for pod_name in &wanted {
        if mine
            .iter()
            .any(|p| p.metadata.name.as_ref() == Some(pod_name))
        {
            continue;
        }
        match pods
            .create(&Default::default(), &new_pod(rs, pod_name, kubelet)?)
            .await
        {
            Ok(p) => mine.push(p),
            Err(kube::Error::Api(e)) if e.code == 403 => {
                refusal = Some(e.message);
                break;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    for pod in mine
        .iter()
        .filter(|p| !wanted.contains(p.metadata.name.as_ref().unwrap_or(&String::new())))
    {
        let _ = pods
            .delete(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &DeleteParams::default(),
            )
            .await;
    }
    mine.retain(|p| wanted.contains(p.metadata.name.as_ref().unwrap_or(&String::new())));
    let ready = mine.iter().filter(|p| is_ready(p)).count() as i32;
    let was_failing = has_condition(rs.status.as_ref().and_then(|s| s.conditions.as_ref()).map(
        |c| {
            c.iter()
                .map(|c| (c.type_.as_str(), c.status.as_str()))
                .collect()
        },
    ));
    let mut status = json!({"observedGeneration": rs.metadata.generation,
        "replicas": mine.len(), "readyReplicas": ready, "availableReplicas": ready,
        "fullyLabeledReplicas": mine.len(), "conditions": null});
    if let Some(message) = &refusal {
        status["conditions"] = json!([{"type": "ReplicaFailure", "status": "True",
            "reason": "FailedCreate", "message": message}]);
        if !was_failing {
            record_event(
                client,
                &ns,
                (&name, rs.metadata.uid.as_deref().unwrap_or_default()),
                "FailedCreate",
                &format!("Error creating: {message}"),
            )
            .await?;
        }
    }
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let old = serde_json::to_value(&rs.status).map_err(kube::Error::SerdeError)?;
    if differs(&old, &status) {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(())
}

fn has_condition(conditions: Option<Vec<(&str, &str)>>) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|(t, s)| t == "ReplicaFailure" && s == "True")
}

/// A pod of `rs` named `name`, owned by it, with the status the kubelet
/// gives it now.
fn new_pod(rs: &ReplicaSet, name: &str, kubelet: &mut Kubelet) -> kube::Result<Pod> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let mut spec = serde_json::to_value(&template.spec).map_err(kube::Error::SerdeError)?;
    // Scheduled at once, on the one node.
    spec["nodeName"] = json!(super::kubelet::NODE_NAME);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": rs.metadata.namespace,
            "labels": template.metadata.as_ref().and_then(|m| m.labels.clone()),
            "annotations": template.metadata.as_ref().and_then(|m| m.annotations.clone()),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": rs.metadata.name, "uid": rs.metadata.uid,
                "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec,
        "status": kubelet.pod_status(&spec)});
    serde_json::from_value(pod).map_err(kube::Error::SerdeError)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A Deployment's status from its ReplicaSets (`owned`), with the
/// conditions `kubectl rollout status` and the engine read.
fn deployment_status(d: &Deployment, owned: &[ReplicaSet]) -> Value {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let name = replica_set_name(d);
    let count =
        |rs: &ReplicaSet, f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>| {
            rs.status.as_ref().and_then(f).unwrap_or(0)
        };
    let total: i32 = owned.iter().map(|rs| count(rs, |s| Some(s.replicas))).sum();
    let available: i32 = owned
        .iter()
        .map(|rs| count(rs, |s| s.available_replicas))
        .sum();
    let current = owned
        .iter()
        .find(|rs| rs.metadata.name.as_ref() == Some(&name));
    let updated = current.map_or(0, |rs| count(rs, |s| Some(s.replicas)));
    let updated_available = current.map_or(0, |rs| count(rs, |s| s.available_replicas));
    let failure = current
        .and_then(|rs| rs.status.as_ref()?.conditions.clone())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True");
    let mut conditions = vec![if available >= desired {
        json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
            "message": "Deployment has minimum availability."})
    } else {
        json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
            "message": "Deployment does not have minimum availability."})
    }];
    conditions.push(if updated_available >= desired && total == updated {
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
            "message": format!("ReplicaSet \"{name}\" has successfully progressed.")})
    } else {
        json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
            "message": format!("ReplicaSet \"{name}\" is progressing.")})
    });
    if let Some(f) = failure {
        conditions.push(json!({"type": "ReplicaFailure", "status": "True",
            "reason": f.reason, "message": f.message}));
    }
    let mut status = json!({"observedGeneration": d.metadata.generation, "replicas": total,
        "updatedReplicas": updated, "readyReplicas": available, "availableReplicas": available,
        "conditions": conditions});
    // As the deployment controller counts it: the replicas every
    // ReplicaSet should have less those available (an old one still
    // serving does not hide a new one that cannot start). null: a merge
    // patch removes it once all are available.
    let wanted: i32 = owned
        .iter()
        .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
        .sum();
    let unavailable = wanted.max(desired) - available;
    status["unavailableReplicas"] = if unavailable > 0 {
        json!(unavailable)
    } else {
        Value::Null
    };
    status
}

async fn write_status(client: &Client, d: &Deployment, status: Value) -> kube::Result<()> {
    let old = serde_json::to_value(&d.status).map_err(kube::Error::SerdeError)?;
    if !differs(&old, &status) {
        return Ok(());
    }
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let name = d.metadata.name.clone().unwrap_or_default();
    // A Deployment deleted meanwhile has no status to write.
    match api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Whether merging `new` (its fields only; `null` removes one) would
/// change `old`.
fn differs(old: &Value, new: &Value) -> bool {
    new.as_object().into_iter().flatten().any(|(k, v)| {
        if v.is_null() {
            old.get(k).is_some_and(|o| !o.is_null())
        } else {
            old.get(k) != Some(v)
        }
    })
}
