//! The checks before a release builds anything: a clean work tree on a
//! commit, a semver version above the last `v*` tag that equals the
//! workspace's, and a CHANGELOG.md section for it (Keep a Changelog,
//! https://keepachangelog.com/en/1.1.0/), whose text becomes the notes.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use semver::Version;
use xshell::cmd;

use crate::ground::context::Ctx;

/// What the preflight found.
pub struct Facts {
    pub version: Version,
    /// Full commit id of HEAD.
    pub commit: String,
    /// The last `v*` tag's version, if any.
    pub previous: Option<Version>,
    /// The CHANGELOG section's text (without its heading).
    pub notes: String,
    /// `vX.Y.Z` exists already and names HEAD (a CI job run by the tag
    /// push): the release is of that tag, and it is not made again.
    pub tagged: bool,
}

fn git(cx: &Ctx, args: &[&str]) -> Result<String> {
    let out = cx.runner.probe(
        cmd!(cx.sh, "git {args...}"),
        "checking the release preconditions",
        Duration::from_secs(20),
    )?;
    if !out.success {
        bail!("`git {}` failed: {}", args.join(" "), out.stderr.trim());
    }
    // Not trim(): `status --porcelain` lines start with a space.
    Ok(out.stdout.trim_end().to_string())
}

/// Parses `X.Y.Z` (a leading `v` is accepted and dropped).
///
/// # Errors
/// Text that is not semver.
pub fn parse_version(text: &str) -> Result<Version> {
    let t = text.trim().trim_start_matches('v');
    let v = Version::parse(t).with_context(|| {
        format!("{text:?} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)")
    })?;
    // OCI tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}: no '+'.
    if !v.build.is_empty() {
        anyhow::bail!(
            "{text:?} has build metadata (+{}), which an image tag cannot carry: release {} \
             (a pre-release such as 1.2.0-rc.1 is fine)",
            v.build,
            Version::new(v.major, v.minor, v.patch)
        );
    }
    Ok(v)
}

/// Runs every check: the facts found, and every problem, each saying what
/// to do (a real release stops at the first; a dry run lists them all).
/// Problems: a dirty tree, no commit, a version not above the last tag
/// (unless that tag is `vX.Y.Z` on HEAD: a release job run by the tag
/// push), a version that differs from `Cargo.toml`'s, no CHANGELOG section.
///
/// # Errors
/// A version that is not semver, or git failing outright.
pub fn check(cx: &Ctx, version: &str) -> Result<(Facts, Vec<anyhow::Error>)> {
    let version = parse_version(version)?;
    let mut problems = Vec::new();
    let commit = match git(cx, &["rev-parse", "--verify", "HEAD"]) {
        Ok(c) => c,
        Err(e) => {
            problems.push(
                e.context("a release is cut from a commit: commit your work first (`git commit`)"),
            );
            "<commit>".to_string()
        }
    };
    let dirty = git(cx, &["status", "--porcelain"])?;
    if !dirty.is_empty() {
        let first: Vec<&str> = dirty.lines().take(5).collect();
        problems.push(anyhow::anyhow!(
            "the work tree has uncommitted changes, so the release would not be what commit {} holds:\n  {}\ncommit or stash them (`git stash --include-untracked`)",
            commit.get(..12).unwrap_or(&commit),
            first.join("\n  ")
        ));
    }
    let previous = last_tag(&git(cx, &["tag", "--list", "v*"])?);
    let own = format!("v{version}");
    let tagged = git(cx, &["tag", "--points-at", "HEAD"])?
        .lines()
        .any(|t| t.trim() == own);
    if let Some(p) = &previous
        && (version < *p || (version == *p && !tagged))
    {
        problems.push(anyhow::anyhow!(
            "version {version} is not greater than the last release tag v{p}; \
             `cargo xtask release bump patch|minor|major` sets the next one"
        ));
    }
    match crate::ground::toml_files::workspace_version(&cx.root.join("Cargo.toml")) {
        Ok(in_toml) if in_toml != version => problems.push(anyhow::anyhow!(
            "Cargo.toml's workspace version is {in_toml}, not {version}: run `cargo xtask release bump --to {version}` \
             (it updates Cargo.toml and Cargo.lock), commit, and release again"
        )),
        Ok(_) => {}
        Err(e) => problems.push(e),
    }
    let notes = match notes(&cx.root.join("CHANGELOG.md"), &version) {
        Ok(n) => n,
        Err(e) => {
            problems.push(e);
            String::new()
        }
    };
    Ok((
        Facts {
            version,
            commit,
            previous,
            notes,
            tagged,
        },
        problems,
    ))
}

