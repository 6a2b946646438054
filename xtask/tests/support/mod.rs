//! Fake executables on PATH that record their argv, and running the xtask
//! binary with them.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

pub struct Fakes {
    pub dir: tempfile::TempDir,
}

impl Fakes {
    /// `fakes`: (program, shell body) pairs; each also appends its argv to the log.
    pub fn new(fakes: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("bin"))?;
        for (name, body) in fakes {
            let path = dir.path().join("bin").join(name);
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho \"{name} $*\" >> \"$FAKE_LOG\"\n{body}\n"),
            )?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        let fakes = Self { dir };
        fakes.settings(
            "[minikube]\nprofile = \"mlops\"\nmemory_mb = 4096\ncpus = 2\n\
             [kind]\ncluster = \"dev\"\n\
             [gke]\nproject = \"proj-1\"\nzone = \"europe-west1-b\"\ncluster = \"k8s-test-cluster\"\n\
             machine_type = \"e2-standard-2\"\nnum_nodes = 3\n",
        )?;
        Ok(fakes)
    }

    /// Writes xtask.toml, and beside it a deploy/ as a user's checkout has
    /// one: the workspace's hand-written overlays and Seldon policy, and the
    /// manifests these settings generate (`cargo xtask manifests`).
    pub fn settings(&self, text: &str) -> Result {
        std::fs::write(self.dir.path().join("xtask.toml"), text)?;
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let deploy = self.dir.path().join("deploy");
        copy_tree(&repo.join("overlays"), &deploy.join("overlays"))?;
        std::fs::create_dir_all(deploy.join("seldon"))?;
        std::fs::copy(
            repo.join("seldon/network-policy.yaml"),
            deploy.join("seldon/network-policy.yaml"),
        )?;
        let (out, _) = self.xtask(&["manifests"], &[])?;
        if !out.status.success() {
            return Err(format!(
                "cargo xtask manifests: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("argv.log")
    }

    /// Runs xtask with the fakes first on PATH; returns its output and the argv log.
    pub fn xtask(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(Output, Vec<String>)> {
        let _ = std::fs::remove_file(self.log_path());
        let path = format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display());
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--config")
            .arg(self.dir.path().join("xtask.toml"))
            .arg("--progress=never")
            .args(args)
            .env("PATH", path)
            .env("FAKE_LOG", self.log_path())
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()?;
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        Ok((out, log.lines().map(String::from).collect()))
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `needles` appear in `haystack`, in this order.
pub fn in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for n in needles {
        match haystack[from..].find(n) {
            Some(i) => from += i + n.len(),
            None => panic!("{n:?} missing (or out of order) in:\n{haystack}"),
        }
    }
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> Result {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}
