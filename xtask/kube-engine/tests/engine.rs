//! The engine against a stateful API fake: apply, rollout wait and its
//! explanations, teardown, and the context check.

mod common;

use std::time::{Duration, Instant};

use common::{OPTS, wait_opts};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube_engine::apply::{Outcome, apply_all};
use kube_engine::manifest;
use kube_engine::resolve::Resolver;
use kube_engine::rollout;
use kube_engine::{MANAGED_SELECTOR, teardown};
use kube_fake_api::{FakeCluster, Setup, cluster};
use serde_json::{Value, json};

const NS: &str = "kube-mlops";

/// A Namespace, a Deployment and a Service, labelled as deploy/base labels them.
const MANIFEST: &str = include_str!("fixtures/app.yaml");

fn objects(image: &str) -> Vec<kube::api::DynamicObject> {
    common::objects(MANIFEST, "test-api", image)
}

async fn deployed(setup: Setup) -> (FakeCluster, Resolver) {
    let fake = cluster(setup).await;
    let mut resolver = Resolver::new(fake.client.clone());
    apply_all(&mut resolver, objects("reg/test-api@sha256:aa"), &OPTS)
        .await
        .expect("apply");
    (fake, resolver)
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}

fn pod(name: &str, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": "test-api"}},
           "spec": {"containers": [{"name": "test-api", "image": "x", "ports": [{"name": "http", "containerPort": 5000}]}]},
           "status": status})
}

fn event(name: &str, object: &str, kind: &str, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
           "metadata": {"name": name, "namespace": NS},
           "involvedObject": {"kind": kind, "name": object, "namespace": NS},
           "reason": reason, "message": message, "type": "Warning",
           "lastTimestamp": "2026-11-28T10:00:00Z"})
}

/// Play the Deployment controller: report `status` for the current generation.
async fn set_deployment_status(client: &kube::Client, mut status: Value) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let generation = api.get("test-api").await.expect("get").metadata.generation;
    status["observedGeneration"] = json!(generation);
    common::patch_status::<Deployment>(client, NS, "test-api", status).await;
}

#[tokio::test]
async fn apply_creates_then_reapply_changes_nothing_then_an_image_change_configures() {
    let fake = cluster(Setup::default()).await;
    let mut resolver = Resolver::new(fake.client.clone());
    let first = apply_all(&mut resolver, objects("reg/test-api@sha256:aa"), &OPTS)
        .await
        .expect("apply");
    let order: Vec<String> = first.iter().map(|a| manifest::display(&a.object)).collect();
    assert_eq!(
        order,
        [
            "namespace/kube-mlops",
            "service/test-api",
            "deployment/test-api"
        ]
    );
    assert!(
        first.iter().all(|a| a.outcome == Outcome::Created),
        "{first:?}"
    );

    // A controller's writes (status, its own annotations) are not ours:
    // the next apply still changes nothing.
    set_deployment_status(&fake.client, json!({"replicas": 1, "updatedReplicas": 1})).await;
    let again = apply_all(&mut resolver, objects("reg/test-api@sha256:aa"), &OPTS)
        .await
        .expect("re-apply");
    let outcomes: Vec<Outcome> = again.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Outcome::Unchanged; 3]);

    let changed = apply_all(&mut resolver, objects("reg/test-api@sha256:bb"), &OPTS)
        .await
        .expect("apply new image");
    let outcomes: Vec<Outcome> = changed.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Unchanged, Outcome::Unchanged, Outcome::Configured]
    );

    let d = Api::<Deployment>::namespaced(fake.client.clone(), NS)
        .get("test-api")
        .await
        .expect("get");
    let image = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].image.clone());
    assert_eq!(image, Some(Some("reg/test-api@sha256:bb".into())));
    assert!(fake.namespaces.lock().expect("ns").contains_key(NS));
}

