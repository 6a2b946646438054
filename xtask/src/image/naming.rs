//! Image names and the facts baked into labels: version, git revision,
//! whether the tree is dirty, and the timestamp every file gets.

use std::time::Duration;

use anyhow::{Context, Result};

use xshell::cmd;

use crate::ground::context::Ctx;

/// Where the sources come from, for tags and `org.opencontainers.image.*` labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub version: String,
    /// Full commit id, or None outside a git checkout.
    pub revision: Option<String>,
    pub dirty: bool,
    /// Seconds since the epoch: SOURCE_DATE_EPOCH, else the last commit's
    /// time, else 0 — never "now", so that rebuilds are byte-identical.
    pub epoch: i64,
    pub source: String,
}

/// `[workspace.package] version` of the workspace at `root`: images carry
/// the version of what they are built from, not of the xtask building them.
fn workspace_version(root: &std::path::Path) -> Option<String> {
    crate::ground::toml_files::workspace_version(&root.join("Cargo.toml"))
        .ok()
        .map(|v| v.to_string())
}

impl Provenance {
    pub fn read(cx: &Ctx) -> Result<Self> {
        let git = |args: &[&str]| {
            cx.runner
                .probe(
                    cmd!(cx.sh, "git {args...}"),
                    "naming images",
                    Duration::from_secs(10),
                )
                .ok()
                .filter(|p| p.success)
                .map(|p| p.stdout.trim().to_string())
        };
        let revision = git(&["rev-parse", "HEAD"]).filter(|r| !r.is_empty());
        let dirty = revision.is_some()
            && git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
            Err(_) => git(&["log", "-1", "--format=%ct"])
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        };
        Ok(Self {
            version: workspace_version(&cx.root)
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            revision,
            dirty,
            epoch,
            source: "https://github.com/kube-mlops/kube-mlops".to_string(),
        })
    }

    /// `<version>-<short sha>[-dirty]`, or `<version>-nogit` outside git.
    pub fn tag(&self) -> String {
        match &self.revision {
            Some(rev) => format!(
                "{}-{}{}",
                self.version,
                &rev[..rev.len().min(7)],
                if self.dirty { "-dirty" } else { "" }
            ),
            None => format!("{}-nogit", self.version),
        }
    }

    /// The epoch as RFC 3339, for `created`.
    pub fn created(&self) -> Result<String> {
        let t = time::OffsetDateTime::from_unix_timestamp(self.epoch)
            .with_context(|| format!("timestamp {} is out of range", self.epoch))?;
        Ok(t.format(&time::format_description::well_known::Rfc3339)?)
    }
}

/// `<host>/<account>/<image>`; Docker Hub keeps its `docker.io` prefix so the
/// name means the same thing to every tool.
pub fn repository(host: &str, account: &str, image: &str) -> String {
    [host, account, image]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(rev: Option<&str>, dirty: bool) -> Provenance {
        Provenance {
            version: "0.1.0".into(),
            revision: rev.map(Into::into),
            dirty,
            epoch: 1_700_000_000,
            source: "s".into(),
        }
    }

    #[test]
    fn tags_carry_version_sha_and_dirt() -> Result<()> {
        assert_eq!(prov(Some("0123456789abcdef"), false).tag(), "0.1.0-0123456");
        assert_eq!(
            prov(Some("0123456789abcdef"), true).tag(),
            "0.1.0-0123456-dirty"
        );
        assert_eq!(prov(None, false).tag(), "0.1.0-nogit");
        assert_eq!(prov(None, false).created()?, "2023-11-14T22:13:20Z");
        Ok(())
    }

    #[test]
    fn repositories() {
        assert_eq!(
            repository("docker.io", "me", "test-api"),
            "docker.io/me/test-api"
        );
        assert_eq!(repository("127.0.0.1:5555", "", "x"), "127.0.0.1:5555/x");
    }
}
