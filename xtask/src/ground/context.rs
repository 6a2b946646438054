//! What every task gets: the workspace root, the runner (with the output
//! mode), and an xshell `Shell` rooted at the workspace for writing
//! commands. The settings are not here: the commands read them and hand
//! the layers below values made from them.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use super::runner::{Format, Progress, Runner};

/// How the command line asked the xtask to behave.
pub struct Options {
    /// `--config`: the settings file, when not `<root>/xtask.toml`.
    pub config: Option<PathBuf>,
    pub dry_run: bool,
    pub verbose: bool,
    pub progress: Progress,
    /// `--output`: text, or one JSON document on stdout.
    pub output: Format,
}

pub struct Ctx {
    pub root: PathBuf,
    pub runner: Runner,
    /// Commands run in the workspace root.
    pub sh: Shell,
}

impl Ctx {
    /// The context of `options`, in the workspace of `--config`'s file
    /// when it is a workspace's root, else the one this xtask was built
    /// from.
    ///
    /// # Errors
    /// `--config`'s directory has a Cargo.toml that does not parse; no
    /// shell.
    pub fn new(options: &Options) -> Result<Self> {
        let root = match options.config.as_deref() {
            Some(settings) => match workspace_of(settings)? {
                Some(root) => root,
                // A file that is not there fails with its own error later.
                None if !settings.is_file() => workspace_root(),
                None => {
                    // Two directories are in play: say which is which.
                    let root = workspace_root();
                    eprintln!(
                        "==> {} is not at a Cargo workspace's root: the services are built \
                         from {}; the paths in the settings are relative to the settings \
                         file's own directory",
                        settings.display(),
                        root.display()
                    );
                    root
                }
            },
            None => workspace_root(),
        };
        let sh = Shell::new()?;
        sh.change_dir(&root);
        Ok(Self {
            runner: Runner::new(
                options.dry_run,
                options.verbose,
                options.progress,
                root.clone(),
            )
            .with_format(options.output),
            sh,
            root,
        })
    }

    /// Whether stdout is for one JSON document (`--output json`).
    pub fn json(&self) -> bool {
        self.runner.format() == Format::Json
    }

    /// A command's result document, on stdout under `--output json`
    /// (`Runner::emit`).
    pub fn emit(&self, doc: &serde_json::Value) {
        self.runner.emit(doc);
    }
}

/// The directory of a settings file when it is a Cargo workspace's root
/// (a Cargo.toml with `[workspace]` beside it): `--config` names another
/// checkout of the project, whose services are then built and deployed.
/// A Cargo.toml there that does not parse is an error: falling back to
/// another checkout would build, bump or release the wrong repository.
fn workspace_of(settings: &std::path::Path) -> Result<Option<PathBuf>> {
    let Some(dir) = std::fs::canonicalize(settings)
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
    else {
        return Ok(None);
    };
    let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
        return Ok(None);
    };
    let parsed: toml::Table = toml::from_str(&manifest).map_err(|e| {
        anyhow::anyhow!(
            "{} does not parse, so the workspace of {} is unknown: {e}",
            dir.join("Cargo.toml").display(),
            settings.display()
        )
    })?;
    Ok(parsed.contains_key("workspace").then_some(dir))
}

/// The workspace this xtask was built from (xtask/ sits at its root).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), |p| p.to_path_buf())
}
