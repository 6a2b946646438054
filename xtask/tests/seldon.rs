//! `seldon install|uninstall|status`, `deploy --seldon` and `teardown
//! --seldon` against fake `helm`, `kubectl` and `gcloud` that record argv:
//! the exact commands per target and ingress, the RBAC preamble, idempotency,
//! and clear errors.

mod support;

use support::{Fakes, Result, in_order, text};

const FAKES: &[(&str, &str)] = &[
    (
        "helm",
        r#"case "$*" in
  *" list "*)
    if [ -n "$FAKE_HELM_GARBAGE" ]; then echo 'WARNING: Kubernetes configuration file is group-readable'; exit 0; fi
    if [ -n "$FAKE_INSTALLED" ]; then
      case "$*" in
        *seldon-core*) echo '[{"name":"seldon-core","namespace":"seldon-system","revision":"1","status":"deployed","chart":"seldon-core-operator-'"${FAKE_VERSION-1.18.2}"'","app_version":"1.18.2"}]' ;;
        *ambassador*) echo '[{"name":"ambassador","namespace":"ambassador","status":"deployed","chart":"ambassador-6.9.5"}]' ;;
      esac
    else echo '[]'; fi ;;
  *upgrade*) if [ -n "$FAKE_HELM_FAIL" ]; then echo 'Error: INSTALLATION FAILED: timed out waiting for the condition' >&2; exit 1; fi ;;
esac"#,
    ),
    (
        "kubectl",
        r#"case "$*" in *" get "*) if [ -n "$FAKE_UNREACHABLE" ]; then
    echo 'The connection to the server 192.168.49.2:8443 was refused' >&2; exit 1; fi ;; esac
case "$*" in
  "config current-context") echo "$FAKE_CONTEXT" ;;
  *"get crd "*) if [ -n "$FAKE_NO_CRD" ]; then echo 'Error from server (NotFound): customresourcedefinitions "seldondeployments.machinelearning.seldon.io" not found' >&2; exit 1; fi ;;
  *"get service istio-ingressgateway"*|*"get gateway.networking.istio.io"*) [ -n "$FAKE_ISTIO" ] || { echo 'Error from server (NotFound): not found' >&2; exit 1; } ;;
  *"get deployment seldon-controller-manager"*) [ -n "$FAKE_INSTALLED" ] && echo "1/1" || { echo 'Error from server (NotFound): not found' >&2; exit 1; } ;;
  *"get namespace "*"--output jsonpath="*) [ -n "$FAKE_INSTALLED" ] && echo "baseline" || { echo 'Error from server (NotFound): not found' >&2; exit 1; } ;;
  *" get "*) [ -n "$FAKE_INSTALLED" ] || { echo 'Error from server (NotFound): not found' >&2; exit 1; } ;;
esac"#,
    ),
    (
        "gcloud",
        r#"case "$*" in "config get-value account") echo "dev@example.com" ;; esac"#,
    ),
];

const MINIKUBE: (&str, &str) = ("FAKE_CONTEXT", "mlops");

/// What a new namespace gets: created, then labelled for pod security.
fn new_namespace(kubectl: &str, ns: &str) -> [String; 2] {
    [
        format!("{kubectl} create namespace {ns}"),
        format!(
            "{kubectl} label namespace {ns} --overwrite pod-security.kubernetes.io/enforce=baseline \
             pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted"
        ),
    ]
}
const GKE: (&str, &str) = ("FAKE_CONTEXT", "gke_proj-1_europe-west1-b_k8s-test-cluster");
const INSTALLED: (&str, &str) = ("FAKE_INSTALLED", "1");

const AMBASSADOR: &str = "upgrade --install ambassador ambassador --repo https://www.getambassador.io --version 6.9.5 \
    --namespace ambassador --create-namespace --set image.repository=docker.io/datawire/ambassador \
    --set crds.keep=false --set enableAES=false --wait --timeout 5m";
const OPERATOR: &str = "upgrade --install seldon-core seldon-core-operator --repo https://storage.googleapis.com/seldon-charts \
    --version 1.18.2 --namespace seldon-system --create-namespace --set usageMetrics.enabled=false";

