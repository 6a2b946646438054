//! Kube contexts: the current one, all of them, and the guard that refuses
//! to act on any context but the one a target expects.

use std::time::Duration;

use anyhow::Result;
use xshell::cmd;

use super::context::Ctx;
use super::runner::{Blocked, Cause, quote};

const PROBE: Duration = Duration::from_secs(15);

/// The kubeconfig's current context, if one is set.
pub fn current(cx: &Ctx) -> Result<Option<String>> {
    let p = cx.runner.probe(
        cmd!(cx.sh, "kubectl config current-context"),
        "reading the kube context",
        PROBE,
    )?;
    Ok(p.success
        .then(|| p.stdout.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Every context in the kubeconfig.
pub fn names(cx: &Ctx) -> Result<Vec<String>> {
    let p = cx.runner.probe(
        cmd!(cx.sh, "kubectl config get-contexts --output name"),
        "listing kube contexts",
        PROBE,
    )?;
    if !p.success {
        return Err(p.failure());
    }
    Ok(p.stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The context a guard approved, or (a dry run only) the one it would
/// need, with `approved` false: its cluster was not reached and nothing
/// may be claimed about it.
pub struct Guarded {
    pub context: String,
    pub approved: bool,
}

/// The context to act on for `target`, which expects `want`: `explicit`
/// (from --context) or the current one, and only if it is `want`. Never
/// another cluster's.
pub fn guard(cx: &Ctx, target: &str, want: &str, explicit: Option<&str>) -> Result<Guarded> {
    let context = guarded(cx, target, want, explicit)?;
    Ok(Guarded {
        approved: context.is_some(),
        context: context.unwrap_or_else(|| want.to_string()),
    })
}

/// `guard`'s check: the approved context, or None where a dry run went on
/// without one.
fn guarded(cx: &Ctx, target: &str, want: &str, explicit: Option<&str>) -> Result<Option<String>> {
    let have = match explicit {
        Some(c) => Some(c.to_string()),
        None => match current(cx) {
            Ok(c) => c,
            Err(e) => {
                // No kubectl, say: a dry run plans on with the context wanted.
                cx.runner.precondition(e)?;
                return Ok(None);
            }
        },
    };
    let w = quote(want);
    // A context named on the command line must also exist: a matching name
    // alone says nothing about the kubeconfig.
    if let Some(h) = explicit {
        let missing = || Ok(!names(cx)?.iter().any(|n| n == h));
        if cx.runner.unless_dry_run(missing)? == Some(true) {
            let create = if h == want {
                format!("create it with `cargo xtask cluster up --target {target}`")
            } else {
                format!("--target {target} expects `{want}`")
            };
            return Err(Blocked::error(
                Cause::KubeContext,
                format!(
                    "there is no kube context `{h}` in the kubeconfig: {create}; \
                     `cargo xtask context list` shows the contexts there are"
                ),
            ));
        }
    }
    // Every real run is refused; a dry run lists why and plans on with the
    // context the target expects.
    let refusal = match have {
        Some(h) if h == want => return Ok(Some(h)),
        Some(h) => format!(
            "refusing to act on kube context `{h}`: --target {target} expects `{want}`.\n  \
             switch with `cargo xtask context use {w}` (or `kubectl config use-context {w}`), \
             or start it with `cargo xtask cluster up --target {target}`"
        ),
        None => format!(
            "no kube context is selected; --target {target} expects `{want}`: \
             run `cargo xtask cluster up --target {target}` or `cargo xtask context use {w}`"
        ),
    };
    cx.runner
        .precondition(Blocked::error(Cause::KubeContext, refusal))?;
    Ok(None)
}
