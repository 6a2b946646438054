//! The kubelet and the node's container runtime, for what a deploy meets:
//! whether each container's image is on the node or can be pulled, and the
//! pod status that follows. An image that is not on the node with
//! `imagePullPolicy: Never` leaves its container waiting with
//! `ErrImageNeverPull`; one the node cannot pull (a registry it does not
//! reach) with `ImagePullBackOff`, each with the message the kubelet gives.
//! A waiting pod is looked at again on every pass, as the kubelet retries,
//! so an image loaded later starts it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// What the node holds and reaches.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// The images loaded into the node's runtime, one reference per line, as
    /// the fake `minikube image load` or `kind load` appends them; `None`:
    /// every image is there (the node is not modelled).
    pub images: Option<PathBuf>,
    /// Registry hosts the node can pull from (`reg.example`,
    /// `localhost:5000`); `docker.io` for references without one.
    pub registries: Vec<String>,
    /// Its CPU as Kubernetes reports it (`status.nodeInfo.architecture`,
    /// Go's GOARCH: `amd64`, `arm64`); `None`: this host's.
    pub architecture: Option<String>,
}

impl Node {
    /// `architecture`, else this host's CPU in Go's names.
    pub fn architecture(&self) -> String {
        self.architecture.clone().unwrap_or_else(|| {
            match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            }
            .to_string()
        })
    }

    /// The Node object the API serves for it, as a kubelet registers one
    /// (`status.nodeInfo` with every field a 1.32 kubelet fills).
    pub fn object(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/arch": self.architecture(),
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/hostname": NODE_NAME,
                },
            },
            "status": {
                "addresses": [{"type": "InternalIP", "address": NODE_IP}],
                "nodeInfo": {
                    "architecture": self.architecture(),
                    "operatingSystem": "linux",
                    "bootID": "00000000-0000-0000-0000-000000000000",
                    "containerRuntimeVersion": "containerd://1.7.24",
                    "kernelVersion": "6.1.0",
                    "kubeProxyVersion": "v1.32.0",
                    "kubeletVersion": "v1.32.0",
                    "machineID": "kube-fake-node",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "systemUUID": "00000000-0000-0000-0000-000000000000",
                },
            },
        })
    }
}

/// The one node's name (what the scheduler writes in `spec.nodeName`)
/// and address.
pub const NODE_NAME: &str = "kube-fake-node";
const NODE_IP: &str = "192.168.49.2";

/// The kubelet: the node, what it pulled so far, and the pod addresses
/// it handed out.
#[derive(Default)]
pub struct Kubelet {
    node: Node,
    pulled: BTreeSet<String>,
    next_ip: u32,
}

impl Kubelet {
    pub fn new(node: Node) -> Self {
        Self {
            node,
            pulled: BTreeSet::new(),
            next_ip: 0,
        }
    }

    /// The status of a pod running `spec` (a PodSpec) now: `Running` and
    /// `Ready` when every container's image is there or pulled, else
    /// `Pending` with each blocked container waiting and why.
    pub fn pod_status(&mut self, spec: &Value) -> Value {
        let now = super::now();
        let mut statuses = Vec::new();
        let mut all_ready = true;
        for c in spec["containers"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let policy = c["imagePullPolicy"].as_str();
            statuses.push(match self.image(image, policy) {
                Ok(()) => json!({"name": name, "image": image, "imageID": "", "ready": true,
                    "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}}),
                Err((reason, message)) => {
                    all_ready = false;
                    json!({"name": name, "image": image, "imageID": "", "ready": false,
                        "restartCount": 0, "started": false,
                        "state": {"waiting": {"reason": reason, "message": message}}})
                }
            });
        }
        self.next_ip += 1;
        let pod_ip = format!(
            "10.244.{}.{}",
            self.next_ip / 250 % 256,
            self.next_ip % 250 + 2
        );
        let mut status = if all_ready {
            json!({"phase": "Running", "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True"}],
                "containerStatuses": statuses})
        } else {
            json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": statuses})
        };
        status["hostIP"] = json!(NODE_IP);
        status["podIP"] = json!(pod_ip);
        status["podIPs"] = json!([{"ip": pod_ip}]);
        status["startTime"] = json!(now);
        status
    }

