//! The engine against the API fake's controllers where a rollout can fail:
//! a rollout replaces the pods through a new ReplicaSet; an image the node
//! does not have (`ErrImageNeverPull`) or cannot pull (`ImagePullBackOff`)
//! is named within seconds, and leaves the old pod serving (the new one
//! counted as unavailable); a LoadBalancer's address arrives after a delay
//! and the wait takes it.

mod common;

use std::time::{Duration, Instant};

use common::{OPTS, wait_opts};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube_engine::apply::apply_all;
use kube_engine::resolve::Resolver;
use kube_engine::{expose, rollout};
use kube_fake_api::controllers::Node;
use kube_fake_api::{FakeCluster, Setup, cluster};

const NS: &str = "kube-mlops";
const MANIFEST: &str = include_str!("fixtures/app.yaml");

/// The fixture's objects running `reference`, with `policy` as the
/// container's `imagePullPolicy` (as the minikube and kind overlays set
/// `Never`).
fn objects(reference: &str, policy: Option<&str>) -> Vec<kube::api::DynamicObject> {
    let yaml = match policy {
        Some(p) => MANIFEST.replace(
            "image: test-api\n",
            &format!("image: test-api\n          imagePullPolicy: {p}\n"),
        ),
        None => MANIFEST.to_string(),
    };
    common::objects(&yaml, "test-api", reference)
}

/// A fake with its controllers running and a node that holds the images
/// listed in its file (returned) and reaches `registries`.
fn started(registries: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Setup) {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("node-images");
    std::fs::write(&images, "").expect("write");
    let setup = Setup {
        node: Node {
            images: Some(images.clone()),
            registries: registries.iter().map(|r| r.to_string()).collect(),
            architecture: None,
        },
        ..Setup::default()
    };
    (dir, images, setup)
}

async fn deploy(
    resolver: &mut Resolver,
    objs: Vec<kube::api::DynamicObject>,
) -> anyhow::Result<()> {
    let applied = apply_all(resolver, objs, &OPTS).await?;
    rollout::wait(resolver, &rollout::workloads(&applied, NS), &wait_opts(20)).await
}

async fn pods(fake: &FakeCluster) -> Vec<Pod> {
    Api::<Pod>::namespaced(fake.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

fn load(file: &std::path::Path, reference: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .expect("open");
    writeln!(f, "{reference}").expect("append");
}

#[tokio::test]
async fn a_rollout_replaces_the_pods_through_a_new_replica_set() {
    let (_dir, images, setup) = started(&[]);
    load(&images, "kube-mlops/test-api:1");
    load(&images, "kube-mlops/test-api:2");
    let fake = cluster(setup).await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    deploy(
        &mut resolver,
        objects("kube-mlops/test-api:1", Some("Never")),
    )
    .await
    .expect("first rollout");
    let first = names(&pods(&fake).await);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].starts_with("test-api-"), "{first:?}");

    deploy(
        &mut resolver,
        objects("kube-mlops/test-api:2", Some("Never")),
    )
    .await
    .expect("second rollout");
    // The old pod goes once the new one is available; the GC is a pass behind.
    let mut now = Vec::new();
    for _ in 0..50 {
        now = pods(&fake).await;
        if now.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(now.len(), 1, "{:?}", names(&now));
    assert_ne!(names(&now), first, "the pod was replaced");
    let image = now[0]
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("kube-mlops/test-api:2"));

    let sets = Api::<ReplicaSet>::namespaced(fake.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("replicasets")
        .items;
    let mut scale: Vec<i32> = sets
        .iter()
        .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1))
        .collect();
    scale.sort_unstable();
    assert_eq!(scale, [0, 1], "the old ReplicaSet is kept at zero");
    let hash = now[0]
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash").cloned())
        .unwrap_or_default();
    assert!(
        names(&now)[0].starts_with(&format!("test-api-{hash}-")),
        "{now:?}"
    );
    let d = Api::<Deployment>::namespaced(fake.client.clone(), NS)
        .get("test-api")
        .await
        .expect("deployment");
    let progressing = d
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.reason);
    assert_eq!(progressing.as_deref(), Some("NewReplicaSetAvailable"));
}

