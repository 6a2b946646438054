//! The docker target: each service runs as a container through the docker
//! CLI (Docker Engine, or podman's Docker-compatible API), from an image
//! built here and loaded into the engine. Containers are labelled, drop all
//! capabilities, run read-only as the image's non-root user, and publish on
//! loopback. A failure or Ctrl-C midway removes what this run started.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xshell::cmd;

use crate::build::Built;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::conventions::{CONTAINER_PORT, MANAGED_BY};
use crate::ground::http;
use crate::ground::interrupt;
use crate::ground::net;
use crate::ground::poll::{self, Check, Waited};
use crate::ground::runner::{Progress, Runner};
use crate::ground::services::ServiceSpec;
use crate::ground::settings;
use crate::ground::tools::engine_cli;
use crate::image::{self, Builder};
use crate::publish::docker::Docker as Load;
use crate::targets::target::{Delivered, LogSource, Session, StatusRow, Target};

/// The docker target: `[docker]`'s container names and published
/// address, `[local]`'s timeouts (the same a local service gets), and the
/// settings' service names (other containers of the prefix are leftovers).
pub struct Docker {
    pub settings: settings::Docker,
    /// Seconds a deploy waits for a container's readiness.
    pub ready_timeout_secs: u64,
    /// Seconds teardown waits after SIGTERM before SIGKILL.
    pub stop_grace_secs: u64,
    pub services: Vec<String>,
    /// How its images are made.
    pub setup: image::Setup,
}

const POLL: Duration = Duration::from_millis(100);
const PROBE: Duration = Duration::from_secs(30);

/// `(image id, running, settings key)` of the container, None when there
/// is no such container, an error when the engine cannot tell (it does not
/// answer: that is not the same as nothing running).
fn inspect(cx: &Ctx, container: &str) -> Result<Option<(String, bool, String)>> {
    let docker = engine_cli();
    let format = "{{.Image}}|{{.State.Running}}|{{index .Config.Labels \"kube-mlops.settings\"}}";
    let probe = cx.runner.probe(
        cmd!(
            cx.sh,
            "{docker} inspect --type container --format {format} {container}"
        ),
        "inspecting containers",
        PROBE,
    )?;
    if !probe.success {
        let err = probe.stderr.trim();
        if err.to_ascii_lowercase().contains("no such") {
            return Ok(None);
        }
        // A dry run without an engine plans on as if there were none.
        cx.runner.precondition(probe.failure_saying(format!(
            "`{docker} inspect {container}` could not tell whether it exists: {err}"
        )))?;
        return Ok(None);
    }
    let line = probe.stdout.trim();
    let mut parts = line.splitn(3, '|');
    let id = parts
        .next()
        .unwrap_or_default()
        .trim_start_matches("sha256:")
        .to_string();
    let running = parts.next() == Some("true");
    let key = parts.next().unwrap_or_default().to_string();
    Ok(Some((id, running, key)))
}

fn logs_tail(cx: &Ctx, container: &str) -> String {
    let docker = engine_cli();
    match cx.runner.probe(
        cmd!(cx.sh, "{docker} logs --tail 20 {container}"),
        "reading container logs",
        PROBE,
    ) {
        Ok(p) => {
            let text = format!("{}{}", p.stdout, p.stderr);
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                "\n  (no log output)".into()
            } else {
                format!(
                    "\n  last log lines of {container}:\n    {}",
                    lines.join("\n    ")
                )
            }
        }
        Err(e) => format!("\n  (cannot read its logs: {e:#})"),
    }
}

/// Containers this run created: removed again on failure or Ctrl-C.
#[derive(Clone, Default)]
struct Started(Arc<Mutex<Vec<String>>>);

impl Started {
    fn add(&self, name: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push(name.to_string());
        }
    }

    /// Removes them (quietly: this also runs from the Ctrl-C handler).
    fn remove(&self) {
        let names: Vec<String> = self
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        // Its own runner and shell: this may run on the Ctrl-C thread.
        let runner = Runner::new(false, false, Progress::Never, std::env::temp_dir());
        let Ok(sh) = xshell::Shell::new() else { return };
        let docker = engine_cli();
        for n in names {
            // Not eprintln!: stderr may be a closed pipe by now (`... | head`).
            let _ = writeln!(
                std::io::stderr(),
                "==> removing container {n} started by this run"
            );
            let _ = runner.probe(cmd!(sh, "{docker} rm --force {n}"), "cleaning up", PROBE);
        }
    }
}

impl Docker {
    fn name(&self, spec: &ServiceSpec) -> String {
        format!("{}-{}", self.settings.name_prefix, spec.name)
    }

