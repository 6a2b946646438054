//! Installing Seldon Core v1 with Helm: the RBAC preamble the target needs,
//! the ingress (Ambassador installed, or Istio required), the operator at the
//! pinned chart version, and the models' namespace. Idempotent.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use super::{CRD, helm, ingress_service, kubectl};
use crate::config::Ingress;
use crate::context::Ctx;
use crate::kubecontext;
use crate::runner::Cmd;
use crate::targets::TargetName;

const OPERATOR_RELEASE: &str = "seldon-core";
const OPERATOR_CHART: &str = "seldon-core-operator";
const AMBASSADOR_RELEASE: &str = "ambassador";
/// GKE: the account running kube-mlops needs cluster-admin to create the
/// operator's CRD and ClusterRoles (the tutorial's clusterrolebinding).
const RBAC_BINDING: &str = "kube-mlops-cluster-admin";
const PROBE: Duration = Duration::from_secs(60);

/// A Helm release as `helm list --output json` shows it.
#[derive(Deserialize, Debug)]
struct Release {
    status: String,
    chart: String,
}

impl Release {
    /// `seldon-core-operator-1.18.2` → `1.18.2`.
    fn version(&self) -> &str {
        self.chart
            .rsplit_once('-')
            .map_or(self.chart.as_str(), |(_, v)| v)
    }
}

fn release(cx: &Ctx, context: &str, name: &str, namespace: &str) -> Result<Option<Release>> {
    let cmd = helm(context, "checking Helm releases").args([
        "list",
        "--namespace",
        namespace,
        "--filter",
        &format!("^{name}$"),
        "--output",
        "json",
    ]);
    let p = cx.runner.probe(&cmd, PROBE)?;
    if !p.success {
        bail!("`{}` failed: {}", cmd.display(), p.stderr.trim());
    }
    let releases: Vec<Release> = serde_json::from_str(p.stdout.trim()).unwrap_or_default();
    Ok(releases.into_iter().next())
}

/// The pod security labels of every namespace kube-mlops creates for Seldon:
/// `baseline` enforced (the operator's executor sidecar, and charts we do not
/// write, lack what `restricted` requires), `restricted` warned and audited.
pub const POD_SECURITY: [&str; 3] = [
    "pod-security.kubernetes.io/enforce=baseline",
    "pod-security.kubernetes.io/warn=restricted",
    "pod-security.kubernetes.io/audit=restricted",
];

/// Creates `ns` when missing, and gives it the pod security labels when it
/// has no enforced level yet (a level someone set is left alone).
fn ensure_namespace(cx: &Ctx, context: &str, ns: &str) -> Result<()> {
    let enforced = cx.runner.probe(
        &kubectl(context, "checking a namespace").args([
            "get",
            "namespace",
            ns,
            "--output",
            r"jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}",
        ]),
        PROBE,
    )?;
    if !enforced.success {
        cx.runner.run(
            &kubectl(context, "creating a namespace for Seldon Core").args([
                "create",
                "namespace",
                ns,
            ]),
        )?;
    }
    if !enforced.success || enforced.stdout.trim().is_empty() {
        cx.runner.run(
            &kubectl(context, "labelling a namespace for pod security")
                .args(["label", "namespace", ns, "--overwrite"])
                .args(POD_SECURITY),
        )?;
    }
    Ok(())
}

/// Whether `kubectl get <what>` finds it.
fn exists(cx: &Ctx, context: &str, what: &[&str]) -> Result<bool> {
    let p = cx.runner.probe(
        &kubectl(context, "checking the cluster")
            .arg("get")
            .args(what),
        PROBE,
    )?;
    Ok(p.success)
}

