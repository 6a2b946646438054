//! A cluster's API server: whether it answers `/readyz`, and waiting until
//! it does (after `cluster up`).

use std::time::Duration;

use anyhow::{Result, bail};
use xshell::cmd;

use crate::ground::context::Ctx;
use crate::ground::poll::{self, Check, Waited};

/// How long `up` waits for the API server after the cluster tool returns.
pub const API_DEADLINE: Duration = Duration::from_secs(300);

/// Whether `context`'s API server answers `/readyz`.
pub fn ready(cx: &Ctx, context: &str, purpose: &str) -> bool {
    unready(cx, context, purpose).is_none()
}

/// Why `context`'s API server does not answer `/readyz` within 15 s
/// (kubectl's error), or None when it does.
pub fn unready(cx: &Ctx, context: &str, purpose: &str) -> Option<String> {
    match cx.runner.probe(
        cmd!(cx.sh, "kubectl --context {context} get --raw /readyz"),
        purpose,
        Duration::from_secs(15),
    ) {
        Ok(p) if p.success => None,
        Ok(p) => Some(
            p.stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no output")
                .to_string(),
        ),
        Err(e) => Some(format!("{e:#}")),
    }
}

/// Polls the API server's /readyz under a deadline, then prints cluster-info.
pub fn wait_ready(cx: &Ctx, context: &str) -> Result<()> {
    let readyz = || cmd!(cx.sh, "kubectl --context {context} get --raw /readyz");
    let what = format!(
        "wait up to {}s until `kubectl --context {context} get --raw /readyz` answers ok",
        API_DEADLINE.as_secs()
    );
    let waited = cx.runner.effect(what, || {
        // Probes are quiet; say what the wait is for, terminal or not.
        eprintln!(
            "==> waiting up to {}s for the API server of {context}",
            API_DEADLINE.as_secs()
        );
        poll::until(API_DEADLINE, Duration::from_secs(2), || {
            Ok(
                match cx.runner.probe(
                    readyz(),
                    "waiting for the API server",
                    Duration::from_secs(15),
                ) {
                    Ok(p) if p.success => Check::Done(()),
                    // kubectl's words: no wait makes a missing context appear.
                    Ok(p)
                        if p.stderr
                            .contains(&format!("context \"{context}\" does not exist")) =>
                    {
                        bail!(
                            "the cluster tool returned, but the kubeconfig has no context \
                             `{context}` ({}): check which kubeconfig it wrote \
                             (KUBECONFIG) and `cargo xtask context list`",
                            p.stderr.trim()
                        )
                    }
                    Ok(p) => Check::NotYet(p.stderr.trim().to_string()),
                    Err(e) => Check::NotYet(format!("{e:#}")),
                },
            )
        })
    })?;
    match waited {
        Some(Waited::TimedOut { last }) => bail!(
            "the API server of {context} did not answer within {}s (last: {last})",
            API_DEADLINE.as_secs()
        ),
        Some(Waited::Done { after, .. }) => {
            eprintln!(
                "  ✓ API server of {context} ready after {:.0}s",
                after.as_secs_f64()
            );
        }
        None => {}
    }
    let info = cx.runner.run(
        cmd!(cx.sh, "kubectl --context {context} cluster-info"),
        "reading the cluster's facts",
    )?;
    cx.runner.unless_dry_run(|| {
        println!("context {context}\n{}", info.stdout.trim_end());
        Ok(())
    })?;
    Ok(())
}
