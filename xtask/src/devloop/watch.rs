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
    /// Service name, and what it is built or configured from (absolute,
    /// symbolic links resolved, as the watcher reports changes).
    pub inputs: Vec<(String, Vec<PathBuf>)>,
    /// The settings file: a change there starts the loop again.
    pub settings: Option<PathBuf>,
}

/// One directory the watcher follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub path: PathBuf,
    /// With everything under it, or only its own entries (the directory
    /// of a watched file).
    pub recursive: bool,
}

/// `path` absolute with symbolic links resolved; a file that does not
/// exist (yet) is named in its resolved directory.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => dir
            .canonicalize()
            .map_or_else(|_| path.to_path_buf(), |d| d.join(name)),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

impl Plan {
    /// `manifests`: the generated manifests' directory, for cluster targets;
    /// `settings`: the settings file (None: built in).
    pub fn new(
        cx: &Ctx,
        specs: &[ServiceSpec],
        manifests: Option<&Path>,
        settings: Option<&Path>,
    ) -> Result<Self> {
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
                (s.name.clone(), paths.iter().map(|p| resolved(p)).collect())
            })
            .collect();
        Ok(Self {
            inputs,
            settings: settings.map(resolved),
        })
    }

    /// The directories to watch, each once: every input directory with
    /// what is under it, and the directory of every input file. A file is
    /// never watched itself: editors (vim, emacs, JetBrains IDEs, `sed
    /// -i`) save by writing a new file and renaming it over the old one,
    /// and a watch on the old file would see nothing after the first
    /// save. Changes are matched by path (`affected`).
    pub fn watches(&self) -> Vec<Watch> {
        let mut all: Vec<Watch> = self
            .inputs
            .iter()
            .flat_map(|(_, p)| p.iter())
            .chain(self.settings.iter())
            .map(|p| {
                if p.is_dir() {
                    Watch {
                        path: p.clone(),
                        recursive: true,
                    }
                } else {
                    Watch {
                        path: p.parent().map_or_else(|| p.clone(), Path::to_path_buf),
                        recursive: false,
                    }
                }
            })
            .collect();
        all.sort_by(|a, b| (&a.path, !a.recursive).cmp(&(&b.path, !b.recursive)));
        all.dedup_by(|later, first| later.path == first.path);
        // A recursive watch covers what lies under it.
        let deep: Vec<PathBuf> = all
            .iter()
            .filter(|w| w.recursive)
            .map(|w| w.path.clone())
            .collect();
        all.retain(|w| {
            !deep
                .iter()
                .any(|d| w.path.starts_with(d) && (d != &w.path || !w.recursive))
        });
        all
    }

    /// Those of `changed` that some service is built from (a watched
    /// directory also reports its other entries: the settings' directory
    /// holds the run and image directories, say).
    pub fn inputs_among(&self, changed: &[PathBuf]) -> Vec<PathBuf> {
        changed
            .iter()
            .filter(|c| {
                self.inputs
                    .iter()
                    .flat_map(|(_, i)| i)
                    .any(|i| *c == i || c.starts_with(i))
            })
            .cloned()
            .collect()
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
        assert_eq!(
            plan.inputs_among(&[
                "/w/run".into(),
                "/w/models/wine.onnx".into(),
                "/w/images".into()
            ]),
            [PathBuf::from("/w/models/wine.onnx")]
        );
        assert!(changed("/w/README.md").is_empty());
        assert!(relevant(Path::new("/w/services/test-api/src/lib.rs")));
        assert!(!relevant(Path::new("/w/models/.wine.onnx.swp")));
        assert!(!relevant(Path::new("/w/target/release/test-api")));
        assert!(!relevant(Path::new("/w/services/test-api/src/.lib.rs.swp")));
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    #[test]
    fn files_are_watched_through_their_directories() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().canonicalize()?;
        for d in ["services/test-api/src", "services/service-kit", "models"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        std::fs::write(root.join("models/wine.onnx"), "x")?;
        std::fs::write(root.join("xtask.toml"), "")?;
        let plan = Plan {
            inputs: vec![
                (
                    "test-api".into(),
                    vec![
                        root.join("services/service-kit"),
                        root.join("services/test-api"),
                    ],
                ),
                ("wine".into(), vec![root.join("models/wine.onnx")]),
            ],
            settings: Some(root.join("xtask.toml")),
        };
        let w = |p: &str, recursive| Watch {
            path: if p.is_empty() {
                root.clone()
            } else {
                root.join(p)
            },
            recursive,
        };
        assert_eq!(
            plan.watches(),
            [
                w("", false),
                w("models", false),
                w("services/service-kit", true),
                w("services/test-api", true),
            ]
        );
        // A file under a watched directory adds no watch of its own.
        let plan = Plan {
            inputs: vec![(
                "m".into(),
                vec![root.join("models"), root.join("models/wine.onnx")],
            )],
            settings: None,
        };
        assert_eq!(plan.watches(), [w("models", true)]);
        Ok(())
    }
}
