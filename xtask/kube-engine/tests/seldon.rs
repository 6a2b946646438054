//! SeldonDeployments through the engine, against the API fake with the
//! SeldonDeployment CRD registered (or not).

mod common;

use std::time::{Duration, Instant};

use common::{OPTS, wait_opts};
use kube::api::Api;
use kube_engine::apply::{Applied, Outcome, apply_all};
use kube_engine::resolve::Resolver;
use kube_engine::rollout;
use kube_engine::teardown;
use kube_fake_api::{SeldonDeployment, Setup, cluster};
use serde_json::{Value, json};

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: seldon
  labels: {app.kubernetes.io/managed-by: kube-mlops, kube-mlops.io/stack: seldon}
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: seldon-test-model
  namespace: seldon
  labels: {app.kubernetes.io/managed-by: kube-mlops, kube-mlops.io/stack: seldon}
spec:
  name: seldon-test-model
  predictors:
    - name: default
      graph: {name: seldon-test-model, type: MODEL}
      componentSpecs:
        - spec:
            containers:
              - {name: seldon-test-model, image: model-server}
"#;

const SELECTOR: &str = "app.kubernetes.io/managed-by=kube-mlops,kube-mlops.io/stack=seldon";

fn objects() -> Vec<kube::api::DynamicObject> {
    common::objects(MANIFEST, "model-server", "reg/model-server@sha256:cc")
}

fn sdep() -> rollout::Workload {
    rollout::Workload {
        kind: rollout::WorkloadKind::SeldonDeployment,
        namespace: "seldon".into(),
        name: "seldon-test-model".into(),
    }
}

/// Seldon installed, `setup`'s objects, and the manifest applied.
async fn deployed(setup: Setup) -> (kube_fake_api::FakeCluster, Resolver) {
    let fake = cluster(Setup {
        seldon_installed: true,
        ..setup
    })
    .await;
    let mut resolver = Resolver::new(fake.client.clone());
    apply_all(&mut resolver, objects(), &OPTS)
        .await
        .expect("apply");
    (fake, resolver)
}

async fn set_state(client: &kube::Client, status: Value) {
    common::patch_status::<SeldonDeployment>(client, "seldon", "seldon-test-model", status).await;
}

/// Seldon installed with its (fake) operator running, and the manifest
/// applied: the cluster, the resolver and what was applied.
async fn operated() -> (kube_fake_api::FakeCluster, Resolver, Vec<Applied>) {
    let fake = cluster(Setup {
        seldon_installed: true,
        ..Setup::default()
    })
    .await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    let applied = apply_all(&mut resolver, objects(), &OPTS)
        .await
        .expect("apply");
    (fake, resolver, applied)
}

