//! `seldon install|uninstall|status`, `deploy --seldon` and `teardown
//! --seldon` with the real `kubectl` against the API fake served over HTTP
//! (its controllers roll out what Helm installs, its namespace controller
//! empties deleted namespaces). Helm charts and Google Cloud cannot run
//! here: `helm` and `gcloud` are fakes that record their argv, and the fake
//! `helm` applies what each chart would create (the operator's and
//! Ambassador's Deployments and Service) through the real kubectl. `kubectl`
//! on PATH records its argv and runs the real one, so the tests assert both
//! the exact commands and what they did.

mod support;

use kube_fake_api::{Setup, kubeconfig};
use serde_json::{Value, json};
use support::{Fakes, Result, in_order, text};

/// Helm releases are files in `$FAKE_RELEASES` (`helm list` prints them);
/// `upgrade --install` applies the chart's objects (`$FAKE_CHARTS/<release>.yaml`)
/// and, with `--wait`, waits for their rollout; `uninstall` deletes them.
const HELM: &str = r#"ctx=$2; verb=$3; name=$4
case "$verb" in
  list)
    if [ -n "$FAKE_HELM_GARBAGE" ]; then echo 'WARNING: Kubernetes configuration file is group-readable'; exit 0; fi
    name=$(echo "$*" | sed -n 's/.*--filter \^\([^$]*\)\$.*/\1/p')
    if [ -f "$FAKE_RELEASES/$name" ]; then cat "$FAKE_RELEASES/$name"; else echo '[]'; fi ;;
  upgrade)
    if [ -n "$FAKE_HELM_FAIL" ]; then echo 'Error: INSTALLATION FAILED: timed out waiting for the condition' >&2; exit 1; fi
    name=$5; chart=$6; version=$(echo "$*" | sed -n 's/.*--version \([^ ]*\).*/\1/p'); ns=$(echo "$*" | sed -n 's/.*--namespace \([^ ]*\).*/\1/p')
    "$REAL_KUBECTL" --context "$ctx" apply --server-side --field-manager helm --filename "$FAKE_CHARTS/$name.yaml" >/dev/null || exit 1
    case "$*" in *--wait*) "$REAL_KUBECTL" --context "$ctx" --namespace "$ns" rollout status deployment --timeout 60s >/dev/null || exit 1 ;; esac
    echo "[{\"name\":\"$name\",\"namespace\":\"$ns\",\"revision\":\"1\",\"status\":\"deployed\",\"chart\":\"$chart-$version\",\"app_version\":\"$version\"}]" > "$FAKE_RELEASES/$name" ;;
  uninstall)
    "$REAL_KUBECTL" --context "$ctx" delete --wait=true --filename "$FAKE_CHARTS/$name.yaml" >/dev/null || exit 1
    rm -f "$FAKE_RELEASES/$name" ;;
esac"#;

/// The real kubectl, but for Istio's Gateway, whose CRD the API fake does
/// not serve: `$FAKE_ISTIO_GATEWAY` says it exists.
const KUBECTL: &str = r#"case "$*" in *"get gateway.networking.istio.io seldon-gateway"*)
  if [ -n "$FAKE_ISTIO_GATEWAY" ]; then echo seldon-gateway; exit 0; fi ;; esac
exec "$REAL_KUBECTL" "$@""#;

const GCLOUD: &str = r#"case "$*" in "config get-value account") echo "dev@example.com" ;; esac"#;

const MINIKUBE: &str = "mlops";
const GKE: &str = "gke_proj-1_europe-west1-b_k8s-test-cluster";

/// The one command that creates (or labels) each namespace kube-mlops makes.
const NEW_NAMESPACE: &str = "apply --server-side --field-manager kube-mlops --filename -";

const AMBASSADOR: &str = "upgrade --install ambassador ambassador --repo https://www.getambassador.io --version 6.9.5 \
    --namespace ambassador --create-namespace --set image.repository=docker.io/datawire/ambassador \
    --set crds.keep=false --set enableAES=false --wait --timeout 5m";
