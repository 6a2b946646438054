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
        std::fs::write(
            dir.path().join("xtask.toml"),
            "[minikube]\nprofile = \"mlops\"\nmemory_mb = 4096\ncpus = 2\n\
             [kind]\ncluster = \"dev\"\n\
             [gke]\nproject = \"proj-1\"\nzone = \"europe-west1-b\"\ncluster = \"k8s-test-cluster\"\n\
             machine_type = \"e2-standard-2\"\nnum_nodes = 3\n",
        )?;
        Ok(Self { dir })
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
