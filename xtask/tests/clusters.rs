//! Cluster lifecycle and kube contexts with the real `kubectl` (its argv
//! recorded) on a kubeconfig of the test's own, whose contexts lead to the
//! API fake served over HTTP, and fake `minikube`, `kind` and `gcloud`
//! executables that record their argv and, as the real ones do, add their
//! cluster's context to the kubeconfig (`start`, `create cluster`,
//! `get-credentials`) and remove it (`delete`): the exact commands, what
//! they leave in the kubeconfig, and a clear error when one fails or a
//! prerequisite is missing.

#[path = "support/stage.rs"]
mod stage;
mod support;

use std::process::Command;

use stage::{Stage, acted};
use support::{Result, in_order, text};

const FAKES: &[(&str, &str)] = &[
    (
        "minikube",
        r#"case "$1" in
  start) if [ -n "$FAKE_MINIKUBE_FAIL" ]; then echo "X Exiting due to RSRC_INSUFFICIENT_CORES: 1 CPU available" >&2; exit 89; fi
    add_context "$(arg --profile "$@")" ;;
  status) echo "host: Running"; echo "apiserver: Running" ;;
  profile) echo '{"invalid":[],"valid":[{"Name":"mlops","Status":"OK","Config":{"Name":"mlops","Driver":"docker"}}]}' ;;
  delete) remove_context "$(arg --profile "$@")" ;;
esac"#,
    ),
    (
        "kind",
        r#"case "$1" in
  get) printf '%s\n' $FAKE_KIND_CLUSTERS ;;
  create) add_context "kind-$(arg --name "$@")" ;;
  delete) remove_context "kind-$(arg --name "$@")" ;;
  load) if [ -n "$FAKE_KIND_FAIL" ]; then echo 'ERROR: no nodes found for cluster "dev"' >&2; exit 1; fi ;;
esac"#,
    ),
    (
        "gcloud",
        r#"case "$*" in
  "config get-value account") echo "${FAKE_GCLOUD_ACCOUNT-dev@example.com}" ;;
  "config get-value project") echo "${FAKE_GCLOUD_PROJECT-}" ;;
  services*) echo "${FAKE_GCLOUD_API-container.googleapis.com}" ;;
  *describe*) echo "RUNNING 3 1.32.4-gke.100" ;;
  *get-credentials*) add_context "gke_$(arg --project "$@")_$(arg --zone "$@")_$4" ;;
esac"#,
    ),
];

#[test]
fn minikube_up_status_down() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(&["cluster", "up", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        acted(&log),
        [
            "minikube start --profile mlops --memory 4096 --cpus 2",
            "kubectl --context mlops cluster-info"
        ]
    );
    assert!(
        log.contains(&"kubectl --context mlops get --raw /readyz".to_string()),
        "{log:?}"
    );
    assert!(
        text(&out.stdout).contains("Kubernetes control plane is running"),
        "{}",
        text(&out.stdout)
    );

    let (out, log) = f.xtask(&["cluster", "status", "--target", "minikube"], &[])?;
    assert!(out.status.success());
    assert_eq!(log[0], "minikube status --profile mlops");
    assert!(text(&out.stdout).contains("context mlops: API server ready"));
    // On this Linux host the Docker driver's node is reachable: status
    // says the URLs come from `minikube service --url` (url_source's unit
    // tests cover macOS and Windows, where they come from port-forwards).
    assert!(
        text(&out.stdout).contains("driver: docker; service URLs from `minikube service --url`"),
        "{}",
        text(&out.stdout)
    );

    let (out, log) = f.xtask(&["cluster", "down", "--target", "minikube"], &[])?;
    assert!(out.status.success());
    assert_eq!(log, ["minikube delete --profile mlops"]);
    assert_eq!(
        f.current_context()?,
        "",
        "minikube delete removes its context"
    );
    Ok(())
}