    /// What `docker run` is given, as one string: a changed one means restart.
    fn settings_key(&self, spec: &ServiceSpec) -> String {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{}:{}|{}",
            self.settings.publish_address,
            spec.settings.port,
            env.join(",")
        )
    }

    /// Our containers (by label and name prefix) whose service the settings
    /// do not have: (service, container).
    fn unconfigured(&self, cx: &Ctx) -> Result<Vec<(String, String)>> {
        let docker = engine_cli();
        let configured = self.services.clone();
        let prefix = format!("{}-", self.settings.name_prefix);
        let label = format!("label={MANAGED_BY}");
        let format = "{{.Names}}";
        let listed = cx.runner.probe(
            cmd!(
                cx.sh,
                "{docker} ps --all --filter {label} --format {format}"
            ),
            "listing containers",
            PROBE,
        )?;
        if !listed.success {
            cx.runner.precondition(listed.failure_saying(format!(
                "`{docker} ps` could not list kube-mlops's containers: {}",
                listed.stderr.trim()
            )))?;
        }
        Ok(listed
            .stdout
            .lines()
            .map(str::trim)
            .filter_map(|container| {
                let service = container.strip_prefix(&prefix)?;
                (!configured.iter().any(|s| s == service))
                    .then(|| (service.to_string(), container.to_string()))
            })
            .collect())
    }

    fn url(&self, spec: &ServiceSpec) -> String {
        format!(
            "http://{}:{}",
            self.settings.publish_address, spec.settings.port
        )
    }

    /// Starts `spec`'s container unless the one running has the same image and
    /// settings and is healthy.
    fn start_one(
        &self,
        cx: &Ctx,
        delivered: &Delivered,
        spec: &ServiceSpec,
        started: &Started,
    ) -> Result<()> {
        let docker = engine_cli();
        let container = self.name(spec);
        let delivery = delivered
            .image_of(spec)
            .with_context(|| format!("no image was built for {}", spec.name))?;
        let key = self.settings_key(spec);
        if let Some((id, running, old_key)) = inspect(cx, &container)? {
            let same = id == delivery.image.id.trim_start_matches("sha256:") && old_key == key;
            if same && running && http::ready(&self.url(spec)) {
                eprintln!(
                    "==> {}: already running and healthy ({container}); image unchanged",
                    spec.name
                );
                return Ok(());
            }
            cx.runner.step(format!(
                "{}: replacing container {container} (image or settings changed, or not healthy)",
                spec.name
            ));
            cx.runner.run(
                cmd!(cx.sh, "{docker} rm --force {container}"),
                "replacing containers",
            )?;
        }
        let addr = self.settings.publish_address.as_str();
        let port = spec.settings.port;
        cx.runner.unless_dry_run(|| {
            net::port_free(addr, port).map_err(|e| {
                anyhow::anyhow!(
                    "port {port} for {} is not free on {addr} ({e}): stop what uses it, or set `port` \
                     under [services.{}] in xtask.toml to a free one",
                    spec.name,
                    spec.name
                )
            })
        })?;
        let service = format!("kube-mlops.service={}", spec.name);
        let settings = format!("kube-mlops.settings={key}");
        let publish = format!("{addr}:{port}:{CONTAINER_PORT}");
        let env = spec
            .env
            .iter()
            .flat_map(|(k, v)| ["--env".to_string(), format!("{k}={v}")]);
        let reference = &delivery.reference;
        let run = cmd!(
            cx.sh,
            "{docker} run --detach --name {container} --label {MANAGED_BY} --label {service} --label {settings} --publish {publish} --read-only --cap-drop ALL --security-opt no-new-privileges {env...} {reference}"
        );
        started.add(&container);
        // Ctrl-C waits for this `docker run`: its container would appear after a
        // cleanup that ran meanwhile.
        interrupt::critical(|| cx.runner.run(run, "starting containers")).map(drop)
    }

    fn wait_one(&self, cx: &Ctx, spec: &ServiceSpec) -> Result<()> {
        let container = self.name(spec);
        let base = self.url(spec);
        let timeout = Duration::from_secs(self.ready_timeout_secs);
        let what = format!(
            "wait up to {}s until GET {base}/readyz answers 200",
            timeout.as_secs()
        );
        let (docker, format) = (engine_cli(), "{{.State.Status}} {{.State.ExitCode}}");
        // The container's state, "gone" when the engine has no such container
        // any more, or what the engine said when it could not tell.
        let state = || match cx.runner.probe(
            cmd!(cx.sh, "{docker} inspect --format {format} {container}"),
            "inspecting containers",
            PROBE,
        ) {
            Ok(p) if p.success => p.stdout.trim().to_string(),
            Ok(p) if p.stderr.to_ascii_lowercase().contains("no such") => "gone".to_string(),
            Ok(p) => format!("unknown: {}", p.stderr.trim()),
            Err(e) => format!("unknown: {e:#}"),
        };
        cx.runner.effect(what, || {
            let waited = poll::until(timeout, POLL, || {
                if let Check::Done(()) = http::readiness(&base) {
                    return Ok(Check::Done(()));
                }
                let state = state();
                if state == "gone" {
                    bail!(
                        "container {container} ({}) was removed before it was ready: something else \
                         removed it (`docker rm`, or a teardown run by hand); deploy again",
                        spec.name
                    );
                }
                if state.starts_with("exited") || state.starts_with("dead") {
                    let code = state.split_whitespace().nth(1).unwrap_or("?");
                    bail!(
                        "container {container} ({}) exited with code {code} before it was ready{}",
                        spec.name,
                        logs_tail(cx, &container)
                    );
                }
                Ok(Check::NotYet(state))
            })?;
            match waited {
                Waited::Done { after, .. } => {
                    eprintln!("  ✓ {} ready after {:.1}s", spec.name, after.as_secs_f64());
                    Ok(())
                }
                Waited::TimedOut { last } => bail!(
                    "{} was not ready within {}s (container {container}: {last}){}",
                    spec.name,
                    timeout.as_secs(),
                    logs_tail(cx, &container)
                ),
            }
        })?;
        Ok(())
    }
}

