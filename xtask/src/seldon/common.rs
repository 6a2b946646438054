//! What the Seldon parts share: names, the selector of what `deploy
//! --seldon` creates, and the ingress in front of the models.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::ground::context::Ctx;
use crate::ground::conventions::MANAGED_BY;
use crate::ground::runner::shown;
use crate::ground::settings::{Ingress, Seldon};

/// The label selector of what `deploy --seldon` creates (deploy/seldon's
/// labels): kube-mlops' [`MANAGED_BY`] and the Seldon stack label.
pub fn seldon_selector() -> String {
    format!("{MANAGED_BY},kube-mlops.io/stack=seldon")
}
/// The SeldonDeployment CRD the operator installs.
pub const CRD: &str = "seldondeployments.machinelearning.seldon.io";

/// How long a read of the cluster may take.
pub const PROBE: Duration = Duration::from_secs(60);

/// What a `kubectl get` prints: `Some(stdout)` when kubectl finds the
/// object, `None` when the API says it is not there (or has no such kind),
/// and an error, with kubectl's words, when kubectl cannot tell (an
/// unreachable cluster is not an empty one).
pub fn get(cx: &Ctx, get: impl Into<Command>) -> Result<Option<String>> {
    Ok(match lookup(cx, get)? {
        Lookup::Found(out) => Some(out),
        Lookup::Absent | Lookup::Unknown => None,
    })
}

/// What a `kubectl get` found.
pub enum Lookup {
    /// The object, as kubectl printed it.
    Found(String),
    /// The API says it is not there.
    Absent,
    /// The cluster was not reached (a dry run only: the reason is listed
    /// with its blockers; a real run fails instead).
    Unknown,
}

/// As [`get`], telling "not there" from "could not tell" under --dry-run
/// too, so that a dry run claims nothing about a cluster it did not reach.
pub fn lookup(cx: &Ctx, get: impl Into<Command>) -> Result<Lookup> {
    let get = get.into();
    let line = shown(&get);
    let p = cx.runner.probe(get, "checking the cluster", PROBE)?;
    if p.success {
        return Ok(Lookup::Found(p.stdout));
    }
    let err = p.stderr.trim();
    if err.contains("(NotFound)") || err.contains("doesn't have a resource type") {
        return Ok(Lookup::Absent);
    }
    cx.runner.precondition(
        p.failure_saying(format!("`{line}` could not tell whether it exists: {err}")),
    )?;
    Ok(Lookup::Unknown)
}

/// Whether the object a `kubectl get` names exists (see [`get`]).
pub fn exists(cx: &Ctx, cmd: impl Into<Command>) -> Result<bool> {
    Ok(get(cx, cmd)?.is_some())
}

/// Namespace, service and port of the ingress in front of the models.
pub fn ingress_service(s: &Seldon) -> (&'static str, &'static str, u16) {
    match s.ingress {
        Ingress::Ambassador => ("ambassador", "ambassador", 80),
        Ingress::Istio => ("istio-system", "istio-ingressgateway", 80),
    }
}
