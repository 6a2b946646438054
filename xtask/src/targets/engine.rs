//! The Kubernetes engine (`xtask/kube-engine`): its own binary, so that the
//! kube client is compiled only when a Kubernetes target is first used, not
//! by every `cargo xtask`. Built like the services, then run like any tool,
//! always with the context the guard approved.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::cmd;

use crate::build;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::net;
use crate::ground::poll;
use crate::ground::settings;

/// Use this engine binary instead of building one (a prebuilt or installed engine).
const OVERRIDE: &str = "KMLOPS_KUBE_ENGINE";

/// The engine for one approved kube context; its binary is built (or found
/// up to date) on first use.
pub struct Engine {
    pub context: String,
    /// Whether the kube context guard approved `context`; false only in a
    /// dry run that went on without it, whose reads are skipped.
    pub reached: bool,
    /// Take over fields another field manager owns (`kubectl scale`,
    /// `kubectl edit`) instead of failing on the conflict; the engine names
    /// whose fields it takes. `deploy --force-conflicts`.
    pub force_conflicts: bool,
    /// Seconds `apply` waits for every rollout (`[kubernetes]`).
    pub rollout_timeout_secs: u64,
    /// Seconds `load_balancer` waits for an external address.
    pub address_timeout_secs: u64,
    binary: OnceCell<PathBuf>,
}

impl Engine {
    /// The engine on kube context `context`, with `[kubernetes]`'s
    /// timeouts.
    pub fn new(context: String, kubernetes: &settings::Kubernetes) -> Self {
        Self {
            context,
            reached: true,
            force_conflicts: false,
            rollout_timeout_secs: kubernetes.rollout_timeout_secs,
            address_timeout_secs: kubernetes.address_timeout_secs,
            binary: OnceCell::new(),
        }
    }

    /// The engine binary: `KMLOPS_KUBE_ENGINE`, or built from xtask/kube-engine.
    pub fn binary(&self, cx: &Ctx) -> Result<&Path> {
        if let Some(path) = self.binary.get() {
            return Ok(path);
        }
        let path = match std::env::var_os(OVERRIDE).filter(|p| !p.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    bail!(
                        "{OVERRIDE}={} is not a file: unset it to build the engine from xtask/kube-engine",
                        path.display()
                    );
                }
                path
            }
            None => {
                cx.runner.step(
                    "build the Kubernetes engine (kube-engine; the first build takes a minute or two)",
                );
                let cargo = build::cargo();
                cx.runner.run(
                    cmd!(
                        cx.sh,
                        "{cargo} build --package kube-engine --bin kube-engine"
                    ),
                    "building the Kubernetes engine",
                )?;
                build::target_dir(cx).join("debug").join("kube-engine")
            }
        };
        Ok(self.binary.get_or_init(|| path))
    }

    /// Server-side apply of `manifest` with `images` set (name, reference),
    /// their `ids` (name, config digest) annotated on the pod templates so
    /// that a rebuilt image under the same tag rolls out, waiting for every
    /// rollout; `only` limits it to those services' objects.
    pub fn apply(
        &self,
        cx: &Ctx,
        manifest: &Path,
        namespace: &str,
        only: &[&str],
        images: &[(String, String)],
        ids: &[(String, String)],
    ) -> Result<()> {
        let (engine, context) = (self.binary(cx)?, &self.context);
        let timeout = self.rollout_timeout_secs.to_string();
        // Repeated flags, one pair per service and per image.
        let only = only.iter().flat_map(|s| ["--only", s]);
        let images = images
            .iter()
            .flat_map(|(name, reference)| ["--image".to_string(), format!("{name}={reference}")]);
        let ids = ids
            .iter()
            .filter(|(_, id)| !id.is_empty())
            .flat_map(|(name, id)| ["--image-id".to_string(), format!("{name}={id}")]);
        let force = self.force_conflicts.then_some("--force-conflicts");
        cx.runner
            .step("server-side apply, then wait for every rollout");
        cx.runner.run_inherited(
            cmd!(
                cx.sh,
                "{engine} --context {context} apply --filename {manifest} --namespace {namespace} --timeout {timeout} {force...} {only...} {images...} {ids...}"
            ),
            "applying the manifests",
        )
    }

    /// The external address of a LoadBalancer service, waited for.
    pub fn load_balancer(
        &self,
        cx: &Ctx,
        namespace: &str,
        service: &str,
    ) -> Result<Option<String>> {
        let (engine, context) = (self.binary(cx)?, &self.context);
        let timeout = self.address_timeout_secs.to_string();
        let out = cx.runner.run(
            cmd!(
                cx.sh,
                "{engine} --context {context} load-balancer --namespace {namespace} --service {service} --timeout {timeout}"
            ),
            "waiting for the LoadBalancer's external IP",
        )?;
        let address = out.stdout.trim();
        Ok((!address.is_empty()).then(|| address.to_string()))
    }

    /// The platforms of the cluster's Linux nodes (`status.nodeInfo`),
    /// each once (asked under `--dry-run` too); none when the context was
    /// not reached. Nodes of another OS (a cluster's Windows pool) are left
    /// out: Linux pods are not scheduled there.
    ///
    /// # Errors
    /// The engine fails (its stderr says why: a 403 names the missing
    /// permission to list nodes), or a Linux node runs a CPU images are
    /// not built for.
    pub fn platforms(&self, cx: &Ctx) -> Result<Vec<Platform>> {
        if !self.reached {
            return Ok(Vec::new());
        }
        let (engine, context) = (self.binary(cx)?, &self.context);
        // A read: a dry run asks too, to plan the right build.
        let out = cx.runner.probe(
            cmd!(cx.sh, "{engine} --context {context} platforms"),
            "reading the nodes' platforms (the images are built for them)",
            std::time::Duration::from_secs(60),
        )?;
        if !out.success {
            return Err(out.failure_saying(format!(
                "`kube-engine platforms` failed: {}",
                out.stderr.trim()
            )));
        }
        let mut platforms: Vec<Platform> = out
            .stdout
            .lines()
            .filter(|l| l.trim().starts_with("linux/"))
            .map(Platform::of_reported)
            .collect::<Result<_>>()?;
        platforms.dedup();
        Ok(platforms)
    }

    /// Deletes what matches `selector`, waiting until it is gone.
    pub fn delete_labelled(&self, cx: &Ctx, selector: &str) -> Result<()> {
        cx.runner.step(format!(
            "delete everything labelled {selector}, wait until gone"
        ));
        let (engine, context) = (self.binary(cx)?, &self.context);
        cx.runner.run_inherited(
            cmd!(
                cx.sh,
                "{engine} --context {context} teardown --selector {selector}"
            ),
            "deleting what kube-mlops deployed",
        )
    }

    /// A port-forward from 127.0.0.1:`local` to `namespace/service`, kept
    /// alive in the background (and reused while it answers) under `key`,
    /// its pid and log in `dir`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        cx: &Ctx,
        dir: &Path,
        key: &str,
        namespace: &str,
        service: &str,
        port: Option<u16>,
        local: u16,
    ) -> Result<String> {
        let url = format!("http://127.0.0.1:{local}");
        let pid_file = pid_file(dir, key);
        if cx
            .runner
            .unless_dry_run(|| Ok(forward_alive(&pid_file, local)))?
            == Some(true)
        {
            return Ok(url);
        }
        cx.runner.unless_dry_run(|| {
            kill_forward(&pid_file);
            // Otherwise the forward would fail to listen while whatever holds
            // the port answered in its place. A forward just stopped may take
            // a moment to let go of the port.
            let free = || net::port_free("127.0.0.1", local).is_ok();
            if !poll::within(std::time::Duration::from_secs(3), POLL, free) {
                bail!(
                    "port {local} on 127.0.0.1 is in use, so {namespace}/{service} cannot be forwarded there: \
                     stop what uses it (another target? `cargo xtask teardown --target local`) or change the port in xtask.toml"
                );
            }
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        })?;
        let (engine, context) = (self.binary(cx)?, &self.context);
        let local_address = format!("127.0.0.1:{local}");
        let port: Vec<String> =
            port.map_or_else(Vec::new, |p| vec!["--port".into(), p.to_string()]);
        let log = dir.join(format!("port-forward-{key}.log"));
        if let Some(pid) = cx.runner.spawn_detached(
            cmd!(
                cx.sh,
                "{engine} --context {context} port-forward --namespace {namespace} --service {service} --local {local_address} {port...}"
            ),
            "forwarding a local port to the cluster",
            &log,
        )? {
            std::fs::write(&pid_file, pid.to_string())
                .with_context(|| format!("cannot write {}", pid_file.display()))?;
            wait_listening(local, &log)?;
        }
        Ok(url)
    }
}

