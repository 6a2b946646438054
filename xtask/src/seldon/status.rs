//! `seldon status`: is the operator installed at the pinned version and
//! ready, the CRD served, the ingress there, the models' namespace there.

use anyhow::Result;
use xshell::cmd;

use super::common::{CRD, PROBE, exists, ingress_service};
use super::install::{OPERATOR_RELEASE, release};
use crate::ground::context::Ctx;
use crate::ground::settings::Seldon;
use crate::targets::kube::Kube;
use crate::targets::target::Session;

/// One line of the report: what, whether it is fine, the detail.
pub struct Row {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Every row; the caller prints them and fails unless all are ok.
pub fn status(cx: &Ctx, kube: &Kube, session: &Session) -> Result<Vec<Row>> {
    let context = kube.engine(session)?.context.as_str();
    Ok(vec![
        operator(cx, kube, context)?,
        crd(cx, context)?,
        ingress(cx, kube.seldon(), context)?,
        namespace(cx, kube.seldon(), context)?,
    ])
}

fn operator(cx: &Ctx, kube: &Kube, context: &str) -> Result<Row> {
    let s = kube.seldon();
    let Some(r) = release(cx, context, OPERATOR_RELEASE, &s.operator_namespace)? else {
        return Ok(Row {
            what: "operator",
            ok: false,
            detail: format!(
                "not installed: run `cargo xtask seldon install --target {}`",
                kube.cluster().name()
            ),
        });
    };
    let (ns, ready) = (
        &s.operator_namespace,
        "jsonpath={.status.readyReplicas}/{.spec.replicas}",
    );
    let ready = cx.runner.probe(
        cmd!(
            cx.sh,
            "kubectl --context {context} get deployment seldon-controller-manager --namespace {ns} --output {ready}"
        ),
        "reading the operator's readiness",
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
    Ok(Row {
        what: "operator",
        ok: ok && r.status == "deployed",
        detail: format!(
            "version {} ({}), ready {replicas}{pinned}",
            r.version(),
            r.status
        ),
    })
}

fn crd(cx: &Ctx, context: &str) -> Result<Row> {
    let ok = exists(cx, cmd!(cx.sh, "kubectl --context {context} get crd {CRD}"))?;
    Ok(Row {
        what: "CRD",
        ok,
        detail: format!("{CRD} {}", if ok { "present" } else { "missing" }),
    })
}

fn ingress(cx: &Ctx, s: &Seldon, context: &str) -> Result<Row> {
    let (ns, svc, _) = ingress_service(s);
    let ok = exists(
        cx,
        cmd!(
            cx.sh,
            "kubectl --context {context} get service {svc} --namespace {ns}"
        ),
    )?;
    Ok(Row {
        what: "ingress",
        ok,
        detail: format!("{ns}/{svc} {}", if ok { "found" } else { "missing" }),
    })
}

fn namespace(cx: &Ctx, s: &Seldon, context: &str) -> Result<Row> {
    let ns = &s.namespace;
    let ok = exists(
        cx,
        cmd!(cx.sh, "kubectl --context {context} get namespace {ns}"),
    )?;
    Ok(Row {
        what: "namespace",
        ok,
        detail: format!("{ns} {}", if ok { "present" } else { "missing" }),
    })
}
