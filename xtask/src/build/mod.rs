//! Building the service binaries: release mode, one cargo invocation,
//! located through cargo's own JSON messages (so a custom CARGO_TARGET_DIR
//! works). On Linux they are statically linked (`--target <host> -C
//! target-feature=+crt-static`), so the very same binaries run locally and
//! in images built on an empty base.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};
use serde::Deserialize;
use xshell::cmd;

use crate::ground::context::Ctx;
use crate::ground::services::{self, ServiceSpec};

/// A service and the binary that was built for it.
#[derive(Clone, Debug)]
pub struct Built {
    pub spec: ServiceSpec,
    pub binary: PathBuf,
}

/// The cargo that runs us (`cargo xtask` sets $CARGO), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The target triple static binaries are built for, on hosts that can.
pub fn static_target() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("x86_64-unknown-linux-gnu"),
        ("linux", "aarch64") => Some("aarch64-unknown-linux-gnu"),
        _ => None,
    }
}

/// The OCI name of the architecture binaries are built for.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `cargo build --release`, static where the host allows.
pub fn release_command(cx: &Ctx) -> Command {
    let cargo = cargo();
    match static_target() {
        Some(target) => {
            let rustflags =
                format!("target.{target}.rustflags=[\"-C\",\"target-feature=+crt-static\"]");
            cmd!(
                cx.sh,
                "{cargo} build --release --target {target} --config {rustflags}"
            )
            .into()
        }
        None => cmd!(cx.sh, "{cargo} build --release").into(),
    }
}

/// Cargo's target directory (CARGO_TARGET_DIR honoured).
pub fn target_dir(cx: &Ctx) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| cx.root.join("target"), Into::into)
}

/// Where `release_command` puts its binaries.
pub fn release_dir(cx: &Ctx) -> PathBuf {
    let target = target_dir(cx);
    match static_target() {
        Some(t) => target.join(t).join("release"),
        None => target.join("release"),
    }
}

/// `--package P --bin B` for every service binary, deduplicated.
pub fn all_packages(cx: &Ctx) -> Vec<String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for s in services::all(&cx.config, &cx.root) {
        let key = (s.package, s.bin);
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen.iter()
        .flat_map(|(p, b)| {
            [
                "--package".to_string(),
                p.to_string(),
                "--bin".to_string(),
                b.to_string(),
            ]
        })
        .collect()
}

pub fn build(cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<Built>> {
    let mut cmd = release_command(cx);
    // Always the same set of packages: cargo unifies dependency features
    // across one invocation, so building a subset would give different
    // binaries (and image digests) for the same sources.
    cmd.arg("--message-format=json-render-diagnostics")
        .args(all_packages(cx));
    let out = cx.runner.run(cmd, "building the services")?;
    let Some(executables) = cx.runner.unless_dry_run(|| Ok(executables(&out.stdout)))? else {
        // Nothing was built; name the files a real build produces.
        let dir = release_dir(cx);
        return Ok(specs
            .iter()
            .map(|s| Built {
                spec: s.clone(),
                binary: dir.join(&s.bin),
            })
            .collect());
    };
    specs
        .iter()
        .map(
            |s| match executables.iter().find(|(name, _)| *name == s.bin) {
                Some((_, path)) => Ok(Built {
                    spec: s.clone(),
                    binary: path.clone(),
                }),
                None => bail!("cargo built no `{}` binary for {}", s.bin, s.name),
            },
        )
        .collect()
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
}

/// (binary name, path) for each executable in cargo's JSON messages.
fn executables(stdout: &str) -> Vec<(String, PathBuf)> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Message>(l).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter_map(|m| Some((m.target?.name, m.executable?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_in_cargo_messages() {
        let out = r#"{"reason":"compiler-artifact","target":{"name":"serde"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"test-api"},"executable":"/w/target/release/test-api"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(out),
            vec![(
                "test-api".to_string(),
                PathBuf::from("/w/target/release/test-api")
            )]
        );
    }
}