    /// Whether `image` is there for a container with `policy` (the API
    /// server's default when unset: `Always` for `:latest` or no tag,
    /// `IfNotPresent` otherwise); the waiting reason and message if not.
    fn image(&mut self, image: &str, policy: Option<&str>) -> Result<(), (String, String)> {
        let Some(file) = &self.node.images else {
            return Ok(());
        };
        let wanted = normalize(image);
        let loaded = std::fs::read_to_string(file).unwrap_or_default();
        let present = self.pulled.contains(&wanted)
            || loaded
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .any(|l| normalize(l) == wanted);
        let policy = policy.unwrap_or(if wanted.ends_with(":latest") {
            "Always"
        } else {
            "IfNotPresent"
        });
        match (present, policy) {
            (true, "Never" | "IfNotPresent") => Ok(()),
            (false, "Never") => Err((
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            )),
            _ => {
                let host = wanted.split('/').next().unwrap_or_default();
                if self.node.registries.iter().any(|r| r == host) {
                    self.pulled.insert(wanted);
                    Ok(())
                } else {
                    Err((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image \"{image}\""),
                    ))
                }
            }
        }
    }

    /// Looks again at every pod that is not ready, as the kubelet retries:
    /// an image loaded or made reachable since starts it; and starts a pod
    /// created on its own (`kubectl run`), which has no status yet.
    pub async fn sync(&mut self, client: &Client) -> kube::Result<()> {
        let all: Api<Pod> = Api::all(client.clone());
        for pod in all.list(&ListParams::default()).await?.items {
            let waiting = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_some()))
                });
            let new = pod.status.as_ref().is_none_or(|s| s.phase.is_none());
            if !waiting && !new {
                continue;
            }
            let spec = serde_json::to_value(&pod.spec).map_err(kube::Error::SerdeError)?;
            let status = self.pod_status(&spec);
            // Each container that cannot start, said once as an Event, as
            // the kubelet reports it (`kubectl describe pod`).
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            for c in status["containerStatuses"].as_array().into_iter().flatten() {
                let Some(waiting) = c["state"].get("waiting") else {
                    continue;
                };
                let involved = json!({"apiVersion": "v1", "kind": "Pod",
                    "name": pod.metadata.name, "namespace": ns, "uid": pod.metadata.uid,
                    "fieldPath": format!("spec.containers{{{}}}", c["name"].as_str().unwrap_or_default())});
                super::warn(
                    client,
                    &ns,
                    involved,
                    json!({"component": "kubelet", "host": NODE_NAME}),
                    waiting["reason"].as_str().unwrap_or_default(),
                    waiting["message"].as_str().unwrap_or_default(),
                )
                .await?;
            }
            if new || status["phase"] == "Running" {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let name = pod.metadata.name.clone().unwrap_or_default();
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
}

/// A reference as a container runtime names it: the registry host always
/// there (`docker.io`, with `library/` for official images), and `:latest`
/// when it has neither tag nor digest.
pub fn normalize(reference: &str) -> String {
    let (first, _) = reference.split_once('/').unwrap_or(("", reference));
    let hosted = first.contains('.') || first.contains(':') || first == "localhost";
    let mut full = if hosted {
        reference.to_string()
    } else if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_named_as_a_runtime_names_them() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            normalize("kube-mlops/test-api:1"),
            "docker.io/kube-mlops/test-api:1"
        );
        assert_eq!(normalize("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(
            normalize("reg.example/a/b@sha256:00"),
            "reg.example/a/b@sha256:00"
        );
    }

    fn node(loaded: &str, registries: &[&str]) -> (tempfile::TempDir, Kubelet) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("images");
        std::fs::write(&file, loaded).expect("write");
        let kubelet = Kubelet::new(Node {
            images: Some(file),
            registries: registries.iter().map(|r| r.to_string()).collect(),
            architecture: None,
        });
        (dir, kubelet)
    }

    fn reason(status: &Value) -> &str {
        status["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("running")
    }

    #[test]
    fn a_missing_image_with_pull_policy_never_is_err_image_never_pull() {
        let (_dir, mut k) = node("kube-mlops/test-api:1\n", &[]);
        let spec = |image: &str| json!({"containers": [{"name": "c", "image": image, "imagePullPolicy": "Never"}]});
        assert_eq!(
            reason(&k.pod_status(&spec("kube-mlops/test-api:1"))),
            "running"
        );
        let missing = k.pod_status(&spec("kube-mlops/test-api:2"));
        assert_eq!(reason(&missing), "ErrImageNeverPull");
        assert_eq!(missing["phase"], "Pending");
    }

    #[test]
    fn only_reachable_registries_are_pulled_from() {
        let (_dir, mut k) = node("", &["reg.example"]);
        let spec = |image: &str| json!({"containers": [{"name": "c", "image": image}]});
        assert_eq!(
            reason(&k.pod_status(&spec("reg.example/a/b@sha256:11"))),
            "running"
        );
        assert_eq!(
            reason(&k.pod_status(&spec("other.example/a/b:1"))),
            "ImagePullBackOff"
        );
    }
}