#[tokio::test]
async fn rollout_wait_succeeds_once_the_status_says_ready() {
    let (fake, mut resolver) = deployed(Setup::default()).await;
    let client = fake.client.clone();
    let ready = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        set_deployment_status(&client, json!({"replicas": 1, "updatedReplicas": 1})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        set_deployment_status(&client, json!({"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1})).await;
    });
    let workloads = vec![rollout::Workload {
        kind: rollout::WorkloadKind::Deployment,
        namespace: NS.into(),
        name: "test-api".into(),
    }];
    let start = Instant::now();
    rollout::wait(&mut resolver, &workloads, &wait_opts(10))
        .await
        .expect("ready");
    assert!(
        start.elapsed() >= Duration::from_millis(550),
        "returned before the status said ready"
    );
    ready.await.expect("status task");
}

#[tokio::test]
async fn rollout_wait_explains_image_pull_backoff_at_once() {
    let status = json!({"phase": "Pending", "containerStatuses": [{"name": "test-api", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"reg/test-api@sha256:aa\""}}}]});
    let setup = Setup {
        objects: vec![
            pod("test-api-5d8f-abcde", status),
            event(
                "e1",
                "test-api-5d8f-abcde",
                "Pod",
                "Failed",
                "Failed to pull image \"reg/test-api@sha256:aa\": manifest unknown",
            ),
            event("e2", "unrelated", "Pod", "Failed", "someone else's trouble"),
        ],
        ..Setup::default()
    };
    let (fake, mut resolver) = deployed(setup).await;
    let workloads = rollout::workloads(&[], NS);
    assert!(workloads.is_empty());
    // The controller has seen the spec (before that, no pod is this
    // rollout's); without ReplicaSets, every pod of the selector counts.
    set_deployment_status(&fake.client, json!({"replicas": 1, "updatedReplicas": 1})).await;
    let start = Instant::now();
    let err = rollout::wait(&mut resolver, &[test_api()], &wait_opts(30))
        .await
        .expect_err("must fail");
    let text = format!("{err:#}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "should fail fast, took {:?}",
        start.elapsed()
    );
    common::assert_contains_all(
        &text,
        &[
            "deployment/test-api",
            "pod test-api-5d8f-abcde: ImagePullBackOff",
            "Back-off pulling image",
            "Failed to pull image \"reg/test-api@sha256:aa\": manifest unknown",
        ],
    );
    assert!(!text.contains("someone else's trouble"), "{text}");
}