impl Target for Docker {
    fn machines_run(&self) -> Option<String> {
        Some("the docker engine runs".into())
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo", "docker"]
    }

    /// Every command first needs an engine that answers (status and
    /// teardown too: "could not tell whether it exists" says less than
    /// how to start one).
    fn open(&self, cx: &Ctx) -> Result<Session> {
        match engine_version(cx) {
            Ok(version) => eprintln!("==> container engine: {version}"),
            Err(e) => cx.runner.precondition(e)?,
        }
        Ok(Session::default())
    }

    fn prepare(&self, _cx: &Ctx, _session: &Session, _delivering: bool) -> Result<()> {
        Ok(())
    }

    fn blockers(&self, cx: &Ctx) -> Vec<String> {
        if !cx.runner.on_path(engine_cli()) {
            return Vec::new(); // the tool row says so
        }
        match engine_version(cx) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("{e:#}")],
        }
    }

    /// The engine's own platform (`engine_platform`).
    fn platform(&self, cx: &Ctx, _session: &Session) -> Result<Option<Platform>> {
        engine_platform(cx)
    }

    fn deliver(&self, cx: &Ctx, session: &Session, built: Vec<Built>) -> Result<Delivered> {
        cx.runner.step(
            "deliver: build images (native, no daemon) and load them into the container engine",
        );
        let images = image::images_from(cx, &self.setup, &built, Builder::Native)?;
        self.deliver_images(cx, session, built, images)
    }

    fn deliver_images(
        &self,
        cx: &Ctx,
        _session: &Session,
        built: Vec<Built>,
        images: Vec<image::Image>,
    ) -> Result<Delivered> {
        Delivered::published(cx, &Load, built, images)
    }

    fn apply(&self, cx: &Ctx, _session: &Session, delivered: &Delivered) -> Result<()> {
        // What this run starts is removed again if it fails or is interrupted;
        // once every container is ready, it stays: it is deployed.
        let started = Started::default();
        let _cleanup = interrupt::on_interrupt({
            let started = started.clone();
            move || started.remove()
        });
        let result = delivered
            .built
            .iter()
            .try_for_each(|b| self.start_one(cx, delivered, &b.spec, &started))
            .and_then(|()| {
                delivered
                    .built
                    .iter()
                    .try_for_each(|b| self.wait_one(cx, &b.spec))
            });
        if result.is_err() {
            started.remove();
        }
        result
    }

    fn urls(&self, _cx: &Ctx, _session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        Ok(specs.iter().map(|s| self.url(s)).collect())
    }

    fn status(
        &self,
        cx: &Ctx,
        _session: &Session,
        specs: &[ServiceSpec],
    ) -> Result<Vec<StatusRow>> {
        let mut rows = specs
            .iter()
            .map(|spec| {
                let container = self.name(spec);
                let (state, healthy, url) = match inspect(cx, &container)? {
                    None => ("no container".to_string(), false, None),
                    Some((_, false, _)) => {
                        (format!("container {container} is not running"), false, None)
                    }
                    Some((id, true, _)) => {
                        let base = self.url(spec);
                        let short = &id[..id.len().min(12)];
                        match http::get(&format!("{base}/readyz"), Duration::from_secs(2)) {
                            Ok((200, _)) => (
                                format!("running, ready ({container}, image {short})"),
                                true,
                                Some(base),
                            ),
                            Ok((code, _)) => (
                                format!("running, /readyz answered {code} ({container})"),
                                false,
                                Some(base),
                            ),
                            Err(e) => (format!("running, not answering: {e:#}"), false, Some(base)),
                        }
                    }
                };
                Ok(StatusRow {
                    service: spec.name.clone(),
                    state,
                    healthy,
                    url,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Containers of ours whose service the settings no longer have.
        for (service, container) in self.unconfigured(cx)? {
            if rows.iter().any(|r| r.service == service) {
                continue;
            }
            rows.push(StatusRow {
                service,
                state: format!(
                    "container {container} is there but its service is no longer in the \
                     settings: `cargo xtask teardown --target docker` removes it"
                ),
                healthy: true,
                url: None,
            });
        }
        Ok(rows)
    }

    fn log_source(&self, _cx: &Ctx, spec: &ServiceSpec) -> Option<LogSource> {
        Some(LogSource::Container {
            cli: engine_cli().to_string(),
            name: self.name(spec),
        })
    }

    fn logs(
        &self,
        cx: &Ctx,
        _session: &Session,
        spec: &ServiceSpec,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<()> {
        let docker = engine_cli();
        let tail = tail.map(|n| ["--tail".to_string(), n.to_string()]);
        let tail = tail.iter().flatten();
        let follow = follow.then_some("--follow");
        let container = self.name(spec);
        cx.runner.run_inherited(
            cmd!(cx.sh, "{docker} logs {tail...} {follow...} {container}"),
            "showing container logs",
        )
    }

    fn teardown(&self, cx: &Ctx, _session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        let docker = engine_cli();
        let mut removed = Vec::new();
        // SIGTERM and the same grace as the local target, then removal: a
        // service finishes its requests in flight.
        let grace = self.stop_grace_secs.to_string();
        for spec in specs {
            let container = self.name(spec);
            if inspect(cx, &container)?.is_none() {
                eprintln!("==> {}: no container", spec.name);
                continue;
            }
            cx.runner.run(
                cmd!(cx.sh, "{docker} stop --time {grace} {container}"),
                "stopping containers",
            )?;
            cx.runner.run(
                cmd!(cx.sh, "{docker} rm --force {container}"),
                "removing containers",
            )?;
            removed.push(spec.name.clone());
        }
        // Containers of services removed from the settings since. (Not
        // those of services still in the settings that this teardown was
        // not asked for.)
        for (service, container) in self.unconfigured(cx)? {
            if specs.iter().any(|s| s.name == service) {
                continue;
            }
            eprintln!(
                "==> {service}: no longer in the settings, but its container {container} is there"
            );
            cx.runner.run(
                cmd!(cx.sh, "{docker} rm --force {container}"),
                "removing containers",
            )?;
            removed.push(service);
        }
        Ok(removed)
    }
}

/// The engine's version, or why no engine answers and how to start one.
fn engine_version(cx: &Ctx) -> Result<String> {
    let docker = engine_cli();
    let format = "{{.Server.Version}}";
    let probe = cx.runner.probe(
        cmd!(cx.sh, "{docker} version --format {format}"),
        "the docker target",
        Duration::from_secs(15),
    )?;
    if !probe.success {
        let why = probe
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no answer");
        bail!(
            "no container engine answers the docker CLI ({why}).\n  start Docker Engine, or podman's \
             Docker-compatible API:\n    podman system service --time=0 unix:///tmp/podman.sock &\n    \
             export DOCKER_HOST=unix:///tmp/podman.sock"
        );
    }
    Ok(probe.stdout.trim().to_string())
}

/// The container engine's own platform (`docker info`; `podman info` names
/// its fields otherwise): Docker Desktop's and podman machine's Linux VM
/// on a Mac is the Mac's CPU, not macOS. None when the engine does not
/// answer (it is named where it is used; the build is then this host's).
/// Asked once per run: the engine's CPU does not change under it, and a
/// command that asks twice (the platform to load for, then whether a
/// build emulates) says so once.
///
/// # Errors
/// The engine reports a platform images are not built for.
pub fn engine_platform(cx: &Ctx) -> Result<Option<Platform>> {
    static ANSWER: std::sync::OnceLock<Option<Platform>> = std::sync::OnceLock::new();
    if let Some(known) = ANSWER.get() {
        return Ok(*known);
    }
    let answer = ask_engine_platform(cx)?;
    Ok(*ANSWER.get_or_init(|| answer))
}

fn ask_engine_platform(cx: &Ctx) -> Result<Option<Platform>> {
    let docker = engine_cli();
    let format = if docker == "podman" {
        "{{.Host.OS}}/{{.Host.Arch}}"
    } else {
        "{{.OSType}}/{{.Architecture}}"
    };
    // A read (a dry run asks too).
    let out = cx.runner.probe(
        cmd!(cx.sh, "{docker} info --format {format}"),
        "reading the engine's platform (the images are built for it)",
        Duration::from_secs(15),
    )?;
    let reported = out.stdout.trim();
    if !out.success || reported.is_empty() {
        return Ok(None);
    }
    Platform::of_reported(reported).map(Some)
}
