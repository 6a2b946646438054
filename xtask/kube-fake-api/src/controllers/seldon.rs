//! Seldon Core's operator: a SeldonDeployment becomes one Deployment per
//! component spec, labelled `seldon-deployment-id`; its `status.state` goes
//! `Creating` on every spec change, then `Available` once they are, or
//! `Failed`. Seldon Core 1.18.2 writes no `status.observedGeneration`, and
//! neither does this operator.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::SeldonDeployment;

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
    pub async fn reconcile(&mut self, client: &Client) -> kube::Result<()> {
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
                        // What the API server said, as the operator reports it.
                        Err(kube::Error::Api(e)) => {
                            json!({"state": "Failed", "description": e.message})
                        }
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
                // The new pods, not old ones still serving a rollout that
                // is stuck.
                st.observed_generation == d.metadata.generation
                    && st.available_replicas.unwrap_or(0) >= want
                    && st.updated_replicas.unwrap_or(0) >= want
                    && st.unavailable_replicas.unwrap_or(0) == 0
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
