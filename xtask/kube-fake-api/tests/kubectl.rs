//! The real `kubectl` against the API fake run as its own process
//! (`kube-fake-api --listen 127.0.0.1:0 --kubeconfig FILE`): discovery,
//! server-side apply with server-side field validation, get, label, delete,
//! and the refusals a real API server gives, as kubectl prints them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The fake's process, stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Served {
    fn start(extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-fake-api"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr: std::net::SocketAddr = line.trim().parse()?;
        assert!(addr.port() != 0, "{line}");
        Ok(Self {
            child,
            kubeconfig,
            dir,
        })
    }

    fn kubectl(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("kubectl (it must be installed for this test): {e}"))?;
        Ok(out)
    }

    fn file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Whether the Kubernetes schemas are there for `what`; CI must have them,
/// elsewhere the part is skipped, saying so.
fn schemas(what: &str) -> bool {
    if kube_fake_api::schema::available() {
        return true;
    }
    let why = format!("{} is not set", kube_fake_api::schema::SCHEMAS_ENV);
    assert!(std::env::var_os("CI").is_none(), "CI needs {why}");
    eprintln!("SKIPPED {what}: {why}");
    false
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {app: api}}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: reg/api:1}]}
";

#[test]
fn kubectl_discovers_applies_gets_labels_and_deletes() -> Result {
    let fake = Served::start(&[])?;

    // The health endpoint the xtask's API wait reads.
    assert_eq!(ok(&fake.kubectl(&["get", "--raw", "/readyz"])?), "ok");
    let version = ok(&fake.kubectl(&["version", "-o", "json"])?);
    let version: serde_json::Value = serde_json::from_str(&version)?;
    assert_eq!(version["serverVersion"]["minor"], "32", "{version}");

    let file = path_arg(&fake.file("api.yaml", DEPLOYMENT)?);
    let applied = ok(&fake.kubectl(&["apply", "--server-side", "-f", &file])?);
    assert_eq!(applied.trim(), "deployment.apps/api serverside-applied");
    let again = ok(&fake.kubectl(&["apply", "--server-side", "-f", &file])?);
    assert_eq!(again.trim(), "deployment.apps/api serverside-applied");

    let names = ok(&fake.kubectl(&["get", "deployments", "-o", "name"])?);
    assert_eq!(names.trim(), "deployment.apps/api");
    let got = ok(&fake.kubectl(&["get", "deployment", "api", "-o", "json"])?);
    let got: serde_json::Value = serde_json::from_str(&got)?;
    assert_eq!(got["metadata"]["generation"], 1, "a no-op apply: {got}");

    let ns = path_arg(&fake.file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: locked}\n",
    )?);
    ok(&fake.kubectl(&["apply", "--server-side", "-f", &ns])?);
    // Typed writes come as protobuf, which the fake does not decode: it says so.
    let created = fake.kubectl(&["create", "namespace", "other"])?;
    assert!(!created.status.success());
    assert!(
        text(&created.stderr).contains("decodes JSON only"),
        "{}",
        text(&created.stderr)
    );
    ok(&fake.kubectl(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ])?);
    let ns = ok(&fake.kubectl(&["get", "namespace", "locked", "-o", "json"])?);
    let ns: serde_json::Value = serde_json::from_str(&ns)?;
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "locked",
        "{ns}"
    );
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "{ns}"
    );

    ok(&fake.kubectl(&["delete", "deployment", "api", "--wait=false"])?);
    let gone = fake.kubectl(&["get", "deployment", "api"])?;
    assert!(!gone.status.success());
    assert!(
        text(&gone.stderr).contains("NotFound"),
        "{}",
        text(&gone.stderr)
    );
    Ok(())
}

#[test]
fn kubectl_rollout_status_follows_the_controller_and_delete_waits() -> Result {
    let fake = Served::start(&[])?;
    let file = path_arg(&fake.file("api.yaml", DEPLOYMENT)?);
    ok(&fake.kubectl(&["apply", "--server-side", "-f", &file])?);
    let status = ok(&fake.kubectl(&["rollout", "status", "deployment/api", "--timeout=30s"])?);
    assert!(
        status.contains("deployment \"api\" successfully rolled out"),
        "{status}"
    );
    let deleted = ok(&fake.kubectl(&[
        "delete",
        "deployment",
        "api",
        "--wait=true",
        "--timeout=30s",
    ])?);
    assert!(
        deleted.contains("deployment.apps \"api\" deleted"),
        "{deleted}"
    );
    Ok(())
}

