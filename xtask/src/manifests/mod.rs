//! The Kubernetes and Seldon manifests under `deploy/`, generated from the
//! services' settings and committed, so that `kubectl apply -k
//! deploy/overlays/<target>` works without kube-mlops and GitOps tools see
//! plain files. `cargo xtask manifests` writes them; `--check` (cargo's
//! pattern) says which differ and how; deploy refuses stale ones. Hand
//! edits belong in the overlays (kustomize patches), which are never
//! generated.

mod kubernetes;
pub mod seldon;
mod yaml;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::ground::context::Ctx;
use crate::ground::services::ServiceSpec;
pub use yaml::GENERATED;
#[cfg(test)]
use yaml::yaml_env;

/// The directories generated files live in, relative to the manifests
/// directory (`kubernetes.manifests_dir`).
const GENERATED_DIRS: [&str; 4] = [
    "base",
    "components/load-balancer",
    "components/pdb",
    "seldon",
];

/// What the generated manifests are made from besides the services: where
/// they live and the namespaces they name.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// `[kubernetes] manifests_dir`: the generated and hand-written files.
    pub dir: PathBuf,
    /// `[kubernetes] namespace`: the services' Deployments and Services.
    pub namespace: String,
    /// `[seldon] namespace`: the SeldonDeployments.
    pub seldon_namespace: String,
}

/// Every generated file of `specs` (every service of the settings): path
/// relative to the manifests directory, and text.
pub fn generate(m: &Manifests, specs: &[ServiceSpec]) -> Vec<(PathBuf, String)> {
    let (ns, seldon_ns) = (m.namespace.as_str(), m.seldon_namespace.as_str());
    let mut files = vec![
        (
            "base/kustomization.yaml".into(),
            kubernetes::kustomization(ns, specs),
        ),
        ("base/namespace.yaml".into(), kubernetes::namespace(ns)),
    ];
    for spec in specs {
        files.push((
            format!("base/{}.yaml", spec.name).into(),
            kubernetes::service(spec),
        ));
    }
    let [lb_kustomization, lb_policy] = kubernetes::load_balancer(ns, specs);
    files.push((
        "components/load-balancer/kustomization.yaml".into(),
        lb_kustomization,
    ));
    files.push((
        "components/load-balancer/network-policy.yaml".into(),
        lb_policy,
    ));
    files.push((
        "components/pdb/kustomization.yaml".into(),
        kubernetes::pdb_component(ns),
    ));
    files.push(("components/pdb/pdb.yaml".into(), kubernetes::pdbs(specs)));
    let models: Vec<ServiceSpec> = specs
        .iter()
        .filter(|s| s.settings.seldon)
        .cloned()
        .collect();
    files.push((
        "seldon/kustomization.yaml".into(),
        seldon::kustomization(seldon_ns, &models),
    ));
    files.push(("seldon/namespace.yaml".into(), seldon::namespace(seldon_ns)));
    for spec in &models {
        files.push((
            format!("seldon/{}.yaml", spec.name).into(),
            seldon::deployment(spec),
        ));
    }
    files
}

/// A generated file that is not as the settings make it.
#[derive(Debug, PartialEq, Eq)]
pub enum Difference {
    /// Not there.
    Missing(PathBuf),
    /// There, with other text: a unified diff from the file to what the
    /// settings generate.
    Changed(PathBuf, String),
    /// Generated earlier (it has the header) but no longer: a service that
    /// was removed.
    Extra(PathBuf),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "{} is missing", p.display()),
            Self::Changed(p, diff) => write!(f, "{} differs:\n{diff}", p.display()),
            Self::Extra(p) => write!(
                f,
                "{} is no longer generated (its service is gone)",
                p.display()
            ),
        }
    }
}

/// What differs between the manifests directory `root` and what the
/// settings generate.
///
/// # Errors
/// A generated directory that cannot be listed, a file that cannot be read.
pub fn differences(root: &Path, files: &[(PathBuf, String)]) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    for (path, text) in files {
        let full = root.join(path);
        match std::fs::read_to_string(&full) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(on_disk) => out.push(Difference::Changed(
                path.clone(),
                diff(path, &on_disk, text),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(Difference::Missing(path.clone()));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", full.display())),
        }
    }
    for extra in generated_on_disk(root)? {
        if !files.iter().any(|(p, _)| *p == extra) {
            out.push(Difference::Extra(extra));
        }
    }
    Ok(out)
}

