//! Every overlay in deploy/ rendered by the real `kubectl kustomize`, each
//! object read into its typed k8s-openapi struct, and the security settings
//! checked on every container.

use std::path::Path;
use std::process::Command;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PodSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_engine::manifest::{self, ImageOverride};
use serde::Deserialize;
use serde_json::Value;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const OVERLAYS: [&str; 3] = ["minikube", "kind", "gke"];

/// `kubectl kustomize deploy/<dir>`'s YAML.
fn kustomize(dir: &str) -> Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(dir);
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
    Ok(String::from_utf8(out.stdout)?)
}

/// The objects of a rendered overlay, as JSON values.
fn render(overlay: &str) -> Result<Vec<Value>> {
    let text = kustomize(&format!("overlays/{overlay}"))?;
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
            2,
            "{overlay}: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "Service").count(),
            2,
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
                Some("Namespace") => check_pod_security(&typed::<Namespace>(o)?, "restricted"),
                Some("NetworkPolicy") | Some("PodDisruptionBudget") => {} // checked below
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

/// Every namespace we create enforces a pod security level.
fn check_pod_security(ns: &Namespace, enforce: &str) {
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some(enforce),
        "{:?}",
        ns.metadata.name
    );
}

/// The pods `selector` (matchLabels / In expressions) picks among `names`.
fn selected<'a>(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    names: &[&'a str],
) -> Vec<&'a str> {
    let pick = |name: &str| {
        let labels = BTreeMap::from([("app.kubernetes.io/name".to_string(), name.to_string())]);
        selector
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
            && selector.match_expressions.iter().flatten().all(|e| {
                e.operator == "In"
                    && e.values
                        .iter()
                        .flatten()
                        .any(|v| labels.get(&e.key) == Some(v))
            })
    };
    names.iter().copied().filter(|n| pick(n)).collect()
}

#[test]
fn every_service_is_fenced_by_a_network_policy_and_kept_up_by_a_disruption_budget() -> Result {
    const SERVICES: [&str; 2] = ["test-api", "model-server"];
    for overlay in OVERLAYS {
        let objects = render(overlay)?;
        let of = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
        let policies: Vec<NetworkPolicy> = of("NetworkPolicy").map(typed).collect::<Result<_>>()?;
        for svc in SERVICES {
            let mine: Vec<&NetworkPolicy> = policies
                .iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.pod_selector.as_ref())
                        .is_some_and(|sel| selected(sel, &SERVICES).contains(&svc))
                })
                .collect();
            assert!(
                !mine.is_empty(),
                "{overlay}: no NetworkPolicy selects {svc}"
            );
            for p in &mine {
                let spec = p.spec.as_ref().ok_or("no spec")?;
                assert_eq!(
                    spec.policy_types.as_deref(),
                    Some(&["Ingress".to_string()][..])
                );
                for rule in spec.ingress.iter().flatten() {
                    let ports: Vec<_> = rule
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| p.port.clone())
                        .collect();
                    assert_eq!(
                        ports,
                        [IntOrString::String("http".into())],
                        "{overlay}/{svc}: only the service port"
                    );
                }
            }
            // From anywhere only where the overlay exposes a LoadBalancer.
            let open = mine.iter().any(|p| {
                p.spec.as_ref().is_some_and(|s| {
                    s.ingress
                        .iter()
                        .flatten()
                        .flat_map(|r| r.from.iter().flatten())
                        .any(|f| f.ip_block.is_some())
                })
            });
            assert_eq!(open, overlay != "kind", "{overlay}/{svc}");
        }
        let budgets: Vec<PodDisruptionBudget> = of("PodDisruptionBudget")
            .map(typed)
            .collect::<Result<_>>()?;
        for d in of("Deployment") {
            let d: Deployment = typed(d)?;
            let name = d.metadata.name.clone().ok_or("unnamed")?;
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let budget = budgets.iter().find(|b| {
                b.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| selected(sel, &SERVICES) == [name.as_str()])
            });
            assert_eq!(
                budget.is_some(),
                replicas > 1,
                "{overlay}/{name}: {replicas} replicas"
            );
            if let Some(b) = budget {
                let min = b.spec.as_ref().and_then(|s| s.min_available.clone());
                assert_eq!(min, Some(IntOrString::Int(1)), "{overlay}/{name}");
            }
        }
    }
    Ok(())
}

fn check_deployment(overlay: &str, d: &Deployment) -> Result {
    check_deployment_with(overlay, d, 1)
}