const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Key of the background port-forward to the ingress (minikube, kind).
const INGRESS_FORWARD: &str = "seldon-ingress";

/// The ingress through a port-forward on `local` (`[seldon] local_port`)
/// of this machine (clusters without external load balancers): host and
/// port.
pub fn forward_ingress(
    cx: &Ctx,
    engine: &Engine,
    state: &Path,
    (namespace, service, port): (&str, &str, u16),
    local: u16,
) -> Result<(String, u16)> {
    engine.forward(
        cx,
        state,
        INGRESS_FORWARD,
        namespace,
        service,
        Some(port),
        local,
    )?;
    Ok(("127.0.0.1".to_string(), local))
}

fn pid_file(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("port-forward-{key}.pid"))
}

/// Stops the port-forward [`forward_ingress`] started, if any.
pub fn stop_ingress_forward(cx: &Ctx, dir: &Path) -> Result<()> {
    stop_forward(cx, dir, INGRESS_FORWARD)
}

/// Stops the background port-forward saved under `key` in `dir`, if any.
pub fn stop_forward(cx: &Ctx, dir: &Path, key: &str) -> Result<()> {
    cx.runner
        .unless_dry_run(|| {
            kill_forward(&pid_file(dir, key));
            Ok(())
        })
        .map(drop)
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
        && net::listening(port)
}

fn kill_forward(pid_file: &Path) {
    if let Some(pid) = read_pid(pid_file) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let _ = std::fs::remove_file(pid_file);
}

fn wait_listening(port: u16, log: &Path) -> Result<()> {
    if poll::within(std::time::Duration::from_secs(30), POLL, || {
        net::listening(port)
    }) {
        return Ok(());
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    bail!(
        "the port-forward to 127.0.0.1:{port} did not start listening within 30s; its log ({}):\n{tail}",
        log.display()
    )
}
