//! `cargo xtask deploy|status|teardown --target minikube` end to end: the
//! real xtask and kube-engine binaries and the real `kubectl kustomize`,
//! against the API fake served over HTTP (its controller completes rollouts)
//! and a fake `minikube` that records image loads and answers `service --url`
//! with the services this test runs locally, so the smoke tests call real
//! servers.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::net::TcpListener;

use cluster::{ambassador, engine, ingress};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube_fake_api::{Setup, kubeconfig};
use support::{Fakes, Result, text};

/// Loading an image archive into the node, as `minikube image load` and
/// `kind load image-archive` do: its reference (the archive's
/// `manifest.json` RepoTags) goes into the node's image list, which the
/// API fake's kubelet reads.
const LOAD: &str = r#"load_archive() {
  tag=$(tar -xOf "$1" manifest.json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')
  echo "$tag" >> "$FAKE_NODE_IMAGES"
}"#;

/// `minikube image load` loads; `minikube service --url` answers with the
/// services this test runs.
const MINIKUBE: &str = r#"case "$1" in
  service) eval "last=\${$#}"; var="FAKE_URL_$(echo "$last" | tr - _)"; eval "echo \$$var" ;;
  image) eval "last=\${$#}"; load_archive "$last" ;;
esac"#;

/// `kind load image-archive` loads.
const KIND: &str = r#"case "$1" in
  load) eval "last=\${$#}"; load_archive "$last" ;;
esac"#;

/// The registry the node pulls pinned images from (`deploy --images`).
const REACHABLE_REGISTRY: &str = "reg.example";

use support::free_port;

/// The served API fake with its controller, the fake tools, a settings file
/// and a kubeconfig whose only context is `context`.
struct Stage {
    rt: tokio::runtime::Runtime,
    fake: kube_fake_api::FakeCluster,
    tools: Fakes,
    env: Vec<(&'static str, String)>,
}

impl Stage {
    fn new(context: &str, tools: &[(&str, &str)], settings: &str) -> Result<Self> {
        Self::with(Setup::default(), context, tools, settings)
    }