/// The same, for a service whose settings ask for `replicas` (gke's
/// overlay runs two of each).
fn check_deployment_with(overlay: &str, d: &Deployment, replicas: i32) -> Result {
    let name = d.metadata.name.as_deref().ok_or("unnamed")?;
    let spec = d.spec.as_ref().ok_or("no spec")?;
    let want_replicas = if overlay == "gke" { 2 } else { replicas };
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

#[test]
fn the_seldon_deployments_have_what_seldon_requires_and_take_the_pinned_image() -> Result {
    const PINNED: &str = "europe-west1-docker.pkg.dev/p/r/model-server@sha256:0123";
    // The engine's own parsing and image substitution, as deploy --seldon uses them.
    let mut objects = manifest::parse(&kustomize("seldon")?)?;
    let image = ImageOverride {
        name: "model-server".into(),
        reference: PINNED.into(),
    };
    manifest::set_images(&mut objects, &[image])?;
    let mut models = Vec::new();
    for o in &objects {
        let labels = o.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("kube-mlops")
        );
        assert_eq!(
            labels.get("kube-mlops.io/stack").map(String::as_str),
            Some("seldon")
        );
        match manifest::kind_of(o) {
            "Namespace" => {
                assert_eq!(o.metadata.name.as_deref(), Some("seldon"));
                // Seldon's executor sidecar cannot meet `restricted`.
                let ns: Namespace = serde_json::from_value(serde_json::to_value(o)?)?;
                check_pod_security(&ns, "baseline");
            }
            "NetworkPolicy" => {
                let p: NetworkPolicy = serde_json::from_value(serde_json::to_value(o)?)?;
                let spec = p.spec.ok_or("no spec")?;
                assert_eq!(
                    spec.policy_types.as_deref(),
                    Some(&["Ingress".to_string()][..])
                );
                assert!(spec.ingress.iter().flatten().all(|r| r.from.is_some()));
            }
            "SeldonDeployment" => {
                assert_eq!(manifest::api_version_of(o), "machinelearning.seldon.io/v1");
                assert_eq!(o.metadata.namespace.as_deref(), Some("seldon"));
                let name = o.metadata.name.clone().ok_or("unnamed")?;
                let spec = &o.data["spec"];
                assert_eq!(spec["name"], name.as_str());
                let predictors = spec["predictors"].as_array().ok_or("no predictors")?;
                assert_eq!(predictors.len(), 1, "{name}");
                let p = &predictors[0];
                assert_eq!(p["name"], "default", "{name}");
                assert_eq!(p["graph"]["type"], "MODEL", "{name}");
                assert_eq!(p["graph"]["name"], name.as_str(), "{name}");
                let pod: PodSpec = serde_json::from_value(p["componentSpecs"][0]["spec"].clone())?;
                let c = &pod.containers[0];
                assert_eq!(
                    c.name, name,
                    "Seldon matches the graph node to the container by name"
                );
                assert_eq!(c.image.as_deref(), Some(PINNED), "{name}");
                let psc = pod
                    .security_context
                    .as_ref()
                    .ok_or("no pod securityContext")?;
                assert_eq!(psc.run_as_non_root, Some(true), "{name}");
                assert_eq!(
                    psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
                    Some("RuntimeDefault")
                );
                let sc = c
                    .security_context
                    .as_ref()
                    .ok_or("no container securityContext")?;
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
                let drop = sc
                    .capabilities
                    .as_ref()
                    .and_then(|c| c.drop.clone())
                    .unwrap_or_default();
                assert_eq!(drop, ["ALL"], "{name}");
                let model = c
                    .env
                    .iter()
                    .flatten()
                    .find(|e| e.name == "MODEL")
                    .and_then(|e| e.value.clone());
                models.push((name, model.unwrap_or_default()));
            }
            other => panic!("unexpected kind {other} in deploy/seldon"),
        }
    }
    models.sort();
    assert_eq!(
        models,
        [("seldon-test-model".to_string(), "identity".to_string())]
    );
    Ok(())
}

mod support;

