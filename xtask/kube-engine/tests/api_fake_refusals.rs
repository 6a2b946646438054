//! The API fake refuses what a real API server refuses, sent through the
//! engine's own server-side apply: one test per invalid object, each with
//! the code and the words a Kubernetes 1.32 API server answers, and nothing
//! stored. Rows marked "schema" need the OpenAPI schemas
//! (`KMLOPS_KUBERNETES_SCHEMAS`, which `.ci/run` sets).

mod common;

use std::time::{Duration, Instant};

use common::{OPTS, wait_opts};
use http::{Method, Request};
use http_body_util::BodyExt;
use kube::api::DynamicObject;
use kube_engine::apply::apply_all;
use kube_engine::manifest;
use kube_engine::resolve::Resolver;
use kube_engine::rollout;
use kube_fake_api::{FakeCluster, Setup, cluster, schema};
use serde_json::{Value, json};

/// Skip (with the reason) where the schemas are not installed; fail in CI.
fn needs_schemas() -> bool {
    if schema::available() {
        return true;
    }
    let why = format!(
        "{} is not set (`.ci/run` installs kubernetes-validate and sets it)",
        schema::SCHEMAS_ENV
    );
    assert!(std::env::var_os("CI").is_none(), "CI needs {why}");
    eprintln!("SKIPPED: {why}");
    false
}

/// A valid Deployment in `default`, as YAML, for rows to break.
fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "default", "labels": {"app": "api"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "reg/api:1",
                    "ports": [{"name": "http", "containerPort": 5000}],
                    "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "128Mi"}}}]}}}})
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
}

fn objects(values: &[Value]) -> Vec<DynamicObject> {
    let yaml: Vec<String> = values.iter().map(Value::to_string).collect();
    manifest::parse(&yaml.join("\n---\n")).expect("manifest")
}

/// Whether `obj` is stored.
async fn stored(fake: &FakeCluster, obj: &DynamicObject) -> bool {
    let mut resolver = Resolver::new(fake.client.clone());
    let api = resolver.api_for(obj, "default").await.expect("api");
    let name = obj.metadata.name.clone().unwrap_or_default();
    api.get_opt(&name).await.expect("get").is_some()
}

/// Apply `values` with the engine; the refusal's HTTP code and the error's
/// whole text. The last object must not have been stored.
async fn refused(values: &[Value]) -> (u16, String) {
    let fake = cluster(Setup::default()).await;
    let mut resolver = Resolver::new(fake.client.clone());
    let objs = objects(values);
    let last = objs.last().cloned().expect("an object");
    let err = apply_all(&mut resolver, objs, &OPTS)
        .await
        .expect_err("the API must refuse it");
    let code = err
        .chain()
        .find_map(|e| match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        })
        .unwrap_or(0);
    let text = format!("{err:#}");
    if !last.metadata.name.as_deref().unwrap_or_default().is_empty() {
        let ns_exists = fake
            .namespaces
            .lock()
            .expect("ns")
            .contains_key(last.metadata.namespace.as_deref().unwrap_or("default"));
        if ns_exists {
            assert!(
                !stored(&fake, &last).await,
                "stored although refused: {text}"
            );
        }
    }
    (code, text)
}

/// Assert the code and every needle.
fn expect(got: (u16, String), code: u16, needles: &[&str]) {
    assert_eq!(got.0, code, "{}", got.1);
    common::assert_contains_all(&got.1, needles);
}

/// One raw request through the API fake; the code and the JSON answer.
async fn raw(
    fake: &FakeCluster,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.to_string().into_bytes()))
        .expect("request");
    let resp = fake.client.send(req).await.expect("send");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn a_selector_that_does_not_match_its_template_is_invalid() {
    let mut d = deployment();
    d["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    expect(
        refused(&[d]).await,
        422,
        &[
            "Deployment.apps \"api\" is invalid",
            "spec.template.metadata.labels: Invalid value",
            "`selector` does not match template `labels`",
        ],
    );
}

#[tokio::test]
async fn a_container_without_an_image_is_invalid() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("image");
    expect(
        refused(&[d]).await,
        422,
        &["spec.template.spec.containers[0].image: Required value"],
    );
}

#[tokio::test]
async fn a_quantity_in_megabits_does_not_decode() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
        json!("128Mb");
    expect(
        refused(&[d]).await,
        400,
        &[
            "cannot be handled as a Deployment",
            "quantities must match the regular expression",
            "128Mb",
        ],
    );
}

#[tokio::test]
async fn an_object_in_a_namespace_that_does_not_exist_is_not_found() {
    let mut d = deployment();
    d["metadata"]["namespace"] = json!("nowhere");
    expect(
        refused(&[d]).await,
        404,
        &["namespaces \"nowhere\" not found"],
    );
}