    /// `setup` with the node modelled: it holds what the fake `minikube`
    /// and `kind` load, and pulls from [`REACHABLE_REGISTRY`].
    fn with(
        mut setup: Setup,
        context: &str,
        tools: &[(&str, &str)],
        settings: &str,
    ) -> Result<Self> {
        let rt = tokio::runtime::Runtime::new()?;
        let tools: Vec<(&str, String)> = tools
            .iter()
            .map(|(name, body)| (*name, format!("{LOAD}\n{body}")))
            .collect();
        let tools: Vec<(&str, &str)> = tools.iter().map(|(n, b)| (*n, b.as_str())).collect();
        let f = Fakes::new(&tools)?;
        let node_images = f.dir.path().join("node-images");
        std::fs::write(&node_images, "")?;
        setup.node = kube_fake_api::controllers::Node {
            images: Some(node_images.clone()),
            registries: vec![REACHABLE_REGISTRY.into()],
            architecture: setup.node.architecture.take(),
        };
        let (fake, addr) = kube_fake_api::run_on(&rt, setup)?;
        f.settings(settings)?;
        let config = f.dir.path().join("kubeconfig");
        std::fs::write(&config, kubeconfig(addr, context))?;
        let path = format!(
            "{}:{}",
            f.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let env = vec![
            ("PATH", path),
            ("KUBECONFIG", config.display().to_string()),
            ("KMLOPS_KUBE_ENGINE", engine()?.display().to_string()),
            ("FAKE_NODE_IMAGES", node_images.display().to_string()),
        ];
        Ok(Self {
            rt,
            fake,
            tools: f,
            env,
        })
    }

    /// The xtask with the stage's environment plus `extra`.
    fn xtask(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<(std::process::Output, Vec<String>)> {
        self.tools.xtask_with(args, &self.env, extra)
    }

    /// Where a port-forward to `namespace/pod` leads.
    fn backend(&self, pod: &str, addr: std::net::SocketAddr) -> Result {
        self.fake
            .backends
            .lock()
            .map_err(|_| "lock")?
            .insert(pod.to_string(), addr);
        Ok(())
    }

    fn deployments(&self) -> Result<Vec<Deployment>> {
        self.all::<Deployment>()
    }

    fn all<K>(&self) -> Result<Vec<K>>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Ok(self
            .rt
            .block_on(async {
                Api::<K>::all(self.fake.client.clone())
                    .list(&ListParams::default())
                    .await
            })?
            .items)
    }
}

#[test]
fn deploy_status_and_teardown_on_minikube_through_the_engine() -> Result {
    let (p1, p2, p3) = (free_port()?, free_port()?, free_port()?);
    let stage = Stage::new(
        "mlops",
        &[("minikube", MINIKUBE)],
        &format!(
            "[minikube]\nprofile = \"mlops\"\n\
             [services.test-api]\nport = {p1}\n[services.model-server]\nport = {p2}\n[services.iris-model]\nport = {p3}\n"
        ),
    )?;
    let urls = [
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
        format!("http://127.0.0.1:{p3}"),
    ];
    let env = [
        ("FAKE_URL_test_api", urls[0].as_str()),
        ("FAKE_URL_model_server", urls[1].as_str()),
        ("FAKE_URL_iris_model", urls[2].as_str()),
    ];
    let f = &stage;

    // The servers the smoke tests reach through `minikube service --url`.
    let (out, _) = f.xtask(&["deploy", "--target", "local"], &env)?;
    assert!(out.status.success(), "local deploy: {}", text(&out.stderr));

    let result = (|| -> Result {
        let (out, log) = f.xtask(&["deploy", "--target", "minikube"], &env)?;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(stdout.contains("namespace/kube-mlops created"), "{stdout}");
        assert!(stdout.contains("deployment/iris-model created"), "{stdout}");
        assert!(stdout.contains("Deployed to minikube:"), "{stdout}");
        let images = f.tools.dir.path().join("target/xtask/images");
        for image in ["test-api", "model-server"] {
            let load = format!(
                "minikube image load --profile mlops {}",
                images.join(format!("{image}.tar")).display()
            );
            assert!(log.contains(&load), "{load:?} not in {log:?}");
        }

        // What the cluster holds: our three Deployments, each on the image just built.
        let deployments = f.deployments()?;
        let mut images: Vec<(String, String)> = deployments
            .iter()
            .map(|d| {
                let image = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|s| s.containers[0].image.clone());
                (
                    d.metadata.name.clone().unwrap_or_default(),
                    image.unwrap_or_default(),
                )
            })
            .collect();
        images.sort();
        assert_eq!(images.len(), 3, "{images:?}");
        assert!(
            images[0].0 == "iris-model"
                && images[0]
                    .1
                    .starts_with("docker.io/kube-mlops/model-server:0.1.0-"),
            "{images:?}"
        );
        assert!(
            images[2].0 == "test-api"
                && images[2]
                    .1
                    .starts_with("docker.io/kube-mlops/test-api:0.1.0-"),
            "{images:?}"
        );

        // A second deploy changes nothing in the cluster.
        let (out, _) = f.xtask(&["deploy", "--target", "minikube"], &env)?;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            !stdout.contains(" created") && !stdout.contains(" configured"),
            "{stdout}"
        );

        // Someone scales by hand (`kubectl scale`: an update through the
        // scale subresource), taking spec.replicas: deploy stops on the
        // conflict and names the flag; with --force-conflicts it takes them
        // back, saying from whom.
        f.rt.block_on(async {
            Api::<Deployment>::namespaced(f.fake.client.clone(), "kube-mlops")
                .patch_scale(
                    "test-api",
                    &kube::api::PatchParams {
                        field_manager: Some("kubectl-scale".into()),
                        ..Default::default()
                    },
                    &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
                )
                .await
        })?;
        let (out, _) = f.xtask(&["deploy", "--target", "minikube"], &env)?;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(
                "conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1"
            ) && stderr.contains(".spec.replicas")
                && stderr.contains("--force-conflicts"),
            "{stderr}"
        );
        let (out, _) = f.xtask(
            &["deploy", "--target", "minikube", "--force-conflicts"],
            &env,
        )?;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains(
                "took over fields from another manager: conflict with \"kubectl-scale\" with subresource \"scale\""
            ),
            "{stdout}"
        );
        let replicas = f
            .deployments()?
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some("test-api"))
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas);
        assert_eq!(replicas, Some(1));
        let (out, _) = f.xtask(&["deploy", "--target", "local", "--force-conflicts"], &env)?;
        assert!(
            text(&out.stderr)
                .contains("--force-conflicts takes over fields on a Kubernetes target"),
            "{}",
            text(&out.stderr)
        );

        // A service whose table left the settings still runs there: status
        // lists it.
        let settings_path = f.tools.dir.path().join("xtask.toml");
        let settings = std::fs::read_to_string(&settings_path)?;
        std::fs::write(
            &settings_path,
            settings.replace(&format!("[services.iris-model]\nport = {p3}\n"), ""),
        )?;
        let (out, _) = f.xtask(&["status", "--target", "minikube"], &env)?;
        std::fs::write(&settings_path, &settings)?;
        let stdout = text(&out.stdout);
        let row = stdout
            .lines()
            .find(|l| l.starts_with("iris-model "))
            .ok_or_else(|| format!("no iris-model row: {stdout}"))?;
        assert!(row.contains("no longer in the settings"), "{row}");
        // And says where its URLs come from (minikube's driver decides).
        assert!(
            stdout.contains("minikube driver: ")
                && stdout.contains("service URLs from `minikube service --url`"),
            "{stdout}"
        );

        // Each pod template names its image's ID, so that a rebuilt image
        // under the same tag rolls out.
        for d in f.deployments()? {
            let ids = d
                .spec
                .and_then(|s| s.template.metadata)
                .and_then(|m| m.annotations)
                .and_then(|a| a.get("kube-mlops.dev/image-ids").cloned())
                .unwrap_or_default();
            assert!(ids.contains("=sha256:"), "{ids:?}");
        }

        // Prebuilt images pinned by digest: no build, no load; the pins run.
        let pins = f.tools.dir.path().join("build.json");
        let (d1, d2) = (
            format!("sha256:{}", "1".repeat(64)),
            format!("sha256:{}", "2".repeat(64)),
        );
        std::fs::write(
            &pins,
            format!(
                r#"{{"builds":[{{"imageName":"test-api","tag":"reg.example/acct/test-api:v1.0.0@{d1}"}},{{"imageName":"model-server","tag":"reg.example/acct/model-server:v1.0.0@{d2}"}}]}}"#
            ),
        )?;
        let pins_arg = pins.display().to_string();
        let (out, _) = f.xtask(
            &[
                "--dry-run",
                "deploy",
                "--target",
                "minikube",
                "--images",
                &pins_arg,
            ],
            &env,
        )?;
        let plan = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{plan}");
        assert!(
            !plan.contains("cargo build")
                && !plan.contains("cargo rustc")
                && !plan.contains("image load"),
            "{plan}"
        );
        assert!(
            plan.contains(&format!("--image test-api=reg.example/acct/test-api@{d1}")),
            "{plan}"
        );
        let loads = |log: &[String]| log.iter().filter(|l| l.contains("image load")).count();
        let (out, log) = f.xtask(
            &["deploy", "--target", "minikube", "--images", &pins_arg],
            &env,
        )?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(loads(&log), 0, "nothing loaded: {log:?}");
        let pinned: Vec<String> = f
            .deployments()?
            .iter()
            .filter_map(|d| {
                d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                    .image
                    .clone()
            })
            .collect();
        assert!(
            pinned.contains(&format!("reg.example/acct/test-api@{d1}")),
            "{pinned:?}"
        );
        assert!(
            pinned.contains(&format!("reg.example/acct/model-server@{d2}")),
            "{pinned:?}"
        );
        // The node pulls them (the overlay's `Never` is for loaded images):
        // with `Never`, the fake's kubelet answers ErrImageNeverPull.
        for d in f.deployments()? {
            let policy = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.containers[0].image_pull_policy.clone());
            assert_eq!(
                policy.as_deref(),
                Some("IfNotPresent"),
                "{:?}",
                d.metadata.name
            );
        }
        // `render` gives what deploy --images applied: the same Deployments
        // (pod templates) and Services.
        let (out, _) = f.xtask(
            &["render", "--target", "minikube", "--images", &pins_arg],
            &env,
        )?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rendered = yaml_documents(&text(&out.stdout))?;
        let of = |kind: &str| -> Vec<serde_json::Value> {
            rendered
                .iter()
                .filter(|o| o["kind"] == kind)
                .cloned()
                .collect()
        };
        let applied = f.deployments()?;
        assert_eq!(of("Deployment").len(), applied.len(), "{rendered:?}");
        // Compared once the API server's defaults are filled in, as a
        // cluster returns what it stores.
        for mut r in of("Deployment") {
            kube_fake_api::defaults::apply("Deployment", &mut r);
            let r: Deployment = serde_json::from_value(r)?;
            let a = applied
                .iter()
                .find(|d| d.metadata.name == r.metadata.name)
                .ok_or(format!("{:?} not applied", r.metadata.name))?;
            let pod = |d: &Deployment| d.spec.as_ref().and_then(|s| s.template.spec.clone());
            assert_eq!(
                serde_json::to_value(pod(&r))?,
                serde_json::to_value(pod(a))?,
                "{:?}",
                r.metadata.name
            );
            assert_eq!(r.metadata.labels, a.metadata.labels);
        }
        // The SeldonDeployments too: every predictor container pinned.
        let (out, _) = f.xtask(&["render", "--seldon", "--images", &pins_arg], &env)?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let seldon = yaml_documents(&text(&out.stdout))?;
        let images: Vec<&str> = seldon
            .iter()
            .filter(|o| o["kind"] == "SeldonDeployment")
            .flat_map(|o| o["spec"]["predictors"].as_array().into_iter().flatten())
            .flat_map(|p| p["componentSpecs"].as_array().into_iter().flatten())
            .flat_map(|c| c["spec"]["containers"].as_array().into_iter().flatten())
            .filter_map(|c| c["image"].as_str())
            .collect();
        assert!(!images.is_empty(), "{seldon:?}");
        for image in images {
            assert_eq!(image, format!("reg.example/acct/model-server@{d2}"));
        }
        let services = f.all::<k8s_openapi::api::core::v1::Service>()?;
        for mut r in of("Service") {
            kube_fake_api::defaults::apply("Service", &mut r);
            let r: k8s_openapi::api::core::v1::Service = serde_json::from_value(r)?;
            let a = services
                .iter()
                .find(|s| s.metadata.name == r.metadata.name)
                .ok_or(format!("{:?} not applied", r.metadata.name))?;
            let ports = |s: &k8s_openapi::api::core::v1::Service| {
                s.spec
                    .as_ref()
                    .map(|p| (p.ports.clone(), p.selector.clone()))
            };
            assert_eq!(ports(&r), ports(a), "{:?}", r.metadata.name);
        }
        let (out, _) = f.xtask(
            &["deploy", "--target", "local", "--images", &pins_arg],
            &env,
        )?;
        assert!(
            text(&out.stderr).contains("Kubernetes target"),
            "{}",
            text(&out.stderr)
        );

        let (out, _) = f.xtask(&["status", "--target", "minikube"], &env)?;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(stdout.contains("1/1 available"), "{stdout}");

        // The services' NetworkPolicies and the LoadBalancer's went in too.
        let policies = f.all::<k8s_openapi::api::networking::v1::NetworkPolicy>()?;
        assert_eq!(policies.len(), 4, "{policies:?}");

        let (out, _) = f.xtask(&["teardown", "--target", "minikube"], &env)?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(f.deployments()?.is_empty(), "teardown left Deployments");
        assert!(
            f.all::<k8s_openapi::api::networking::v1::NetworkPolicy>()?
                .is_empty(),
            "teardown left NetworkPolicies"
        );
        assert!(
            !f.fake
                .namespaces
                .lock()
                .map_err(|_| "lock")?
                .contains_key("kube-mlops"),
            "our namespace is gone"
        );

        let (out, _) = f.xtask(&["status", "--target", "minikube"], &env)?;
        assert_eq!(
            out.status.code(),
            Some(1),
            "nothing is deployed: {}",
            text(&out.stdout)
        );
        Ok(())
    })();
    let (out, _) = f.xtask(&["teardown", "--target", "local"], &env)?;
    assert!(
        out.status.success(),
        "local teardown: {}",
        text(&out.stderr)
    );
    result
}