#[test]
fn kubectl_prints_the_refusals_of_a_real_api_server() -> Result {
    let fake = Served::start(&[])?;

    let mismatched = DEPLOYMENT.replace("matchLabels: {app: api}", "matchLabels: {app: web}");
    let file = path_arg(&fake.file("bad.yaml", &mismatched)?);
    let out = fake.kubectl(&["apply", "--server-side", "-f", &file])?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    // kubectl words a 422 from its details, as it does a real server's.
    assert!(
        stderr.contains("The Deployment \"api\" is invalid")
            && stderr.contains("`selector` does not match template `labels`"),
        "{stderr}"
    );

    let elsewhere = DEPLOYMENT.replace(
        "metadata: {name: api,",
        "metadata: {name: api, namespace: nowhere,",
    );
    let file = path_arg(&fake.file("elsewhere.yaml", &elsewhere)?);
    let out = fake.kubectl(&["apply", "--server-side", "-f", &file])?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("namespaces \"nowhere\" not found"),
        "{stderr}"
    );

    // A negative request and a pull policy that does not exist.
    let odd = DEPLOYMENT.replace(
        "image: reg/api:1}",
        "image: reg/api:1, imagePullPolicy: Sometimes, resources: {requests: {memory: \"-1\"}}}",
    );
    let file = path_arg(&fake.file("odd.yaml", &odd)?);
    let out = fake.kubectl(&["apply", "--server-side", "-f", &file])?;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("imagePullPolicy: Unsupported value: \"Sometimes\"")
            && stderr.contains("resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0"),
        "{stderr}"
    );

    // Nothing refused was stored.
    let listed = ok(&fake.kubectl(&["get", "deployments", "-A", "-o", "name"])?);
    assert_eq!(listed.trim(), "", "{listed}");
    Ok(())
}

#[test]
fn a_bad_listen_address_is_refused_with_the_reason() -> Result {
    let dir = tempfile::tempdir()?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-fake-api"))
        .args(["--listen", &addr, "--kubeconfig"])
        .arg(dir.path().join("kubeconfig"))
        .output()?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

/// Server-side apply's field ownership as kubectl meets it: `kubectl
/// scale` writes through the scale subresource and owns `spec.replicas`,
/// so an apply of another replica count conflicts with it (and one that
/// leaves replicas out does not); `--force-conflicts` takes it back; a
/// strategic merge patch merges containers by name.
#[test]
fn kubectl_scale_owns_replicas_and_a_later_apply_conflicts() -> Result {
    let fake = Served::start(&[])?;
    let with_replicas = DEPLOYMENT.replace("spec:\n  selector", "spec:\n  replicas: 1\n  selector");
    let file = path_arg(&fake.file("api.yaml", &with_replicas)?);
    let apply = |extra: &[&str]| -> Result<Output> {
        let mut args = vec![
            "apply",
            "--server-side",
            "--field-manager=kube-mlops",
            "-f",
            &file,
        ];
        args.extend_from_slice(extra);
        fake.kubectl(&args)
    };
    ok(&apply(&[])?);

    let scaled = ok(&fake.kubectl(&["scale", "deployment/api", "--replicas=3"])?);
    assert_eq!(scaled.trim(), "deployment.apps/api scaled");
    let scale = ok(&fake.kubectl(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/api/scale",
    ])?);
    let scale: serde_json::Value = serde_json::from_str(&scale)?;
    assert_eq!(scale["spec"]["replicas"], 3, "{scale}");

    let refused = apply(&[])?;
    assert!(
        !refused.status.success(),
        "an apply of replicas 1 must conflict"
    );
    let stderr = text(&refused.stderr);
    eprintln!("{stderr}");
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"kubectl")
            && stderr.contains("with subresource \"scale\" using apps/v1")
            && stderr.contains(": .spec.replicas"),
        "{stderr}"
    );

    // Left out of the configuration, replicas stays with kubectl scale.
    let without = path_arg(&fake.file("api-without-replicas.yaml", DEPLOYMENT)?);
    ok(&fake.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=kube-mlops",
        "-f",
        &without,
    ])?);
    let got: serde_json::Value = serde_json::from_str(&ok(&fake.kubectl(&[
        "get",
        "deployment",
        "api",
        "-o",
        "json",
    ])?))?;
    assert_eq!(got["spec"]["replicas"], 3, "{got}");

    ok(&apply(&["--force-conflicts"])?);
    let got: serde_json::Value = serde_json::from_str(&ok(&fake.kubectl(&[
        "get",
        "deployment",
        "api",
        "-o",
        "json",
    ])?))?;
    assert_eq!(got["spec"]["replicas"], 1, "{got}");

    // A strategic merge patch adds a container beside ours, by name (the
    // merge key comes from the schemas).
    if !schemas("the strategic merge patch") {
        return Ok(());
    }
    ok(&fake.kubectl(&[
        "patch",
        "deployment",
        "api",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"reg/side:1"}]}}}}"#,
    ])?);
    let got: serde_json::Value = serde_json::from_str(&ok(&fake.kubectl(&[
        "get",
        "deployment",
        "api",
        "-o",
        "json",
    ])?))?;
    let names: Vec<&str> = got["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["api", "side"], "{got}");
    Ok(())
}

