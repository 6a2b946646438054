//! `xtask doctor` with a PATH of fake tools: present, missing, broken.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn fake(dir: &Path, name: &str, script: &str) -> Result {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn doctor(path: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["--progress=never", "doctor"])
        .args(args)
        .env("PATH", path)
        .env_remove("XTASK_CONFIG")
        .output()?)
}

fn row<'a>(stdout: &'a str, tool: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tool))
        .unwrap_or("")
}

#[test]
fn present_missing_and_broken_tools() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    fake(
        bin.path(),
        "kubectl",
        r#"case "$1" in config) echo kind-dev;; *) echo 'Client Version: v1.32.4';; esac"#,
    )?;
    fake(
        bin.path(),
        "docker",
        "echo 'docker: cannot load libc' >&2; exit 2",
    )?;

    let out = doctor(bin.path(), &[])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "local needs only cargo:\n{stdout}");
    assert!(row(&stdout, "cargo").contains("ok"), "{stdout}");
    assert!(
        row(&stdout, "cargo").contains("cargo 1.95.0 (fake)"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "kubectl").contains("current context: kind-dev"),
        "{stdout}"
    );
    let docker = row(&stdout, "docker");
    assert!(docker.contains("broken"), "{stdout}");
    assert!(docker.contains("cannot load libc"), "{stdout}");
    let minikube = row(&stdout, "minikube");
    assert!(minikube.contains("missing"), "{stdout}");
    assert!(minikube.contains("brew install minikube"), "{stdout}");
    assert!(stdout.contains("target local: ready"), "{stdout}");

    let out = doctor(bin.path(), &["--target", "minikube"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("target minikube: NOT ready; missing or broken: minikube"),
        "{stdout}"
    );

    let out = doctor(bin.path(), &["--target", "docker"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("missing or broken: docker"), "{stdout}");
    Ok(())
}

#[test]
fn missing_cargo_fails_the_local_target() -> Result {
    let bin = tempfile::tempdir()?;
    let out = doctor(bin.path(), &[])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(row(&stdout, "cargo").contains("missing"), "{stdout}");
    assert!(stdout.contains("missing or broken: cargo"), "{stdout}");
    Ok(())
}

#[test]
fn wrk_without_a_version_flag_is_probed_the_way_it_supports() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    // wrk prints its version in its usage text and exits 1.
    fake(
        bin.path(),
        "wrk",
        "echo 'wrk 4.1.0 [epoll] Copyright (C) 2012 Will Glozer'; echo 'Usage: wrk <options> <url>'; exit 1",
    )?;
    let out = doctor(bin.path(), &[])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let wrk = row(&stdout, "wrk");
    assert!(wrk.contains("ok"), "{stdout}");
    assert!(wrk.contains("wrk 4.1.0"), "{stdout}");
    Ok(())
}

#[test]
fn an_empty_xtask_config_means_unset_and_a_missing_one_is_an_error() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["--progress=never", "doctor"])
        .env("PATH", bin.path());
    let out = cmd.env("XTASK_CONFIG", "").output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cmd
        .env("XTASK_CONFIG", "/nonexistent/xtask.toml")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/xtask.toml"), "{stderr}");
    Ok(())
}

#[test]
fn a_target_whose_machines_run_a_platform_this_host_cannot_build_is_not_ready() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    // An engine that answers, on a CPU this host has no std for.
    let other = if std::env::consts::ARCH == "aarch64" {
        ("x86_64", "linux/amd64")
    } else {
        ("aarch64", "linux/arm64")
    };
    fake(
        bin.path(),
        "docker",
        &format!(
            r#"case "$*" in
  "--version") echo 'Docker version 27.0.0' ;;
  "version --format {{{{.Server.Version}}}}") echo '27.0.0' ;;
  "info --format {{{{.OSType}}}}/{{{{.Architecture}}}}") echo 'linux/{}' ;;
  *) exit 1 ;;
esac"#,
            other.0
        ),
    )?;
    let out = doctor(bin.path(), &["--target", "docker"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("target docker: NOT ready:"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "the docker engine runs {}: {} binaries cannot be built on this host",
            other.1, other.1
        )) && stdout.contains(&format!("rustup target add {}-unknown-linux-musl", other.0)),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn a_target_whose_tools_are_there_but_cannot_run_is_not_ready_and_says_why() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    // The docker CLI is installed; no engine answers it.
    fake(
        bin.path(),
        "docker",
        r#"case "$*" in
  "--version") echo 'Docker version 27.0.0' ;;
  *) echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2; exit 1 ;;
