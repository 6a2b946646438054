//! k3d, the cluster kind that is one file (`targets/clusters/k3d.rs`):
//! a fake `k3d` that records its argv and, as the real one does, adds and
//! removes its cluster's context `k3d-<cluster>` in the kubeconfig; the
//! real `kubectl` against the API fake. The exact commands of `cluster
//! up|down` and of an image load, the context guard, its settings table,
//! and its place in `--target`'s values, from the registry alone.

#[path = "support/stage.rs"]
mod stage;
mod support;

use stage::{Stage, acted};
use support::{CLUSTERS, Result, text};

const K3D: &[(&str, &str)] = &[(
    "k3d",
    r#"case "$1 $2" in
  "cluster list") if [ -n "$FAKE_K3D_LIST_FAIL" ]; then echo 'FATA[0000] failed to list clusters: the runtime does not answer' >&2; exit 1; fi
    if [ "$3" = "-o" ]; then echo "${FAKE_K3D_CLUSTERS-[]}"; else echo "NAME SERVERS AGENTS LOADBALANCER"; fi ;;
  "cluster create") [ -n "$FAKE_K3D_NO_CONTEXT" ] || add_context "k3d-$3" ;;
  "cluster start") ;;
  "cluster delete") remove_context "k3d-$3" ;;
  "image import") if [ -n "$FAKE_K3D_FAIL" ]; then echo 'ERRO[0000] failed to import images in node k3d-dev-server-0' >&2; exit 1; fi ;;
esac"#,
)];

/// A stage with the fake k3d and `[k3d] cluster = "dev"`.
fn stage() -> Result<Stage> {
    let f = Stage::new(K3D)?;
    f.settings(&format!("{CLUSTERS}[k3d]\ncluster = \"dev\"\n"))?;
    Ok(f)
}

/// What was done, k3d's own reads aside.
fn done(log: &[String]) -> Vec<&str> {
    acted(log)
        .into_iter()
        .filter(|l| !l.starts_with("k3d cluster list"))
        .collect()
}

#[test]
fn k3d_creates_a_missing_cluster_starts_a_stopped_one_and_deletes_it() -> Result {
    let f = stage()?;
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "k3d"],
        &[("FAKE_K3D_CLUSTERS", r#"[{"name":"other"}]"#)],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        done(&log),
        [
            "k3d cluster create dev --agents 0 --wait",
            "kubectl --context k3d-dev cluster-info"
        ]
    );
    assert_eq!(f.current_context()?, "k3d-dev");
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "k3d"],
        &[(
            "FAKE_K3D_CLUSTERS",
            r#"[{"name":"dev","serversCount":1,"serversRunning":1}]"#,
        )],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("k3d cluster dev exists already"));
    assert_eq!(done(&log), ["kubectl --context k3d-dev cluster-info"]);
    // Stopped (`k3d cluster stop`, a reboot): started, not created again.
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "k3d"],
        &[(
            "FAKE_K3D_CLUSTERS",
            r#"[{"name":"dev","serversCount":1,"serversRunning":0}]"#,
        )],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        done(&log),
        [
            "k3d cluster start dev --wait",
            "kubectl --context k3d-dev cluster-info"
        ]
    );
    // A list that fails is k3d's error, not a missing cluster.
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "k3d"],
        &[("FAKE_K3D_LIST_FAIL", "1")],
    )?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`k3d cluster list -o json` failed: FATA[0000] failed to list clusters"),
        "{stderr}"
    );
    assert!(done(&log).is_empty(), "{log:?}");
    let (out, log) = f.xtask(&["cluster", "down", "--target", "k3d"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(log, ["k3d cluster delete dev"]);
    // A create that leaves no context fails at once, not after the wait.
    let started = std::time::Instant::now();
    let (out, _) = f.xtask(
        &["cluster", "up", "--target", "k3d"],
        &[("FAKE_K3D_CLUSTERS", "[]"), ("FAKE_K3D_NO_CONTEXT", "1")],
    )?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the kubeconfig has no context `k3d-dev`"),
        "{stderr}"
    );
    assert!(started.elapsed().as_secs() < 60, "{stderr}");
    Ok(())
}

#[test]
fn images_are_delivered_by_k3d_image_import() -> Result {
    let f = stage()?;
    // The real release build needs cargo and rustc from the caller's PATH.
    let path = format!(
        "{}:{}",
        f.dir.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let archive = f.dir.path().join("target/xtask/images/test-api.tar");
    let (out, log) = f.xtask(
        &["image", "load", "test-api", "--into", "k3d"],
        &[("PATH", path.as_str())],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        done(&log),
        [format!(
            "k3d image import {} --cluster dev",
            archive.display()
        )]
    );
    assert!(archive.exists());
    // A failing import names the command and its stderr.
    let (out, _) = f.xtask(
        &["image", "load", "test-api", "--into", "k3d"],
        &[("PATH", path.as_str()), ("FAKE_K3D_FAIL", "1")],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("k3d image import"), "{stderr}");
    assert!(stderr.contains("failed to import images"), "{stderr}");
    Ok(())
}

#[test]
fn its_context_is_guarded_and_its_names_checked() -> Result {
    let f = stage()?;
    let (out, _) = f.xtask(
        &["context", "check", "--target", "k3d"],
        &[("FAKE_CONTEXT", "kind-dev")],
    )?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("refusing to act on kube context `kind-dev`: --target k3d expects `k3d-dev`"),
        "{stderr}"
    );
    let (out, _) = f.xtask(&["context", "current"], &[("FAKE_CONTEXT", "k3d-dev")])?;
    assert_eq!(text(&out.stdout).trim(), "k3d-dev (target k3d)");

    f.settings(&format!("{CLUSTERS}[k3d]\ncluster = \"Dev_1\"\n"))
        .err()
        .ok_or("a bad cluster name was taken by `manifests`")?;
    let (out, _) = f.xtask(&["context", "check", "--target", "k3d"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("k3d.cluster = \"Dev_1\""), "{stderr}");
    Ok(())
}

#[test]
fn the_registry_alone_puts_it_in_the_help_and_doctor() -> Result {
    let f = stage()?;
    let (out, _) = f.xtask(&["deploy", "--help"], &[])?;
    let help = text(&out.stdout);
    assert!(
        help.contains("k3d:") && help.contains("A local k3d cluster"),
        "{help}"
    );
    let (out, _) = f.xtask(&["image", "load", "--help"], &[])?;
    assert!(text(&out.stdout).contains("k3d:"), "{}", text(&out.stdout));
    let (out, _) = f.xtask(&["dev", "--help"], &[])?;
    assert!(text(&out.stdout).contains(", k3d"), "{}", text(&out.stdout));
    let (out, _) = f.xtask(&["doctor", "--target", "k3d", "--output", "json"], &[])?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let k3d = doc["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "k3d"))
        .ok_or(format!("no k3d row: {doc}"))?;
    assert!(
        k3d["needed_by"]
            .as_array()
            .is_some_and(|n| n.iter().any(|t| t == "k3d")),
        "{k3d}"
    );
    // Where it is missing, the hint its file gives.
    let empty = tempfile::tempdir()?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["cluster", "up", "--target", "k3d"])
        .arg("--config")
        .arg(f.dir.path().join("xtask.toml"))
        .env("PATH", empty.path())
        .output()?;
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`k3d` was not found on PATH"), "{stderr}");
    assert!(stderr.contains("brew install k3d"), "{stderr}");
    Ok(())
}