#[test]
fn kind_refuses_to_forward_to_a_port_something_else_answers_on() -> Result {
    // Something else holds the test API's port (another target's server, say).
    let taken = TcpListener::bind(("127.0.0.1", 0))?;
    let port = taken.local_addr()?.port();
    let f = Stage::new(
        "kind-dev",
        &[("kind", KIND)],
        &format!("[kind]\ncluster = \"dev\"\n[services.test-api]\nport = {port}\n"),
    )?;
    let (out, log) = f.xtask(&["deploy", "--target", "kind", "test-api"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let archive = f.tools.dir.path().join("target/xtask/images/test-api.tar");
    assert_eq!(
        log,
        [format!(
            "kind load image-archive --name dev {}",
            archive.display()
        )]
    );
    assert!(
        stderr.contains(&format!(
            "port {port} on 127.0.0.1 is in use, so kube-mlops/test-api cannot be forwarded there"
        )),
        "{stderr}"
    );
    // Only the selected service was applied.
    let names: Vec<String> = f
        .deployments()?
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(names, ["test-api"]);
    drop(taken);
    Ok(())
}

/// Service processes that stand in for the pods; killed when dropped.
struct Pods(Vec<std::process::Child>);

impl Pods {
    /// Start `service`'s release binary (built by `xtask build`) on a free port.
    fn start(&mut self, stage: &Stage, service: &str, model: &str) -> Result<std::net::SocketAddr> {
        self.start_with(stage, service, &[("MODEL", model)])
    }

    /// The same with the pod's environment `env`.
    fn start_with(
        &mut self,
        stage: &Stage,
        service: &str,
        env: &[(&str, &str)],
    ) -> Result<std::net::SocketAddr> {
        let (out, _) = stage.xtask(&["build"], &[])?;
        let built = text(&out.stdout);
        let binary = built
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{service}\t")))
            .ok_or_else(|| {
                format!(
                    "no {service} in `xtask build` output: {built}{}",
                    text(&out.stderr)
                )
            })?;
        let port = free_port()?;
        let child = std::process::Command::new(binary)
            .env("PORT", port.to_string())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        self.0.push(child);
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(addr);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(format!("{service} did not listen on {addr}").into())
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn deploy_on_kind_reaches_the_pods_through_the_engines_port_forwards() -> Result {
    let (p1, p2, p3) = (free_port()?, free_port()?, free_port()?);
    let stage = Stage::new(
        "kind-dev",
        &[("kind", KIND)],
        &format!(
            "[kind]\ncluster = \"dev\"\n\
             [services.test-api]\nport = {p1}\n[services.model-server]\nport = {p2}\n[services.iris-model]\nport = {p3}\n"
        ),
    )?;
    // The release binaries, run as the pods would run them, behind the fake's port-forward.
    let mut pods = Pods(Vec::new());
    for (deployment, model) in [
        ("test-api", ""),
        ("model-server", "identity"),
        ("iris-model", "iris"),
    ] {
        let addr = pods.start(&stage, deployment, model)?;
        stage.backend(&format!("kube-mlops/{deployment}"), addr)?;
    }

    let result = (|| -> Result {
        let (out, log) = stage.xtask(&["deploy", "--target", "kind"], &[])?;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            log.iter()
                .all(|l| l.starts_with("kind load image-archive --name dev ")),
            "{log:?}"
        );
        for (name, port) in [("test-api", p1), ("model-server", p2), ("iris-model", p3)] {
            assert!(
                stdout.contains(&format!("{name:<14} http://127.0.0.1:{port}")),
                "{stdout}"
            );
        }
        // The forwards outlive the deploy and answer like the pods.
        let (status, body) = http_get(&format!("http://127.0.0.1:{p1}/test_api"))?;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("you've reached"), "{body}");

        // A second deploy reuses the running forwards.
        let (out, _) = stage.xtask(&["deploy", "--target", "kind"], &[])?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("started `"),
            "no new forward: {}",
            text(&out.stderr)
        );

        let (out, _) = stage.xtask(&["teardown", "--target", "kind"], &[])?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(stage.deployments()?.is_empty());
        // The forwards are stopped: their ports are free again.
        std::thread::sleep(std::time::Duration::from_millis(300));
        for port in [p1, p2, p3] {
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} still held"
            );
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = stage.xtask(&["teardown", "--target", "kind"], &[]);
    }
    result
}

#[test]
fn nodes_of_another_cpu_get_images_built_for_it_or_say_what_to_install() -> Result {
    // The fake's node reports the CPU this host is not, as an arm64 kind
    // cluster (or GKE's t2a nodes) does to an amd64 laptop.
    let (other, std) = if std::env::consts::ARCH == "aarch64" {
        ("amd64", "x86_64-unknown-linux-musl")
    } else {
        ("arm64", "aarch64-unknown-linux-musl")
    };
    let mut setup = Setup::default();
    setup.node.architecture = Some(other.into());
    let port = free_port()?;
    let stage = Stage::with(
        setup,
        "kind-dev",
        &[("kind", KIND)],
        &format!("[kind]\ncluster = \"dev\"\n[services.test-api]\nport = {port}\n"),
    )?;
    let (out, log) = stage.xtask(&["deploy", "--target", "kind"], &[])?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("kind's machines run linux/{other}")),
        "{stderr}"
    );
    // This machine has no musl std for that CPU (only its own toolchain's
    // std is installed here): the command that installs it is named.
    assert!(
        stderr.contains(&format!(
            "linux/{other} binaries cannot be built on this host (linux/{}) yet: run `rustup \
             target add {std}`",
            std::env::consts::ARCH
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("==> building"),
        "nothing is built: {stderr}"
    );
    assert!(log.is_empty(), "nothing is loaded: {log:?}");
    assert!(stage.deployments()?.is_empty());

    // A dry run asks the nodes too, and lists it as what would stop a
    // real run.
    let (out, _) = stage.xtask(&["--dry-run", "deploy", "--target", "kind"], &[])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "would stop here: kind's machines run linux/{other}: linux/{other} binaries cannot"
        )),
        "{stdout}"
    );

    // --platform this host's own, which the nodes do not run: their pods
    // would die with `exec format error`, so a real run stops, naming both.
    let own = if other == "arm64" { "amd64" } else { "arm64" };
    let (out, _) = stage.xtask(
        &[
            "--dry-run",
            "deploy",
            "--target",
            "kind",
            "--platform",
            &format!("linux/{own}"),
        ],
        &[],
    )?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "would stop here: kind's machines run linux/{other}, not linux/{own} (--platform)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("kind load image-archive"), "{stdout}");
    Ok(())
}