#[tokio::test]
async fn a_seldon_deployment_is_applied_and_waited_for_until_available() {
    let (fake, mut resolver, applied) = operated().await;
    assert_eq!(applied[1].outcome, Outcome::Created);
    let workloads = rollout::workloads(&applied, "default");
    assert_eq!(workloads, [sdep()]);

    let stored: Api<SeldonDeployment> = Api::namespaced(fake.client.clone(), "seldon");
    let spec = stored.get("seldon-test-model").await.expect("get").spec;
    let container = &spec["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0];
    assert_eq!(container["image"], "reg/model-server@sha256:cc");

    // The operator goes Creating, makes its Deployment, then Available.
    let start = Instant::now();
    rollout::wait(&mut resolver, &workloads, &wait_opts(10))
        .await
        .expect("available");
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert_eq!(running_image(&fake).await, "reg/model-server@sha256:cc");

    let again = apply_all(&mut resolver, objects(), &OPTS)
        .await
        .expect("re-apply");
    assert!(
        again.iter().all(|a| a.outcome == Outcome::Unchanged),
        "{again:?}"
    );
}

/// The image the operator's Deployment for the test model runs.
async fn running_image(fake: &kube_fake_api::FakeCluster) -> String {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(fake.client.clone(), "seldon");
    let list = deployments
        .list(&kube::api::ListParams::default().labels("seldon-deployment-id=seldon-test-model"))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1, "{:?}", list.items);
    list.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_new_image_waits_for_the_operator_although_the_old_status_says_available() {
    // Seldon Core 1.18.2 writes no observedGeneration: right after a spec
    // change, status.state is still the previous spec's Available.
    let (fake, mut resolver, applied) = operated().await;
    let workloads = rollout::workloads(&applied, "default");
    rollout::wait(&mut resolver, &workloads, &wait_opts(10))
        .await
        .expect("first rollout");

    let newer = common::objects(MANIFEST, "model-server", "reg/model-server@sha256:dd");
    let applied = apply_all(&mut resolver, newer, &OPTS)
        .await
        .expect("apply the new image");
    assert_eq!(applied[1].outcome, Outcome::Configured);
    let stored: Api<SeldonDeployment> = Api::namespaced(fake.client.clone(), "seldon");
    let status = stored.get("seldon-test-model").await.expect("get").status;
    let right_after = rollout::check(&mut resolver, &sdep()).await.expect("check");
    assert!(
        !right_after.ready,
        "the previous spec's status ({status:?}) counted as the new rollout"
    );
    assert!(
        right_after.waiting_for.contains("the Seldon operator"),
        "{right_after:?}"
    );
    rollout::wait(&mut resolver, &workloads, &wait_opts(10))
        .await
        .expect("second rollout");
    assert_eq!(running_image(&fake).await, "reg/model-server@sha256:dd");
}

#[tokio::test]
async fn a_failed_seldon_deployment_is_explained_with_its_pods_and_events() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "seldon-test-model-default-0-seldon-test-model-7c9d-x", "namespace": "seldon",
                     "labels": {"seldon-deployment-id": "seldon-test-model"}},
        "spec": {"containers": [{"name": "seldon-test-model", "image": "x"}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "seldon-test-model", "ready": false, "restartCount": 0,
            "image": "x", "imageID": "", "state": {"waiting": {"reason": "ErrImageNeverPull",
            "message": "Container image \"model-server:0.1.0\" is not present with pull policy of Never"}}}]}});
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "seldon"},
        "involvedObject": {"kind": "SeldonDeployment", "name": "seldon-test-model", "namespace": "seldon"},
        "reason": "InternalError", "message": "Deployment seldon-test-model-default-0 failed", "type": "Warning"});
    let (fake, mut resolver) = deployed(Setup {
        objects: vec![pod, event],
        ..Setup::default()
    })
    .await;
    set_state(
        &fake.client,
        json!({"state": "Failed", "description": "Deployment seldon-test-model-default-0 failed"}),
    )
    .await;
    let err = rollout::wait(&mut resolver, &[sdep()], &wait_opts(30))
        .await
        .expect_err("must fail");
    let text = format!("{err:#}");
    common::assert_contains_all(
        &text,
        &[
            "seldondeployment/seldon-test-model in namespace seldon: Seldon reports Failed: Deployment seldon-test-model-default-0 failed",
            "ErrImageNeverPull: Container image \"model-server:0.1.0\" is not present",
            "Warning InternalError seldondeployment/seldon-test-model",
        ],
    );
}

#[tokio::test]
async fn without_the_crd_the_error_says_seldon_core_is_not_installed_and_how_to_install_it() {
    let fake = cluster(Setup::default()).await;
    let mut resolver = Resolver::new(fake.client.clone());
    let err = apply_all(&mut resolver, objects(), &OPTS)
        .await
        .expect_err("must fail");
    let text = format!("{err:#}");
    assert!(
        text.contains("the cluster does not serve SeldonDeployment (machinelearning.seldon.io/v1)"),
        "{text}"
    );
    assert!(
        text.contains(
            "Seldon Core is not installed on this cluster: run `cargo xtask seldon install"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn teardown_removes_the_seldon_stack_only() {
    let (fake, mut resolver) = deployed(Setup {
        namespaces: vec![json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-mlops", "labels": {"app.kubernetes.io/managed-by": "kube-mlops"}}})],
        ..Setup::default()
    })
    .await;
    // The namespace controller finishes the deleted namespace.
    fake.start_controller();
    let report = teardown::teardown(&mut resolver, SELECTOR, Duration::from_secs(10))
        .await
        .expect("teardown");
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "namespace/seldon",
            "seldondeployment/seldon/seldon-test-model"
        ]
    );
    let api: Api<SeldonDeployment> = Api::namespaced(fake.client.clone(), "seldon");
    assert!(
        api.get_opt("seldon-test-model")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        fake.namespaces
            .lock()
            .expect("ns")
            .contains_key("kube-mlops"),
        "the other stack's namespace stays"
    );
    let again = teardown::teardown(&mut resolver, SELECTOR, Duration::from_secs(5))
        .await
        .expect("again");
    assert!(again.deleted.is_empty(), "{again:?}");
}
