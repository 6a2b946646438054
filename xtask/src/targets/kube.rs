//! The Kubernetes targets (minikube, kind, gke): the context guard first,
//! images delivered the way each cluster takes them, the kustomize overlay
//! rendered by kubectl and applied by the kube engine (server-side apply,
//! rollout wait with explanations), then a URL per service.

use std::cell::RefCell;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::{StatusRow, Target, TargetName};
use crate::build::Built;
use crate::context::Ctx;
use crate::image::{self, Builder, LoadInto, naming};
use crate::runner::Cmd;
use crate::services::ServiceSpec;
use crate::{engine, kubecontext};

/// The port every service listens on in its pod and its Service (deploy/base).
const SERVICE_PORT: u16 = 5000;
/// Everything kube-mlops deploys carries this label.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=kube-mlops";

pub struct Kube {
    target: TargetName,
    /// The context the guard approved, once `ensure` ran.
    context: RefCell<Option<String>>,
    /// `image name = reference` to set in the manifests.
    images: RefCell<Vec<(String, String)>>,
}

impl Kube {
    pub fn new(target: TargetName) -> Self {
        Self {
            target,
            context: RefCell::new(None),
            images: RefCell::new(Vec::new()),
        }
    }

    /// The approved context; runs the guard when not done yet.
    pub fn context(&self, cx: &Ctx) -> Result<String> {
        if let Some(c) = self.context.borrow().as_ref() {
            return Ok(c.clone());
        }
        let c = kubecontext::guard(cx, self.target, None)?;
        *self.context.borrow_mut() = Some(c.clone());
        Ok(c)
    }

    fn engine<I, S>(&self, cx: &Ctx, purpose: &str, args: I) -> Result<Cmd>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        engine::command(cx, &self.context(cx)?, purpose, args)
    }

    fn state_dir(&self, cx: &Ctx) -> PathBuf {
        cx.config.kubernetes.state_dir.join(self.target.to_string())
    }

    fn namespace<'a>(&self, cx: &'a Ctx) -> &'a str {
        &cx.config.kubernetes.namespace
    }

    fn pid_file(&self, cx: &Ctx, key: &str) -> PathBuf {
        self.state_dir(cx).join(format!("port-forward-{key}.pid"))
    }

    /// A port-forward from 127.0.0.1:`local` to `namespace/service`, kept
    /// alive in the background (and reused while it answers) under `key`.
    pub fn forward(
        &self,
        cx: &Ctx,
        key: &str,
        namespace: &str,
        service: &str,
        port: Option<u16>,
        local: u16,
    ) -> Result<String> {
        let url = format!("http://127.0.0.1:{local}");
        let pid_file = self.pid_file(cx, key);
        if !cx.runner.is_dry_run() && forward_alive(&pid_file, local) {
            return Ok(url);
        }
        kill_forward(&pid_file);
        if !cx.runner.is_dry_run() {
            // Otherwise the forward would fail to listen while whatever holds
            // the port answered in its place.
            // A forward just stopped may take a moment to let go of the port.
            let free = || std::net::TcpListener::bind(("127.0.0.1", local)).is_ok();
            if !within(Duration::from_secs(3), free) {
                bail!(
                    "port {local} on 127.0.0.1 is in use, so {namespace}/{service} cannot be forwarded there: \
                     stop what uses it (another target? `cargo xtask teardown --target local`) or change the port in xtask.toml"
                );
            }
            let dir = self.state_dir(cx);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut args = vec![
            "port-forward".to_string(),
            "--namespace".into(),
            namespace.into(),
            "--service".into(),
            service.into(),
            "--local".into(),
            format!("127.0.0.1:{local}"),
        ];
        if let Some(p) = port {
            args.extend(["--port".into(), p.to_string()]);
        }
        let cmd = self.engine(cx, "forwarding a local port to the cluster", args)?;
        let log = self.state_dir(cx).join(format!("port-forward-{key}.log"));
        if let Some(pid) = cx.runner.spawn_detached(&cmd, &log)? {
            std::fs::write(&pid_file, pid.to_string())
                .with_context(|| format!("cannot write {}", pid_file.display()))?;
            wait_listening(local, &log)?;
        }
        Ok(url)
    }

    /// Stops the background port-forward saved under `key`, if any.
    pub fn stop_forward(&self, cx: &Ctx, key: &str) {
        if !cx.runner.is_dry_run() {
            kill_forward(&self.pid_file(cx, key));
        }
    }

    /// The external address of a LoadBalancer service, waited for.
    pub fn load_balancer(
        &self,
        cx: &Ctx,
        namespace: &str,
        service: &str,
    ) -> Result<Option<String>> {
        let out = cx.runner.run(&self.engine(
            cx,
            "waiting for the LoadBalancer's external IP",
            [
                "load-balancer".to_string(),
                "--namespace".into(),
                namespace.into(),
                "--service".into(),
                service.into(),
                "--timeout".into(),
                cx.config.kubernetes.address_timeout_secs.to_string(),
            ],
        )?)?;
        let address = out.stdout.trim();
        Ok((!address.is_empty()).then(|| address.to_string()))
    }

    /// Render the kustomization in `source` and apply it with the delivered
    /// images, waiting for every rollout. `only` limits it to those services.
    pub fn apply_dir(&self, cx: &Ctx, source: &Path, namespace: &str, only: &[&str]) -> Result<()> {
        cx.runner.step(format!("render {}", source.display()));
        let rendered = cx.runner.run(
            &Cmd::new("kubectl", "rendering the kustomize overlay")
                .arg("kustomize")
                .arg(source),
        )?;
        let dir = self.state_dir(cx);
        let name = source
            .file_name()
            .map_or("manifest".into(), |n| n.to_string_lossy());
        let manifest = dir.join(format!("{name}.yaml"));
        if !cx.runner.is_dry_run() {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(&manifest, &rendered.stdout)
                .with_context(|| format!("cannot write {}", manifest.display()))?;
        }
        let mut args = vec![
            "apply".to_string(),
            "--filename".into(),
            manifest.display().to_string(),
            "--namespace".into(),
            namespace.into(),
            "--timeout".into(),
            cx.config.kubernetes.rollout_timeout_secs.to_string(),
        ];
        for service in only {
            args.extend(["--only".into(), service.to_string()]);
        }
        for (name, reference) in self.images.borrow().iter() {
            args.extend(["--image".into(), format!("{name}={reference}")]);
        }
        cx.runner
            .step("server-side apply, then wait for every rollout");
        cx.runner
            .run_inherited(&self.engine(cx, "applying the manifests", args)?)
    }

    /// Delete what matches `selector`, waiting until it is gone.
    pub fn delete_labelled(&self, cx: &Ctx, selector: &str) -> Result<()> {
        cx.runner.step(format!(
            "delete everything labelled {selector}, wait until gone"
        ));
        cx.runner.run_inherited(&self.engine(
            cx,
            "deleting what kube-mlops deployed",
            ["teardown", "--selector", selector],
        )?)
    }
}

