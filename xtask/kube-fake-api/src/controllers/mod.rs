//! The controllers the fake plays, so that what a cluster does after a
//! write happens here too: the Deployment and ReplicaSet controllers with
//! the kubelet ([`deployments`], [`kubelet`]), a cloud's load balancer
//! ([`services`]), Seldon Core's operator ([`seldon`]), and a garbage
//! collector that deletes what an owner or a namespace took with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use serde_json::{Value, json};

pub mod deployments;
pub mod kubelet;
pub mod seldon;
pub mod services;

pub use kubelet::Node;
pub use seldon::{SeldonOperator, component_deployments};
pub use services::LoadBalancers;

/// Every controller with what it remembers between passes.
pub struct Controllers {
    /// The namespace store, which the namespace controller empties of
    /// Terminating namespaces once their contents are gone.
    pub namespaces: Arc<Mutex<BTreeMap<String, Value>>>,
    /// When the namespace controller first saw each Terminating namespace.
    pub terminating: HashMap<String, Instant>,
    pub kubelet: kubelet::Kubelet,
    pub load_balancers: LoadBalancers,
    /// Seldon Core's operator, when Seldon Core is installed.
    pub seldon: Option<SeldonOperator>,
}

impl Controllers {
    /// The namespace controller's last step: a Terminating namespace that
    /// holds nothing any more, and has been Terminating for
    /// [`TERMINATING_FOR`] at least, goes.
    fn finish_namespaces(&mut self, occupied: &BTreeSet<String>) {
        let Ok(mut store) = self.namespaces.lock() else {
            return;
        };
        let seen = &mut self.terminating;
        store.retain(|name, ns| {
            if ns["metadata"].get("deletionTimestamp").is_none() {
                return true;
            }
            let since = *seen.entry(name.clone()).or_insert_with(Instant::now);
            occupied.contains(name) || since.elapsed() < TERMINATING_FOR
        });
        seen.retain(|name, _| store.contains_key(name));
    }

    /// One pass of every controller: the garbage collector, the Deployment
    /// and ReplicaSet controllers with the kubelet, the load balancers, then
    /// the Seldon operator.
    pub async fn reconcile(&mut self, client: &Client) -> kube::Result<()> {
        let left = collect_garbage(client, self.seldon.is_some()).await?;
        self.finish_namespaces(&left);
        deployments::reconcile(client, &mut self.kubelet).await?;
        self.load_balancers.reconcile(client).await?;
        if let Some(operator) = &mut self.seldon {
            operator.reconcile(client).await?;
        }
        Ok(())
    }
}

/// How long a namespace stays Terminating at least, as a cluster's
/// namespace controller takes a while.
pub const TERMINATING_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Now, as the API server writes times (RFC 3339, seconds).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The garbage collector and the namespace controller in one: an object
/// whose owner (by `ownerReferences` uid) is gone, or whose namespace is
/// gone or Terminating, is deleted, as a cluster deletes a Deployment's
/// pods and a deleted namespace's contents. Returns the namespaces that
/// still held something.
async fn collect_garbage(client: &Client, seldon: bool) -> kube::Result<BTreeSet<String>> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let live: BTreeSet<String> = namespaces
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
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
    let mut occupied = BTreeSet::new();
    for (ar, obj) in objects {
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        occupied.insert(ns.clone());
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
    Ok(occupied)
}

/// A Warning event about the ReplicaSet `(name, uid)`, as the ReplicaSet
/// controller records a pod it could not create (`kubectl describe rs`
/// finds it by the uid; `kubectl get events` shows its times).
pub(crate) async fn record_event(
    client: &Client,
    ns: &str,
    (name, uid): (&str, &str),
    reason: &str,
    message: &str,
) -> kube::Result<()> {
    let involved = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name,
        "namespace": ns, "uid": uid});
    let source = json!({"component": "replicaset-controller"});
    warn(client, ns, involved, source, reason, message).await
}

/// Records a Warning Event about `involved` (an `involvedObject`) from
/// `source`, named `<object>.<reason>` so that it is recorded once.
pub(crate) async fn warn(
    client: &Client,
    ns: &str,
    involved: Value,
    source: Value,
    reason: &str,
    message: &str,
) -> kube::Result<()> {
    let at = now();
    let name = involved["name"].as_str().unwrap_or_default();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{reason}").to_lowercase(), "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "firstTimestamp": at, "lastTimestamp": at,
        "source": source});
    let event = serde_json::from_value(event).map_err(kube::Error::SerdeError)?;
    match events.create(&Default::default(), &event).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