/// A GET: status and body, 4xx/5xx included.
fn http_get(url: &str) -> Result<(u16, String)> {
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(10))
        .send()?;
    Ok((resp.status().as_u16(), resp.text()?))
}

#[test]
fn deploy_seldon_on_kind_calls_the_model_through_the_ingress_port_forward() -> Result {
    let local = free_port()?;
    let stage = Stage::with(
        Setup {
            seldon_installed: true,
            objects: ambassador(),
            ..Setup::default()
        },
        "kind-dev",
        &[("kind", KIND)],
        &format!(
            "[kind]\ncluster = \"dev\"\n[seldon]\nlocal_port = {local}\n\
             [services.test-api]\n[services.model-server]\n[services.iris-model]\n"
        ),
    )?;
    let mut pods = Pods(Vec::new());
    let identity = pods.start(&stage, "model-server", "identity")?;
    let iris = pods.start(&stage, "iris-model", "iris")?;
    let ingress = ingress(vec![
        ("/seldon/seldon/seldon-test-model".into(), identity),
        ("/seldon/seldon/seldon-iris-model".into(), iris),
    ])?;
    stage.backend("ambassador/ambassador-0", ingress)?;

    let result = (|| -> Result {
        let (out, _) = stage.xtask(&["deploy", "--seldon", "--target", "kind"], &[])?;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(
            stdout.contains("seldondeployment/seldon-test-model created"),
            "{stdout}"
        );
        assert!(
            stdout.contains("seldondeployment/seldon-test-model ready")
                || stderr.contains("seldondeployment/seldon-test-model ready"),
            "{stdout}{stderr}"
        );
        let url = format!(
            "http://127.0.0.1:{local}/seldon/seldon/seldon-test-model/api/v1.0/predictions"
        );
        assert!(stderr.contains(&format!("✓ POST {url}")), "{stderr}");
        assert!(
            stderr.contains("3 of 3 requests satisfied the contract"),
            "{stderr}"
        );
        assert!(stdout.contains(&url), "{stdout}");
        let (out, _) = stage.xtask(&["teardown", "--seldon", "--target", "kind"], &[])?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !stage
                .fake
                .namespaces
                .lock()
                .map_err(|_| "lock")?
                .contains_key("seldon"),
            "the seldon namespace is gone"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            TcpListener::bind(("127.0.0.1", local)).is_ok(),
            "the ingress forward is stopped"
        );
        Ok(())
    })();
    if result.is_err() {
        let _ = stage.xtask(&["teardown", "--seldon", "--target", "kind"], &[]);
    }
    result
}

