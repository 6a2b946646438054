//! Installing Seldon Core v1 with Helm: the RBAC preamble the target needs,
//! the ingress (Ambassador installed, or Istio required), the operator at the
//! pinned chart version, and the models' namespace. Idempotent.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::cmd;

use super::common::{CRD, PROBE, exists, get, ingress_service};
use crate::ground::context::Ctx;
use crate::ground::runner::{quote, shown};
use crate::ground::settings::{Ingress, Seldon};
use crate::targets::kube::Kube;
use crate::targets::target::Session;

pub const OPERATOR_RELEASE: &str = "seldon-core";
const OPERATOR_CHART: &str = "seldon-core-operator";
const AMBASSADOR_RELEASE: &str = "ambassador";
/// GKE: the account running kube-mlops needs cluster-admin to create the
/// operator's CRD and ClusterRoles (the tutorial's clusterrolebinding).
const RBAC_BINDING: &str = "kube-mlops-cluster-admin";

/// A Helm release as `helm list --output json` shows it.
#[derive(Deserialize, Debug)]
pub struct Release {
    pub status: String,
    pub chart: String,
}

impl Release {
    /// `seldon-core-operator-1.18.2` → `1.18.2`.
    pub fn version(&self) -> &str {
        self.chart
            .rsplit_once('-')
            .map_or(self.chart.as_str(), |(_, v)| v)
    }
}

/// The Helm release `name` in `namespace`, if installed. Helm's answer must
/// parse: an unreadable one is an error naming it, never "not installed"
/// (which would reinstall over it).
pub fn release(cx: &Ctx, context: &str, name: &str, namespace: &str) -> Result<Option<Release>> {
    let filter = format!("^{name}$");
    let cmd: std::process::Command = cmd!(
        cx.sh,
        "helm --kube-context {context} list --namespace {namespace} --filter {filter} --output json"
    )
    .into();
    let line = shown(&cmd);
    let p = cx.runner.probe(cmd, "checking Helm releases", PROBE)?;
    if !p.success {
        // A dry run (no helm, no cluster) plans on as if it were absent.
        cx.runner.precondition(p.failure())?;
        return Ok(None);
    }
    let out = p.stdout.trim();
    let releases: Vec<Release> = if out.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(out).with_context(|| {
            format!(
                "`{line}` printed what is not Helm's JSON list of releases: {}",
                out.chars().take(300).collect::<String>()
            )
        })?
    };
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

/// The field manager of what `seldon install` applies (as the engine's).
const FIELD_MANAGER: &str = "kube-mlops";

/// Server-side applies one object (`kubectl apply --server-side -f -`, the
/// object on stdin): created in one step, with everything it should carry,
/// and applying it again changes nothing. `what` names it in the plan.
fn apply(
    cx: &Ctx,
    context: &str,
    object: &serde_json::Value,
    what: &str,
    purpose: &str,
) -> Result<()> {
    cx.runner.run_with_input(
        cmd!(
            cx.sh,
            "kubectl --context {context} apply --server-side --field-manager {FIELD_MANAGER} --filename -"
        ),
        &object.to_string(),
        what,
        purpose,
    )?;
    Ok(())
}

/// Creates `ns` with the pod security labels when it is missing, and gives
/// them to it when it has no enforced level yet (a level someone set is left
/// alone).
fn ensure_namespace(cx: &Ctx, context: &str, ns: &str) -> Result<()> {
    let jsonpath = r"jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}";
    let enforced = get(
        cx,
        cmd!(
            cx.sh,
            "kubectl --context {context} get namespace {ns} --output {jsonpath}"
        ),
    )?;
    if enforced.is_some_and(|level| !level.trim().is_empty()) {
        return Ok(());
    }
    let labels: serde_json::Map<String, serde_json::Value> = POD_SECURITY
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": labels}});
    apply(
        cx,
        context,
        &namespace,
        &format!("Namespace {ns} with labels {}", POD_SECURITY.join(" ")),
        "creating a namespace for Seldon Core, labelled for pod security",
    )
}