#[tokio::test]
async fn a_name_that_is_not_a_dns_subdomain_is_invalid() {
    let mut d = deployment();
    d["metadata"]["name"] = json!("Test_API");
    expect(
        refused(&[d]).await,
        422,
        &[
            "metadata.name: Invalid value: \"Test_API\"",
            "a lowercase RFC 1123 subdomain",
        ],
    );
}

#[tokio::test]
async fn a_service_name_that_starts_with_a_digit_is_invalid() {
    let mut s = service();
    s["metadata"]["name"] = json!("1api");
    expect(
        refused(&[s]).await,
        422,
        &["Service \"1api\" is invalid", "a DNS-1035 label"],
    );
}

#[tokio::test]
async fn requests_above_limits_are_invalid() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] =
        json!("256Mi");
    expect(
        refused(&[d]).await,
        422,
        &[
            "spec.template.spec.containers[0].resources.requests: Invalid value: \"256Mi\"",
            "must be less than or equal to memory limit of 128Mi",
        ],
    );
}

#[tokio::test]
async fn a_pod_template_without_containers_is_invalid() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"] = json!([]);
    expect(
        refused(&[d]).await,
        422,
        &["spec.template.spec.containers: Required value"],
    );
}

#[tokio::test]
async fn a_container_port_name_over_15_characters_is_invalid() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = json!("http-metrics-port");
    expect(
        refused(&[d]).await,
        422,
        &[
            "spec.template.spec.containers[0].ports[0].name: Invalid value: \"http-metrics-port\"",
            "must be no more than 15 characters",
        ],
    );
}

#[tokio::test]
async fn duplicate_container_names_are_invalid() {
    let mut d = deployment();
    let c = d["spec"]["template"]["spec"]["containers"][0].clone();
    d["spec"]["template"]["spec"]["containers"] = json!([c.clone(), c]);
    expect(
        refused(&[d]).await,
        422,
        &["spec.template.spec.containers[1].name: Duplicate value: \"api\""],
    );
}

#[tokio::test]
async fn a_changed_selector_is_immutable() {
    let fake = cluster(Setup::default()).await;
    let mut resolver = Resolver::new(fake.client.clone());
    apply_all(&mut resolver, objects(&[deployment()]), &OPTS)
        .await
        .expect("first apply");
    let mut d = deployment();
    d["spec"]["selector"]["matchLabels"] = json!({"app": "api", "tier": "web"});
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "api", "tier": "web"});
    let err = apply_all(&mut resolver, objects(&[d]), &OPTS)
        .await
        .expect_err("immutable");
    common::assert_contains_all(
        &format!("{err:#}"),
        &["spec.selector: Invalid value", "field is immutable"],
    );
}

#[tokio::test]
async fn negative_replicas_are_invalid() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!(-1);
    expect(
        refused(&[d]).await,
        422,
        &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
    );
}

#[tokio::test]
async fn a_container_port_out_of_range_is_invalid() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(70000);
    expect(
        refused(&[d]).await,
        422,
        &["containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
    );
}

#[tokio::test]
async fn an_unsupported_service_type_is_invalid() {
    let mut s = service();
    s["spec"]["type"] = json!("LoadBalancr");
    expect(
        refused(&[s]).await,
        422,
        &["spec.type: Unsupported value: \"LoadBalancr\""],
    );
}

#[tokio::test]
async fn duplicate_service_port_names_are_invalid() {
    let mut s = service();
    s["spec"]["ports"] = json!([{"name": "http", "port": 80}, {"name": "http", "port": 81}]);
    expect(
        refused(&[s]).await,
        422,
        &["spec.ports[1].name: Duplicate value: \"http\""],
    );
}

#[tokio::test]
async fn a_label_value_over_63_characters_is_invalid() {
    let mut d = deployment();
    d["metadata"]["labels"]["version"] = json!("v".repeat(64));
    expect(
        refused(&[d]).await,
        422,
        &[
            "metadata.labels: Invalid value",
            "must be no more than 63 characters",
        ],
    );
}

#[tokio::test]
async fn a_disruption_budget_with_both_bounds_is_invalid() {
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"app": "api"}}}});
    expect(
        refused(&[pdb]).await,
        422,
        &["minAvailable and maxUnavailable cannot be both set"],
    );
}

#[tokio::test]
async fn a_service_body_sent_to_deployments_is_a_bad_request() {
    let fake = cluster(Setup::default()).await;
    let (code, answer) = raw(
        &fake,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/api?fieldManager=kube-mlops",
        APPLY,
        &service(),
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["reason"], "BadRequest", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Specified patch version: v1, expected: apps/v1"),
        "{answer}"
    );
    let (code, answer) = raw(
        &fake,
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        &service(),
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap_or_default().contains(
            "the API version in the data (v1) does not match the expected API version (apps/v1)"
        ),
        "{answer}"
    );
}