/// The release notes: the text of `changelog`'s `## [version]` section.
///
/// # Errors
/// No such file, no such section, or an empty one, saying what to write.
fn notes(changelog: &Path, version: &Version) -> Result<String> {
    let text = std::fs::read_to_string(changelog).map_err(|_| {
        anyhow::anyhow!(
            "cannot read {}: a release needs a CHANGELOG.md (Keep a Changelog format) with a `## [{version}]` section",
            changelog.display()
        )
    })?;
    if let Some(notes) = section(&text, version) {
        return Ok(notes);
    }
    let heading = format!("[{version}]");
    let empty = text.lines().any(|l| {
        l.strip_prefix("## ")
            .is_some_and(|h| h.trim_start().starts_with(&heading))
    });
    if empty {
        bail!(
            "{}'s `## [{version}]` section is empty: write the release's notes under it (Keep a Changelog), commit, and release again",
            changelog.display()
        );
    }
    bail!(
        "{} has no `## [{version}] - YYYY-MM-DD` section: write the release's notes there (Keep a Changelog), commit, and release again",
        changelog.display()
    )
}

/// The greatest semver among `git tag --list 'v*'`'s lines (others ignored).
pub fn last_tag(tags: &str) -> Option<Version> {
    tags.lines()
        .filter_map(|t| t.trim().strip_prefix('v'))
        .filter_map(|t| Version::parse(t).ok())
        .max()
}

/// The body of the `## [X.Y.Z]` section (up to the next `## ` heading or
/// link references), trimmed; None when absent or empty.
pub fn section(changelog: &str, version: &Version) -> Option<String> {
    let wanted = format!("[{version}]");
    let mut lines = changelog.lines();
    lines.find(|l| {
        l.strip_prefix("## ")
            .is_some_and(|h| h.trim_start().starts_with(&wanted))
    })?;
    let body: Vec<&str> = lines
        .take_while(|l| !l.starts_with("## ") && !l.starts_with("["))
        .collect();
    let text = body.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sections_and_versions() {
        assert_eq!(
            last_tag("v0.1.0\nv0.10.0\nv0.9.3\nvnext\nrelease-1\n"),
            Some(Version::new(0, 10, 0))
        );
        assert_eq!(last_tag(""), None);
        let log = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-11-30\n### Added\n- release\n\n## [0.1.0] - 2026-01-01\n- first\n\n[0.2.0]: https://x\n";
        assert_eq!(
            section(log, &Version::new(0, 2, 0)).as_deref(),
            Some("### Added\n- release")
        );
        assert_eq!(
            section(log, &Version::new(0, 1, 0)).as_deref(),
            Some("- first")
        );
        assert_eq!(section(log, &Version::new(0, 3, 0)), None);
        assert!(parse_version("1.2").is_err());
        assert_eq!(parse_version("v1.2.3").ok(), Some(Version::new(1, 2, 3)));
        assert!(parse_version("1.2.3-rc.1").is_ok());
        let build = parse_version("1.2.3+git.5").expect_err("no + in an image tag");
        assert!(format!("{build}").contains("release 1.2.3"), "{build}");
    }

    #[test]
    fn the_recorded_command_masks_the_key() {
        let args = [
            "release",
            "--version",
            "1.0.0",
            "--sign-key",
            "/k/x.key",
            "--registry",
            "r/a b",
        ];
        assert_eq!(
            crate::release::invocation(args.iter().map(|s| s.to_string())),
            "cargo xtask release --version 1.0.0 --sign-key <key> --registry 'r/a b'"
        );
        assert_eq!(
            crate::release::invocation(["--sign-key=/k".to_string()].into_iter()),
            "cargo xtask --sign-key=<key>"
        );
    }

    #[test]
    fn a_pre_release_does_not_move_the_minor_tag() -> Result<()> {
        let commit = "0123456789abcdef";
        assert_eq!(
            crate::release::tags(&parse_version("1.2.3")?, commit, false),
            ["v1.2.3", "1.2", "1.2.3-0123456"]
        );
        assert_eq!(
            crate::release::tags(&parse_version("1.2.3-rc.1")?, commit, true),
            ["v1.2.3-rc.1", "1.2.3-rc.1-0123456", "latest"]
        );
        Ok(())
    }
}