/// The wine pipeline as skl2onnx writes it.
const WINE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/model-server/tests/exporters/wine-pipeline.onnx"
);

/// The wine pipeline's answers, with the class names given to `model add`.
fn answers_like_scikit_learn(url: &str) -> Result {
    let answer = support::answers_like_scikit_learn(url)?;
    assert_eq!(
        answer["data"]["names"],
        serde_json::json!(["barolo", "grignolino", "barbera"])
    );
    Ok(())
}

#[test]
fn a_model_added_with_model_add_deploys_on_kind_and_as_a_seldon_deployment() -> Result {
    let (api_port, wine_port, local) = (free_port()?, free_port()?, free_port()?);
    let stage = Stage::with(
        Setup {
            seldon_installed: true,
            objects: ambassador(),
            ..Setup::default()
        },
        "kind-dev",
        &[("kind", KIND)],
        &format!(
            "[kind]\ncluster = \"dev\"\n[seldon]\nlocal_port = {local}\n\
             [services.test-api]\nport = {api_port}\n"
        ),
    )?;
    let port = wine_port.to_string();
    let (out, _) = stage.xtask(
        &[
            "model",
            "add",
            "wine",
            "--onnx",
            WINE,
            "--port",
            &port,
            "--class-names",
            "barolo,grignolino,barbera",
        ],
        &[],
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = stage.tools.dir.path();
    assert!(dir.join("models/wine.onnx").is_file());
    assert!(dir.join("deploy/base/wine.yaml").is_file());
    let settings = std::fs::read_to_string(dir.join("xtask.toml"))?;
    assert!(
        settings.contains("[services.wine]\n# wine-pipeline.onnx"),
        "{settings}"
    );

    // The model server as the wine pod runs it: from the image's path.
    let mut pods = Pods(Vec::new());
    let model = dir.join("models/wine.onnx");
    let pod = pods.start_with(
        &stage,
        "wine",
        &[
            ("MODEL", "onnx"),
            ("MODEL_PATH", model.to_str().ok_or("path")?),
            ("CLASS_NAMES", "barolo,grignolino,barbera"),
        ],
    )?;
    stage.backend("kube-mlops/wine", pod)?;
    let ingress = ingress(vec![("/seldon/seldon/seldon-wine".into(), pod)])?;
    stage.backend("ambassador/ambassador-0", ingress)?;

    let result = (|| -> Result {
        let (out, log) = stage.xtask(&["deploy", "--target", "kind", "wine"], &[])?;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let archive = dir.join("target/xtask/images/wine.tar");
        assert_eq!(
            log.iter()
                .filter(|l| l.starts_with("kind "))
                .collect::<Vec<_>>(),
            [&format!(
                "kind load image-archive --name dev {}",
                archive.display()
            )]
        );
        let wine = stage
            .deployments()?
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some("wine"))
            .ok_or("no wine Deployment")?;
        let container = &wine
            .spec
            .ok_or("spec")?
            .template
            .spec
            .ok_or("pod")?
            .containers[0];
        assert!(
            container
                .image
                .as_deref()
                .is_some_and(|i| i.contains("/wine:")),
            "{:?}",
            container.image
        );
        answers_like_scikit_learn(&format!("http://127.0.0.1:{wine_port}/predict"))?;

        let (out, _) = stage.xtask(&["deploy", "--seldon", "--target", "kind"], &[])?;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(
            stdout.contains("seldondeployment/seldon-wine created"),
            "{stdout}"
        );
        assert!(
            stderr.contains("3 of 3 requests satisfied the contract"),
            "{stderr}"
        );
        answers_like_scikit_learn(&format!(
            "http://127.0.0.1:{local}/seldon/seldon/seldon-wine/api/v1.0/predictions"
        ))?;

        for extra in [&["--seldon"][..], &[]] {
            let mut args = vec!["teardown", "--target", "kind"];
            args.extend_from_slice(extra);
            let (out, _) = stage.xtask(&args, &[])?;
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        assert!(stage.deployments()?.is_empty(), "teardown removes it");
        Ok(())
    })();
    if result.is_err() {
        let _ = stage.xtask(&["teardown", "--seldon", "--target", "kind"], &[]);
        let _ = stage.xtask(&["teardown", "--target", "kind"], &[]);
    }
    result
}

/// The objects of a multi-document YAML stream.
fn yaml_documents(text: &str) -> Result<Vec<serde_json::Value>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// gcloud as the GKE preflight asks it: an account, the Kubernetes Engine API.
const GCLOUD: &str = r#"case "$*" in
  "config get-value account") echo dev@example.com ;;
  services*) echo container.googleapis.com ;;
  *describe*) echo "RUNNING 3 1.32.4-gke.100" ;;
