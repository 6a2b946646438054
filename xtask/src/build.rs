//! `cargo xtask build`: the service binaries in release mode, in one cargo
//! invocation, located through cargo's own JSON messages (so a custom
//! CARGO_TARGET_DIR works).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::cli::BuildArgs;
use crate::context::Ctx;
use crate::runner::Cmd;
use crate::services::{self, ServiceSpec};

/// A service and the binary that was built for it.
#[derive(Clone, Debug)]
pub struct Built {
    pub spec: ServiceSpec,
    pub binary: PathBuf,
}

impl BuildArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        let specs = services::select(&cx.config, &self.services)?;
        for b in build(cx, &specs)? {
            println!("{}\t{}", b.spec.name, b.binary.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The cargo that runs us (`cargo xtask` sets $CARGO), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn build(cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<Built>> {
    let mut cmd = Cmd::new(cargo(), "building the services")
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .cwd(&cx.root);
    let mut seen = Vec::new();
    for s in specs {
        if !seen.contains(&(s.package, s.bin)) {
            seen.push((s.package, s.bin));
            cmd = cmd.args(["--package", s.package, "--bin", s.bin]);
        }
    }
    let out = cx.runner.run(&cmd)?;
    if cx.runner.is_dry_run() {
        // Nothing was built; name the files a real build produces.
        let dir = cx.root.join("target/release");
        return Ok(specs
            .iter()
            .map(|s| Built {
                spec: s.clone(),
                binary: dir.join(s.bin),
            })
            .collect());
    }
    let executables = executables(&out.stdout);
    specs
        .iter()
        .map(
            |s| match executables.iter().find(|(name, _)| name == s.bin) {
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
