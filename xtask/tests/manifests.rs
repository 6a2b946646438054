//! Every overlay in deploy/ rendered by the real `kubectl kustomize`, each
//! object read into its typed k8s-openapi struct, and the security settings
//! checked on every container.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use serde::Deserialize;
use serde_json::Value;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const OVERLAYS: [&str; 3] = ["minikube", "kind", "gke"];

/// The objects of a rendered overlay, as JSON values.
fn render(overlay: &str) -> Result<Vec<Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/overlays")
        .join(overlay);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T> {
    Ok(serde_json::from_value(v.clone())?)
}

#[test]
fn every_overlay_renders_into_typed_objects() -> Result {
    for overlay in OVERLAYS {
        let objects = render(overlay)?;
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "Deployment").count(),
            3,
            "{overlay}: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "Service").count(),
            3,
            "{overlay}: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "Namespace").count(),
            1,
            "{overlay}: {kinds:?}"
        );
        for o in &objects {
            let labels = &o["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "kube-mlops",
                "{overlay}: {o}"
            );
            assert_eq!(
                labels["app.kubernetes.io/part-of"], "kube-mlops",
                "{overlay}: {o}"
            );
            match o["kind"].as_str() {
                Some("Namespace") => {
                    typed::<Namespace>(o)?;
                }
                Some("Service") => {
                    let s: Service = typed(o)?;
                    assert_eq!(s.metadata.namespace.as_deref(), Some("kube-mlops"));
                    let spec = s.spec.ok_or("service without spec")?;
                    let want = if overlay == "kind" {
                        None
                    } else {
                        Some("LoadBalancer")
                    };
                    assert_eq!(spec.type_.as_deref(), want, "{overlay}");
                }
                Some("Deployment") => check_deployment(overlay, &typed(o)?)?,
                other => panic!("{overlay}: unexpected kind {other:?}"),
            }
        }
    }
    Ok(())
}

fn check_deployment(overlay: &str, d: &Deployment) -> Result {
    let name = d.metadata.name.as_deref().ok_or("unnamed")?;
    let spec = d.spec.as_ref().ok_or("no spec")?;
    let want_replicas = if overlay == "gke" { 2 } else { 1 };
    assert_eq!(spec.replicas, Some(want_replicas), "{overlay}/{name}");
    let pod = spec.template.spec.as_ref().ok_or("no pod spec")?;
    let psc = pod
        .security_context
        .as_ref()
        .ok_or("no pod securityContext")?;
    assert_eq!(psc.run_as_non_root, Some(true), "{overlay}/{name}");
    assert_eq!(psc.run_as_user, Some(65532), "{overlay}/{name}");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault"),
        "{overlay}/{name}"
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    for c in &pod.containers {
        let sc = c
            .security_context
            .as_ref()
            .ok_or("no container securityContext")?;
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{overlay}/{name}"
        );
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{overlay}/{name}");
        assert_eq!(sc.run_as_non_root, Some(true), "{overlay}/{name}");
        let drop = sc
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        assert_eq!(drop, ["ALL"], "{overlay}/{name}");
        assert!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .is_some_and(|g| g.path.as_deref() == Some("/readyz"))
        );
        assert!(
            c.liveness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .is_some_and(|g| g.path.as_deref() == Some("/healthz"))
        );
        let res = c.resources.as_ref().ok_or("no resources")?;
        assert!(
            res.requests
                .as_ref()
                .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
        );
        assert!(
            res.limits
                .as_ref()
                .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
        );
        let want_pull = match overlay {
            "gke" => "Always",
            _ => "Never",
        };
        assert_eq!(
            c.image_pull_policy.as_deref(),
            Some(want_pull),
            "{overlay}/{name}"
        );
        let pod_ip = c
            .env
            .as_ref()
            .and_then(|e| e.iter().find(|v| v.name == "POD_IP"));
        assert!(
            pod_ip.is_some(),
            "{overlay}/{name}: the downward API gives POD_IP"
        );
    }
    Ok(())
}