esac"#;

/// GKE reports a LoadBalancer's external IP before its forwarding rules
/// carry traffic: `deploy --target gke` waits until the service answers
/// through it (up to `kubernetes.address_timeout_secs`) instead of failing
/// its smoke test on the first refused connection. Here the API fake's
/// cloud gives the address after a second, and the service behind it
/// starts answering some seconds later.
#[test]
fn deploy_on_gke_waits_until_the_load_balancer_carries_traffic() -> Result {
    let port = free_port()?;
    let stage = Stage::with(
        Setup {
            load_balancer: Some(("127.0.0.1".into(), std::time::Duration::from_secs(1))),
            ..Setup::default()
        },
        "gke_proj-1_europe-west1-b_k8s-test-cluster",
        &[("gcloud", GCLOUD)],
        &format!(
            "{}[services.test-api]\nport = {port}\n[kubernetes]\naddress_timeout_secs = 90\n",
            support::CLUSTERS
        ),
    )?;
    let pins = stage.tools.dir.path().join("build.json");
    std::fs::write(
        &pins,
        format!(
            r#"{{"builds":[{{"imageName":"test-api","tag":"{REACHABLE_REGISTRY}/acct/test-api:v1.0.0@sha256:{}"}}]}}"#,
            "3".repeat(64)
        ),
    )?;
    let pins = pins.display().to_string();
    // The service starts answering at the address some seconds after it
    // is given (the local target serves it on the same port).
    let late = std::thread::scope(
        |scope| -> Result<(std::process::Output, std::process::Output)> {
            let server = scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_secs(6));
                stage
                    .xtask(&["deploy", "--target", "local", "test-api"], &[])
                    .map(|(out, _)| out)
                    .map_err(|e| e.to_string())
            });
            let (gke, _) = stage.xtask(
                &["deploy", "--target", "gke", "--images", &pins, "test-api"],
                &[],
            )?;
            let local = server.join().map_err(|_| "the local deploy panicked")??;
            Ok((gke, local))
        },
    );
    let _ = stage.xtask(&["teardown", "--target", "local"], &[]);
    let (gke, local) = late?;
    assert!(local.status.success(), "local: {}", text(&local.stderr));
    let stderr = text(&gke.stderr);
    assert!(gke.status.success(), "{}{stderr}", text(&gke.stdout));
    support::in_order(
        &stderr,
        &[
            &format!("wait until http://127.0.0.1:{port} answers through the load balancer"),
            &format!("✓ http://127.0.0.1:{port} answers through the load balancer"),
            "smoke test",
        ],
    );
    assert!(
        text(&gke.stdout).contains(&format!("test-api       http://127.0.0.1:{port}")),
        "{}",
        text(&gke.stdout)
    );
    Ok(())
}

