//! The README runs as written (issue 19): every `sh` block of its "Quick
//! start" and "Serve your own model", one command at a time, in a scratch
//! copy of the checkout, exactly as a newcomer pastes them. Each command
//! must succeed; every file it names must exist when it runs; every local
//! URL's port must be one an earlier command printed; a `# {…}` line after
//! a command is its exact output, and the quick start's output block is
//! `cargo xtask deploy`'s. The cluster block runs against the stateful API
//! fake with fake `minikube` and `helm` (no cluster can run here), the real
//! kube engine and the real `kubectl kustomize`.
//!
//! Two things stand in: `cargo xtask` is cargo's alias for the xtask binary
//! (.cargo/config.toml); the test runs the one `cargo test` built, pointed
//! at the copy with XTASK_CONFIG (building it again in the copy would
//! replace the binary every other test runs). And the quick start's `cargo
//! test --workspace` is the command that runs this test: it is not run
//! again from inside it.
//!
//! The README's commands use fixed ports (5000, 5001, 5003, 5004, 5005, 8003): this
//! test fails, saying so, when one is taken.

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kube_fake_api::{Setup, kubeconfig};
use support::{Result, copy_workspace, target_dir, text};

/// One command of a block, with what the README says it prints.
#[derive(Debug)]
struct Step {
    /// As written (continuation lines included).
    command: String,
    /// A `# {…}` line after it: its exact standard output.
    output: Option<String>,
    /// A `# POST http://…` line after it: a URL its output names.
    names_url: Option<String>,
}

/// The fenced blocks of the section headed `## {title}`: (info string, text).
fn blocks(readme: &str, title: &str) -> Vec<(String, String)> {
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title:?} in the README"));
    let rest = &readme[start + title.len() + 5..];
    let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push((info.to_string(), body.join("\n")));
        }
    }
    out
}

/// The commands of a `sh` block.
fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        if pending.is_empty()
            && let Some(comment) = line.strip_prefix("# ")
        {
            let last = steps
                .last_mut()
                .unwrap_or_else(|| panic!("a comment before any command: {line}"));
            if comment.starts_with('{') {
                last.output = Some(comment.to_string());
            } else if let Some(url) = comment.strip_prefix("POST ") {
                last.names_url = Some(url.to_string());
            }
            continue;
        }
        pending.push_str(line);
        if line.ends_with('\\') {
            pending.push('\n');
            continue;
        }
        steps.push(Step {
            command: std::mem::take(&mut pending),
            output: None,
            names_url: None,
        });
    }
    steps
}

/// Ports of `http://127.0.0.1:PORT` in `text`.
fn local_ports(text: &str) -> Vec<u16> {
    text.split("http://127.0.0.1:")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Words of a command that name files (relative paths with a slash).
fn named_files(command: &str) -> Vec<String> {
    shlex::split(&command.replace("\\\n", " "))
        .unwrap_or_default()
        .into_iter()
        .filter(|w| {
            w.contains('/')
                && !w.starts_with(['-', '{'])
                && !w.contains(|c: char| c.is_whitespace() || c == ':' || c == '=')
        })
        .collect()
}

fn write_tool(dir: &Path, name: &str, body: &str) -> Result {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `cargo xtask ARGS` is the xtask binary; anything else is cargo.
const CARGO: &str = r#"if [ "$1" = xtask ]; then shift; exec "$KMLOPS_XTASK" "$@"; fi
exec "$REAL_CARGO" "$@""#;

/// minikube as a running profile answers: its services' URLs are the
/// model servers this test's local deploy runs.
const MINIKUBE: &str = r#"case "$1" in
  status) echo "host: Running"; echo "apiserver: Running" ;;
  service) eval "last=\${$#}"; var="FAKE_URL_$(echo "$last" | tr - _)"; eval "echo \$$var" ;;
esac"#;