/// Writes every generated file that differs and removes generated files no
/// longer generated; returns what changed.
///
/// # Errors
/// A file or directory that cannot be written or removed.
pub fn write(root: &Path, files: &[(PathBuf, String)]) -> Result<Vec<Difference>> {
    let changes = differences(root, files)?;
    for change in &changes {
        match change {
            Difference::Missing(p) | Difference::Changed(p, _) => {
                let full = root.join(p);
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let text = files
                    .iter()
                    .find(|(f, _)| f == p)
                    .map(|(_, t)| t.as_str())
                    .unwrap_or_default();
                std::fs::write(&full, text)
                    .with_context(|| format!("cannot write {}", full.display()))?;
            }
            Difference::Extra(p) => {
                let full = root.join(p);
                std::fs::remove_file(&full)
                    .with_context(|| format!("cannot remove {}", full.display()))?;
            }
        }
    }
    Ok(changes)
}

/// Files in the generated directories that carry the header.
fn generated_on_disk(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in GENERATED_DIRS {
        let full = root.join(dir);
        let entries = match std::fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", full.display())),
        };
        for entry in entries {
            let entry = entry?;
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if text.starts_with(GENERATED) {
                found.push(Path::new(dir).join(entry.file_name()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Fails, naming the files and the command that regenerates them, when
/// deploy/ is not what the settings generate: deploying it would run
/// something other than the settings say. A precondition: a dry run lists
/// it with the other blockers and plans on.
///
/// # Errors
/// Stale manifests (a real run); files that cannot be read.
pub fn refuse_stale(cx: &Ctx, m: &Manifests, specs: &[ServiceSpec]) -> Result<()> {
    let files = generate(m, specs);
    let stale = differences(&m.dir, &files)?;
    if stale.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = stale
        .iter()
        .map(|d| match d {
            Difference::Missing(p) | Difference::Changed(p, _) | Difference::Extra(p) => {
                p.display().to_string()
            }
        })
        .collect();
    cx.runner.precondition(anyhow::anyhow!(
        "the manifests in {} are not what the settings generate ({}): run `cargo xtask \
         manifests` to regenerate them (`cargo xtask manifests --check` shows the diff)",
        m.dir.display(),
        names.join(", ")
    ))
}

/// A unified diff (3 lines of context) from `old` to `new`.
fn diff(path: &Path, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (committed)", path.display()),
            &format!("{} (from the settings)", path.display()),
        )
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground::services;

    #[test]
    fn values_are_quoted_so_no_setting_can_add_yaml() {
        let env = yaml_env(&[("A".into(), "x\n  - name: EVIL".into())], 2);
        assert_eq!(env, "  - name: A\n    value: \"x\\n  - name: EVIL\"\n");
    }

    #[test]
    fn stale_and_extra_files_are_found_and_written() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = crate::ground::settings::parse(
            "[services.test-api]\n[services.model-server]\n[services.iris-model]\n",
        )?;
        let specs = services::all(&config.services, dir.path());
        let m = Manifests {
            dir: dir.path().into(),
            namespace: config.kubernetes.namespace.clone(),
            seldon_namespace: config.seldon.namespace.clone(),
        };
        let files = generate(&m, &specs);
        assert!(
            differences(dir.path(), &files)?
                .iter()
                .all(|d| matches!(d, Difference::Missing(_)))
        );
        write(dir.path(), &files)?;
        assert!(differences(dir.path(), &files)?.is_empty());
        // A service removed from the settings: its file goes.
        let fewer = generate(&m, &specs[..2]);
        let d = differences(dir.path(), &fewer)?;
        assert!(
            d.contains(&Difference::Extra("base/iris-model.yaml".into())),
            "{d:?}"
        );
        write(dir.path(), &fewer)?;
        assert!(!dir.path().join("base/iris-model.yaml").exists());
        // A hand edit shows as a diff naming the line.
        let base = dir.path().join("base/test-api.yaml");
        let edited = std::fs::read_to_string(&base)?.replace("replicas: 1", "replicas: 3");
        std::fs::write(&base, edited)?;
        let d = differences(dir.path(), &fewer)?;
        let [Difference::Changed(p, diff)] = &d[..] else {
            panic!("{d:?}");
        };
        assert_eq!(p, Path::new("base/test-api.yaml"));
        assert!(diff.contains("-  replicas: 3\n+  replicas: 1"), "{diff}");
        Ok(())
    }
}