/// `helm upgrade --install` of the operator at the pinned chart version;
/// `how` says whether it installs or upgrades.
fn install_operator(cx: &Ctx, s: &Seldon, context: &str, how: &str) -> Result<()> {
    ensure_namespace(cx, context, &s.operator_namespace)?;
    cx.runner.step(format!(
        "{how} the Seldon Core operator {} with Helm",
        s.chart_version
    ));
    let ingress: &[&str] = match s.ingress {
        Ingress::Ambassador => &["--set", "ambassador.enabled=true"],
        Ingress::Istio => &[
            "--set",
            "ambassador.enabled=false",
            "--set",
            "istio.enabled=true",
            "--set",
            "istio.gateway=istio-system/seldon-gateway",
        ],
    };
    let (repo, version, namespace) = (&s.chart_repo, &s.chart_version, &s.operator_namespace);
    cx.runner.run(
        cmd!(
            cx.sh,
            "helm --kube-context {context} upgrade --install {OPERATOR_RELEASE} {OPERATOR_CHART} --repo {repo} --version {version} --namespace {namespace} --create-namespace --set usageMetrics.enabled=false {ingress...} --wait --timeout 5m"
        ),
        "installing the Seldon Core operator",
    )?;
    Ok(())
}

pub fn install(cx: &Ctx, kube: &Kube, session: &Session) -> Result<()> {
    let context = kube.engine(session)?.context.clone();
    let target = kube.cluster().name();
    let s = kube.seldon();
    rbac(cx, kube, &context)?;
    ingress(cx, s, &context)?;
    match release(cx, &context, OPERATOR_RELEASE, &s.operator_namespace)? {
        Some(r) if r.version() == s.chart_version && r.status == "deployed" => {
            println!(
                "Seldon Core is already installed (version {}, {})",
                r.version(),
                r.status
            );
        }
        Some(r) => install_operator(
            cx,
            s,
            &context,
            &format!("upgrade from {} ({}) to", r.version(), r.status),
        )?,
        None => install_operator(cx, s, &context, "install")?,
    }
    ensure_namespace(cx, &context, &s.namespace)?;
    cx.runner.unless_dry_run(|| {
        if !exists(cx, cmd!(cx.sh, "kubectl --context {context} get crd {CRD}"))? {
            bail!(
                "Helm installed the operator, but the cluster has no {CRD} CRD; see `helm status {OPERATOR_RELEASE} --namespace {}`",
                quote(&s.operator_namespace)
            );
        }
        let (ns, svc, _) = ingress_service(s);
        println!(
            "Seldon Core {} is ready on {context}: operator in {}, ingress {ns}/{svc}, models in namespace {}.\n\
             Deploy the model with `cargo xtask deploy --seldon --target {target}`.",
            s.chart_version, s.operator_namespace, s.namespace
        );
        Ok(())
    })?;
    Ok(())
}

/// GKE: bind the gcloud account to cluster-admin, as the tutorial does.
/// minikube and kind: the kubeconfig user is cluster-admin already, and the
/// tutorial's kube-system:default binding was for Helm 2's Tiller, so none is made.
fn rbac(cx: &Ctx, kube: &Kube, context: &str) -> Result<()> {
    if !kube.cluster().needs_admin_binding() {
        eprintln!(
            "==> RBAC: the {} admin user needs no extra binding (Helm 3 has no Tiller)",
            kube.cluster().name()
        );
        return Ok(());
    }
    let binding = cmd!(
        cx.sh,
        "kubectl --context {context} get clusterrolebinding {RBAC_BINDING}"
    );
    if exists(cx, binding)? {
        eprintln!("==> RBAC: clusterrolebinding {RBAC_BINDING} exists");
        return Ok(());
    }
    let user = kube.cluster().admin_user(cx)?;
    let binding = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding", "metadata": {"name": RBAC_BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]});
    apply(
        cx,
        context,
        &binding,
        &format!("ClusterRoleBinding {RBAC_BINDING}: ClusterRole cluster-admin to User {user}"),
        "granting cluster-admin to the cluster's user",
    )
}