#[test]
fn a_failing_cluster_tool_is_reported_with_its_stderr() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, _) = f.xtask(
        &["cluster", "up", "--target", "minikube"],
        &[("FAKE_MINIKUBE_FAIL", "1")],
    )?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "`minikube start --profile mlops --memory 4096 --cpus 2` failed (exit status: 89)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("RSRC_INSUFFICIENT_CORES"), "{stderr}");
    Ok(())
}

#[test]
fn kind_creates_only_a_missing_cluster() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "kind"],
        &[("FAKE_KIND_CLUSTERS", "other")],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        acted(&log),
        [
            "kind create cluster --name dev",
            "kubectl --context kind-dev cluster-info"
        ]
    );
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "kind"],
        &[("FAKE_KIND_CLUSTERS", "dev")],
    )?;
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("kind cluster dev exists already"));
    assert_eq!(acted(&log), ["kubectl --context kind-dev cluster-info"]);
    let (_, log) = f.xtask(&["cluster", "down", "--target", "kind"], &[])?;
    assert_eq!(log, ["kind delete cluster --name dev"]);
    Ok(())
}

#[test]
fn gke_creates_three_nodes_and_fetches_credentials() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(&["cluster", "up", "--target", "gke"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        acted(&log),
        [
            "gcloud container clusters create k8s-test-cluster --num-nodes 3 --machine-type e2-standard-2 --zone europe-west1-b --project proj-1",
            "gcloud container clusters get-credentials k8s-test-cluster --zone europe-west1-b --project proj-1",
            "kubectl --context gke_proj-1_europe-west1-b_k8s-test-cluster cluster-info",
        ]
    );
    Ok(())
}

#[test]
fn gke_preflight_names_what_is_missing() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "gke"],
        &[("FAKE_GCLOUD_ACCOUNT", "")],
    )?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("gcloud has no active account: run `gcloud auth login`"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !log.iter().any(|l| l.contains("clusters create")),
        "nothing created: {log:?}"
    );

    let (out, _) = f.xtask(
        &["cluster", "up", "--target", "gke"],
        &[("FAKE_GCLOUD_API", "")],
    )?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("gcloud services enable container.googleapis.com --project proj-1"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(f.dir.path().join("xtask.toml"), "[gke]\nproject = \"\"\n")?;
    let (out, _) = f.xtask(&["cluster", "up", "--target", "gke"], &[])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("needs a Google Cloud project: set `project` under [gke]"),
        "{}",
        text(&out.stderr)
    );

    // gcloud's configured project stands in for an empty gke.project.
    let (out, log) = f.xtask(
        &["cluster", "up", "--target", "gke"],
        &[("FAKE_GCLOUD_PROJECT", "proj-9")],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("GKE project proj-9, from gcloud's config"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("gcloud container clusters create")
                && l.ends_with("--project proj-9")),
        "{log:?}"
    );

    let empty = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["cluster", "up", "--target", "gke"])
        .arg("--config")
        .arg(f.dir.path().join("xtask.toml"))
        .env("PATH", empty.path())
        .output()?;
    assert!(
        text(&out.stderr).contains("`gcloud` was not found on PATH"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn gke_down_needs_confirmation() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(&["cluster", "down", "--target", "gke"], &[])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("without confirmation: pass --yes"),
        "{}",
        text(&out.stderr)
    );
    assert!(log.is_empty(), "{log:?}");
    let (out, log) = f.xtask(&["cluster", "down", "--target", "gke", "--yes"], &[])?;
    assert!(out.status.success());
    assert_eq!(
        log,
        [
            "gcloud container clusters delete k8s-test-cluster --zone europe-west1-b --project proj-1 --quiet"
        ]
    );
    Ok(())
}