esac"#,
    )?;
    let out = doctor(bin.path(), &["--target", "docker"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("target docker: NOT ready:"), "{stdout}");
    assert!(
        stdout.contains("no container engine answers the docker CLI"),
        "{stdout}"
    );
    assert!(stdout.contains("podman system service"), "{stdout}");

    // gcloud and kubectl are installed; no account, no project.
    fake(
        bin.path(),
        "gcloud",
        r#"case "$*" in
  "--version") echo 'Google Cloud SDK 500.0.0' ;;
  "config get-value account") echo '(unset)' ;;
  "config get-value project") echo '(unset)' ;;
  *) echo '{}' ;;
esac"#,
    )?;
    fake(bin.path(), "kubectl", "echo 'Client Version: v1.32.4'")?;
    let out = doctor(bin.path(), &["--target", "gke"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("gcloud has no active account: run `gcloud auth login`"),
        "{stdout}"
    );
    assert!(stdout.contains("needs a Google Cloud project"), "{stdout}");
    assert!(
        stdout.contains("gke-gcloud-auth-plugin is not installed"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn gke_takes_gclouds_project_when_the_settings_have_none() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    // The context named after gcloud's project: doctor looks for it.
    fake(
        bin.path(),
        "kubectl",
        r#"case "$*" in
  "config get-contexts --output name"|"config current-context") echo 'gke_proj-from-gcloud_us-central1-a_k8s-test-cluster' ;;
  *) echo 'Client Version: v1.32.4' ;;
esac"#,
    )?;
    fake(
        bin.path(),
        "gke-gcloud-auth-plugin",
        "echo 'Kubernetes v1.30.0'",
    )?;
    fake(
        bin.path(),
        "gcloud",
        r#"case "$*" in
  "version"|"--version") echo 'Google Cloud SDK 500.0.0' ;;
  "config get-value account") echo 'dev@example.com' ;;
  "config get-value project") echo 'proj-from-gcloud' ;;
  "services list --enabled --project proj-from-gcloud "*) echo 'container.googleapis.com' ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac"#,
    )?;
    let out = doctor(bin.path(), &["--target", "gke"])?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("target gke: ready"), "{stdout}");
    assert!(
        stderr.contains("GKE project proj-from-gcloud, from gcloud's config"),
        "{stderr}"
    );

    // What gcloud holds must be a project ID to be used.
    fake(
        bin.path(),
        "gcloud",
        r#"case "$*" in
  "--version") echo 'Google Cloud SDK 500.0.0' ;;
  "config get-value account") echo 'dev@example.com' ;;
  "config get-value project") echo 'Not A Project' ;;
  "version"|"--version") echo 'Google Cloud SDK 500.0.0' ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac"#,
    )?;
    let out = doctor(bin.path(), &["--target", "gke"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("needs a Google Cloud project"), "{stdout}");
    Ok(())
}

#[test]
fn doctor_speaks_json_for_scripts() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    let out = doctor(bin.path(), &["--target", "minikube", "--output", "json"])?;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["target"]["name"], "minikube");
    assert_eq!(v["target"]["ready"], false);
    assert!(
        v["target"]["missing"]
            .as_array()
            .is_some_and(|m| m.iter().any(|t| t == "minikube")),
        "{v}"
    );
    let cargo = v["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "cargo"))
        .ok_or("no cargo row")?;
    assert_eq!(cargo["status"], "ok");
    assert_eq!(cargo["version"], "cargo 1.95.0 (fake)");
    Ok(())
}

/// The `platforms` entry of `doctor --output json` whose platform is not
/// this host's own (the one that needs cross-compiling here).
fn other_platform(v: &serde_json::Value) -> Result<serde_json::Value> {
    let own = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    };
    let platforms = v["platforms"].as_array().ok_or("no platforms")?;
    let native = platforms
        .iter()
        .find(|p| p["platform"] == own)
        .ok_or("no entry for this host's platform")?;
    assert!(
        native["toolchain"]
            .as_str()
            .is_some_and(|t| t.ends_with("(native, static)")),
        "{v}"
    );
    Ok(platforms
        .iter()
        .find(|p| p["platform"] != own)
        .ok_or("no entry for the other platform")?
        .clone())
}