const SELDON_DEPLOYMENT: &str = "\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: model}
spec:
  predictors:
    - name: default
      graph: {name: model, type: MODEL, endpoint: {type: REST}, children: []}
      componentSpecs:
        - spec: {containers: [{name: model, image: reg/model:1}]}
";

/// Seldon Core's CRD through the apiextensions API, as the xtask's install
/// checks read it, and SeldonDeployments held to the structural schema
/// written from Seldon 1.18.2's CRD: a missing required field and an
/// unknown one are refused as a real server refuses them.
#[test]
fn kubectl_reads_seldons_crd_and_sdeps_are_held_to_its_schema() -> Result {
    let plain = Served::start(&[])?;
    let missing = plain.kubectl(&["get", "crd", "seldondeployments.machinelearning.seldon.io"])?;
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains(
            "Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io \"seldondeployments.machinelearning.seldon.io\" not found"
        ),
        "{}",
        text(&missing.stderr)
    );

    let fake = Served::start(&["--seldon"])?;
    let crd = ok(&fake.kubectl(&[
        "get",
        "crd",
        "seldondeployments.machinelearning.seldon.io",
        "-o",
        "json",
    ])?);
    let crd: serde_json::Value = serde_json::from_str(&crd)?;
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "sdep", "{crd}");
    assert_eq!(crd["status"]["conditions"][1]["type"], "Established");

    if !schemas("the schema checks") {
        return Ok(());
    }
    let apply = |name: &str, yaml: &str| -> Result<Output> {
        let file = path_arg(&fake.file(name, yaml)?);
        fake.kubectl(&["apply", "--server-side", "-f", &file])
    };
    let no_predictors = apply(
        "none.yaml",
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: model}\nspec: {name: model}\n",
    )?;
    assert!(!no_predictors.status.success());
    assert!(
        text(&no_predictors.stderr).contains("spec.predictors: Required value"),
        "{}",
        text(&no_predictors.stderr)
    );
    let typo = apply(
        "typo.yaml",
        &SELDON_DEPLOYMENT.replace("- name: default", "- name: default\n      replica: 2"),
    )?;
    assert!(!typo.status.success());
    assert!(
        text(&typo.stderr).contains(".spec.predictors[0].replica: field not declared in schema"),
        "{}",
        text(&typo.stderr)
    );
    let applied = ok(&apply("model.yaml", SELDON_DEPLOYMENT)?);
    assert_eq!(
        applied.trim(),
        "seldondeployment.machinelearning.seldon.io/model serverside-applied"
    );
    let names = ok(&fake.kubectl(&["get", "sdep", "-o", "name"])?);
    assert_eq!(
        names.trim(),
        "seldondeployment.machinelearning.seldon.io/model"
    );
    // A quantity the CRD's pattern refuses, inside the embedded PodSpec.
    let bad = apply(
        "bad.yaml",
        &SELDON_DEPLOYMENT
            .replace("name: model}", "name: bad}")
            .replace(
                "image: reg/model:1",
                "image: reg/model:1, resources: {limits: {memory: 128Mb}}",
            ),
    )?;
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains(
            "spec.predictors[0].componentSpecs[0].spec.containers[0].resources.limits.memory: Invalid value: \"128Mb\""
        ),
        "{}",
        text(&bad.stderr)
    );
    // The CRD's scale subresource: `kubectl scale sdep` writes .spec.replicas.
    ok(&fake.kubectl(&["scale", "sdep", "model", "--replicas=2"])?);
    let replicas =
        ok(&fake.kubectl(&["get", "sdep", "model", "-o", "jsonpath={.spec.replicas}"])?);
    assert_eq!(replicas, "2");
    Ok(())
}