#[test]
fn contexts_are_listed_switched_and_guarded() -> Result {
    let f = Stage::new(FAKES)?;
    let contexts = (
        "FAKE_CONTEXTS",
        "mlops kind-dev gke_proj-1_europe-west1-b_k8s-test-cluster prod",
    );
    let (out, _) = f.xtask(
        &["context", "list"],
        &[contexts, ("FAKE_CONTEXT", "kind-dev")],
    )?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("kind-dev").starts_with('*') && line("kind-dev").ends_with("kind"),
        "{stdout}"
    );
    assert!(line("mlops").ends_with("minikube"), "{stdout}");
    assert!(
        line("gke_proj-1_europe-west1-b_k8s-test-cluster").ends_with("gke"),
        "{stdout}"
    );
    assert!(line("prod").ends_with('-'), "{stdout}");

    let (out, log) = f.xtask(&["context", "use", "mlops"], &[contexts])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        log.contains(&"kubectl config use-context mlops".to_string()),
        "{log:?}"
    );
    assert_eq!(
        f.current_context()?,
        "mlops",
        "the kubeconfig now selects it"
    );
    let (out, log) = f.xtask(&["context", "use", "nope"], &[contexts])?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("there is no kube context `nope`"));
    assert!(!log.iter().any(|l| l.contains("use-context")), "{log:?}");

    let (out, _) = f.xtask(&["context", "current"], &[("FAKE_CONTEXT", "kind-dev")])?;
    assert_eq!(text(&out.stdout).trim(), "kind-dev (target kind)");

    // The guard: a GKE context never passes for minikube, and says both names.
    let (out, _) = f.xtask(
        &["context", "check", "--target", "minikube"],
        &[("FAKE_CONTEXT", "gke_proj-1_europe-west1-b_k8s-test-cluster")],
    )?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refusing to act on kube context `gke_proj-1_europe-west1-b_k8s-test-cluster`: --target minikube expects `mlops`"),
        "{stderr}"
    );
    let (out, _) = f.xtask(
        &["context", "check", "--target", "kind"],
        &[("FAKE_CONTEXT", "kind-dev")],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, _) = f.xtask(
        &["context", "check", "--target", "kind", "--context", "prod"],
        &[("FAKE_CONTEXT", "kind-dev")],
    )?;
    assert!(
        !out.status.success(),
        "--context wins over the current context"
    );
    f.contexts(&["kind-dev"], None)?;
    let (out, _) = f.xtask(&["context", "check", "--target", "kind"], &[])?;
    assert!(
        text(&out.stderr).contains("no kube context is selected"),
        "{}",
        text(&out.stderr)
    );
    // The right name is not enough: the context must be in the kubeconfig.
    let (out, _) = f.xtask(
        &[
            "context",
            "check",
            "--target",
            "kind",
            "--context",
            "kind-dev",
        ],
        &[("FAKE_CONTEXTS", "mlops prod")],
    )?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("there is no kube context `kind-dev` in the kubeconfig"),
        "{}",
        text(&out.stderr)
    );
    let (out, _) = f.xtask(
        &[
            "context",
            "check",
            "--target",
            "kind",
            "--context",
            "kind-dev",
        ],
        &[contexts],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A context that is neither there nor the target's: both said.
    let (out, _) = f.xtask(
        &["context", "check", "--target", "kind", "--context", "typo"],
        &[contexts],
    )?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "there is no kube context `typo` in the kubeconfig: --target kind expects `kind-dev`"
        ),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn settings_names_are_checked_and_hints_can_be_copied() -> Result {
    let f = Stage::new(FAKES)?;
    std::fs::write(
        f.dir.path().join("xtask.toml"),
        "[minikube]\nprofile = \"my.profile\"\n",
    )?;
    let (out, _) = f.xtask(
        &["context", "check", "--target", "minikube"],
        &[("FAKE_CONTEXT", "prod")],
    )?;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`cargo xtask context use my.profile`"),
        "{stderr}"
    );
    // A name a shell would split is refused where it is set.
    std::fs::write(
        f.dir.path().join("xtask.toml"),
        "[minikube]\nprofile = \"my profile\"\n",
    )?;
    let (out, _) = f.xtask(&["context", "check", "--target", "minikube"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("minikube.profile = \"my profile\" must be"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn dry_run_plans_a_cluster_without_running_anything() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(&["--dry-run", "cluster", "up", "--target", "minikube"], &[])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("$ minikube start --profile mlops --memory 4096 --cpus 2"),
        "{stdout}"
    );
    assert!(log.is_empty(), "nothing ran: {log:?}");
    Ok(())
}

const GKE_CONTEXT: &str = "gke_proj-1_europe-west1-b_k8s-test-cluster";

#[test]
fn deploy_dry_run_to_gke_prints_the_whole_plan_and_touches_nothing() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(
        &["--dry-run", "deploy", "--target", "gke"],
        &[("FAKE_CONTEXT", GKE_CONTEXT)],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let engine = format!("kube-engine --context {GKE_CONTEXT}");
    in_order(
        &text(&out.stdout),
        &[
            "cargo build --package kube-engine",
            "cargo build --profile dist",
            "assemble docker.io/kube-mlops/test-api:",
            "push ",
            // No [registry]: the project's Artifact Registry.
            "to europe-west1-docker.pkg.dev/proj-1/kube-mlops/test-api:",
            "$ kubectl kustomize ",
            "deploy/overlays/gke",
            &format!("{engine} apply --filename "),
            "--namespace kube-mlops --timeout 180",
            "--image 'test-api=europe-west1-docker.pkg.dev/proj-1/kube-mlops/test-api@sha256:",
            "--image 'model-server=europe-west1-docker.pkg.dev/proj-1/kube-mlops/model-server@sha256:",
            &format!(
                "{engine} load-balancer --namespace kube-mlops --service test-api --timeout 300"
            ),
            "smoke test: GET http://<external IP of test-api>:5000/test_api",
            "to http://<external IP of model-server>:5001/api/v1.0/predictions must return the same tensor",
        ],
    );
    // Only the context and the account (Artifact Registry's credentials
    // are gcloud's) were read; nothing was built, pushed, applied or
    // written.
    assert_eq!(
        log,
        [
            "kubectl config current-context",
            "gcloud config get-value account"
        ]
    );
    assert!(
        text(&out.stderr).contains("no [registry] in the settings: pushing to Artifact Registry"),
        "{}",
        text(&out.stderr)
    );
    // --output json: the same plan as one document.
    let (json, _) = f.xtask(
        &["--dry-run", "--output", "json", "deploy", "--target", "gke"],
        &[("FAKE_CONTEXT", GKE_CONTEXT)],
    )?;
    assert!(json.status.success(), "{}", text(&json.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(doc["dry_run"], true);
    assert!(doc["error"].is_null(), "{doc}");
    let steps = doc["plan"].as_array().ok_or("no plan")?;
    let plan_text = text(&out.stdout);
    let numbered: Vec<&str> = plan_text
        .lines()
        .filter_map(|l| l.trim_start().split_once(". "))
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map(|(_, step)| step)
        .collect();
    assert_eq!(steps.len(), numbered.len(), "{doc}\n{plan_text}");
    for (json_step, text_step) in steps.iter().zip(&numbered) {
        assert_eq!(json_step.as_str(), Some(*text_step));
    }
    // A [registry] table sends GKE's images there instead.
    f.settings(
        "[gke]\nproject = \"proj-1\"\nzone = \"europe-west1-b\"\n\
         [registry]\nhost = \"ghcr.io\"\naccount = \"acme\"\n",
    )?;
    let (out, _) = f.xtask(
        &["--dry-run", "deploy", "--target", "gke"],
        &[("FAKE_CONTEXT", GKE_CONTEXT)],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("to ghcr.io/acme/test-api:"),
        "{}",
        text(&out.stdout)
    );
    // Nodes that answer win over the machine type in the settings: this
    // cluster's (the API fake's) run this host's CPU.
    f.settings(
        "[gke]\nproject = \"proj-1\"\nzone = \"europe-west1-b\"\n\
         machine_type = \"t2a-standard-4\"\n",
    )?;
    let (out, _) = f.xtask(
        &["--dry-run", "deploy", "--target", "gke"],
        &[("FAKE_CONTEXT", GKE_CONTEXT)],
    )?;
    let plan = text(&out.stdout);
    assert!(
        plan.contains(&format!(
            "--target {}-unknown-linux-gnu",
            std::env::consts::ARCH
        )) && !plan.contains("machines run linux/arm64"),
        "{plan}"
    );
    assert!(!f.dir.path().join("target").exists());
    Ok(())
}

#[test]
fn kubernetes_tasks_refuse_another_clusters_context_before_doing_anything() -> Result {
    let f = Stage::new(FAKES)?;
    for args in [
        &["deploy", "--target", "kind"][..],
        &["status", "--target", "kind"],
        &["logs", "test-api", "--target", "kind"],
        &["teardown", "--target", "kind", "--cluster"],
    ] {
        let (out, log) = f.xtask(args, &[("FAKE_CONTEXT", "prod")])?;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "refusing to act on kube context `prod`: --target kind expects `kind-dev`"
            ),
            "{args:?}: {stderr}"
        );
        assert_eq!(log, ["kubectl config current-context"], "{args:?}");
    }
    Ok(())
}

#[test]
fn images_are_delivered_by_minikube_image_load_and_kind_load_image_archive() -> Result {
    let f = Stage::new(FAKES)?;
    // The real release build needs cargo and rustc from the caller's PATH.
    let path = format!(
        "{}:{}",
        f.dir.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let archive = f.dir.path().join("target/xtask/images/test-api.tar");
    for (into, expected) in [
        (
            "minikube",
            format!("minikube image load --profile mlops {}", archive.display()),
        ),
        (
            "kind",
            format!("kind load image-archive --name dev {}", archive.display()),
        ),
    ] {
        let (out, log) = f.xtask(
            &["image", "load", "test-api", "--into", into],
            &[("PATH", path.as_str())],
        )?;
        assert!(out.status.success(), "{into}: {}", text(&out.stderr));
        // The nodes' platform is read first (the kube context, minikube's
        // driver): reads, then the load.
        assert_eq!(acted(&log), [expected]);
        assert!(archive.exists());
    }
    // A failing delivery names the command and its stderr.
    let (out, _) = f.xtask(
        &["image", "load", "test-api", "--into", "kind"],
        &[("PATH", path.as_str()), ("FAKE_KIND_FAIL", "1")],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kind load image-archive --name dev"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ERROR: no nodes found for cluster \"dev\""),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn every_kube_engine_command_the_xtask_plans_is_one_the_engine_accepts() -> Result {
    use clap::Parser;
    let f = Stage::new(FAKES)?;
    let mut checked = 0;
    for (target, context) in [
        ("gke", GKE_CONTEXT),
        ("kind", "kind-dev"),
        ("minikube", "mlops"),
    ] {
        for args in [
            &["deploy"][..],
            &["status"],
            &["logs", "model-server", "--tail", "5", "--follow"],
            &["teardown"],
            &["deploy", "--seldon"],
            &["teardown", "--seldon"],
        ] {
            let mut argv = vec!["--dry-run"];
            argv.extend_from_slice(args);
            argv.extend(["--target", target]);
            let (out, _) = f.xtask(&argv, &[("FAKE_CONTEXT", context)])?;
            for line in text(&out.stdout).lines() {
                let Some(at) = line.find("$ ") else { continue };
                let words = shlex::split(&line[at + 2..]).ok_or("unquotable plan line")?;
                if !words[0].ends_with("/kube-engine") {
                    continue;
                }
                // Background commands carry a note after two spaces.
                let words: Vec<&String> = words.iter().take_while(|w| *w != "(in").collect();
                kube_engine::cli::Cli::try_parse_from(&words)
                    .map_err(|e| format!("{line}\n{e}"))?;
                checked += 1;
            }
        }
    }
    // deploy: apply + a URL step per service on gke; apply on kind and minikube; plus status, logs, teardown.
    assert!(checked >= 12, "only {checked} engine commands planned");
    Ok(())
}

#[test]
fn dry_runs_without_a_context_plan_everything_and_name_what_would_stop_first() -> Result {
    // A kubeconfig with no context at all, and no cluster behind it.
    let f = Stage::unserved(&[
        ("helm", "echo '[]'"),
        ("minikube", ""),
        (
            "docker",
            "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2; exit 1",
        ),
    ])?;
    for args in [
        &["--dry-run", "deploy", "--target", "minikube"][..],
        &["--dry-run", "deploy", "--seldon", "--target", "minikube"],
        &["--dry-run", "seldon", "install", "--target", "minikube"],
        &["--dry-run", "deploy", "--target", "gke"],
    ] {
        let (out, log) = f.xtask(args, &[])?;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{stdout}{stderr}");
        let first = stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("A real run would stop here first"),
            "{args:?}: blockers first:\n{stdout}"
        );
        assert!(
            stdout.contains("would stop here: no kube context is selected"),
            "{stdout}"
        );
        assert!(
            stdout.contains("Plan (dry run"),
            "{args:?}: the whole plan:\n{stdout}"
        );
        // Only reads: nothing created, installed, loaded or applied.
        assert!(
            log.iter().all(|l| l.starts_with("kubectl config")
                || l.starts_with("minikube profile list")
                || l.starts_with("helm ") && l.contains(" list ")
                || l.starts_with("kubectl --context") && l.contains(" get ")),
            "{args:?}: {log:?}"
        );
    }
    // No cluster to ask: GKE's machine type says what its nodes will run.
    // An Arm series needs arm64 binaries, which this host cannot build.
    f.settings("[gke]\nproject = \"proj-1\"\nmachine_type = \"t2a-standard-4\"\n")?;
    let (out, _) = f.xtask(&["--dry-run", "deploy", "--target", "gke"], &[])?;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("gke's machines run linux/arm64")
            && stdout.contains("rustup target add aarch64-unknown-linux-musl"),
        "{stdout}"
    );
    // The docker target without an engine: the same.
    {
        let (out, _) = f.xtask(&["--dry-run", "deploy", "--target", "docker"], &[])?;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains("would stop here: no container engine answers the docker CLI"),
            "{stdout}"
        );
        assert!(stdout.contains("docker run"), "the plan goes on: {stdout}");
    }
    // A real run is still refused.
    let (out, _) = f.xtask(&["deploy", "--target", "minikube"], &[])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no kube context is selected"));
    Ok(())
}