/// Pushes a one-layer image for `linux/<arch>` (OCI's name) to
/// `registry/repository:v1` with skopeo, from an OCI layout made here;
/// returns `repository:v1@digest` as a pins file names it.
fn push_image_for(registry: &str, repository: &str, arch: &str) -> Result<String> {
    use sha2::Digest;
    let sha = |b: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(b));
    let layout = tempfile::tempdir()?;
    let blobs = layout.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let blob = |bytes: &[u8]| -> Result<(String, usize)> {
        let digest = sha(bytes);
        std::fs::write(blobs.join(&digest["sha256:".len()..]), bytes)?;
        Ok((digest, bytes.len()))
    };
    // An empty tar: two zero blocks.
    let (layer, layer_size) = blob(&[0u8; 1024])?;
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]}, "config": {},
    });
    let (config, config_size) = blob(&serde_json::to_vec(&config)?)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = blob(&serde_json::to_vec(&manifest)?)?;
    std::fs::write(
        layout.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
    });
    std::fs::write(
        layout.path().join("index.json"),
        serde_json::to_vec(&index)?,
    )?;
    let digest_file = layout.path().join("digest");
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{registry}/{repository}:v1"))
        .output()?;
    if !out.status.success() {
        return Err(format!("skopeo copy: {}", text(&out.stderr)).into());
    }
    let digest = std::fs::read_to_string(digest_file)?;
    Ok(format!("{registry}/{repository}:v1@{}", digest.trim()))
}