/// The pid a port-forward's pid file holds, if any.
fn read_pid(pid_file: &Path) -> Option<nix::unistd::Pid> {
    let pid = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(nix::unistd::Pid::from_raw(pid))
}

fn forward_alive(pid_file: &Path, port: u16) -> bool {
    read_pid(pid_file).is_some_and(|pid| nix::sys::signal::kill(pid, None).is_ok())
        && TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn kill_forward(pid_file: &Path) {
    if let Some(pid) = read_pid(pid_file) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let _ = std::fs::remove_file(pid_file);
}

/// Whether `done` holds within `wait`, asked every 100 ms.
fn within(wait: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_listening(port: u16, log: &Path) -> Result<()> {
    if within(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }) {
        return Ok(());
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    bail!(
        "the port-forward to 127.0.0.1:{port} did not start listening within 30s; its log ({}):\n{tail}",
        log.display()
    )
}

/// A row of `kube-engine status --json`.
#[derive(Deserialize)]
struct EngineRow {
    kind: String,
    name: String,
    ready: bool,
    detail: String,
}

impl Target for Kube {
    fn ensure(&self, cx: &Ctx) -> Result<()> {
        let context = self.context(cx)?;
        eprintln!(
            "==> kube context {context} (the one --target {} expects)",
            self.target
        );
        cx.runner
            .locate("kubectl", "rendering the kustomize overlay")?;
        // Built before any image is pushed, so a build failure changes nothing.
        engine::binary(cx)?;
        Ok(())
    }

    fn deliver(&self, cx: &Ctx, built: &[Built]) -> Result<()> {
        let images = image::images_from(cx, built, Builder::Native)?;
        let mut refs = Vec::new();
        for img in &images {
            let reference = match self.target {
                TargetName::Minikube => {
                    image::load(cx, img, LoadInto::Minikube)?;
                    img.reference.clone()
                }
                TargetName::Kind => {
                    image::load(cx, img, LoadInto::Kind)?;
                    img.reference.clone()
                }
                _ => {
                    let r = &cx.config.registry;
                    let repository = naming::repository(&r.host, &r.account, &img.name);
                    // Pinned by digest: the cluster runs exactly what was built.
                    image::push(cx, img, &repository, false)?
                }
            };
            refs.push((img.name.clone(), reference));
        }
        *self.images.borrow_mut() = refs;
        Ok(())
    }

    fn apply(&self, cx: &Ctx, built: &[Built]) -> Result<()> {
        let overlay = cx
            .root
            .join("deploy/overlays")
            .join(self.target.to_string());
        let only: Vec<&str> = built.iter().map(|b| b.spec.name).collect();
        self.apply_dir(cx, &overlay, self.namespace(cx), &only)
    }

    fn wait(&self, _cx: &Ctx, _specs: &[ServiceSpec]) -> Result<()> {
        // The engine's apply already waited for every rollout (and explained
        // a failure); nothing is left to wait for here.
        Ok(())
    }

    fn urls(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        let ns = self.namespace(cx).to_string();
        specs
            .iter()
            .map(|spec| match self.target {
                TargetName::Minikube => {
                    let cmd = Cmd::new("minikube", "finding the service URL").args([
                        "service",
                        "--url",
                        "--profile",
                        &cx.config.minikube.profile,
                        "--namespace",
                        &ns,
                        spec.name,
                    ]);
                    if cx.runner.is_dry_run() {
                        cx.runner.run(&cmd)?;
                        return Ok(format!("http://<minikube ip>:<node port of {}>", spec.name));
                    }
                    let p = cx.runner.probe(&cmd, Duration::from_secs(60))?;
                    let url = p
                        .stdout
                        .lines()
                        .map(str::trim)
                        .find(|l| l.starts_with("http"));
                    match url {
                        Some(u) if p.success => Ok(u.to_string()),
                        _ => bail!("`{}` gave no URL: {}", cmd.display(), p.stderr.trim()),
                    }
                }
                TargetName::Kind => {
                    self.forward(cx, spec.name, &ns, spec.name, None, spec.settings.port)
                }
                _ => Ok(match self.load_balancer(cx, &ns, spec.name)? {
                    Some(address) => format!("http://{address}:{SERVICE_PORT}"),
                    None => format!("http://<external IP of {}>:{SERVICE_PORT}", spec.name),
                }),
            })
            .collect()
    }

    fn status(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<StatusRow>> {
        let out =
            cx.runner
                .run(&self.engine(cx, "reading what is deployed", ["status", "--json"])?)?;
        let rows: Vec<EngineRow> = if cx.runner.is_dry_run() {
            Vec::new()
        } else {
            serde_json::from_str(&out.stdout).context("reading kube-engine's status")?
        };
        Ok(specs
            .iter()
            .map(|spec| {
                let mine = |kind: &str| rows.iter().find(|r| r.kind == kind && r.name == spec.name);
                match (mine("deployment"), mine("service")) {
                    (Some(d), svc) => StatusRow {
                        service: spec.name,
                        state: match svc {
                            Some(s) => format!("{}; service {}", d.detail, s.detail),
                            None => format!("{}; no service", d.detail),
                        },
                        healthy: d.ready && svc.is_some_and(|s| s.ready),
                        url: None,
                    },
                    (None, _) => StatusRow {
                        service: spec.name,
                        state: "not deployed".into(),
                        healthy: false,
                        url: None,
                    },
                }
            })
            .collect())
    }

    fn logs(&self, cx: &Ctx, spec: &ServiceSpec, tail: Option<usize>, follow: bool) -> Result<()> {
        let mut args = vec![
            "logs".to_string(),
            "--namespace".into(),
            self.namespace(cx).into(),
            "--selector".into(),
            format!("app.kubernetes.io/name={}", spec.name),
        ];
        if let Some(n) = tail {
            args.extend(["--tail".into(), n.to_string()]);
        }
        if follow {
            args.push("--follow".into());
        }
        cx.runner
            .run_inherited(&self.engine(cx, "reading pod logs", args)?)
    }

    fn teardown(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()> {
        self.context(cx)?;
        for spec in specs {
            self.stop_forward(cx, spec.name);
        }
        self.stop_forward(cx, crate::seldon::INGRESS_FORWARD);
        self.delete_labelled(cx, MANAGED_SELECTOR)
    }
}