/// What a cluster fills in and how a namespace goes, as kubectl relies on
/// them: `kubectl describe` reads the API server's defaults (it panicked
/// on a Deployment without `spec.replicas`); the system namespaces cannot
/// be deleted; another goes Terminating, refuses new content, and is gone
/// only once the namespace controller has emptied it.
#[test]
fn kubectl_describes_defaults_and_namespaces_terminate_as_on_a_cluster() -> Result {
    let fake = Served::start(&[])?;
    let file = path_arg(&fake.file("api.yaml", DEPLOYMENT)?);
    ok(&fake.kubectl(&["apply", "--server-side", "-f", &file])?);
    let described = ok(&fake.kubectl(&["describe", "deployment", "api"])?);
    assert!(
        described.contains("Replicas:")
            && described.contains("StrategyType:           RollingUpdate"),
        "{described}"
    );

    // Printed by the server as a Table, as `kubectl get` shows a cluster's.
    ok(&fake.kubectl(&["rollout", "status", "deployment/api", "--timeout=20s"])?);
    let table = ok(&fake.kubectl(&["get", "deployment", "api"])?);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("api") && l.contains("1/1")),
        "{table}"
    );
    let all = ok(&fake.kubectl(&["get", "all"])?);
    for kind in ["pod/api-", "deployment.apps/api", "replicaset.apps/api-"] {
        assert!(all.contains(kind), "{kind} in {all}");
    }

    // A new image, then back: the revisions are on the ReplicaSets and
    // the Deployment, as `kubectl rollout undo` reads them.
    ok(&fake.kubectl(&["set", "image", "deployment/api", "api=reg/api:2"])?);
    ok(&fake.kubectl(&["rollout", "status", "deployment/api", "--timeout=20s"])?);
    ok(&fake.kubectl(&["rollout", "undo", "deployment/api"])?);
    let image = ok(&fake.kubectl(&[
        "get",
        "deployment",
        "api",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])?);
    assert_eq!(image, "reg/api:1");

    let refused = fake.kubectl(&["delete", "namespace", "default"])?;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("this namespace may not be deleted"),
        "{}",
        text(&refused.stderr)
    );

    // (kubectl create sends protobuf, which the fake does not decode.)
    let scratch = path_arg(&fake.file(
        "scratch.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: scratch}\n",
    )?);
    ok(&fake.kubectl(&["apply", "--server-side", "-f", &scratch])?);
    let started = std::time::Instant::now();
    ok(&fake.kubectl(&["delete", "namespace", "scratch", "--wait=false"])?);
    let phase = ok(&fake.kubectl(&[
        "get",
        "namespace",
        "scratch",
        "-o",
        "jsonpath={.status.phase}",
    ])?);
    assert_eq!(phase, "Terminating");
    let late = path_arg(&fake.file(
        "late.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: scratch}\n",
    )?);
    let late = fake.kubectl(&["apply", "--server-side", "-f", &late])?;
    assert!(!late.status.success());
    assert!(
        text(&late.stderr).contains("because it is being terminated"),
        "{}",
        text(&late.stderr)
    );
    ok(&fake.kubectl(&["wait", "--for=delete", "namespace/scratch", "--timeout=20s"])?);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let gone = fake.kubectl(&["get", "configmap", "c", "--namespace", "scratch"])?;
    assert!(!gone.status.success(), "its contents went with it");
    Ok(())
}

