//! What each service is built from, so that a changed file redeploys only
//! the services it affects: its crate and the workspace crates it uses
//! (path dependencies, from `cargo metadata`), its model file and contract,
//! and for cluster targets the manifests.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::build::workspace;
use crate::ground::context::Ctx;
use crate::ground::services::{MODEL_SERVER, ServiceSpec};
use crate::ground::settings::ServiceKind;

/// The files and directories each service depends on.
pub struct Plan {
    /// Service name, and what it is built or configured from.
    pub inputs: Vec<(String, Vec<PathBuf>)>,
    /// The settings file: a change there needs a new `dev`.
    pub settings: Option<PathBuf>,
}

impl Plan {
    /// `manifests`: the generated manifests' directory, for cluster targets.
    pub fn new(cx: &Ctx, specs: &[ServiceSpec], manifests: Option<&Path>) -> Result<Self> {
        let packages = workspace::packages(cx)?;
        let inputs = specs
            .iter()
            .map(|s| {
                let mut paths = workspace::source_dirs(&packages, &s.package);
                if let ServiceKind::Model(m) = &s.settings.kind {
                    if s.package != MODEL_SERVER {
                        paths.extend(workspace::source_dirs(&packages, MODEL_SERVER));
                    }
                    paths.extend(m.model_path.iter().cloned());
                    paths.extend(m.contract.iter().cloned());
                }
                paths.extend(manifests.map(Path::to_path_buf));
                (s.name.clone(), paths)
            })
            .collect();
        Ok(Self {
            inputs,
            settings: cx.config_source.clone(),
        })
    }

    /// Every path to watch, each once (directories recursively).
    pub fn watched(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self
            .inputs
            .iter()
            .flat_map(|(_, p)| p.iter().cloned())
            .chain(self.settings.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        // A directory covers what lies under it.
        let dirs: Vec<PathBuf> = all.iter().filter(|p| p.is_dir()).cloned().collect();
        all.retain(|p| !dirs.iter().any(|d| d != p && p.starts_with(d)));
        all
    }

    /// The services `changed` affects, in deploy order.
    pub fn affected(&self, changed: &[PathBuf]) -> Vec<String> {
        self.inputs
            .iter()
            .filter(|(_, inputs)| {
                changed
                    .iter()
                    .any(|c| inputs.iter().any(|i| c == i || c.starts_with(i)))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Whether a changed path matters: not build output, version control or an
/// editor's scratch file.
pub fn relevant(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !path
        .components()
        .any(|c| matches!(c.as_os_str().to_str(), Some("target" | ".git")))
        && !name.ends_with('~')
        && !name.ends_with(".swp")
        && !name.ends_with(".swx")
        && !name.starts_with(".#")
        && name != "4913"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_redeploys_only_what_depends_on_it() {
        let plan = Plan {
            inputs: vec![
                (
                    "test-api".into(),
                    vec![
                        "/w/services/service-kit".into(),
                        "/w/services/test-api".into(),
                    ],
                ),
                (
                    "wine".into(),
                    vec![
                        "/w/services/model-server".into(),
                        "/w/models/wine.onnx".into(),
                    ],
                ),
            ],
            settings: None,
        };
        let changed = |p: &str| plan.affected(&[PathBuf::from(p)]);
        assert_eq!(changed("/w/services/test-api/src/lib.rs"), ["test-api"]);
        assert_eq!(
            changed("/w/services/service-kit/src/server.rs"),
            ["test-api"]
        );
        assert_eq!(changed("/w/models/wine.onnx"), ["wine"]);
        assert!(changed("/w/README.md").is_empty());
        assert!(relevant(Path::new("/w/services/test-api/src/lib.rs")));
        assert!(!relevant(Path::new("/w/target/release/test-api")));
        assert!(!relevant(Path::new("/w/services/test-api/src/.lib.rs.swp")));
    }
}