#[test]
fn the_dev_loop_refuses_gke_up_front_and_runs_nothing() -> Result {
    let f = Stage::new(FAKES)?;
    let (out, log) = f.xtask(&["dev", "--target", "gke"], &[])?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the dev loop runs on local, docker and the local clusters"),
        "{stderr}"
    );
    assert!(stderr.contains("cargo xtask dev --target kind"), "{stderr}");
    assert!(log.is_empty(), "{log:?}");
    Ok(())
}

/// What a dry run says, for a user who has not set anything up (issue 19):
/// stale manifests are one blocker among the others and the plan goes on;
/// each cause is named once; a push to Artifact Registry without a gcloud
/// account is named; nothing is claimed about a cluster that was not
/// reached.
#[test]
fn dry_runs_list_every_blocker_once_and_claim_nothing_unseen() -> Result {
    // A kubeconfig with no context.
    let f = Stage::unserved(&[
        ("kind", ""),
        (
            "gcloud",
            r#"case "$*" in
  "config get-value account") echo "(unset)" ;;
  "config get-value project") echo "(unset)" ;;
esac"#,
        ),
    ])?;
    // Settings whose manifests were not regenerated: test-api moved port.
    let settings = std::fs::read_to_string(f.dir.path().join("xtask.toml"))?
        .replace("project = \"proj-1\"", "project = \"\"");
    std::fs::write(
        f.dir.path().join("xtask.toml"),
        format!("{settings}[services.test-api]\nport = 5100\n[services.model-server]\n"),
    )?;
    let once = |stdout: &str, blocker: &str| {
        let n = stdout
            .lines()
            .filter(|l| l.starts_with("  - would stop here: ") && l.contains(blocker))
            .count();
        assert_eq!(n, 1, "{blocker:?} {n} times:\n{stdout}");
    };
    for args in [
        &["--dry-run", "deploy", "--target", "kind"][..],
        &["--dry-run", "deploy", "--seldon", "--target", "kind"],
    ] {
        let (out, log) = f.xtask(args, &[])?;
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}\n{stdout}{}",
            text(&out.stderr)
        );
        once(&stdout, "the manifests in");
        once(&stdout, "base/test-api.yaml");
        once(&stdout, "no kube context is selected");
        assert!(stdout.contains("Plan (dry run"), "{stdout}");
        assert!(
            stdout.contains("kind load image-archive"),
            "the plan goes on: {stdout}"
        );
        assert!(!stdout.contains("is not installed"), "{args:?}: {stdout}");
        // Without the context the cluster is not read at all.
        assert!(
            log.iter().all(|l| l.starts_with("kubectl config")),
            "{args:?}: {log:?}"
        );
        if args.contains(&"--seldon") {
            assert!(
                stdout.contains("check that Seldon Core is installed on kind-dev"),
                "{stdout}"
            );
        }
    }
    // GKE without a project or an account: each named once, the account
    // because the plan pushes to Artifact Registry with gcloud's credentials.
    for args in [
        &["--dry-run", "deploy", "--target", "gke"][..],
        &["--dry-run", "cluster", "up", "--target", "gke"],
        &[
            "--dry-run",
            "teardown",
            "--cluster",
            "--yes",
            "--target",
            "gke",
        ],
    ] {
        let (out, _) = f.xtask(args, &[])?;
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}\n{stdout}{}",
            text(&out.stderr)
        );
        once(&stdout, "needs a Google Cloud project");
        if args.contains(&"deploy") {
            once(
                &stdout,
                "pushing images to Artifact Registry needs an active gcloud account",
            );
        }
    }
    // status reads the cluster: without its context, it says it did not.
    let (out, _) = f.xtask(&["--dry-run", "status", "--target", "kind"], &[])?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("unknown: the cluster was not reached"),
        "{stdout}"
    );
    // A real run still refuses the stale manifests.
    let (out, _) = f.xtask(
        &["deploy", "--target", "kind"],
        &[("FAKE_CONTEXT", "kind-dev")],
    )?;
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}

/// A real deploy checks the cluster's tools before it builds anything
/// (issue 19's probe: kind missing was found after 50 s of building).
#[test]
fn a_missing_cluster_tool_stops_a_deploy_before_any_build() -> Result {
    // No kind; a cargo that records what it is asked.
    let f = Stage::new(&[("cargo", ""), ("docker", "")])?;
    let (out, log) = f.xtask(
        &["deploy", "--target", "kind"],
        &[("FAKE_CONTEXT", "kind-dev")],
    )?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("`kind` was not found on PATH"), "{stderr}");
    assert!(
        !log.iter().any(|l| l.starts_with("cargo "))
            && !stderr.contains("cargo build")
            && !stderr.contains("cargo rustc"),
        "nothing was built: {log:?}\n{stderr}"
    );
    Ok(())
}