#[tokio::test]
async fn a_privileged_pod_in_a_restricted_namespace_is_forbidden() {
    let fake = cluster(Setup::default()).await;
    let mut resolver = Resolver::new(fake.client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "locked", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    apply_all(&mut resolver, objects(&[ns]), &OPTS)
        .await
        .expect("namespace");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": "locked"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}});
    let (code, answer) = raw(
        &fake,
        Method::POST,
        "/api/v1/namespaces/locked/pods",
        "application/json",
        &pod,
    )
    .await;
    assert_eq!(code, 403, "{answer}");
    assert_eq!(answer["reason"], "Forbidden", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    common::assert_contains_all(
        message,
        &[
            "pods \"root\" is forbidden: violates PodSecurity \"restricted:latest\"",
            "privileged (container \"c\" must not set securityContext.privileged=true)",
            "runAsNonRoot != true",
        ],
    );
}

#[tokio::test]
async fn a_deployment_whose_pods_pod_security_refuses_fails_its_rollout_at_once() {
    let fake = cluster(Setup::default()).await;
    fake.start_controller();
    let mut resolver = Resolver::new(fake.client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "locked", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    let mut d = deployment();
    d["metadata"]["namespace"] = json!("locked");
    let applied = apply_all(&mut resolver, objects(&[ns, d]), &OPTS)
        .await
        .expect("a Deployment is accepted whatever its template");
    let workloads = rollout::workloads(&applied, "locked");
    let start = Instant::now();
    let err = rollout::wait(&mut resolver, &workloads, &wait_opts(30))
        .await
        .expect_err("no pod can start");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited {:?} instead of naming the cause",
        start.elapsed()
    );
    common::assert_contains_all(
        &format!("{err:#}"),
        &[
            "deployment/api",
            "its pods cannot be created (FailedCreate)",
            "violates PodSecurity \"restricted:latest\"",
            "FailedCreate replicaset/api-",
        ],
    );
}

#[tokio::test]
async fn an_unknown_field_breaks_server_side_apply() {
    if !needs_schemas() {
        return;
    }
    let mut d = deployment();
    d["spec"]["replica"] = json!(2);
    expect(
        refused(&[d]).await,
        500,
        &[
            "failed to create typed patch object (default/api; apps/v1, Kind=Deployment)",
            ".spec.replica: field not declared in schema",
        ],
    );
}

#[tokio::test]
async fn a_value_of_the_wrong_type_breaks_server_side_apply() {
    if !needs_schemas() {
        return;
    }
    let mut d = deployment();
    d["spec"]["replicas"] = json!("two");
    expect(
        refused(&[d]).await,
        500,
        &["failed to create typed patch object", ".spec.replicas"],
    );
}

#[tokio::test]
async fn a_container_without_a_name_is_invalid() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("name");
    expect(
        refused(&[d]).await,
        422,
        &["spec.template.spec.containers[0].name: Required value"],
    );
}

#[tokio::test]
async fn strict_field_validation_refuses_an_unknown_field_and_warn_prunes_it() {
    if !needs_schemas() {
        return;
    }
    let fake = cluster(Setup::default()).await;
    let mut d = deployment();
    d["spec"]["replica"] = json!(2);
    let (code, answer) = raw(
        &fake,
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
        "application/json",
        &d,
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    assert_eq!(
        answer["message"],
        "strict decoding error: unknown field \"spec.replica\""
    );
    let (code, answer) = raw(
        &fake,
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        &d,
    )
    .await;
    assert_eq!(code, 201, "{answer}");
    assert!(
        answer["spec"].get("replica").is_none(),
        "not pruned: {answer}"
    );
}

#[tokio::test]
async fn dry_run_writes_are_answered_and_not_stored() {
    let fake = cluster(Setup::default()).await;
    let (code, answer) = raw(
        &fake,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/api?fieldManager=kube-mlops&dryRun=All",
        APPLY,
        &deployment(),
    )
    .await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["spec"]["replicas"], 1);
    assert!(!stored(&fake, &objects(&[deployment()])[0]).await);
    let mut invalid = deployment();
    invalid["spec"]["replicas"] = json!(-1);
    let (code, _) = raw(
        &fake,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/api?fieldManager=kube-mlops&dryRun=All",
        APPLY,
        &invalid,
    )
    .await;
    assert_eq!(code, 422, "a dry run is validated as a write is");
}

#[tokio::test]
async fn an_apply_that_changes_nothing_keeps_generation_and_resource_version() {
    let fake = cluster(Setup::default()).await;
    let mut resolver = Resolver::new(fake.client.clone());
    let first = apply_all(&mut resolver, objects(&[deployment()]), &OPTS)
        .await
        .expect("apply");
    let again = apply_all(&mut resolver, objects(&[deployment()]), &OPTS)
        .await
        .expect("re-apply");
    let meta = |o: &DynamicObject| (o.metadata.generation, o.metadata.resource_version.clone());
    assert_eq!(meta(&first[0].object), meta(&again[0].object));
}