#[tokio::test]
async fn rollout_wait_explains_crash_loop_with_the_last_logs() {
    let status = json!({"phase": "Running", "containerStatuses": [{"name": "test-api", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]});
    let setup = Setup {
        objects: vec![
            pod("test-api-5d8f-xyz", status),
            event(
                "e1",
                "test-api-5d8f-xyz",
                "Pod",
                "BackOff",
                "Back-off restarting failed container test-api",
            ),
        ],
        ..Setup::default()
    };
    let (fake, mut resolver) = deployed(setup).await;
    fake.logs.lock().expect("logs").insert(
        "test-api-5d8f-xyz/test-api".into(),
        "starting\nerror: PORT=\"abc\" is not a port number\n".into(),
    );
    set_deployment_status(&fake.client, json!({"replicas": 1, "updatedReplicas": 1})).await;
    let start = Instant::now();
    let err = rollout::wait(&mut resolver, &[test_api()], &wait_opts(30))
        .await
        .expect_err("must fail");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let text = format!("{err:#}");
    common::assert_contains_all(
        &text,
        &[
            "CrashLoopBackOff",
            "last run exited with code 2, Error (restarts: 3)",
            "last log lines of test-api (previous run)",
            "error: PORT=\"abc\" is not a port number",
            "Back-off restarting failed container",
        ],
    );
}

#[tokio::test]
async fn rollout_deadline_names_the_unschedulable_pod_not_just_a_timeout() {
    let status = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory."}]});
    let setup = Setup {
        objects: vec![pod("test-api-5d8f-pend", status)],
        ..Setup::default()
    };
    let (fake, mut resolver) = deployed(setup).await;
    set_deployment_status(
        &fake.client,
        json!({"replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1}),
    )
    .await;
    let err = rollout::wait(&mut resolver, &[test_api()], &wait_opts(1))
        .await
        .expect_err("must time out");
    let text = format!("{err:#}");
    common::assert_contains_all(
        &text,
        &[
            "not ready within 1s",
            "Unschedulable: 0/3 nodes are available: 3 Insufficient memory.",
            "0 of 1 updated replicas available",
        ],
    );
}

fn test_api() -> rollout::Workload {
    rollout::Workload {
        kind: rollout::WorkloadKind::Deployment,
        namespace: NS.into(),
        name: "test-api".into(),
    }
}

fn labelled(kind: &str, api_version: &str, ns: &str, name: &str, ours: bool) -> Value {
    let mut labels = json!({"app.kubernetes.io/name": name});
    if ours {
        labels["app.kubernetes.io/managed-by"] = json!("kube-mlops");
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns, "labels": labels},
           "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
}

#[tokio::test]
async fn teardown_deletes_only_ours_and_keeps_a_shared_namespace() {
    let setup = Setup {
        objects: vec![
            labelled("Deployment", "apps/v1", "other", "theirs", false),
            labelled("Deployment", "apps/v1", NS, "squatter", false),
        ],
        ..Setup::default()
    };
    let (fake, mut resolver) = deployed(setup).await;
    let report = teardown::teardown(&mut resolver, MANAGED_SELECTOR, Duration::from_secs(5))
        .await
        .expect("teardown");
    assert_eq!(
        sorted(&report.deleted),
        [
            "deployment/kube-mlops/test-api",
            "service/kube-mlops/test-api"
        ]
    );
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert!(report.kept[0].contains("deployment/squatter"), "{report:?}");
    let deployments = |ns: &str| Api::<Deployment>::namespaced(fake.client.clone(), ns);
    assert!(
        deployments("other")
            .get_opt("theirs")
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        deployments(NS)
            .get_opt("squatter")
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        deployments(NS)
            .get_opt("test-api")
            .await
            .expect("get")
            .is_none()
    );
    assert!(fake.namespaces.lock().expect("ns").contains_key(NS));
}

#[tokio::test]
async fn teardown_removes_our_namespace_when_only_ours_and_is_idempotent() {
    let (fake, mut resolver) = deployed(Setup::default()).await;
    // The namespace controller finishes a deleted namespace: it stays
    // Terminating a while, and nothing new may be created in it.
    fake.start_controller();
    let start = Instant::now();
    let client = fake.client.clone();
    let namespaces = fake.namespaces.clone();
    let meanwhile = tokio::spawn(async move {
        // Once the teardown has deleted the namespace (however long a
        // loaded machine takes to get there), while it is Terminating.
        let terminating = || {
            namespaces
                .lock()
                .expect("ns")
                .get(NS)
                .is_some_and(|n| n["status"]["phase"] == "Terminating")
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !terminating() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": NS}}))
        .expect("config map");
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, NS)
            .create(&Default::default(), &cm)
            .await
    });
    let report = teardown::teardown(&mut resolver, MANAGED_SELECTOR, Duration::from_secs(10))
        .await
        .expect("teardown");
    assert!(
        start.elapsed() >= kube_fake_api::controllers::TERMINATING_FOR,
        "{:?}",
        start.elapsed()
    );
    match meanwhile.await.expect("task") {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403);
            assert!(
                e.message
                    .contains("unable to create new content in namespace kube-mlops because it is being terminated"),
                "{}",
                e.message
            );
        }
        other => panic!("created in a Terminating namespace: {other:?}"),
    }
    assert_eq!(report.deleted.len(), 3, "{report:?}");
    assert!(report.deleted.contains(&"namespace/kube-mlops".to_string()));
    // Ours is gone; the namespaces every cluster starts with stay.
    let left: Vec<String> = fake
        .namespaces
        .lock()
        .expect("ns")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        left,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let again = teardown::teardown(&mut resolver, MANAGED_SELECTOR, Duration::from_secs(5))
        .await
        .expect("again");
    assert!(
        again.deleted.is_empty() && again.kept.is_empty(),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_client_refuses_a_context_the_kubeconfig_does_not_have() {
    let dir = std::env::temp_dir().join(format!("kube-engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config");
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-kube-mlops\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {}}]\ncontexts: [{name: kind-kube-mlops, context: {cluster: c, user: u}}]\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-engine"))
        .args(["--context", "gke_p_z_c", "status"])
        .env("KUBECONFIG", &config)
        .output()
        .expect("run kube-engine");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no context `gke_p_z_c` (it has: kind-kube-mlops)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_conflict_names_the_flag_and_forcing_says_whose_fields_it_takes() {
    let (fake, mut resolver) = deployed(Setup::default()).await;
    // Someone scales by hand, taking spec.replicas.
    let api: Api<Deployment> = Api::namespaced(fake.client.clone(), NS);
    let scaled = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "test-api", "namespace": NS}, "spec": {"replicas": 3}});
    api.patch(
        "test-api",
        &kube::api::PatchParams::apply("kubectl-edit").force(),
        &kube::api::Patch::Apply(scaled),
    )
    .await
    .expect("another manager's apply");

    let err = apply_all(&mut resolver, objects("reg/test-api@sha256:aa"), &OPTS)
        .await
        .expect_err("a conflict");
    common::assert_contains_all(
        &format!("{err:#}"),
        &[
            "deployment/test-api",
            "\"kubectl-edit\"",
            "--force-conflicts",
        ],
    );

    let forced = kube_engine::apply::ApplyOptions {
        force_conflicts: true,
        ..OPTS
    };
    let applied = apply_all(&mut resolver, objects("reg/test-api@sha256:aa"), &forced)
        .await
        .expect("forced");
    let taken: Vec<&str> = applied
        .iter()
        .filter_map(|a| a.taken_over.as_deref())
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0].contains("\"kubectl-edit\""), "{taken:?}");
    let replicas = api
        .get("test-api")
        .await
        .expect("get")
        .spec
        .and_then(|s| s.replicas);
    assert_eq!(replicas, Some(1));
}

#[tokio::test]
async fn a_set_based_selector_selects_as_the_api_server_decodes_it() {
    // kube-rs sends the space of `name in (test-api)` as `+`, which Go's
    // query decoding reads as a space.
    let (fake, mut resolver) = deployed(Setup::default()).await;
    let selector = format!("{MANAGED_SELECTOR},app.kubernetes.io/name in (test-api)");
    let report = teardown::teardown(&mut resolver, &selector, Duration::from_secs(5))
        .await
        .expect("teardown");
    assert_eq!(
        sorted(&report.deleted),
        [
            "deployment/kube-mlops/test-api",
            "service/kube-mlops/test-api"
        ]
    );
    assert!(
        Api::<Deployment>::namespaced(fake.client.clone(), NS)
            .get_opt("test-api")
            .await
            .expect("get")
            .is_none()
    );
}