/// Helm: Seldon Core and Ambassador are installed once `upgrade --install`
/// ran.
const HELM: &str = r#"case "$*" in
  *" list "*)
    if [ -f "$FAKE_STATE/seldon-core" ]; then
      case "$*" in
        *seldon-core*) echo '[{"name":"seldon-core","namespace":"seldon-system","status":"deployed","chart":"seldon-core-operator-1.18.2"}]' ;;
        *ambassador*) echo '[{"name":"ambassador","namespace":"ambassador","status":"deployed","chart":"ambassador-6.9.5"}]' ;;
      esac
    else echo '[]'; fi ;;
  *"upgrade --install seldon-core "*) touch "$FAKE_STATE/seldon-core" ;;
esac"#;

/// kubectl: the real one renders overlays and reads the kubeconfig; what
/// would reach a cluster answers as one with Seldon Core after its install.
const KUBECTL: &str = r#"case "$*" in
  kustomize*|config*) exec "$REAL_KUBECTL" "$@" ;;
  *"get --raw /readyz") echo ok ;;
  *cluster-info) echo "Kubernetes control plane is running at https://127.0.0.1:6443" ;;
  *"apply --server-side --field-manager kube-mlops --filename -") cat >/dev/null ;;
  *" get "*) [ -f "$FAKE_STATE/seldon-core" ] || { echo 'Error from server (NotFound): not found' >&2; exit 1; } ;;
  *) exec "$REAL_KUBECTL" "$@" ;;
esac"#;

