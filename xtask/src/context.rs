//! What every task gets: the workspace root, the settings, the runner.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::GlobalArgs;
use crate::config::{Config, Loaded};
use crate::runner::Runner;
use crate::targets::TargetName;

pub struct Ctx {
    pub root: PathBuf,
    pub config: Config,
    /// The settings file read, or None for the built-in defaults.
    pub config_source: Option<PathBuf>,
    pub runner: Runner,
}

impl Ctx {
    pub fn new(global: &GlobalArgs) -> Result<Self> {
        let root = workspace_root();
        let loaded = Loaded::load(global.config.as_deref(), &root)?;
        Ok(Self {
            runner: Runner::new(global.dry_run, global.verbose, global.progress),
            config: loaded.config,
            config_source: loaded.source,
            root,
        })
    }

    /// `--target` when given, else the configured default.
    pub fn target(&self, arg: Option<TargetName>) -> TargetName {
        arg.unwrap_or(self.config.default_target)
    }
}

/// The workspace this xtask was built from (xtask/ sits at its root).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), |p| p.to_path_buf())
}
