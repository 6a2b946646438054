//! `deploy --seldon`: the model-server image as the SeldonDeployments in
//! deploy/seldon, applied through the kube engine, then called through the
//! ingress with the tutorial's payload and checked with the contract tester.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use xshell::cmd;

use super::common::{CRD, exists, ingress_service, seldon_selector};
use crate::build;
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::poll::{self, Check, Waited};
use crate::ground::services;
use crate::targets::kube::Kube;
use crate::targets::target::{Session, Target};
use crate::verify::contract::{self, Endpoint};
use crate::verify::smoke::{self, TUTORIAL_PAYLOAD, check_echo};

/// The SeldonDeployments in deploy/seldon.
const TEST_MODEL: &str = "seldon-test-model";
const IRIS_MODEL: &str = "seldon-iris-model";
/// How long the ingress may take to route a new SeldonDeployment.
const ROUTE_DEADLINE: Duration = Duration::from_secs(60);

/// The model's URLs through the ingress, after a successful deploy.
pub struct Deployed {
    pub models: Vec<(&'static str, String)>,
}

pub fn deploy(cx: &Ctx, kube: &Kube, session: &Session) -> Result<Deployed> {
    let context = kube.engine(session)?.context.clone();
    // Before anything is built: without the CRD, nothing can be applied.
    if !exists(cx, cmd!(cx.sh, "kubectl --context {context} get crd {CRD}"))? {
        bail!(
            "Seldon Core is not installed on {context} (no {CRD} CRD).\n  \
             Install it with `cargo xtask seldon install --target {}`, then run this again.",
            kube.cluster().name()
        );
    }
    kube.prepare(cx, session)?;
    let specs = services::select(&cx.config, &cx.root, &["model-server".to_string()])?;
    let built = build::build(cx, &specs)?;
    let delivered = kube.deliver(cx, session, built)?;
    let s = &cx.config.seldon;
    kube.apply_dir(
        cx,
        session,
        &cx.root.join("deploy/seldon"),
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
    call_identity(cx, &predictions(TEST_MODEL)?)?;
    let iris_contract = cx.root.join("services/model-server/contract.json");
    smoke::contract_at(
        cx,
        "the iris model through the ingress",
        Some(&iris_contract),
        &predictions(IRIS_MODEL)?,
    )?;
    Ok(Deployed {
        models: vec![
            (TEST_MODEL, predictions(TEST_MODEL)?),
            (IRIS_MODEL, predictions(IRIS_MODEL)?),
        ],
    })
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
