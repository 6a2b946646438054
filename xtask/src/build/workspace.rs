//! The workspace's packages as cargo sees them (`cargo metadata --no-deps`):
//! whether a service's `package` and `bin` exist, and which binary crates
//! under services/ no service deploys.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::cmd;

use crate::ground::context::Ctx;
use crate::ground::services::{MODEL_SERVER, ServiceSpec};
use crate::ground::settings::ServiceKind;

/// A workspace package and its binary targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub bins: Vec<String>,
    /// Its Cargo.toml.
    pub manifest: PathBuf,
    /// The directories of the path dependencies it names (other workspace
    /// crates), normal and build dependencies alike.
    pub path_deps: Vec<PathBuf>,
    /// Whether it declares a `default` feature.
    pub has_default_features: bool,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<RawTarget>,
    #[serde(default)]
    dependencies: Vec<RawDependency>,
    #[serde(default)]
    features: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RawDependency {
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RawTarget {
    name: String,
    kind: Vec<String>,
}

/// The workspace members (a read: runs under --dry-run too).
///
/// # Errors
/// cargo failing, or output that is not cargo's metadata format.
pub fn packages(cx: &Ctx) -> Result<Vec<Package>> {
    let cargo = super::built::cargo();
    let out = cx.runner.probe(
        cmd!(
            cx.sh,
            "{cargo} metadata --no-deps --format-version 1 --offline"
        ),
        "building the services",
        std::time::Duration::from_secs(60),
    )?;
    if !out.success {
        bail!("`cargo metadata` failed:\n{}", out.stderr.trim_end());
    }
    let meta: Metadata =
        serde_json::from_str(&out.stdout).context("cargo metadata printed something else")?;
    Ok(meta
        .packages
        .into_iter()
        .map(|p| Package {
            bins: p
                .targets
                .iter()
                .filter(|t| t.kind.iter().any(|k| k == "bin"))
                .map(|t| t.name.clone())
                .collect(),
            path_deps: p
                .dependencies
                .iter()
                .filter(|d| d.kind.as_deref() != Some("dev"))
                .filter_map(|d| d.path.clone())
                .collect(),
            has_default_features: p.features.contains_key("default"),
            name: p.name,
            manifest: p.manifest_path,
        })
        .collect())
}

/// Where a service's table is, for errors: `xtask.toml:12`.
pub fn located(spec: &ServiceSpec) -> String {
    let file = spec.settings.file.as_ref().map_or_else(
        || "the built-in settings".into(),
        |p| p.display().to_string(),
    );
    match spec.settings.line {
        0 => file,
        line => format!("{file}:{line}"),
    }
}

/// Every crate service names a workspace package with its binary.
///
/// # Errors
/// The first service whose package or binary is not in the workspace,
/// naming the key, the line and the file, and what there is.
pub fn check(specs: &[ServiceSpec], packages: &[Package]) -> Result<()> {
    for spec in specs {
        let ServiceKind::Crate { bin, .. } = &spec.settings.kind else {
            continue;
        };
        let Some(p) = packages.iter().find(|p| p.name == spec.package) else {
            let names: Vec<&str> = packages
                .iter()
                .filter(|p| !p.bins.is_empty())
                .map(|p| p.name.as_str())
                .collect();
            bail!(
                "services.{}.package = {:?} ({}): no such package in the workspace; packages \
                 with binaries: {} (`cargo xtask service add {}` creates one)",
                spec.name,
                spec.package,
                located(spec),
                names.join(", "),
                spec.name
            );
        };
        if !p.bins.contains(&spec.bin) {
            let key = if bin.is_some() { "bin" } else { "package" };
            bail!(
                "services.{}.{key} ({}): package {} has no binary {:?}; its binaries: {} (set \
                 `bin`)",
                spec.name,
                located(spec),
                p.name,
                spec.bin,
                if p.bins.is_empty() {
                    "none".to_string()
                } else {
                    p.bins.join(", ")
                }
            );
        }
    }
    Ok(())
}

/// Binary crates under services/ that no service deploys (the model
/// server counts as deployed when any model is).
pub fn undeployed(cx: &Ctx, specs: &[ServiceSpec], packages: &[Package]) -> Vec<String> {
    let services_dir = cx.root.join("services");
    packages
        .iter()
        .filter(|p| p.manifest.starts_with(&services_dir) && !p.bins.is_empty())
        .filter(|p| !specs.iter().any(|s| s.package == p.name))
        .filter(|p| {
            p.name != MODEL_SERVER
                || !specs
                    .iter()
                    .any(|s| matches!(s.settings.kind, ServiceKind::Model(_)))
        })
        .map(|p| p.name.clone())
        .collect()
}

/// `<crate>  not deployed: add [services.<crate>] to <file>` for each
/// binary crate under services/ that no service deploys; empty when the
/// workspace cannot be read (doctor reports cargo itself). `specs`: every
/// service of the settings; `file`: the settings file (None: built in).
pub fn undeployed_lines(cx: &Ctx, specs: &[ServiceSpec], file: Option<&Path>) -> Vec<String> {
    let file = file.map_or_else(|| "xtask.toml".into(), |p| p.display().to_string());
    packages(cx)
        .map(|p| undeployed(cx, specs, &p))
        .unwrap_or_default()
        .into_iter()
        .map(|name| format!("{name:<14} not deployed: add [services.{name}] to {file}"))
        .collect()
}

/// The directories `package` is built from: its own and, transitively, its
/// path dependencies'.
pub fn source_dirs(packages: &[Package], package: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut todo: Vec<PathBuf> = packages
        .iter()
        .filter(|p| p.name == package)
        .filter_map(|p| p.manifest.parent().map(PathBuf::from))
        .collect();
    while let Some(dir) = todo.pop() {
        if dirs.contains(&dir) {
            continue;
        }
        if let Some(p) = packages
            .iter()
            .find(|p| p.manifest.parent() == Some(dir.as_path()))
        {
            todo.extend(p.path_deps.iter().cloned());
        }
        dirs.push(dir);
    }
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, deps: &[&str]) -> Package {
        Package {
            name: name.into(),
            bins: vec![name.into()],
            manifest: PathBuf::from(format!("/w/services/{name}/Cargo.toml")),
            path_deps: deps
                .iter()
                .map(|d| PathBuf::from(format!("/w/services/{d}")))
                .collect(),
            has_default_features: false,
        }
    }

    #[test]
    fn source_dirs_follow_path_dependencies_transitively() {
        let packages = [
            package("model-server", &["seldon-protocol", "service-kit"]),
            package("seldon-protocol", &[]),
            package("service-kit", &["seldon-protocol"]),
            package("test-api", &["service-kit"]),
        ];
        let dirs = source_dirs(&packages, "test-api");
        assert_eq!(
            dirs,
            ["seldon-protocol", "service-kit", "test-api"]
                .map(|d| PathBuf::from(format!("/w/services/{d}")))
        );
        assert_eq!(source_dirs(&packages, "nope"), Vec::<PathBuf>::new());
    }
}