#[tokio::test]
async fn an_image_the_node_does_not_have_with_pull_policy_never_is_named_at_once() {
    let (_dir, images, setup) = started(&[]);
    let fake = cluster(setup).await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    let start = Instant::now();
    let err = deploy(
        &mut resolver,
        objects("kube-mlops/test-api:1", Some("Never")),
    )
    .await
    .expect_err("nothing loaded the image");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    common::assert_contains_all(
        &format!("{err:#}"),
        &[
            "ErrImageNeverPull",
            "Container image \"kube-mlops/test-api:1\" is not present with pull policy of Never",
        ],
    );
    // Said as the kubelet says it, in an Event about the pod.
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(fake.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ErrImageNeverPull")
                && e.involved_object.kind.as_deref() == Some("Pod")),
        "{events:?}"
    );
    // The kubelet retries: once the image is loaded, the pod starts.
    load(&images, "kube-mlops/test-api:1");
    let mut started = false;
    for _ in 0..50 {
        if pods(&fake).await.iter().all(kube_engine::explain::is_ready) {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "{:?}", names(&pods(&fake).await));
    deploy(
        &mut resolver,
        objects("kube-mlops/test-api:1", Some("Never")),
    )
    .await
    .expect("the loaded image runs");
}

#[tokio::test]
async fn an_image_from_a_registry_the_node_cannot_reach_backs_off() {
    let (_dir, _images, setup) = started(&["reg.example"]);
    let fake = cluster(setup).await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    let digest = format!("sha256:{}", "a".repeat(64));
    let err = deploy(
        &mut resolver,
        objects(&format!("unreachable.example/acct/test-api@{digest}"), None),
    )
    .await
    .expect_err("the node cannot pull it");
    common::assert_contains_all(
        &format!("{err:#}"),
        &["ImagePullBackOff", "unreachable.example"],
    );
    // Pinned by digest from a registry the node reaches, even where the
    // overlay said Never: the engine lets the node pull it.
    deploy(
        &mut resolver,
        objects(
            &format!("reg.example/acct/test-api@{digest}"),
            Some("Never"),
        ),
    )
    .await
    .expect("pulled from reg.example");
}

#[tokio::test]
async fn a_new_pod_that_cannot_start_leaves_the_old_one_serving() {
    let (_dir, images, setup) = started(&[]);
    load(&images, "kube-mlops/test-api:1");
    let fake = cluster(setup).await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    deploy(
        &mut resolver,
        objects("kube-mlops/test-api:1", Some("Never")),
    )
    .await
    .expect("first rollout");
    let before = names(&pods(&fake).await);
    let err = deploy(
        &mut resolver,
        objects("kube-mlops/test-api:2", Some("Never")),
    )
    .await
    .expect_err("test-api:2 was never loaded");
    assert!(format!("{err:#}").contains("ErrImageNeverPull"), "{err:#}");
    let now = pods(&fake).await;
    let serving: Vec<String> = now
        .iter()
        .filter(|p| kube_engine::explain::is_ready(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(serving, before, "the old pod still serves");
    assert_eq!(now.len(), 2, "{:?}", names(&now));
    // The Deployment counts the new pod as unavailable, as the deployment
    // controller does (what the Seldon operator and `kubectl rollout
    // status` read).
    let status = Api::<Deployment>::namespaced(fake.client.clone(), NS)
        .get("test-api")
        .await
        .expect("deployment")
        .status
        .unwrap_or_default();
    assert_eq!(status.available_replicas, Some(1), "{status:?}");
    assert_eq!(status.unavailable_replicas, Some(1), "{status:?}");
    assert_eq!(status.updated_replicas, Some(1), "{status:?}");
}

/// A started fake holding the fixture with its Service of type LoadBalancer.
async fn load_balanced(setup: Setup) -> FakeCluster {
    let fake = cluster(setup).await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    let objs = objects("reg/test-api@sha256:aa", None)
        .into_iter()
        .map(|mut o| {
            if o.types.as_ref().is_some_and(|t| t.kind == "Service") {
                o.data["spec"]["type"] = "LoadBalancer".into();
            }
            o
        })
        .collect();
    apply_all(&mut resolver, objs, &OPTS).await.expect("apply");
    fake
}

#[tokio::test]
async fn a_load_balancer_address_arrives_after_a_delay_and_the_wait_takes_it() {
    let setup = Setup {
        load_balancer: Some(("203.0.113.7".into(), Duration::from_millis(1500))),
        ..Setup::default()
    };
    let fake = load_balanced(setup).await;
    let start = Instant::now();
    let address =
        expose::load_balancer_address(&fake.client, NS, "test-api", Duration::from_secs(20))
            .await
            .expect("an address");
    assert_eq!(address, "203.0.113.7");
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );

    // No cloud: the address stays pending, and the wait says what it waited for.
    let fake = load_balanced(Setup::default()).await;
    let err = expose::load_balancer_address(&fake.client, NS, "test-api", Duration::from_secs(2))
        .await
        .expect_err("no cloud, no address");
    assert!(
        format!("{err:#}").contains("got no external address within 2s"),
        "{err:#}"
    );
}
