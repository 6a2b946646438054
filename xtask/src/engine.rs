//! The Kubernetes engine (`xtask/kube-engine`): its own binary, so that the
//! kube client is compiled only when a Kubernetes target is first used, not
//! by every `cargo xtask`. Built like the services, then run like any tool.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Result, bail};

use crate::build;
use crate::context::Ctx;
use crate::runner::Cmd;

static BUILT: OnceLock<PathBuf> = OnceLock::new();

/// Use this engine binary instead of building one (a prebuilt or installed engine).
const OVERRIDE: &str = "KMLOPS_KUBE_ENGINE";

/// The engine binary, built (or found up to date) once per run.
pub fn binary(cx: &Ctx) -> Result<PathBuf> {
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    if let Some(path) = std::env::var_os(OVERRIDE).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{OVERRIDE}={} is not a file: unset it to build the engine from xtask/kube-engine",
                path.display()
            );
        }
        return Ok(BUILT.get_or_init(|| path).clone());
    }
    cx.runner
        .step("build the Kubernetes engine (kube-engine; the first build takes a minute or two)");
    cx.runner.run(
        &Cmd::new(build::cargo(), "building the Kubernetes engine")
            .args(["build", "--package", "kube-engine", "--bin", "kube-engine"])
            .cwd(&cx.root),
    )?;
    let path = build::target_dir(cx).join("debug").join("kube-engine");
    Ok(BUILT.get_or_init(|| path).clone())
}

/// `kube-engine --context <context> <args>`: always the context the guard approved.
pub fn command<I, S>(cx: &Ctx, context: &str, purpose: &str, args: I) -> Result<Cmd>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    Ok(Cmd::new(binary(cx)?.to_string_lossy(), purpose)
        .args(["--context", context])
        .args(args))
}
