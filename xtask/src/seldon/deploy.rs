//! `deploy --seldon`: the services with `seldon = true` as the
//! SeldonDeployments in deploy/seldon, applied through the kube engine, then
//! each checked through the ingress as its smoke test says (the identity
//! model with the tutorial's payload, the others with the contract tester).

use std::time::Duration;

use anyhow::{Context, Result, bail};

use xshell::cmd;

use super::common::{CRD, Lookup, ingress_service, lookup, seldon_selector};
use crate::build;
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::poll::{self, Check, Waited};
use crate::ground::services::Smoke;
use crate::targets::kube::Kube;
use crate::targets::target::{Session, Target};
use crate::verify::contract::{self, Endpoint};
use crate::verify::smoke::{self, TUTORIAL_PAYLOAD, check_echo};

/// How long the ingress may take to route a new SeldonDeployment.
const ROUTE_DEADLINE: Duration = Duration::from_secs(60);

/// The model's URLs through the ingress, after a successful deploy.
pub struct Deployed {
    pub models: Vec<(String, String)>,
}

/// Deploys the services with `seldon = true` as SeldonDeployments on
/// `kube`'s cluster, their binaries built for what `to` says (the
/// platform of its nodes; asked once Seldon Core is known to be there),
/// then calls each through the ingress as the tutorial does.
///
/// # Errors
/// Stale manifests, no Seldon CRD, no Seldon service, a failed build,
/// delivery, rollout or call.
pub fn deploy(
    cx: &Ctx,
    kube: &Kube,
    session: &Session,
    profile: build::Profile,
    to: &dyn Fn() -> Result<build::Destination>,
) -> Result<Deployed> {
    // Before anything else: the manifests must be what the settings say.
    crate::manifests::refuse_stale(cx, &kube.manifests(), kube.all_services())?;
    require_crd(cx, kube, session)?;
    kube.prepare(cx, session, true)?;
    let specs: Vec<_> = kube
        .all_services()
        .iter()
        .filter(|s| s.settings.seldon)
        .cloned()
        .collect();
    if specs.is_empty() {
        bail!(
            "no service has `seldon = true` in the settings; models are Seldon components by \
             default (`cargo xtask model add`)"
        );
    }
    let built = build::build_for(cx, kube.all_services(), &specs, profile, &to()?)?;
    let delivered = kube.deliver(cx, session, built)?;
    let s = kube.seldon();
    kube.apply_dir(
        cx,
        session,
        &kube.manifests_dir().join("seldon"),
        &s.namespace,
        &[],
        &delivered.images,
    )?;
    let (ns, svc, port) = ingress_service(s);
    let (host, port) = kube.ingress(cx, session, ns, svc, port)?;
    // The same URLs `cargo xtask contract-test --api <namespace>/<name>` calls.
    let predictions = |model: &str| {
        contract::endpoint_url(
            &host,
            port,
            Some(&format!("{}/{model}", s.namespace)),
            Endpoint::Predict,
        )
    };
    let mut models = Vec::new();
    for spec in &specs {
        let name = &spec.settings.seldon_name;
        let url = predictions(name)?;
        let what = format!("{} through the ingress", spec.name);
        match &spec.smoke {
            Smoke::Echo => call_identity(cx, &url)?,
            Smoke::Contract(path) => {
                // The executor serves each graph node's own metadata.
                let metadata = url.replace("/predictions", &format!("/metadata/{name}"));
                wait_routed(cx, &url)?;
                smoke::contract_at(cx, &what, path.as_deref(), &url, &metadata)?;
            }
            _ => wait_routed(cx, &url)?,
        }
        models.push((name.clone(), url));
    }
    Ok(Deployed { models })
}

/// Before anything is built: without Seldon's CRD, nothing can be
/// applied (a precondition; a dry run that did not reach the cluster
/// claims nothing about it).
fn require_crd(cx: &Ctx, kube: &Kube, session: &Session) -> Result<()> {
    let engine = kube.engine(session)?;
    let context = engine.context.clone();
    let found = if engine.reached {
        lookup(cx, cmd!(cx.sh, "kubectl --context {context} get crd {CRD}"))?
    } else {
        Lookup::Unknown
    };
    match found {
        Lookup::Found(_) => {}
        Lookup::Absent => cx.runner.precondition(anyhow::anyhow!(
            "Seldon Core is not installed on {context} (no {CRD} CRD).\n  \
             Install it with `cargo xtask seldon install --target {}`, then run this again.",
            kube.cluster().name()
        ))?,
        Lookup::Unknown => cx.runner.step(format!(
            "check that Seldon Core is installed on {context} (its {CRD} CRD)"
        )),
    }
    Ok(())
}

/// Waits until the ingress routes `url` (anything but 404/503 and refused
/// connections), for up to ROUTE_DEADLINE.
fn wait_routed(cx: &Ctx, url: &str) -> Result<()> {
    cx.runner
        .effect(format!("wait until the ingress routes {url}"), || {
            let waited = poll::until(ROUTE_DEADLINE, Duration::from_secs(2), || {
                Ok(match http::get(url, Duration::from_secs(10)) {
                    Ok((404 | 503, body)) => {
                        Check::NotYet(format!("answered with no route: {body}"))
                    }
                    Ok(_) => Check::Done(()),
                    Err(e) => Check::NotYet(format!("failed: {e:#}")),
                })
            })?;
            match waited {
                Waited::Done { .. } => Ok(()),
                Waited::TimedOut { last } => bail!(
                    "the ingress did not route {url} within {}s: {last}",
                    ROUTE_DEADLINE.as_secs()
                ),
            }
        })?;
    Ok(())
}

/// The tutorial's call: the identity model returns the tensor it was sent.
/// Retried while the ingress has no route yet (404/503 right after rollout).
fn call_identity(cx: &Ctx, url: &str) -> Result<()> {
    let what =
        format!("POST {TUTORIAL_PAYLOAD} to {url}: the identity model must return the same tensor");
    cx.runner.effect(what, || {
        let post = || {
            http::post(
                url,
                "application/json",
                TUTORIAL_PAYLOAD,
                Duration::from_secs(10),
            )
        };
        let waited = poll::until(ROUTE_DEADLINE, Duration::from_secs(2), || {
            Ok(match post() {
                Ok((200, body)) => Check::Done(body),
                Ok((status, body)) => Check::NotYet(format!(
                    "answered {status} for {}s: {body}",
                    ROUTE_DEADLINE.as_secs()
                )),
                Err(e) => Check::NotYet(format!("failed: {e:#}")),
            })
        })?;
        match waited {
            Waited::Done { value: body, .. } => {
                check_echo(&body).with_context(|| format!("POST {url}"))?;
                eprintln!("  ✓ POST {url}: {body}");
                Ok(())
            }
            Waited::TimedOut { last } => bail!("POST {url} {last}"),
        }
    })?;
    Ok(())
}

/// `teardown --seldon`: the SeldonDeployments and the ingress port-forward.
pub fn teardown(cx: &Ctx, kube: &Kube, session: &Session) -> Result<()> {
    kube.stop_ingress(cx)?;
    kube.engine(session)?
        .delete_labelled(cx, &seldon_selector())
}