const OPERATOR: &str = "upgrade --install seldon-core seldon-core-operator --repo https://storage.googleapis.com/seldon-charts \
    --version 1.18.2 --namespace seldon-system --create-namespace --set usageMetrics.enabled=false";

/// What a chart creates: one Deployment (and a Service in front of it), as
/// a YAML stream (a `kind: List` would make kubectl validate through
/// OpenAPI v2, which the fake does not serve).
fn chart(ns: &str, name: &str, image: &str, service: bool) -> String {
    let labels = json!({"app.kubernetes.io/name": name});
    let mut items = vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": image}]}}}})];
    if service {
        items.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
    }
    yaml_stream(&items)
}

/// Objects as one YAML stream (`---` between documents).
fn yaml_stream(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).expect("JSON is YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The API fake served with its controllers, a kubeconfig whose only
/// context is `context`, and the fake tools.
struct Stage {
    _rt: tokio::runtime::Runtime,
    f: Fakes,
    env: Vec<(&'static str, String)>,
}

impl Stage {
    /// Seldon Core's CRD is served when `crd` (Helm cannot install it here).
    fn new(context: &str, crd: bool) -> Result<Self> {
        let setup = Setup {
            seldon_installed: crd,
            ..Setup::default()
        };
        let rt = tokio::runtime::Runtime::new()?;
        let (_fake, addr) = kube_fake_api::run_on(&rt, setup)?;
        Self::with(rt, context, &addr.to_string())
    }

    /// A kubeconfig whose server refuses connections.
    fn unreachable(context: &str) -> Result<Self> {
        let port = support::free_port()?;
        Self::with(
            tokio::runtime::Runtime::new()?,
            context,
            &format!("127.0.0.1:{port}"),
        )
    }

    fn with(rt: tokio::runtime::Runtime, context: &str, addr: &str) -> Result<Self> {
        let real = which_kubectl()?;
        let f = Fakes::new(&[("helm", HELM), ("kubectl", KUBECTL), ("gcloud", GCLOUD)])?;
        let dir = f.dir.path();
        let config = dir.join("kubeconfig");
        std::fs::write(&config, kubeconfig(addr.parse()?, context))?;
        std::fs::create_dir(dir.join("releases"))?;
        std::fs::create_dir(dir.join("charts"))?;
        for (release, object) in [
            (
                "ambassador",
                chart(
                    "ambassador",
                    "ambassador",
                    "docker.io/datawire/ambassador:1.14.4",
                    true,
                ),
            ),
            (
                "seldon-core",
                chart(
                    "seldon-system",
                    "seldon-controller-manager",
                    "docker.io/seldonio/seldon-core-operator:1.18.2",
                    false,
                ),
            ),
        ] {
            std::fs::write(dir.join("charts").join(format!("{release}.yaml")), &object)?;
        }
        let env = vec![
            ("KUBECONFIG", config.display().to_string()),
            ("REAL_KUBECTL", real),
            ("FAKE_RELEASES", dir.join("releases").display().to_string()),
            ("FAKE_CHARTS", dir.join("charts").display().to_string()),
        ];
        Ok(Self { _rt: rt, f, env })
    }

    fn xtask(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<(std::process::Output, Vec<String>)> {
        self.f.xtask_with(args, &self.env, extra)
    }

    /// The real kubectl on the stage's cluster, not logged: what the cluster holds.
    fn kubectl(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(std::process::Command::new(which_kubectl()?)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()?)
    }

    /// An object as JSON (`kubectl get … --output json`).
    fn get(&self, what: &[&str]) -> Result<Value> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["--output", "json"]);
        let out = self.kubectl(&args)?;
        if !out.status.success() {
            return Err(format!("kubectl {args:?}: {}", text(&out.stderr)).into());
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn settings(&self, text: &str) -> Result {
        std::fs::write(self.f.dir.path().join("xtask.toml"), text)?;
        Ok(())
    }
}

/// The kubectl this machine has (the tests' PATH puts the recording one first).
fn which_kubectl() -> Result<String> {
    Ok(which::which("kubectl")
        .map_err(|e| format!("kubectl is needed for these tests ({e}): install it"))?
        .display()
        .to_string())
}

/// What changed the cluster: everything but the read-only queries.
fn acted(log: &[String]) -> Vec<&str> {
    log.iter()
        .map(String::as_str)
        .filter(|l| {
            !l.contains(" list ")
                && !l.contains(" get ")
                && !l.starts_with("kubectl config")
                && !l.starts_with("gcloud config")
        })
        .collect()
}

/// The labels kube-mlops gives the namespaces it creates, as stored.
fn assert_pod_security(stage: &Stage, ns: &str) -> Result {
    let obj = stage.get(&["namespace", ns])?;
    let labels = &obj["metadata"]["labels"];
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce"], "baseline",
        "{obj}"
    );
    assert_eq!(
        labels["pod-security.kubernetes.io/warn"], "restricted",
        "{obj}"
    );
    assert_eq!(
        labels["pod-security.kubernetes.io/audit"], "restricted",
        "{obj}"
    );
    Ok(())
}

#[test]
fn install_on_minikube_installs_ambassador_then_the_pinned_operator_and_no_rbac_binding() -> Result
{
    let stage = Stage::new(MINIKUBE, true)?;
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let k = format!("kubectl --context {MINIKUBE}");
    assert_eq!(
        acted(&log),
        [
            format!("{k} {NEW_NAMESPACE}"),
            format!("helm --kube-context mlops {AMBASSADOR}"),
            format!("{k} {NEW_NAMESPACE}"),
            format!(
                "helm --kube-context mlops {OPERATOR} --set ambassador.enabled=true --wait --timeout 5m"
            ),
            format!("{k} {NEW_NAMESPACE}"),
        ]
    );
    // What the cluster now holds: each namespace labelled for pod
    // security by kube-mlops' apply, the operator rolled out.
    for ns in ["ambassador", "seldon-system", "seldon"] {
        assert_pod_security(&stage, ns)?;
        let managers = stage.get(&["namespace", ns, "--show-managed-fields"])?;
        assert_eq!(
            managers["metadata"]["managedFields"][0]["manager"], "kube-mlops",
            "{managers}"
        );
    }
    let operator = stage.get(&[
        "deployment",
        "seldon-controller-manager",
        "--namespace",
        "seldon-system",
    ])?;
    assert_eq!(operator["status"]["readyReplicas"], 1, "{operator}");
    assert!(
        !stage
            .kubectl(&["get", "clusterrolebinding", "kube-mlops-cluster-admin"])?
            .status
            .success(),
        "no binding on minikube"
    );
    assert!(
        text(&out.stdout).contains("Seldon Core 1.18.2 is ready on mlops"),
        "{}",
        text(&out.stdout)
    );
    Ok(())
}

#[test]
fn install_on_gke_binds_the_gcloud_account_to_cluster_admin_first() -> Result {
    let stage = Stage::new(GKE, true)?;
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let k = format!("kubectl --context {GKE}");
    assert_eq!(
        acted(&log),
        [
            format!("{k} apply --server-side --field-manager kube-mlops --filename -"),
            format!("{k} {NEW_NAMESPACE}"),
            format!("helm --kube-context {GKE} {AMBASSADOR}"),
            format!("{k} {NEW_NAMESPACE}"),
            format!(
                "helm --kube-context {GKE} {OPERATOR} --set ambassador.enabled=true --wait --timeout 5m"
            ),
            format!("{k} {NEW_NAMESPACE}"),
        ]
    );
    let binding = stage.get(&["clusterrolebinding", "kube-mlops-cluster-admin"])?;
    assert_eq!(binding["roleRef"]["name"], "cluster-admin", "{binding}");
    assert_eq!(
        binding["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev@example.com"}])
    );
    // The binding is made first, and once: a second install finds it.
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(acted(&log).is_empty(), "{log:?}");
    assert!(
        text(&out.stderr).contains("clusterrolebinding kube-mlops-cluster-admin exists"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_second_install_reports_the_version_and_changes_nothing_but_a_new_pin_upgrades() -> Result {
    let stage = Stage::new(MINIKUBE, true)?;
    let (out, _) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Someone set a stricter level on the models' namespace: left alone.
    let relabel = stage.kubectl(&[
        "label",
        "namespace",
        "seldon",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    ])?;
    assert!(relabel.status.success(), "{}", text(&relabel.stderr));

    let (out, log) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Seldon Core is already installed (version 1.18.2, deployed)"),
        "{}",
        text(&out.stdout)
    );
    assert!(acted(&log).is_empty(), "{log:?}");
    let seldon = stage.get(&["namespace", "seldon"])?;
    assert_eq!(
        seldon["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "{seldon}"
    );

    // An older chart installed: upgraded to the pin, nothing else.
    let release = stage.f.dir.path().join("releases/seldon-core");
    let older = std::fs::read_to_string(&release)?.replace("1.18.2", "1.17.1");
    std::fs::write(&release, older)?;
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        acted(&log),
        [format!(
            "helm --kube-context mlops {OPERATOR} --set ambassador.enabled=true --wait --timeout 5m"
        )]
    );
    assert!(
        text(&out.stderr)
            .contains("upgrade from 1.17.1 (deployed) to the Seldon Core operator 1.18.2"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn istio_is_required_not_installed_and_the_operator_is_told_to_use_it() -> Result {
    let stage = Stage::new(MINIKUBE, true)?;
    stage.settings(
        "[minikube]\nprofile = \"mlops\"\n[seldon]\ningress = \"istio\"\ninstall_ingress = false\n",
    )?;
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Istio is not installed (istio-system/istio-ingressgateway is missing)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kube-mlops does not install Istio"),
        "{stderr}"
    );
    assert!(acted(&log).is_empty(), "{log:?}");

    // Istio's gateway Service, without its Gateway: named.
    let gateway = stage.f.dir.path().join("istio.yaml");
    std::fs::write(
        &gateway,
        yaml_stream(&[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                "spec": {"ports": [{"name": "http2", "port": 80}]}}),
        ]),
    )?;
    let applied = stage.kubectl(&[
        "apply",
        "--server-side",
        "--filename",
        &gateway.display().to_string(),
    ])?;
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("Istio is installed, but Gateway istio-system/seldon-gateway is missing"),
        "{}",
        text(&out.stderr)
    );
    assert!(acted(&log).is_empty(), "{log:?}");

    let (out, log) = stage.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[("FAKE_ISTIO_GATEWAY", "1")],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let k = format!("kubectl --context {MINIKUBE}");
    assert_eq!(
        acted(&log),
        [
            format!("{k} {NEW_NAMESPACE}"),
            format!(
                "helm --kube-context mlops {OPERATOR} --set ambassador.enabled=false --set istio.enabled=true \
                 --set istio.gateway=istio-system/seldon-gateway --wait --timeout 5m"
            ),
            format!("{k} {NEW_NAMESPACE}"),
        ]
    );

    stage.settings("[seldon]\ningress = \"istio\"\n")?;
    let (out, _) = stage.xtask(&["seldon", "status", "--target", "minikube"], &[])?;
    assert!(
        text(&out.stderr)
            .contains("seldon.ingress = \"istio\" needs seldon.install_ingress = false"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_failing_helm_is_reported_with_its_command_and_stderr() -> Result {
    let stage = Stage::new(MINIKUBE, true)?;
    let (out, _) = stage.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[("FAKE_HELM_FAIL", "1")],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("helm --kube-context mlops upgrade --install ambassador"),
        "{stderr}"
    );
    assert!(
        stderr.contains("INSTALLATION FAILED: timed out waiting for the condition"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn uninstall_removes_releases_namespaces_and_the_binding_and_is_idempotent() -> Result {
    let stage = Stage::new(GKE, true)?;
    let (out, _) = stage.xtask(&["seldon", "install", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, log) = stage.xtask(&["seldon", "uninstall", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        acted(&log),
        [
            format!(
                "helm --kube-context {GKE} uninstall seldon-core --namespace seldon-system --wait"
            ),
            format!("helm --kube-context {GKE} uninstall ambassador --namespace ambassador --wait"),
            format!("kubectl --context {GKE} delete namespace seldon --wait=true"),
            format!("kubectl --context {GKE} delete namespace seldon-system --wait=true"),
            format!("kubectl --context {GKE} delete namespace ambassador --wait=true"),
            format!("kubectl --context {GKE} delete clusterrolebinding kube-mlops-cluster-admin"),
        ]
    );
    // `--wait=true` returned once the namespace controller removed them.
    let left = stage.get(&["namespaces"])?;
    let names: Vec<&str> = left["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    for ns in ["ambassador", "seldon-system", "seldon"] {
        assert!(!names.contains(&ns), "{ns} is still there: {names:?}");
    }
    assert!(
        !stage
            .kubectl(&["get", "clusterrolebinding", "kube-mlops-cluster-admin"])?
            .status
            .success()
    );

    let (out, log) = stage.xtask(&["seldon", "uninstall", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "Seldon Core is not installed on {GKE}; nothing to remove."
        )),
        "{}",
        text(&out.stdout)
    );
    assert!(acted(&log).is_empty(), "{log:?}");
    Ok(())
}

#[test]
fn status_names_version_readiness_crd_and_ingress() -> Result {
    let stage = Stage::new(MINIKUBE, true)?;
    let (out, _) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, _) = stage.xtask(&["seldon", "status", "--target", "minikube"], &[])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("operator   ok   version 1.18.2 (deployed), ready 1/1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CRD        ok   seldondeployments.machinelearning.seldon.io present"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ingress    ok   ambassador/ambassador found"),
        "{stdout}"
    );

    let bare = Stage::new(MINIKUBE, false)?;
    let (out, _) = bare.xtask(&["seldon", "status", "--target", "minikube"], &[])?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("not installed: run `cargo xtask seldon install --target minikube`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CRD        NO   seldondeployments.machinelearning.seldon.io missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ingress    NO   ambassador/ambassador missing"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn install_without_the_crd_after_helm_says_so() -> Result {
    // Helm said it installed the operator, but the cluster serves no CRD.
    let stage = Stage::new(MINIKUBE, false)?;
    let (out, _) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "Helm installed the operator, but the cluster has no seldondeployments.machinelearning.seldon.io CRD"
        ),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn deploy_seldon_without_the_crd_says_how_to_install_before_building_anything() -> Result {
    let stage = Stage::new(MINIKUBE, false)?;
    let (out, log) = stage.xtask(&["deploy", "--seldon", "--target", "minikube"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Seldon Core is not installed on mlops"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cargo xtask seldon install --target minikube"),
        "{stderr}"
    );
    assert_eq!(
        log,
        [
            "kubectl config current-context",
            "kubectl --context mlops get crd seldondeployments.machinelearning.seldon.io"
        ]
    );
    Ok(())
}

#[test]
fn deploy_seldon_dry_run_plans_build_delivery_apply_ingress_and_both_calls() -> Result {
    let stage = Stage::new(GKE, true)?;
    // The identity model and the iris preset: both Seldon calls.
    stage.f.settings(&format!(
        "{}[services.test-api]\n[services.model-server]\n[services.iris-model]\n",
        support::CLUSTERS
    ))?;
    let (out, log) = stage.xtask(&["--dry-run", "deploy", "--seldon", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let engine = format!("kube-engine --context {GKE}");
    in_order(
        &text(&out.stdout),
        &[
            "cargo build --package kube-engine",
            "cargo build --profile dist",
            "push ",
            "to europe-west1-docker.pkg.dev/proj-1/kube-mlops/model-server:",
            "$ kubectl kustomize ",
            "deploy/seldon",
            &format!("{engine} apply --filename "),
            "--namespace seldon --timeout 180 --image 'model-server=europe-west1-docker.pkg.dev/proj-1/kube-mlops/model-server@sha256:",
            &format!(
                "{engine} load-balancer --namespace ambassador --service ambassador --timeout 300"
            ),
            "POST {\"data\":{\"names\":[\"a\",\"b\"],\"tensor\":{\"shape\":[2,2],\"values\":[0,0,1,1]}}} to \
             http://<external IP of ambassador/ambassador>:80/seldon/seldon/seldon-test-model/api/v1.0/predictions",
            "contract test ",
            "/seldon/seldon/seldon-iris-model/api/v1.0/predictions",
        ],
    );
    assert!(acted(&log).is_empty(), "{log:?}");
    assert!(!stage.f.dir.path().join("target").exists());

    let stage = Stage::new(MINIKUBE, true)?;
    let (out, _) = stage.xtask(
        &["--dry-run", "deploy", "--seldon", "--target", "minikube"],
        &[],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    in_order(
        &text(&out.stdout),
        &[
            "$ minikube image load --profile mlops ",
            "port-forward --namespace ambassador --service ambassador --local 127.0.0.1:8003 --port 80",
            "http://127.0.0.1:8003/seldon/seldon/seldon-test-model/api/v1.0/predictions",
        ],
    );
    Ok(())
}

#[test]
fn teardown_seldon_all_deletes_our_seldon_objects_then_uninstalls() -> Result {
    let stage = Stage::new(MINIKUBE, true)?;
    let (out, _) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, log) = stage.xtask(
        &[
            "--dry-run",
            "teardown",
            "--seldon",
            "--all",
            "--target",
            "minikube",
        ],
        &[],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    in_order(
        &text(&out.stdout),
        &[
            "kube-engine --context mlops teardown --selector app.kubernetes.io/managed-by=kube-mlops,kube-mlops.io/stack=seldon",
            "$ helm --kube-context mlops uninstall seldon-core --namespace seldon-system --wait",
            "$ kubectl --context mlops delete namespace seldon --wait=true",
        ],
    );
    assert!(acted(&log).is_empty(), "dry run: {log:?}");
    let (out, _) = stage.xtask(&["teardown", "--all", "--target", "minikube"], &[])?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "--all needs --seldon: {}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn helm_output_that_does_not_parse_is_an_error_not_a_reinstall() -> Result {
    let stage = Stage::new(MINIKUBE, true)?;
    let (out, log) = stage.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[("FAKE_HELM_GARBAGE", "1")],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("printed what is not Helm's JSON list of releases"),
        "{stderr}"
    );
    assert!(
        stderr.contains("group-readable"),
        "names the output: {stderr}"
    );
    assert!(acted(&log).is_empty(), "nothing installed: {log:?}");
    Ok(())
}

#[test]
fn a_cluster_that_does_not_answer_is_an_error_not_a_missing_object() -> Result {
    // The kubeconfig names a server that is not there.
    let stage = Stage::unreachable(MINIKUBE)?;
    let (out, log) = stage.xtask(&["seldon", "install", "--target", "minikube"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not tell whether it exists"),
        "{stderr}"
    );
    assert!(stderr.contains("was refused"), "{stderr}");
    assert!(
        acted(&log).is_empty(),
        "nothing installed on a guess: {log:?}"
    );
    Ok(())
}