#[test]
fn the_other_platform_is_built_with_what_is_installed_or_says_what_to_install() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    fake(
        bin.path(),
        "rustup",
        r#"[ "$*" = "target list --installed" ] && printf 'x86_64-unknown-linux-gnu\naarch64-unknown-linux-musl\nx86_64-unknown-linux-musl\n'"#,
    )?;
    fake(bin.path(), "cargo-zigbuild", "exit 0")?;
    fake(bin.path(), "zig", "exit 0")?;
    let json = |bin: &Path| -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(
            &doctor(bin, &["--output", "json"])?.stdout,
        )?)
    };
    let other = other_platform(&json(bin.path())?)?;
    let arch = if other["platform"] == "linux/arm64" {
        "aarch64"
    } else {
        "x86_64"
    };
    assert_eq!(
        other["toolchain"],
        format!("cargo zigbuild --target {arch}-unknown-linux-musl"),
        "{other}"
    );
    assert_eq!(other["triple"], format!("{arch}-unknown-linux-musl"));

    // No zig (and no python3 with ziglang on this PATH): the command
    // that installs it, and nothing else.
    std::fs::remove_file(bin.path().join("zig"))?;
    let other = other_platform(&json(bin.path())?)?;
    assert_eq!(other["missing"], serde_json::json!(["pip install ziglang"]));
    let out = doctor(bin.path(), &[])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "images for {}: not on this host",
        other["platform"].as_str().unwrap_or("")
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&line) && l.contains("`pip install ziglang`")),
        "{stdout}"
    );

    // cross on the PATH is the other way.
    fake(bin.path(), "cross", "exit 0")?;
    let other = other_platform(&json(bin.path())?)?;
    assert_eq!(
        other["toolchain"],
        format!("cross build --target {arch}-unknown-linux-musl")
    );
    Ok(())
}

#[test]
fn a_cluster_whose_api_server_does_not_answer_is_not_ready() -> Result {
    let bin = kind_tools(
        r#"case "$*" in
  "config get-contexts --output name") echo 'kind-kube-mlops' ;;
  *"get --raw /readyz") echo 'The connection to the server 127.0.0.1:40123 was refused' >&2; exit 1 ;;
  *) echo 'Client Version: v1.32.4' ;;
esac"#,
    )?;
    let out = doctor(bin.path(), &["--target", "kind"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "the API server of kube context `kind-kube-mlops` does not answer (`kubectl \
             --context kind-kube-mlops get --raw /readyz`: The connection to the server \
             127.0.0.1:40123 was refused): start the cluster with `cargo xtask cluster up \
             --target kind`"
        ),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn a_dry_run_of_doctor_reports_missing_tools_in_its_table_only() -> Result {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["--progress=never", "--dry-run", "doctor"])
        .env("PATH", bin.path())
        .env_remove("XTASK_CONFIG")
        .output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(row(&stdout, "helm").contains("missing"), "{stdout}");
    assert!(!stdout.contains("would stop here"), "{stdout}");
    assert!(!stderr.contains("would stop here"), "{stderr}");
    Ok(())
}

#[test]
fn a_cluster_whose_context_is_not_the_current_one_is_not_ready() -> Result {
    let bin = kind_tools(
        r#"case "$*" in
  "config get-contexts --output name") printf 'kind-kube-mlops\nminikube\n' ;;
  "config current-context") echo 'minikube' ;;
  *"get --raw /readyz") echo ok ;;
  *) echo 'Client Version: v1.32.4' ;;
esac"#,
    )?;
    let out = doctor(bin.path(), &["--target", "kind"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "the current kube context is `minikube`, and --target kind acts only on \
             `kind-kube-mlops`: switch with `cargo xtask context use kind-kube-mlops`"
        ),
        "{stdout}"
    );
    Ok(())
}

/// A PATH with cargo, docker and kind that answer, and kubectl as `script`.
fn kind_tools(script: &str) -> Result<tempfile::TempDir> {
    let bin = tempfile::tempdir()?;
    fake(bin.path(), "cargo", "echo 'cargo 1.95.0 (fake)'")?;
    fake(bin.path(), "docker", "echo 'Docker version 27.0.0'")?;
    fake(bin.path(), "kind", "echo 'kind v0.27.0'")?;
    fake(bin.path(), "kubectl", script)?;
    Ok(bin)
}