#[test]
fn the_committed_manifests_are_what_the_settings_generate() -> Result {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["--progress=never", "manifests", "--check"])
        .env_remove("XTASK_CONFIG")
        .output()?;
    assert!(
        out.status.success(),
        "run `cargo xtask manifests`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_changed_port_makes_the_check_fail_until_manifests_runs_and_deploy_refuses_meanwhile() -> Result
{
    let f = support::Fakes::new(&[
        ("kind", ""),
        (
            "kubectl",
            r#"case "$*" in "config current-context") echo kind-dev ;; esac"#,
        ),
    ])?;
    let settings = |port: u16| {
        format!(
            "[kind]\ncluster = \"dev\"\n[services.test-api]\nport = {port}\n\
             [services.iris-model]\nport = 5002\n"
        )
    };
    f.settings(&settings(5000))?;
    let (out, _) = f.xtask(&["manifests", "--check"], &[])?;
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    std::fs::write(f.dir.path().join("xtask.toml"), settings(6000))?;
    let (out, _) = f.xtask(&["manifests", "--check"], &[])?;
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("base/test-api.yaml differs"), "{stderr}");
    assert!(
        stderr.contains("-      port: 5000\n+      port: 6000"),
        "{stderr}"
    );
    assert!(stderr.contains("run `cargo xtask manifests`"), "{stderr}");
    let (out, log) = f.xtask(&["deploy", "--target", "kind"], &[])?;
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("are not what the settings generate (base/test-api.yaml)"),
        "{stderr}"
    );
    assert!(
        log.iter().all(|l| l.starts_with("kubectl config")),
        "nothing built or loaded into the cluster: {log:?}"
    );
    let (out, _) = f.xtask(&["manifests"], &[])?;
    assert!(out.status.success());
    assert!(
        support::text(&out.stdout).contains("updated"),
        "{}",
        support::text(&out.stdout)
    );
    let (out, _) = f.xtask(&["manifests", "--check"], &[])?;
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    Ok(())
}

#[test]
fn a_users_model_gets_its_deployment_seldon_deployment_and_policies() -> Result {
    let f = support::Fakes::new(&[])?;
    std::fs::create_dir_all(f.dir.path().join("models"))?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../services/model-server/tests/exporters/wine-forest.onnx"),
        f.dir.path().join("models/wine.onnx"),
    )?;
    f.settings(
        "[services.test-api]\n\
         [services.wine]\nmodel = \"onnx\"\nmodel_path = \"models/wine.onnx\"\nport = 6001\n\
         replicas = 3\nclass_names = [\"barolo\", \"grignolino\", \"barbera\"]\n\
         env = { LOG_FORMAT = \"json\" }\n\
         resources = { memory_limit = \"256Mi\", memory_request = \"64Mi\", cpu_request = \"50m\", cpu_limit = \"1\" }\n",
    )?;
    let deploy = f.dir.path().join("deploy");
    let rendered = |dir: &Path| -> Result<Vec<Value>> {
        let out = Command::new("kubectl").arg("kustomize").arg(dir).output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut docs = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&String::from_utf8(out.stdout)?) {
            let v = Value::deserialize(doc)?;
            if !v.is_null() {
                docs.push(v);
            }
        }
        Ok(docs)
    };
    for overlay in OVERLAYS {
        let objects = rendered(&deploy.join("overlays").join(overlay))?;
        let wine: Deployment = typed(
            objects
                .iter()
                .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "wine")
                .ok_or("no wine Deployment")?,
        )?;
        check_deployment_with(overlay, &wine, 3)?;
        let spec = wine.spec.as_ref().ok_or("spec")?;
        let pod = spec.template.spec.as_ref().ok_or("pod")?;
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("wine"),
            "an ONNX model has its own image"
        );
        let env: BTreeMap<String, String> = c
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        assert_eq!(env["MODEL"], "onnx");
        assert_eq!(env["MODEL_PATH"], "/models/wine.onnx");
        assert_eq!(env["CLASS_NAMES"], "barolo,grignolino,barbera");
        assert_eq!(env["LOG_FORMAT"], "json");
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .ok_or("limits")?;
        assert_eq!(limits["memory"].0, "256Mi");
        let svc: Service = typed(
            objects
                .iter()
                .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "wine")
                .ok_or("no wine Service")?,
        )?;
        let port = &svc.spec.ok_or("spec")?.ports.ok_or("ports")?[0];
        assert_eq!(port.port, 6001);
        assert!(
            objects
                .iter()
                .any(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "wine"),
            "{overlay}: wine is fenced"
        );
    }
    let seldon = rendered(&deploy.join("seldon"))?;
    let names: Vec<&str> = seldon
        .iter()
        .filter(|o| o["kind"] == "SeldonDeployment")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["seldon-wine"], "only models are Seldon components");
    let sd = seldon
        .iter()
        .find(|o| o["kind"] == "SeldonDeployment")
        .ok_or("no SeldonDeployment")?;
    let container = &sd["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0];
    assert_eq!(
        container["name"], "seldon-wine",
        "graph and container names match"
    );
    assert_eq!(sd["spec"]["predictors"][0]["graph"]["name"], "seldon-wine");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    Ok(())
}
