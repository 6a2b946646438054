//! The `kube-engine` binary itself, through a kubeconfig, against the API
//! fake served over HTTP with its controller playing the Deployment
//! controller: the same process a user runs, end to end.

use std::process::Output;

use kube_fake_api::{Setup, cluster, kubeconfig};
use serde_json::Value;

const CONTEXT: &str = "kind-dev";

struct Engine {
    dir: tempfile::TempDir,
}

impl Engine {
    /// The fake served over HTTP with its controller, and an engine pointed at it.
    async fn served() -> (kube_fake_api::FakeCluster, Self) {
        let fake = cluster(Setup::default()).await;
        let addr = fake.serve().await.expect("serve");
        fake.start_controller();
        (fake, Self::new(addr))
    }

    /// A kubeconfig for the served fake and the fixture manifest, in a temporary directory.
    fn new(addr: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig(addr, CONTEXT))
            .expect("kubeconfig");
        std::fs::write(
            dir.path().join("app.yaml"),
            include_str!("fixtures/app.yaml"),
        )
        .expect("manifest");
        Self { dir }
    }

    /// `apply` of the fixture with the test image pinned.
    async fn apply(&self) -> Output {
        let manifest = self.manifest();
        self.run(&[
            "apply",
            "--filename",
            &manifest,
            "--image",
            "test-api=reg/test-api@sha256:aa",
            "--timeout",
            "20",
        ])
        .await
    }

    fn manifest(&self) -> String {
        self.dir
            .path()
            .join("app.yaml")
            .to_string_lossy()
            .to_string()
    }

    async fn run(&self, args: &[&str]) -> Output {
        let config = self.dir.path().join("kubeconfig");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_kube-engine"))
                .arg("--context")
                .arg(CONTEXT)
                .args(&args)
                .env("KUBECONFIG", config)
                .output()
                .expect("run kube-engine")
        })
        .await
        .expect("join")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_status_and_teardown_through_the_binary() {
    let (_fake, engine) = Engine::served().await;

    let out = engine.apply().await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for line in [
        "namespace/kube-mlops created",
        "service/test-api created",
        "deployment/test-api created",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in:\n{stdout}");
    }

    let out = engine.apply().await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.matches(" unchanged").count(), 3, "{stdout}");

    let out = engine.run(&["status", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json rows");
    let deployment = rows
        .iter()
        .find(|r| r["kind"] == "deployment")
        .expect("deployment row");
    assert_eq!(deployment["ready"], true);
    assert!(
        deployment["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1/1 available, image reg/test-api@sha256:aa")),
        "{deployment}"
    );

    let out = engine.run(&["teardown"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("deployment/kube-mlops/test-api deleted"),
        "{stdout}"
    );
    assert!(stdout.contains("namespace/kube-mlops deleted"), "{stdout}");

    let out = engine.run(&["status"]).await;
    assert_eq!(out.status.code(), Some(1), "nothing is deployed any more");
    assert!(
        text(&out.stdout)
            .contains("nothing labelled app.kubernetes.io/managed-by=kube-mlops is deployed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_error_is_reported_with_what_to_fix() {
    let fake = cluster(Setup::default()).await;
    let addr = fake.serve().await.expect("serve");
    let engine = Engine::new(addr);
    let manifest = engine.manifest();
    let out = engine
        .run(&["apply", "--filename", &manifest, "--image", "tset-api=x"])
        .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no container in the manifest uses image tset-api"),
        "{stderr}"
    );
    let out = engine
        .run(&["apply", "--filename", "/nonexistent.yaml"])
        .await;
    assert!(
        text(&out.stderr).contains("reading /nonexistent.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_relays_a_connection_to_the_pod_behind_the_service() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (fake, engine) = Engine::served().await;
    let out = engine.apply().await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The "pod": an echo server the fake's port-forward leads to.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let echo_addr = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    fake.backends
        .lock()
        .expect("backends")
        .insert("kube-mlops/test-api".into(), echo_addr);

    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr");
    let mut forward = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-engine"))
        .args([
            "--context",
            CONTEXT,
            "port-forward",
            "--namespace",
            "kube-mlops",
            "--service",
            "test-api",
        ])
        .arg("--local")
        .arg(local.to_string())
        .env("KUBECONFIG", engine.dir.path().join("kubeconfig"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start port-forward");
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = tokio::net::TcpStream::connect(local).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut conn = conn.expect("the port-forward listens");
    conn.write_all(b"ping through the port-forward")
        .await
        .expect("write");
    let mut got = vec![0u8; 29];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_exact(&mut got),
    )
    .await
    .expect("answer in time")
    .expect("read");
    assert_eq!(&got, b"ping through the port-forward");
    let _ = forward.start_kill();
    let out = forward.wait_with_output().await.expect("output");
    // The ReplicaSet's pod: `test-api-<pod-template-hash>-<suffix>`.
    let stdout = text(&out.stdout);
    let pod = stdout
        .split("(pod ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    assert!(
        stdout.contains("-> kube-mlops/test-api (pod test-api-") && pod.split('-').count() == 4,
        "{stdout}"
    );
}
