//! The fake's HTTP API where a client meets it beyond kubectl's usual
//! path: writes racing the controllers, what bumps `generation`, generated
//! names, body limits and media types, pods created on their own, logs,
//! and watches printed as Tables. Each asserts what a 1.32 API server does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_fake_api::{FakeCluster, Setup, cluster};
use serde_json::{Value, json};

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "reg/c:1"}]}}}})
}

async fn started() -> (FakeCluster, SocketAddr) {
    let fake = cluster(Setup::default()).await;
    let addr = fake.serve().await.expect("serve");
    fake.start_controller();
    (fake, addr)
}

/// One HTTP/1.1 request; the status code and the body (read to the end,
/// or its first line for a stream).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    first_line: bool,
) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).expect("write head");
    // Written beside the read: the server may answer, and stop reading,
    // before the end of a body it refuses.
    let mut writer = conn.try_clone().expect("clone");
    let body = body.to_vec();
    std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut reader = BufReader::new(conn);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line.trim().is_empty() {
            break;
        }
        chunked |= line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked");
    }
    let mut text = String::new();
    if first_line {
        if chunked {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
        }
        reader.read_line(&mut text).expect("first line");
    } else {
        let _ = reader.read_to_string(&mut text);
    }
    (code, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_racing_the_controllers_all_succeed() {
    let (fake, _) = started().await;
    let api: Api<Deployment> = Api::namespaced(fake.client.clone(), "default");
    api.patch(
        "race",
        &PatchParams::apply("first"),
        &Patch::Apply(deployment("race")),
    )
    .await
    .expect("create");
    let mut tasks = Vec::new();
    for m in 0..4 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "race", "annotations": {format!("m{m}"): i.to_string()}}});
                api.patch(
                    "race",
                    &PatchParams::apply(&format!("m{m}")),
                    &Patch::Apply(patch),
                )
                .await?;
            }
            Ok::<_, kube::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .expect("task")
            .expect("every apply succeeds, as the server retries");
    }
    let d = api.get("race").await.expect("get");
    let annotations = d.metadata.annotations.unwrap_or_default();
    for m in 0..4 {
        assert_eq!(
            annotations.get(&format!("m{m}")).map(String::as_str),
            Some("14")
        );
    }
}

#[tokio::test]
async fn only_a_spec_change_bumps_the_generation() {
    let fake = cluster(Setup::default()).await;
    let api: Api<Deployment> = Api::namespaced(fake.client.clone(), "default");
    let created: Deployment = serde_json::from_value(deployment("gen")).expect("deployment");
    api.create(&PostParams::default(), &created)
        .await
        .expect("create");
    let generation = |d: Deployment| d.metadata.generation;
    let labelled = api
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .expect("label");
    assert_eq!(generation(labelled), Some(1), "a label is metadata");
    let scaled = api
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale");
    assert_eq!(generation(scaled), Some(2));
}

#[tokio::test]
async fn a_generate_name_becomes_a_name_and_a_bare_pod_starts() {
    let (fake, _) = started().await;
    let pods: Api<Pod> = Api::namespaced(fake.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "gen-"},
        "spec": {"containers": [{"name": "c", "image": "reg/c:1"}]}}))
    .expect("pod");
    let made = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let name = made.metadata.name.clone().unwrap_or_default();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let mut running = None;
    for _ in 0..30 {
        let p = pods.get(&name).await.expect("get");
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            running = Some(p);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let running = running.expect("the kubelet starts a pod made on its own");
    let ip = running.status.and_then(|s| s.pod_ip).unwrap_or_default();
    assert!(ip.starts_with("10.244."), "{ip}");
    // Its log is empty, not missing; a pod that does not exist has none.
    assert_eq!(
        pods.logs(&name, &Default::default()).await.expect("logs"),
        ""
    );
    let missing = pods
        .logs("nope", &Default::default())
        .await
        .expect_err("no pod");
    assert!(
        format!("{missing}").contains("pods \"nope\" not found"),
        "{missing}"
    );
}

