//! `service add` in a copy of the workspace: the new crate is created,
//! declared, built, started and smoke-tested by `deploy`, with no code or
//! YAML edited by hand; doctor names the crates no service deploys.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{Result, copy_workspace, target_dir, text};

fn xtask(ws: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(ws.join("xtask.toml"))
        .arg("--progress=never")
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()?)
}

use support::free_port;

#[test]
fn a_service_added_with_service_add_is_built_started_and_smoke_tested() -> Result {
    let dir = tempfile::tempdir()?;
    let ws = dir.path();
    copy_workspace(ws)?;
    std::fs::write(
        ws.join("xtask.toml"),
        "# a team's settings\n[local]\nrun_dir = \"run\"\n\n[services.test-api]\nport = 1\n",
    )?;
    let port = free_port()?.to_string();
    let out = xtask(ws, &["service", "add", "hello", "--port", &port])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(ws.join("services/hello/src/main.rs").is_file());
    let settings = std::fs::read_to_string(ws.join("xtask.toml"))?;
    assert!(settings.starts_with("# a team's settings\n"), "{settings}");
    assert!(
        settings
            .contains("smoke = { path = \"/hello\", json = \"message\", contains = \"Hello\" }"),
        "{settings}"
    );
    assert!(ws.join("deploy/base/hello.yaml").is_file(), "its manifests");
    // Taken names are refused.
    for (name, says) in [
        ("hello", "already a service \"hello\""),
        ("model-server", "already has a package \"model-server\""),
        ("Hello", "must be a DNS-1123 label"),
        ("9lives", "start with a letter"),
    ] {
        let out = xtask(ws, &["service", "add", name])?;
        assert!(!out.status.success(), "{name}");
        assert!(
            text(&out.stderr).contains(says),
            "{name}: {}",
            text(&out.stderr)
        );
    }

    let out = xtask(ws, &["deploy", "--target", "local", "hello"])?;
    let stderr = text(&out.stderr);
    let deployed = out.status.success();
    let url = format!("http://127.0.0.1:{port}/hello");
    let _ = xtask(ws, &["teardown", "--target", "local"])?;
    assert!(deployed, "{stderr}");
    assert!(
        stderr.contains(&format!("✓ smoke test GET {url}: Hello from hello")),
        "{stderr}"
    );

    // The crates no service deploys are named, with what to add.
    let out = xtask(ws, &["doctor"])?;
    let stdout = text(&out.stdout);
    assert!(stdout.contains("services: test-api, hello"), "{stdout}");
    assert!(
        stdout.contains("model-server   not deployed: add [services.model-server]"),
        "{stdout}"
    );
    Ok(())
}
