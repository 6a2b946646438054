//! `cargo xtask release bump`: the workspace version in `Cargo.toml` and
//! the workspace packages' entries in `Cargo.lock`, edited with `toml_edit`
//! so that every other byte of both files stays as it was.

use std::path::Path;

use anyhow::{Context, Result, bail};
use semver::Version;

use crate::ground::toml_files::read_document;

/// Which part of the version goes up (the lower parts reset to 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Major,
    Minor,
    Patch,
}

/// The next version after `v`.
/// From a pre-release, the part's release comes first, as semver orders
/// them: `1.2.0-rc.1` → patch `1.2.0`, minor `1.2.0`, major `2.0.0`
/// (`1.0.0-rc.1` → major `1.0.0`).
pub fn next(v: &Version, part: Part) -> Version {
    let pre = !v.pre.is_empty();
    match part {
        Part::Major if pre && v.minor == 0 && v.patch == 0 => Version::new(v.major, 0, 0),
        Part::Major => Version::new(v.major + 1, 0, 0),
        Part::Minor if pre && v.patch == 0 => Version::new(v.major, v.minor, 0),
        Part::Minor => Version::new(v.major, v.minor + 1, 0),
        Part::Patch if pre => Version::new(v.major, v.minor, v.patch),
        Part::Patch => Version::new(v.major, v.minor, v.patch + 1),
    }
}

/// `text` as it was written: CRLF line endings when the original had them
/// (toml_edit writes LF for what it re-renders).
fn with_line_endings_of(original: &str, text: String) -> String {
    if original.contains("\r\n") {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        text
    }
}

/// Sets the workspace version in `<root>/Cargo.toml` to `to`, and every
/// lockfile entry of a workspace package (no `source`) at the old version.
/// Returns the old version.
///
/// # Errors
/// Unreadable or unwritable files, no `[workspace.package] version`, `to`
/// not greater than the current version.
pub fn set(root: &Path, to: &Version) -> Result<Version> {
    let manifest = root.join("Cargo.toml");
    let mut doc = read_document(&manifest)?;
    let slot = doc
        .get_mut("workspace")
        .and_then(|w| w.get_mut("package"))
        .and_then(|p| p.get_mut("version"))
        .with_context(|| format!("{} has no [workspace.package] version", manifest.display()))?;
    let old = super::preflight::parse_version(slot.as_str().unwrap_or_default())?;
    if *to <= old {
        bail!("{to} is not greater than the current version {old}");
    }
    // Keep the value's decoration (spacing, a trailing comment).
    let decor = slot.as_value().map(|v| v.decor().clone());
    let mut value = toml_edit::Value::from(to.to_string());
    if let Some(d) = decor {
        *value.decor_mut() = d;
    }
    *slot = toml_edit::Item::Value(value);

    let lock = root.join("Cargo.lock");
    let mut lock_doc = read_document(&lock)?;
    if let Some(packages) = lock_doc
        .get_mut("package")
        .and_then(|p| p.as_array_of_tables_mut())
    {
        for p in packages.iter_mut() {
            let ours = p.get("source").is_none()
                && p.get("version").and_then(|v| v.as_str()) == Some(&old.to_string());
            if ours {
                p.insert("version", toml_edit::value(to.to_string()));
            }
        }
    }
    let original = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    std::fs::write(
        &manifest,
        with_line_endings_of(&original(&manifest), doc.to_string()),
    )
    .with_context(|| format!("cannot write {}", manifest.display()))?;
    std::fs::write(
        &lock,
        with_line_endings_of(&original(&lock), lock_doc.to_string()),
    )
    .with_context(|| format!("cannot write {}", lock.display()))?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_keep_the_layout() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let manifest = "[workspace]\nmembers = [\"a\"]\n\n[workspace.package]\nversion = \"0.1.0\" # ours\nedition = \"2024\"\n";
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\ndependencies = [\n \"serde\",\n]\n\n[[package]]\nname = \"serde\"\nversion = \"0.1.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        std::fs::write(dir.path().join("Cargo.toml"), manifest)?;
        std::fs::write(dir.path().join("Cargo.lock"), lock)?;
        let to = next(&Version::new(0, 1, 0), Part::Minor);
        assert_eq!(to, Version::new(0, 2, 0));
        assert_eq!(set(dir.path(), &to)?, Version::new(0, 1, 0));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Cargo.toml"))?,
            manifest.replace("\"0.1.0\"", "\"0.2.0\"")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Cargo.lock"))?,
            lock.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1)
        );
        assert!(set(dir.path(), &Version::new(0, 1, 5)).is_err());

        // CRLF files stay CRLF.
        let crlf = manifest.replace('\n', "\r\n");
        std::fs::write(dir.path().join("Cargo.toml"), &crlf)?;
        set(dir.path(), &Version::new(0, 3, 0))?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Cargo.toml"))?,
            crlf.replace("\"0.1.0\"", "\"0.3.0\"")
        );
        Ok(())
    }

    #[test]
    fn a_pre_release_bumps_to_its_release() {
        let rc = |s: &str| Version::parse(s).expect("semver");
        assert_eq!(next(&rc("1.2.0-rc.1"), Part::Patch), rc("1.2.0"));
        assert_eq!(next(&rc("1.2.0-rc.1"), Part::Minor), rc("1.2.0"));
        assert_eq!(next(&rc("1.2.3-rc.1"), Part::Minor), rc("1.3.0"));
        assert_eq!(next(&rc("1.2.0-rc.1"), Part::Major), rc("2.0.0"));
        assert_eq!(next(&rc("2.0.0-rc.1"), Part::Major), rc("2.0.0"));
        assert_eq!(next(&rc("1.2.3"), Part::Patch), rc("1.2.4"));
    }
}