#[test]
fn namespaces_and_cluster_role_bindings_are_applied_with_field_owners() -> Result {
    if !schemas("namespace field owners") {
        return Ok(());
    }
    let fake = Served::start(&[])?;
    let file = path_arg(&fake.file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: models\n  labels: {pod-security.kubernetes.io/enforce: baseline}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: admin}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
         subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: dev@example.com}]\n",
    )?);
    let apply = [
        "apply",
        "--server-side",
        "--field-manager",
        "mine",
        "-f",
        &file,
    ];
    let out = ok(&fake.kubectl(&apply)?);
    assert!(
        out.contains("namespace/models serverside-applied")
            && out
                .contains("clusterrolebinding.rbac.authorization.k8s.io/admin serverside-applied"),
        "{out}"
    );
    let ns: serde_json::Value = serde_json::from_str(&ok(&fake.kubectl(&[
        "get",
        "namespace",
        "models",
        "-o",
        "json",
        "--show-managed-fields",
    ])?))?;
    // What the API server adds, and who owns the label.
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "models"
    );
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    assert_eq!(
        ns["metadata"]["managedFields"][0]["manager"], "mine",
        "{ns}"
    );

    // `kubectl label` takes the label over: the next apply of another value
    // conflicts, as structured-merge-diff rules.
    ok(&fake.kubectl(&[
        "label",
        "namespace",
        "models",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    ])?);
    let out = fake.kubectl(&apply)?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("conflict with \"kubectl-label\"")
            && text(&out.stderr).contains(".metadata.labels.pod-security.kubernetes.io/enforce"),
        "{}",
        text(&out.stderr)
    );

    // kubectl create sends protobuf: refused with what to send instead.
    let out = fake.kubectl(&["create", "namespace", "other"])?;
    assert!(
        text(&out.stderr).contains("not protobuf")
            && text(&out.stderr).contains("apply --server-side"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn kubectl_discovers_everything_in_two_aggregated_requests() -> Result {
    let fake = Served::start(&["--seldon"])?;
    // A cache of its own, so that kubectl asks the server.
    let cache = fake.dir.path().join("cache");
    let out = fake.kubectl(&["api-resources", "-v=6", "--cache-dir", &path_arg(&cache)])?;
    let table = ok(&out);
    for (resource, api_version) in [
        ("deployments", "apps/v1"),
        ("namespaces", "v1"),
        ("clusterrolebindings", "rbac.authorization.k8s.io/v1"),
        ("seldondeployments", "machinelearning.seldon.io/v1"),
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(resource) && l.contains(api_version)),
            "{resource} {api_version}: {table}"
        );
    }
    // /api and /apis in the aggregated form (apidiscovery.k8s.io/v2): no
    // request per group version, as with a 1.30+ server.
    let log = text(&out.stderr);
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" GET ") || l.contains("] GET "))
        .collect();
    assert_eq!(gets.len(), 2, "{log}");
    assert!(
        gets.iter()
            .all(|l| l.contains("/api?") || l.contains("/apis?")),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_cluster_role_binding_keeps_its_role_and_binds_cluster_roles_only() -> Result {
    if !schemas("RBAC rules") {
        return Ok(());
    }
    let fake = Served::start(&[])?;
    let binding = |name: &str, kind: &str, role: &str| -> Result<Output> {
        let file = path_arg(&fake.file(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {name}}}\n\
                 roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: {role}}}\n\
                 subjects: [{{kind: ServiceAccount, name: default}}]\n"
            ),
        )?);
        fake.kubectl(&["apply", "--server-side", "-f", &file])
    };
    let out = binding("b", "Role", "view")?;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""
        ) && stderr.contains("subjects[0].namespace: Required value"),
        "{stderr}"
    );
    let file = path_arg(&fake.file(
        "ok.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: ok}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\n\
         subjects: [{kind: User, name: dev@example.com}]\n",
    )?);
    ok(&fake.kubectl(&["apply", "--server-side", "-f", &file])?);
    let changed = fake.kubectl(&[
        "patch",
        "clusterrolebinding",
        "ok",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"cluster-admin"}}"#,
    ])?;
    assert!(
        text(&changed.stderr).contains("roleRef: Invalid value")
            && text(&changed.stderr).contains("cannot change roleRef"),
        "{}",
        text(&changed.stderr)
    );
    Ok(())
}