// Blocking HTTP below: the served fake needs a worker of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_limits_and_unknown_media_types_are_refused() {
    let (_fake, addr) = started().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let big = vec![b'x'; 3 * 1024 * 1024 + 10];
    let (code, body) = http(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        &big,
        false,
    );
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("Request entity too large: limit is 3145728"),
        "{body}"
    );

    let data = "y".repeat(1024 * 1024 + 1);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": data}});
    let (code, body) = http(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        cm.to_string().as_bytes(),
        false,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("Too long: must have at most 1048576 bytes"),
        "{body}"
    );

    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n";
    let (code, body) = http(
        addr,
        "POST",
        path,
        &[("content-type", "application/yaml")],
        yaml.as_bytes(),
        false,
    );
    assert_eq!(code, 201, "YAML is a body the server takes: {body}");

    let (code, body) = http(
        addr,
        "PATCH",
        &format!("{path}/from-yaml"),
        &[("content-type", "text/plain")],
        br#"{"data":{"k":"w"}}"#,
        false,
    );
    assert_eq!(code, 415, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_asked_for_tables_streams_tables() {
    let (fake, addr) = started().await;
    let api: Api<Deployment> = Api::namespaced(fake.client.clone(), "default");
    api.patch(
        "w",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("w")),
    )
    .await
    .expect("apply");
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (code, line) = http(
        addr,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=2",
        &[("accept", accept)],
        b"",
        true,
    );
    assert_eq!(code, 200);
    let event: Value = serde_json::from_str(line.trim()).expect("an event");
    assert_eq!(event["object"]["kind"], "Table", "{event}");
    assert_eq!(event["object"]["rows"][0]["cells"][0], "w", "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_store_nothing_and_subresource_writes_are_judged() {
    let (_fake, addr) = started().await;
    let json_type = [("content-type", "application/json")];
    let merge = [("content-type", "application/merge-patch+json")];
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let web = format!("{deployments}/web");
    let (code, body) = http(
        addr,
        "POST",
        deployments,
        &json_type,
        deployment("web").to_string().as_bytes(),
        false,
    );
    assert_eq!(code, 201, "{body}");
    let get = |path: &str| -> Value {
        let (code, body) = http(addr, "GET", path, &[], b"", false);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };

    // kubectl delete --dry-run=server puts dryRun in the DeleteOptions body.
    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]});
    let (code, body) = http(
        addr,
        "DELETE",
        &web,
        &json_type,
        options.to_string().as_bytes(),
        false,
    );
    assert_eq!(code, 200, "{body}");
    get(&web);

    // A dry-run scale answers the Scale it would write and writes nothing.
    let (code, body) = http(
        addr,
        "PATCH",
        &format!("{web}/scale?dryRun=All&fieldManager=kubectl-scale"),
        &merge,
        br#"{"spec":{"replicas":5}}"#,
        false,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""replicas":5"#), "{body}");
    let stored = get(&web);
    assert_eq!(stored["spec"]["replicas"], 1, "{stored}");
    assert!(!stored.to_string().contains("kubectl-scale"), "{stored}");
    let (code, body) = http(
        addr,
        "PATCH",
        &format!("{web}/scale"),
        &merge,
        br#"{"spec":{"replicas":-1}}"#,
        false,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("must be greater than or equal to 0"),
        "{body}"
    );

    // Subresources the kind does not have, and paths nobody serves: 404,
    // whatever the method, and the object is untouched.
    for path in [
        format!("{web}/bogus"),
        "/random".to_string(),
        format!("{web}/scale/x"),
        format!("{web}/a/b/c"),
    ] {
        for method in ["GET", "PATCH", "DELETE"] {
            let (code, body) = http(
                addr,
                method,
                &path,
                &merge,
                br#"{"spec":{"replicas":5}}"#,
                false,
            );
            assert_eq!(code, 404, "{method} {path}: {body}");
        }
    }
    assert_eq!(get(&web)["spec"]["replicas"], 1);
    // dryRun takes "All" only.
    let (code, body) = http(
        addr,
        "DELETE",
        &format!("{web}?dryRun=all"),
        &[],
        b"",
        false,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(r#"dryRun: Unsupported value"#)
            && body.contains(r#"supported values: \"All\""#),
        "{body}"
    );
    get(&web);
    // Scaling to the count it has writes nothing.
    let version = get(&web)["metadata"]["resourceVersion"].clone();
    let (code, body) = http(
        addr,
        "PATCH",
        &format!("{web}/scale"),
        &merge,
        br#"{"spec":{"replicas":1}}"#,
        false,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(&web)["metadata"]["resourceVersion"], version);

    // Through /status only the status is written, and it must be valid.
    let (code, body) = http(
        addr,
        "PATCH",
        &format!("{web}/status"),
        &merge,
        br#"{"status":{"replicas":"x"}}"#,
        false,
    );
    assert!((400..500).contains(&code), "{code} {body}");
    let (code, body) = http(
        addr,
        "PATCH",
        &format!("{web}/status"),
        &merge,
        br#"{"metadata":{"labels":{"z":"1"}},"spec":{"replicas":9},"status":{"observedGeneration":7}}"#,
        false,
    );
    assert_eq!(code, 200, "{body}");
    let stored = get(&web);
    assert!(stored["metadata"]["labels"].get("z").is_none(), "{stored}");
    assert_eq!(stored["spec"]["replicas"], 1, "{stored}");

    // An apply must name its field manager.
    let (code, body) = http(
        addr,
        "PATCH",
        &web,
        &[("content-type", "application/apply-patch+yaml")],
        deployment("web").to_string().as_bytes(),
        false,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("fieldManager: Required value: is required for apply patch"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_takes_over_what_client_side_apply_last_applied() {
    let (_fake, addr) = started().await;
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let config = |name: &str, x: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"x": x}})
    };
    // `kubectl apply` (client-side) creates with the annotation; another
    // tool creates without it.
    let mut csa = config("by-kubectl", "1");
    csa["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": config("by-kubectl", "1").to_string()});
    for (body, manager) in [
        (csa, "kubectl-client-side-apply"),
        (config("by-other", "1"), "other"),
    ] {
        let (code, text) = http(
            addr,
            "POST",
            &format!("{configmaps}?fieldManager={manager}"),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
            false,
        );
        assert_eq!(code, 201, "{text}");
    }
    let apply = |name: &str| {
        http(
            addr,
            "PATCH",
            &format!("{configmaps}/{name}?fieldManager=kubectl"),
            &[("content-type", "application/apply-patch+yaml")],
            config(name, "2").to_string().as_bytes(),
            false,
        )
    };
    let (code, body) = apply("by-kubectl");
    assert_eq!(code, 200, "the move to server-side apply: {body}");
    assert!(body.contains(r#""x":"2""#), "{body}");
    // Its last-applied annotation now says what was applied.
    let stored: Value = serde_json::from_str(&body).expect("JSON");
    let last: Value = serde_json::from_str(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON");
    assert_eq!(last["data"]["x"], "2", "{stored}");
    let (code, body) = apply("by-other");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(r#"conflict with \"other\""#), "{body}");
}
