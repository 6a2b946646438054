//! `deploy --seldon`: the model-server image as the SeldonDeployments in
//! deploy/seldon, applied through the kube engine, then called through the
//! ingress with the tutorial's payload and checked with the contract tester.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{CRD, INGRESS_FORWARD, SELDON_SELECTOR, ingress_service, kubectl, kubernetes_target};
use crate::cli::Endpoint;
use crate::context::Ctx;
use crate::smoke::{self, TUTORIAL_PAYLOAD, check_echo};
use crate::targets::kube::Kube;
use crate::targets::{Target, TargetName};
use crate::{build, contract_test, http, services};

/// The SeldonDeployments in deploy/seldon.
const TEST_MODEL: &str = "seldon-test-model";
const IRIS_MODEL: &str = "seldon-iris-model";
/// How long the ingress may take to route a new SeldonDeployment.
const ROUTE_DEADLINE: Duration = Duration::from_secs(60);

pub fn deploy(cx: &Ctx, target: TargetName) -> Result<ExitCode> {
    let target = kubernetes_target(target)?;
    let kube = Kube::new(target);
    let context = kube.context(cx)?;
    // Before anything is built: without the CRD, nothing can be applied.
    let crd = cx.runner.probe(
        &kubectl(&context, "checking for Seldon Core").args(["get", "crd", CRD]),
        Duration::from_secs(60),
    )?;
    if !crd.success {
        bail!(
            "Seldon Core is not installed on {context} (no {CRD} CRD).\n  \
             Install it with `cargo xtask seldon install --target {target}`, then run this again."
        );
    }
    kube.ensure(cx)?;
    let specs = services::select(&cx.config, &["model-server".to_string()])?;
    let built = build::build(cx, &specs)?;
    kube.deliver(cx, &built)?;
    let s = &cx.config.seldon;
    kube.apply_dir(cx, &cx.root.join("deploy/seldon"), &s.namespace, &[])?;

    let (ns, svc, port) = ingress_service(s);
    let (host, port) = match target {
        TargetName::Gke => match kube.load_balancer(cx, ns, svc)? {
            Some(address) => (address, port),
            None => (format!("<external IP of {ns}/{svc}>"), port),
        },
        _ => {
            kube.forward(cx, INGRESS_FORWARD, ns, svc, Some(port), s.local_port)?;
            ("127.0.0.1".to_string(), s.local_port)
        }
    };
    // The same URLs `cargo xtask contract-test --api <namespace>/<name>` calls.
    let predictions = |model: &str| {
        contract_test::endpoint_url(
            &host,
            port,
            Some(&format!("{}/{model}", s.namespace)),
            Endpoint::Predict,
        )
    };
    call_identity(cx, &predictions(TEST_MODEL)?)?;
    smoke::contract_at(
        cx,
        "the iris model through the ingress",
        &predictions(IRIS_MODEL)?,
    )?;
    if !cx.runner.is_dry_run() {
        println!("Deployed to Seldon Core on {target}:");
        println!("  {TEST_MODEL:<18} {}", predictions(TEST_MODEL)?);
        println!("  {IRIS_MODEL:<18} {}", predictions(IRIS_MODEL)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// The tutorial's call: the identity model returns the tensor it was sent.
/// Retried while the ingress has no route yet (404/503 right after rollout).
fn call_identity(cx: &Ctx, url: &str) -> Result<()> {
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "POST {TUTORIAL_PAYLOAD} to {url}: the identity model must return the same tensor"
        ));
        return Ok(());
    }
    let deadline = Instant::now() + ROUTE_DEADLINE;
    loop {
        let answer = http::post(
            url,
            "application/json",
            TUTORIAL_PAYLOAD,
            Duration::from_secs(10),
        );
        match answer {
            Ok((200, body)) => {
                check_echo(&body).with_context(|| format!("POST {url}"))?;
                eprintln!("  ✓ POST {url}: {body}");
                return Ok(());
            }
            Ok((status, body)) if Instant::now() >= deadline => {
                bail!(
                    "POST {url} answered {status} for {}s: {body}",
                    ROUTE_DEADLINE.as_secs()
                )
            }
            Err(e) if Instant::now() >= deadline => return Err(e.context(format!("POST {url}"))),
            _ => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

/// `teardown --seldon [--all]`: the SeldonDeployments (and with `all`, Seldon Core).
pub fn teardown(cx: &Ctx, target: TargetName, all: bool) -> Result<ExitCode> {
    let target = kubernetes_target(target)?;
    let kube = Kube::new(target);
    kube.context(cx)?;
    kube.stop_forward(cx, INGRESS_FORWARD);
    kube.delete_labelled(cx, SELDON_SELECTOR)?;
    if all {
        return super::install::uninstall(cx, target);
    }
    if !cx.runner.is_dry_run() {
        println!("Torn down: no SeldonDeployment of kube-mlops is left on {target}.");
    }
    Ok(ExitCode::SUCCESS)
}