pub fn install(cx: &Ctx, target: TargetName) -> Result<ExitCode> {
    let context = kubecontext::guard(cx, target, None)?;
    let s = &cx.config.seldon;
    rbac(cx, target, &context)?;
    ingress(cx, &context)?;
    let install = |how: &str| -> Result<()> {
        ensure_namespace(cx, &context, &s.operator_namespace)?;
        cx.runner.step(format!(
            "{how} the Seldon Core operator {} with Helm",
            s.chart_version
        ));
        let mut cmd = helm(&context, "installing the Seldon Core operator").args([
            "upgrade",
            "--install",
            OPERATOR_RELEASE,
            OPERATOR_CHART,
            "--repo",
            &s.chart_repo,
            "--version",
            &s.chart_version,
            "--namespace",
            &s.operator_namespace,
            "--create-namespace",
            "--set",
            "usageMetrics.enabled=false",
        ]);
        cmd = match s.ingress {
            Ingress::Ambassador => cmd.args(["--set", "ambassador.enabled=true"]),
            Ingress::Istio => cmd.args([
                "--set",
                "ambassador.enabled=false",
                "--set",
                "istio.enabled=true",
                "--set",
                "istio.gateway=istio-system/seldon-gateway",
            ]),
        };
        cx.runner.run(&cmd.args(["--wait", "--timeout", "5m"]))?;
        Ok(())
    };
    match release(cx, &context, OPERATOR_RELEASE, &s.operator_namespace)? {
        Some(r) if r.version() == s.chart_version && r.status == "deployed" => {
            println!(
                "Seldon Core is already installed (version {}, {})",
                r.version(),
                r.status
            );
        }
        Some(r) => install(&format!("upgrade from {} ({}) to", r.version(), r.status))?,
        None => install("install")?,
    }
    ensure_namespace(cx, &context, &s.namespace)?;
    if !cx.runner.is_dry_run() && !exists(cx, &context, &["crd", CRD])? {
        bail!(
            "Helm installed the operator, but the cluster has no {CRD} CRD; see `helm status {OPERATOR_RELEASE} --namespace {}`",
            crate::runner::quote(&s.operator_namespace)
        );
    }
    if !cx.runner.is_dry_run() {
        let (ns, svc, _) = ingress_service(s);
        println!(
            "Seldon Core {} is ready on {context}: operator in {}, ingress {ns}/{svc}, models in namespace {}.\n\
             Deploy the model with `cargo xtask deploy --seldon --target {target}`.",
            s.chart_version, s.operator_namespace, s.namespace
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// GKE: bind the gcloud account to cluster-admin, as the tutorial does.
/// minikube and kind: the kubeconfig user is cluster-admin already, and the
/// tutorial's kube-system:default binding was for Helm 2's Tiller, so none is made.
fn rbac(cx: &Ctx, target: TargetName, context: &str) -> Result<()> {
    if target != TargetName::Gke {
        eprintln!(
            "==> RBAC: the {target} admin user needs no extra binding (Helm 3 has no Tiller)"
        );
        return Ok(());
    }
    if exists(cx, context, &["clusterrolebinding", RBAC_BINDING])? {
        eprintln!("==> RBAC: clusterrolebinding {RBAC_BINDING} exists");
        return Ok(());
    }
    let p = cx.runner.probe(
        &Cmd::new("gcloud", "finding the gcloud account").args(["config", "get-value", "account"]),
        PROBE,
    )?;
    let account = p.stdout.trim();
    if !p.success || account.is_empty() || account == "(unset)" {
        bail!("no active gcloud account to grant cluster-admin to: run `gcloud auth login`");
    }
    cx.runner.run(
        &kubectl(context, "granting cluster-admin to the gcloud account").args([
            "create",
            "clusterrolebinding",
            RBAC_BINDING,
            "--clusterrole=cluster-admin",
            &format!("--user={account}"),
        ]),
    )?;
    Ok(())
}

/// Ambassador: installed with Helm unless `install_ingress = false` (then
/// required). Istio: always required, with its `seldon-gateway`.
fn ingress(cx: &Ctx, context: &str) -> Result<()> {
    let s = &cx.config.seldon;
    let (ns, svc, _) = ingress_service(s);
    match s.ingress {
        Ingress::Ambassador if s.install_ingress => {
            if let Some(r) = release(cx, context, AMBASSADOR_RELEASE, ns)? {
                eprintln!(
                    "==> ingress: Ambassador is already installed (chart {})",
                    r.chart
                );
                return Ok(());
            }
            ensure_namespace(cx, context, ns)?;
            cx.runner.step(format!(
                "install the Ambassador ingress {} with Helm",
                s.ambassador_chart_version
            ));
            cx.runner
                .run(&helm(context, "installing the Ambassador ingress").args([
                    "upgrade",
                    "--install",
                    AMBASSADOR_RELEASE,
                    "ambassador",
                    "--repo",
                    &s.ambassador_chart_repo,
                    "--version",
                    &s.ambassador_chart_version,
                    "--namespace",
                    ns,
                    "--create-namespace",
                    "--set",
                    "image.repository=docker.io/datawire/ambassador",
                    "--set",
                    "crds.keep=false",
                    "--set",
                    "enableAES=false",
                    "--wait",
                    "--timeout",
                    "5m",
                ]))?;
        }
        Ingress::Ambassador => {
            if !exists(cx, context, &["service", svc, "--namespace", ns])? {
                bail!(
                    "seldon.install_ingress = false, but there is no Ambassador service {ns}/{svc}: \
                     install Ambassador, or set install_ingress = true in xtask.toml"
                );
            }
            eprintln!("==> ingress: using the installed Ambassador ({ns}/{svc})");
        }
        Ingress::Istio => {
            if !exists(cx, context, &["service", svc, "--namespace", ns])? {
                bail!(
                    "seldon.ingress = \"istio\", but Istio is not installed ({ns}/{svc} is missing). \
                     kube-mlops does not install Istio: run `istioctl install -y`, create the \
                     seldon-gateway Gateway in istio-system, and run this again"
                );
            }
            if !exists(
                cx,
                context,
                &[
                    "gateway.networking.istio.io",
                    "seldon-gateway",
                    "--namespace",
                    ns,
                ],
            )? {
                bail!(
                    "Istio is installed, but Gateway {ns}/seldon-gateway is missing: Seldon routes through it; create it first"
                );
            }
            eprintln!(
                "==> ingress: using the installed Istio ({ns}/{svc}, gateway seldon-gateway)"
            );
        }
    }
    Ok(())
}

pub fn uninstall(cx: &Ctx, target: TargetName) -> Result<ExitCode> {
    let context = kubecontext::guard(cx, target, None)?;
    let s = &cx.config.seldon;
    let mut removed = false;
    if release(cx, &context, OPERATOR_RELEASE, &s.operator_namespace)?.is_some() {
        cx.runner.run(
            &helm(&context, "uninstalling the Seldon Core operator").args([
                "uninstall",
                OPERATOR_RELEASE,
                "--namespace",
                &s.operator_namespace,
                "--wait",
            ]),
        )?;
        removed = true;
    }
    let mut namespaces = vec![s.namespace.as_str(), s.operator_namespace.as_str()];
    if s.ingress == Ingress::Ambassador && s.install_ingress {
        let (ns, _, _) = ingress_service(s);
        if release(cx, &context, AMBASSADOR_RELEASE, ns)?.is_some() {
            cx.runner.run(
                &helm(&context, "uninstalling the Ambassador ingress").args([
                    "uninstall",
                    AMBASSADOR_RELEASE,
                    "--namespace",
                    ns,
                    "--wait",
                ]),
            )?;
            removed = true;
        }
        namespaces.push(ns);
    }
    for ns in namespaces {
        if exists(cx, &context, &["namespace", ns])? {
            cx.runner
                .run(&kubectl(&context, "deleting Seldon's namespaces").args([
                    "delete",
                    "namespace",
                    ns,
                    "--wait=true",
                ]))?;
            removed = true;
        }
    }
    if target == TargetName::Gke && exists(cx, &context, &["clusterrolebinding", RBAC_BINDING])? {
        cx.runner.run(
            &kubectl(&context, "removing the cluster-admin binding").args([
                "delete",
                "clusterrolebinding",
                RBAC_BINDING,
            ]),
        )?;
        removed = true;
    }
    if !cx.runner.is_dry_run() {
        println!(
            "{}",
            if removed {
                format!("Seldon Core is uninstalled from {context}.")
            } else {
                format!("Seldon Core is not installed on {context}; nothing to remove.")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(cx: &Ctx, target: TargetName) -> Result<ExitCode> {
    let context = kubecontext::guard(cx, target, None)?;
    let s = &cx.config.seldon;
    let mut rows: Vec<(&str, bool, String)> = Vec::new();
    match release(cx, &context, OPERATOR_RELEASE, &s.operator_namespace)? {
        Some(r) => {
            let ready = cx.runner.probe(
                &kubectl(&context, "reading the operator's readiness").args([
                    "get",
                    "deployment",
                    "seldon-controller-manager",
                    "--namespace",
                    &s.operator_namespace,
                    "--output",
                    "jsonpath={.status.readyReplicas}/{.spec.replicas}",
                ]),
                PROBE,
            )?;
            let replicas = ready.stdout.trim().to_string();
            let ok = ready.success
                && replicas
                    .split_once('/')
                    .is_some_and(|(a, b)| a == b && !b.is_empty());
            let pinned = if r.version() == s.chart_version {
                String::new()
            } else {
                format!(", xtask.toml pins {}", s.chart_version)
            };
            rows.push((
                "operator",
                ok && r.status == "deployed",
                format!(
                    "version {} ({}), ready {replicas}{pinned}",
                    r.version(),
                    r.status
                ),
            ));
        }
        None => rows.push((
            "operator",
            false,
            format!("not installed: run `cargo xtask seldon install --target {target}`"),
        )),
    }
    let crd = exists(cx, &context, &["crd", CRD])?;
    rows.push((
        "CRD",
        crd,
        if crd {
            format!("{CRD} present")
        } else {
            format!("{CRD} missing")
        },
    ));
    let (ns, svc, _) = ingress_service(s);
    let ingress = exists(cx, &context, &["service", svc, "--namespace", ns])?;
    rows.push((
        "ingress",
        ingress,
        format!("{ns}/{svc} {}", if ingress { "found" } else { "missing" }),
    ));
    let models = exists(cx, &context, &["namespace", &s.namespace])?;
    rows.push((
        "namespace",
        models,
        format!(
            "{} {}",
            s.namespace,
            if models { "present" } else { "missing" }
        ),
    ));
    for (what, ok, detail) in &rows {
        println!("{what:<10} {:<4} {detail}", if *ok { "ok" } else { "NO" });
    }
    Ok(if rows.iter().all(|r| r.1) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
