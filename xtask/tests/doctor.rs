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