/// Ambassador: installed with Helm unless `install_ingress = false` (then
/// required). Istio: always required, with its `seldon-gateway`.
fn ingress(cx: &Ctx, s: &Seldon, context: &str) -> Result<()> {
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
            let (repo, version) = (&s.ambassador_chart_repo, &s.ambassador_chart_version);
            cx.runner.run(
                cmd!(
                    cx.sh,
                    "helm --kube-context {context} upgrade --install {AMBASSADOR_RELEASE} ambassador --repo {repo} --version {version} --namespace {ns} --create-namespace --set image.repository=docker.io/datawire/ambassador --set crds.keep=false --set enableAES=false --wait --timeout 5m"
                ),
                "installing the Ambassador ingress",
            )?;
        }
        Ingress::Ambassador => {
            let service = cmd!(
                cx.sh,
                "kubectl --context {context} get service {svc} --namespace {ns}"
            );
            if !exists(cx, service)? {
                bail!(
                    "seldon.install_ingress = false, but there is no Ambassador service {ns}/{svc}: \
                     install Ambassador, or set install_ingress = true in xtask.toml"
                );
            }
            eprintln!("==> ingress: using the installed Ambassador ({ns}/{svc})");
        }
        Ingress::Istio => {
            let service = cmd!(
                cx.sh,
                "kubectl --context {context} get service {svc} --namespace {ns}"
            );
            if !exists(cx, service)? {
                bail!(
                    "seldon.ingress = \"istio\", but Istio is not installed ({ns}/{svc} is missing). \
                     kube-mlops does not install Istio: run `istioctl install -y`, create the \
                     seldon-gateway Gateway in istio-system, and run this again"
                );
            }
            let gateway = cmd!(
                cx.sh,
                "kubectl --context {context} get gateway.networking.istio.io seldon-gateway --namespace {ns}"
            );
            if !exists(cx, gateway)? {
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

pub fn uninstall(cx: &Ctx, kube: &Kube, session: &Session) -> Result<()> {
    let context = kube.engine(session)?.context.clone();
    let s = kube.seldon();
    let mut removed = false;
    let uninstall = |release: &str, namespace: &str, purpose: &str| {
        cx.runner.run(
            cmd!(
                cx.sh,
                "helm --kube-context {context} uninstall {release} --namespace {namespace} --wait"
            ),
            purpose,
        )
    };
    if release(cx, &context, OPERATOR_RELEASE, &s.operator_namespace)?.is_some() {
        uninstall(
            OPERATOR_RELEASE,
            &s.operator_namespace,
            "uninstalling the Seldon Core operator",
        )?;
        removed = true;
    }
    let mut namespaces = vec![s.namespace.as_str(), s.operator_namespace.as_str()];
    if s.ingress == Ingress::Ambassador && s.install_ingress {
        let (ns, _, _) = ingress_service(s);
        if release(cx, &context, AMBASSADOR_RELEASE, ns)?.is_some() {
            uninstall(
                AMBASSADOR_RELEASE,
                ns,
                "uninstalling the Ambassador ingress",
            )?;
            removed = true;
        }
        namespaces.push(ns);
    }
    for ns in namespaces {
        if exists(
            cx,
            cmd!(cx.sh, "kubectl --context {context} get namespace {ns}"),
        )? {
            cx.runner.run(
                cmd!(
                    cx.sh,
                    "kubectl --context {context} delete namespace {ns} --wait=true"
                ),
                "deleting Seldon's namespaces",
            )?;
            removed = true;
        }
    }
    if kube.cluster().needs_admin_binding()
        && exists(
            cx,
            cmd!(
                cx.sh,
                "kubectl --context {context} get clusterrolebinding {RBAC_BINDING}"
            ),
        )?
    {
        cx.runner.run(
            cmd!(
                cx.sh,
                "kubectl --context {context} delete clusterrolebinding {RBAC_BINDING}"
            ),
            "removing the cluster-admin binding",
        )?;
        removed = true;
    }
    cx.runner.unless_dry_run(|| {
        println!(
            "{}",
            if removed {
                format!("Seldon Core is uninstalled from {context}.")
            } else {
                format!("Seldon Core is not installed on {context}; nothing to remove.")
            }
        );
        Ok(())
    })?;
    Ok(())
}