#[test]
fn pinned_images_of_another_platform_are_refused_before_anything_is_applied() -> Result {
    let Ok(registry) = std::env::var("KMLOPS_TEST_REGISTRY") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs KMLOPS_TEST_REGISTRY"
        );
        eprintln!("SKIPPED: KMLOPS_TEST_REGISTRY is not set (.ci/container-stack.sh)");
        return Ok(());
    };
    // kind's nodes run arm64; one pinned image is amd64's, one arm64's.
    let mut setup = Setup::default();
    setup.node.architecture = Some("arm64".into());
    let port = free_port()?;
    let stage = Stage::with(
        setup,
        "kind-dev",
        &[("kind", KIND)],
        &format!("[kind]\ncluster = \"dev\"\n[services.test-api]\nport = {port}\n"),
    )?;
    let repository = format!("kmlops-pins-{}/test-api", std::process::id());
    let pins = |tag: String, name: &str| -> Result<String> {
        let file = stage.tools.dir.path().join(name);
        std::fs::write(
            &file,
            serde_json::json!({"builds": [{"imageName": "test-api", "tag": tag}]}).to_string(),
        )?;
        Ok(file.display().to_string())
    };
    let amd64 = push_image_for(&registry, &repository, "amd64")?;
    let (out, log) = stage.xtask(
        &[
            "deploy",
            "--target",
            "kind",
            "--images",
            &pins(amd64.clone(), "amd64.json")?,
        ],
        &[],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let pinned = amd64.replace(":v1@", "@");
    assert!(
        stderr.contains(&format!(
            "test-api is pinned to {pinned}, an image for linux/amd64; kind's machines run \
             linux/arm64: its pods would die with `exec format error`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("image push --platform linux/arm64"),
        "{stderr}"
    );
    assert!(log.is_empty(), "nothing is loaded: {log:?}");
    assert!(stage.deployments()?.is_empty(), "nothing is applied");

    // An arm64 image passes the check (a dry run: the fake runs no pods).
    let arm64 = push_image_for(&registry, &repository, "arm64")?;
    let (out, _) = stage.xtask(
        &[
            "--dry-run",
            "deploy",
            "--target",
            "kind",
            "--images",
            &pins(arm64, "arm64.json")?,
        ],
        &[],
    )?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("would stop here"), "{stdout}");
    assert!(
        stdout.contains("no build: 1 image(s) pinned by digest"),
        "{stdout}"
    );

    // A digest the registry does not have: the nodes could not pull it.
    let missing = format!("{registry}/{repository}:v1@sha256:{}", "0".repeat(64));
    let (out, _) = stage.xtask(
        &[
            "--dry-run",
            "deploy",
            "--target",
            "kind",
            "--images",
            &pins(missing, "missing.json")?,
        ],
        &[],
    )?;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("which its registry does not serve: its pods would not start"),
        "{stdout}"
    );
    Ok(())
}