#[test]
fn the_readme_quick_start_and_own_model_run_as_written() -> Result {
    for port in [5000, 5001, 5003, 5004, 5005, 8003] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(format!(
                "port {port} is taken: the README's commands use it (stop what listens there)"
            )
            .into());
        }
    }
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path)?;
    let scratch = tempfile::tempdir()?;
    let ws = scratch.path();
    copy_workspace(ws)?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask.toml"),
        ws.join("xtask.toml"),
    )?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/model-server/contract.json"),
        ws.join("services/model-server/contract.json"),
    )?;
    let tools = tempfile::tempdir()?;
    let state = tools.path().join("state");
    std::fs::create_dir(&state)?;
    for (name, body) in [
        ("cargo", CARGO),
        ("minikube", MINIKUBE),
        ("helm", HELM),
        ("kubectl", KUBECTL),
    ] {
        write_tool(tools.path(), name, body)?;
    }

    // The cluster: the API fake with Seldon Core's CRD and Ambassador, its
    // ingress routing to the model servers the local deploy runs.
    let rt = tokio::runtime::Runtime::new()?;
    let (fake, addr) = kube_fake_api::run_on(
        &rt,
        Setup {
            seldon_installed: true,
            objects: cluster::ambassador(),
            ..Setup::default()
        },
    )?;
    let kubeconfig_path = tools.path().join("kubeconfig");
    std::fs::write(&kubeconfig_path, kubeconfig(addr, "minikube"))?;
    let ingress = cluster::ingress(vec![
        (
            "/seldon/seldon/seldon-test-model".into(),
            "127.0.0.1:5001".parse()?,
        ),
        (
            "/seldon/seldon/seldon-wine".into(),
            "127.0.0.1:5003".parse()?,
        ),
    ])?;
    fake.backends
        .lock()
        .map_err(|_| "lock")?
        .insert("ambassador/ambassador-0".into(), ingress);

    let real_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let env: BTreeMap<&str, String> = BTreeMap::from([
        (
            "PATH",
            format!(
                "{}:{}",
                tools.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("KMLOPS_XTASK", env!("CARGO_BIN_EXE_xtask").to_string()),
        ("REAL_CARGO", real_cargo),
        (
            "REAL_KUBECTL",
            which::which("kubectl")?.display().to_string(),
        ),
        ("XTASK_CONFIG", ws.join("xtask.toml").display().to_string()),
        ("CARGO_TARGET_DIR", target_dir().display().to_string()),
        ("KUBECONFIG", kubeconfig_path.display().to_string()),
        (
            "KMLOPS_KUBE_ENGINE",
            cluster::engine()?.display().to_string(),
        ),
        ("FAKE_STATE", state.display().to_string()),
        ("FAKE_URL_wine", "http://127.0.0.1:5003".into()),
    ]);
    // Whatever happens (a failed assertion panics), what ran is torn down.
    let _teardown = Teardown {
        ws: ws.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };

    let mut ran: Vec<(String, String)> = Vec::new();
    for section in ["Quick start", "Serve your own model"] {
        let all = blocks(&readme, section);
        assert!(!all.is_empty(), "no blocks in {section}");
        for (info, block) in &all {
            if info.is_empty() && block.starts_with("Deployed to local:") {
                // The quick start's output: what `cargo xtask deploy` printed.
                let printed = ran
                    .iter()
                    .find(|(c, _)| c.starts_with("cargo xtask deploy "))
                    .map(|(_, out)| out.clone())
                    .ok_or("the output block comes before its command")?;
                assert!(
                    printed.contains(&format!("{block}\n")),
                    "the README shows:\n{block}\nthe deploy printed:\n{printed}"
                );
                continue;
            }
            if info != "sh" {
                continue;
            }
            for step in steps(block) {
                if step.command.starts_with("cargo test --workspace") {
                    continue; // this test is part of it (see the top)
                }
                for file in named_files(&step.command) {
                    assert!(
                        ws.join(&file).exists(),
                        "`{}` names {file}, which does not exist (yet)",
                        step.command
                    );
                }
                let printed: String = ran.iter().map(|(_, o)| o.as_str()).collect();
                for port in local_ports(&step.command) {
                    assert!(
                        printed.contains(&format!("127.0.0.1:{port}"))
                            || printed.contains(&format!("(port {port})")),
                        "`{}` uses port {port}, which no command before it printed",
                        step.command
                    );
                }
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(&step.command)
                    .current_dir(ws)
                    .env_clear()
                    .envs(std::env::vars().filter(|(k, _)| k != "XTASK_CONFIG"))
                    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                    .output()?;
                let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
                assert!(
                    out.status.success(),
                    "`{}` failed ({}):\n{stdout}\n{stderr}",
                    step.command,
                    out.status
                );
                if let Some(want) = &step.output {
                    assert_eq!(stdout.trim(), want, "the output of `{}`", step.command);
                }
                if let Some(url) = &step.names_url {
                    assert!(
                        stdout.contains(url) || stderr.contains(url),
                        "`{}` does not print {url}:\n{stdout}\n{stderr}",
                        step.command
                    );
                }
                eprintln!("ran as written: {}", step.command);
                ran.push((step.command.clone(), format!("{stdout}{stderr}")));
            }
        }
    }
    assert!(
        ran.iter().any(|(c, _)| c.contains("deploy --seldon")),
        "the cluster block ran: {:?}",
        ran.iter().map(|(c, _)| c).collect::<Vec<_>>()
    );
    Ok(())
}

/// Tears down what the README's commands started, on the cluster fake and
/// locally, when dropped.
struct Teardown {
    ws: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for args in [
            &["teardown", "--seldon", "--target", "minikube"][..],
            &["teardown", "--target", "minikube"],
            &["teardown"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args(args)
                .current_dir(&self.ws)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .output();
            if let Ok(out) = out
                && !out.status.success()
            {
                eprintln!("cargo xtask {}: {}", args.join(" "), text(&out.stderr));
            }
        }
    }
}

#[test]
fn the_readme_parser_finds_commands_outputs_and_files() {
    let block = "cargo xtask model add w --class-names a,b \\\n  --onnx dir/m.onnx\ncurl -s http://127.0.0.1:5003/x\n# {\"a\":1}\n# POST http://127.0.0.1:8003/y\n";
    let s = steps(block);
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s[0].command.ends_with("--onnx dir/m.onnx"), "{s:?}");
    assert_eq!(named_files(&s[0].command), ["dir/m.onnx"]);
    assert!(named_files("curl -H 'content-type: application/json' http://h/x").is_empty());
    assert_eq!(s[1].output.as_deref(), Some("{\"a\":1}"));
    assert_eq!(s[1].names_url.as_deref(), Some("http://127.0.0.1:8003/y"));
    assert_eq!(local_ports(&s[1].command), [5003]);
}
