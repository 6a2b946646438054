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

/// The clusters `Fakes::new` configures (minikube profile mlops, kind
/// cluster dev, GKE project proj-1).
pub const CLUSTERS: &str = "[minikube]\nprofile = \"mlops\"\nmemory_mb = 4096\ncpus = 2\n\
     [kind]\ncluster = \"dev\"\n\
     [gke]\nproject = \"proj-1\"\nzone = \"europe-west1-b\"\ncluster = \"k8s-test-cluster\"\n\
     machine_type = \"e2-standard-2\"\nnum_nodes = 3\n";

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
        fakes.settings(CLUSTERS)?;
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

impl Fakes {
    /// [`Fakes::xtask`] with a stage's environment `base`, then `extra`
    /// (which wins).
    pub fn xtask_with(
        &self,
        args: &[&str],
        base: &[(&str, String)],
        extra: &[(&str, &str)],
    ) -> Result<(Output, Vec<String>)> {
        let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        self.xtask(args, &env)
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

/// The workspace's sources (no target/), as a user's checkout has them.
pub fn copy_workspace(to: &std::path::Path) -> Result {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(repo.join(file), to.join(file))?;
    }
    for dir in [".cargo", "services", "deploy/overlays"] {
        copy_tree(&repo.join(dir), &to.join(dir))?;
    }
    for member in ["xtask", "xtask/kube-engine", "xtask/kube-fake-api"] {
        copy_tree(&repo.join(member).join("src"), &to.join(member).join("src"))?;
        std::fs::copy(
            repo.join(member).join("Cargo.toml"),
            to.join(member).join("Cargo.toml"),
        )?;
    }
    std::fs::create_dir_all(to.join("deploy/seldon"))?;
    std::fs::copy(
        repo.join("deploy/seldon/network-policy.yaml"),
        to.join("deploy/seldon/network-policy.yaml"),
    )?;
    Ok(())
}

/// The build cache the main workspace uses, so a copy of it builds only
/// what differs.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

/// The exporter fixtures (services/model-server/tests/exporters).
pub const EXPORTERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/model-server/tests/exporters"
);

/// POSTs the wine pipeline's test rows to `url`: every answer within 1e-5
/// of scikit-learn's; returns the reply.
pub fn answers_like_scikit_learn(url: &str) -> Result<serde_json::Value> {
    let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{EXPORTERS}/expected.json"
    ))?)?;
    let case = &all["wine-pipeline"];
    let body = serde_json::json!({"data": {"ndarray": case["input"]}}).to_string();
    let (status, answer) = post_json(url, &body)?;
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    assert_eq!(status, 200, "{answer}");
    let got: Vec<Vec<f64>> = serde_json::from_value(answer["data"]["ndarray"].clone())?;
    let want: Vec<Vec<f64>> = serde_json::from_value(case["expected"].clone())?;
    assert_eq!(got.len(), want.len(), "{answer}");
    for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((g - w).abs() <= 1e-5, "{g} vs scikit-learn's {w}");
    }
    Ok(answer)
}

/// POSTs the JSON `body` to `url`: the status and body of the answer.
pub fn post_json(url: &str, body: &str) -> Result<(u16, String)> {
    let resp = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()?;
    Ok((resp.status().as_u16(), resp.text()?))
}

/// The body of `GET url`, whatever its status.
pub fn get(url: &str) -> Result<String> {
    Ok(reqwest::blocking::get(url)?.text()?)
}

/// Whether a container engine answers `docker version`; panics in CI when
/// none does, prints why the caller skips otherwise.
pub fn engine() -> bool {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        let why = "no container engine answers `docker version` (run `eval \"$(bash .ci/container-stack.sh)\"`)";
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs a container engine: {why}"
        );
        eprintln!("SKIPPED: {why}");
    }
    answers
}

/// A port for a service a test starts later: free now (on loopback and on
/// every address), never handed out twice in one test process, and below
/// the kernel's ephemeral range (`ip_local_port_range`, 32768 and up),
/// where outgoing connections take their local ports: a port the kernel
/// picked there can be taken by any connection before the service listens
/// (seen once in a CI run, 55 s into a build).
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test process starts somewhere else in the range.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % COUNT;
        let port = u16::try_from(FIRST + offset)?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return Ok(port);
        }
    }
    Err("no free port between 20000 and 32000".into())
}