fn fakes() -> Result<Fakes> {
    Fakes::new(FAKES)
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

#[test]
fn install_on_minikube_installs_ambassador_then_the_pinned_operator_and_no_rbac_binding() -> Result
{
    let f = fakes()?;
    let (out, log) = f.xtask(&["seldon", "install", "--target", "minikube"], &[MINIKUBE])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let k = "kubectl --context mlops";
    assert_eq!(
        acted(&log),
        [
            &new_namespace(k, "ambassador")[..],
            &[format!("helm --kube-context mlops {AMBASSADOR}")],
            &new_namespace(k, "seldon-system"),
            &[format!(
                "helm --kube-context mlops {OPERATOR} --set ambassador.enabled=true --wait --timeout 5m"
            )],
            &new_namespace(k, "seldon"),
        ]
        .concat()
    );
    assert!(
        !log.iter().any(|l| l.contains("clusterrolebinding")),
        "{log:?}"
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
    let f = fakes()?;
    let (out, log) = f.xtask(&["seldon", "install", "--target", "gke"], &[GKE])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ctx = GKE.1;
    let k = format!("kubectl --context {ctx}");
    assert_eq!(
        acted(&log),
        [
            &[format!(
                "{k} create clusterrolebinding kube-mlops-cluster-admin --clusterrole=cluster-admin --user=dev@example.com"
            )][..],
            &new_namespace(&k, "ambassador"),
            &[format!("helm --kube-context {ctx} {AMBASSADOR}")],
            &new_namespace(&k, "seldon-system"),
            &[format!(
                "helm --kube-context {ctx} {OPERATOR} --set ambassador.enabled=true --wait --timeout 5m"
            )],
            &new_namespace(&k, "seldon"),
        ]
        .concat()
    );
    Ok(())
}

#[test]
fn a_second_install_reports_the_version_and_changes_nothing_but_a_new_pin_upgrades() -> Result {
    let f = fakes()?;
    let (out, log) = f.xtask(&["seldon", "install", "--target", "gke"], &[GKE, INSTALLED])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Seldon Core is already installed (version 1.18.2, deployed)"),
        "{}",
        text(&out.stdout)
    );
    assert!(acted(&log).is_empty(), "{log:?}");

    let (out, log) = f.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[MINIKUBE, INSTALLED, ("FAKE_VERSION", "1.17.1")],
    )?;
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
    let f = fakes()?;
    std::fs::write(
        f.dir.path().join("xtask.toml"),
        "[minikube]\nprofile = \"mlops\"\n[seldon]\ningress = \"istio\"\ninstall_ingress = false\n",
    )?;
    let (out, log) = f.xtask(&["seldon", "install", "--target", "minikube"], &[MINIKUBE])?;
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

    let (out, log) = f.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[MINIKUBE, ("FAKE_ISTIO", "1")],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let k = "kubectl --context mlops";
    assert_eq!(
        acted(&log),
        [
            &new_namespace(k, "seldon-system")[..],
            &[format!(
                "helm --kube-context mlops {OPERATOR} --set ambassador.enabled=false --set istio.enabled=true \
                 --set istio.gateway=istio-system/seldon-gateway --wait --timeout 5m"
            )],
            &new_namespace(k, "seldon"),
        ]
        .concat()
    );

    std::fs::write(
        f.dir.path().join("xtask.toml"),
        "[seldon]\ningress = \"istio\"\n",
    )?;
    let (out, _) = f.xtask(&["seldon", "status", "--target", "minikube"], &[MINIKUBE])?;
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
    let f = fakes()?;
    let (out, _) = f.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[MINIKUBE, ("FAKE_HELM_FAIL", "1")],
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
    let f = fakes()?;
    let ctx = GKE.1;
    let (out, log) = f.xtask(
        &["seldon", "uninstall", "--target", "gke"],
        &[GKE, INSTALLED],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        acted(&log),
        [
            format!(
                "helm --kube-context {ctx} uninstall seldon-core --namespace seldon-system --wait"
            ),
            format!("helm --kube-context {ctx} uninstall ambassador --namespace ambassador --wait"),
            format!("kubectl --context {ctx} delete namespace seldon --wait=true"),
            format!("kubectl --context {ctx} delete namespace seldon-system --wait=true"),
            format!("kubectl --context {ctx} delete namespace ambassador --wait=true"),
            format!("kubectl --context {ctx} delete clusterrolebinding kube-mlops-cluster-admin"),
        ]
    );
    let (out, log) = f.xtask(
        &["seldon", "uninstall", "--target", "minikube"],
        &[MINIKUBE],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Seldon Core is not installed on mlops; nothing to remove.")
    );
    assert!(acted(&log).is_empty(), "{log:?}");
    Ok(())
}

#[test]
fn status_names_version_readiness_crd_and_ingress() -> Result {
    let f = fakes()?;
    let (out, _) = f.xtask(
        &["seldon", "status", "--target", "minikube"],
        &[MINIKUBE, INSTALLED],
    )?;
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

    let (out, _) = f.xtask(
        &["seldon", "status", "--target", "minikube"],
        &[MINIKUBE, ("FAKE_NO_CRD", "1")],
    )?;
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
    Ok(())
}

#[test]
fn deploy_seldon_without_the_crd_says_how_to_install_before_building_anything() -> Result {
    let f = fakes()?;
    let (out, log) = f.xtask(
        &["deploy", "--seldon", "--target", "minikube"],
        &[MINIKUBE, ("FAKE_NO_CRD", "1")],
    )?;
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
    let f = fakes()?;
    // The identity model and the iris preset: both Seldon calls.
    f.settings(&format!(
        "{}[services.test-api]\n[services.model-server]\n[services.iris-model]\n",
        support::CLUSTERS
    ))?;
    let (out, log) = f.xtask(
        &["--dry-run", "deploy", "--seldon", "--target", "gke"],
        &[GKE],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let engine = format!("kube-engine --context {}", GKE.1);
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
    assert!(!f.dir.path().join("target").exists());

    let (out, _) = f.xtask(
        &["--dry-run", "deploy", "--seldon", "--target", "minikube"],
        &[MINIKUBE],
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
    let f = fakes()?;
    let (out, log) = f.xtask(
        &[
            "--dry-run",
            "teardown",
            "--seldon",
            "--all",
            "--target",
            "minikube",
        ],
        &[MINIKUBE, INSTALLED],
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
    let (out, _) = f.xtask(&["teardown", "--all", "--target", "minikube"], &[MINIKUBE])?;
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
    let f = fakes()?;
    let (out, log) = f.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[MINIKUBE, ("FAKE_HELM_GARBAGE", "1")],
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
    let f = fakes()?;
    let (out, log) = f.xtask(
        &["seldon", "install", "--target", "minikube"],
        &[MINIKUBE, ("FAKE_UNREACHABLE", "1")],
    )?;
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
