//! TOML files read as documents (toml_edit: what is written back keeps its
//! layout, comments and order), and the workspace's version.

use std::path::Path;

use anyhow::{Context, Result};

/// `path` parsed as an editable TOML document.
///
/// # Errors
/// An unreadable file, or one that is not TOML (the error names the file).
pub fn read_document(path: &Path) -> Result<toml_edit::DocumentMut> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.parse()
        .with_context(|| format!("{} is not TOML", path.display()))
}

/// `[workspace.package] version` of the root manifest `manifest`.
///
/// # Errors
/// An unreadable manifest, or a missing or non-semver version.
pub fn workspace_version(manifest: &Path) -> Result<semver::Version> {
    let doc = read_document(manifest)?;
    let v = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .with_context(|| format!("{} has no [workspace.package] version", manifest.display()))?;
    semver::Version::parse(v).with_context(|| {
        format!(
            "{}: [workspace.package] version {v:?} is not a semantic version",
            manifest.display()
        )
    })
}
