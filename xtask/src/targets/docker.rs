//! The docker target: each service runs as a container through the docker
//! CLI (Docker Engine, or podman's Docker-compatible API), from an image
//! built here and loaded into the engine. Containers are labelled, drop all
//! capabilities, run read-only as the image's non-root user, and publish on
//! loopback. A failure or Ctrl-C midway removes what this run started.

use std::cell::RefCell;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{StatusRow, Target};
use crate::build::Built;
use crate::cli::Progress;
use crate::context::Ctx;
use crate::http;
use crate::image::{self, Builder, Image, LoadInto};
use crate::runner::{Cmd, Runner};
use crate::services::ServiceSpec;

const MANAGED_BY: &str = "app.kubernetes.io/managed-by=kube-mlops";
/// The port services listen on inside their containers (the image's EXPOSE).
const CONTAINER_PORT: u16 = 5000;

/// Containers this run created, removed again on Ctrl-C or failure.
static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();
/// Ctrl-C arrived; and a `docker run` is under way (its container would
/// appear after a cleanup that ran meanwhile, so the cleanup waits for it).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicBool = AtomicBool::new(false);
static EXITING: Once = Once::new();

/// Removes what this run started and exits 130, once.
fn cleanup_and_exit() {
    EXITING.call_once(|| {
        remove_started(&Runner::new(false, false, Progress::Never));
        std::process::exit(130);
    });
}

#[derive(Default)]
pub struct Docker {
    images: RefCell<Vec<Image>>,
}

fn name(cx: &Ctx, spec: &ServiceSpec) -> String {
    format!("{}-{}", cx.config.docker.name_prefix, spec.name)
}

fn docker(purpose: &str) -> Cmd {
    Cmd::new(crate::tools::engine_cli(), purpose)
}

/// What `docker run` is given, as one string: a changed one means restart.
fn settings_key(cx: &Ctx, spec: &ServiceSpec) -> String {
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}:{}|{}",
        cx.config.docker.publish_address,
        spec.settings.port,
        env.join(",")
    )
}

/// `(image id, running, settings key)` of an existing container.
fn inspect(cx: &Ctx, container: &str) -> Option<(String, bool, String)> {
    let probe = cx
        .runner
        .probe(
            &docker("inspecting containers").args([
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.Image}}|{{.State.Running}}|{{index .Config.Labels \"kube-mlops.settings\"}}",
                container,
            ]),
            Duration::from_secs(30),
        )
        .ok()
        .filter(|p| p.success)?;
    let line = probe.stdout.trim();
    let mut parts = line.splitn(3, '|');
    let id = parts.next()?.trim_start_matches("sha256:").to_string();
    let running = parts.next()? == "true";
    let key = parts.next().unwrap_or_default().to_string();
    Some((id, running, key))
}

fn logs_tail(cx: &Ctx, container: &str) -> String {
    match cx.runner.probe(
        &docker("reading container logs").args(["logs", "--tail", "20", container]),
        Duration::from_secs(30),
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

/// Removes what this run started; used on failure and on Ctrl-C.
fn remove_started(runner: &Runner) {
    let names: Vec<String> = STARTED
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for n in names {
        // Not eprintln!: stderr may be a closed pipe by now (`... | head`).
        let _ = writeln!(
            std::io::stderr(),
            "==> removing container {n} started by this run"
        );
        let _ = runner.probe(
            &docker("cleaning up").args(["rm", "--force", &n]),
            Duration::from_secs(30),
        );
    }
}

impl Target for Docker {
    fn ensure(&self, cx: &Ctx) -> Result<()> {
        let probe = cx.runner.probe(
            &docker("the docker target").args(["version", "--format", "{{.Server.Version}}"]),
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
        eprintln!("==> container engine: {}", probe.stdout.trim());
        HANDLER.call_once(|| {
            let _ = ctrlc::set_handler(|| {
                INTERRUPTED.store(true, Ordering::SeqCst);
                if !IN_FLIGHT.load(Ordering::SeqCst) {
                    cleanup_and_exit();
                }
            });
        });
        Ok(())
    }

    fn deliver(&self, cx: &Ctx, built: &[Built]) -> Result<()> {
        cx.runner.step(
            "deliver: build images (native, no daemon) and load them into the container engine",
        );
        let images = image::images_from(cx, built, Builder::Native)?;
        for i in &images {
            image::load(cx, i, LoadInto::Docker)?;
        }
        *self.images.borrow_mut() = images;
        Ok(())
    }

    fn apply(&self, cx: &Ctx, built: &[Built]) -> Result<()> {
        let result = built.iter().try_for_each(|b| self.apply_one(cx, &b.spec));
        if result.is_err() {
            remove_started(&cx.runner);
        }
        result
    }

    fn wait(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()> {
        let result = specs.iter().try_for_each(|s| wait_one(cx, s));
        if result.is_err() {
            remove_started(&cx.runner);
        }
        // From here on, what started stays: it is deployed.
        if let Ok(mut v) = STARTED.lock() {
            v.clear();
        }
        result
    }

    fn urls(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        Ok(specs.iter().map(|s| url(cx, s)).collect())
    }

    fn status(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<StatusRow>> {
        Ok(specs
            .iter()
            .map(|spec| {
                let container = name(cx, spec);
                let (state, healthy, url) = match inspect(cx, &container) {
                    None => ("no container".to_string(), false, None),
                    Some((_, false, _)) => {
                        (format!("container {container} is not running"), false, None)
                    }
                    Some((id, true, _)) => {
                        let base = url(cx, spec);
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
                StatusRow {
                    service: spec.name,
                    state,
                    healthy,
                    url,
                }
            })
            .collect())
    }

    fn logs(&self, cx: &Ctx, spec: &ServiceSpec, tail: Option<usize>, follow: bool) -> Result<()> {
        let mut cmd = docker("showing container logs").arg("logs");
        if let Some(n) = tail {
            cmd = cmd.args(["--tail".to_string(), n.to_string()]);
        }
        if follow {
            cmd = cmd.arg("--follow");
        }
        cx.runner.run_inherited(&cmd.arg(name(cx, spec)))
    }

    fn teardown(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()> {
        for spec in specs {
            let container = name(cx, spec);
            if inspect(cx, &container).is_none() {
                eprintln!("==> {}: no container", spec.name);
                continue;
            }
            cx.runner
                .run(&docker("removing containers").args(["rm", "--force", &container]))?;
        }
        Ok(())
    }
}

fn url(cx: &Ctx, spec: &ServiceSpec) -> String {
    format!(
        "http://{}:{}",
        cx.config.docker.publish_address, spec.settings.port
    )
}

impl Docker {
    fn apply_one(&self, cx: &Ctx, spec: &ServiceSpec) -> Result<()> {
        let container = name(cx, spec);
        let images = self.images.borrow();
        let image = images
            .iter()
            .find(|i| i.name == spec.settings.image)
            .with_context(|| format!("no image was built for {}", spec.name))?;
        let key = settings_key(cx, spec);
        if let Some((id, running, old_key)) = inspect(cx, &container) {
            let same = id == image.id.trim_start_matches("sha256:") && old_key == key;
            let ready = matches!(
                http::get(&format!("{}/readyz", url(cx, spec)), Duration::from_secs(2)),
                Ok((200, _))
            );
            if same && running && ready {
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
            cx.runner
                .run(&docker("replacing containers").args(["rm", "--force", &container]))?;
        }
        if !cx.runner.is_dry_run() {
            let addr = cx.config.docker.publish_address.as_str();
            if let Err(e) = TcpListener::bind((addr, spec.settings.port)) {
                bail!(
                    "port {} for {} is not free on {addr} ({e}): stop what uses it, or set `port` \
                     under [services.{}] in xtask.toml to a free one",
                    spec.settings.port,
                    spec.name,
                    spec.name
                );
            }
        }
        let mut run = docker("starting containers").args([
            "run", "--detach", "--name", &container, "--label", MANAGED_BY,
        ]);
        run = run
            .arg("--label")
            .arg(format!("kube-mlops.service={}", spec.name))
            .arg("--label")
            .arg(format!("kube-mlops.settings={key}"))
            .arg("--publish")
            .arg(format!(
                "{}:{}:{CONTAINER_PORT}",
                cx.config.docker.publish_address, spec.settings.port
            ))
            .args([
                "--read-only",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
            ]);
        for (k, v) in &spec.env {
            run = run.arg("--env").arg(format!("{k}={v}"));
        }
        if let Ok(mut v) = STARTED.lock() {
            v.push(container.clone());
        }
        // Either the Ctrl-C handler sees IN_FLIGHT and leaves the cleanup to
        // us, or we see INTERRUPTED and start nothing (both flags SeqCst).
        IN_FLIGHT.store(true, Ordering::SeqCst);
        if INTERRUPTED.load(Ordering::SeqCst) {
            cleanup_and_exit();
        }
        let result = cx.runner.run(&run.arg(&image.reference));
        IN_FLIGHT.store(false, Ordering::SeqCst);
        if INTERRUPTED.load(Ordering::SeqCst) {
            cleanup_and_exit();
        }
        result.map(|_| ())
    }
}

fn wait_one(cx: &Ctx, spec: &ServiceSpec) -> Result<()> {
    let container = name(cx, spec);
    let url = format!("{}/readyz", url(cx, spec));
    let timeout = Duration::from_secs(cx.config.local.ready_timeout_secs);
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "wait up to {}s until GET {url} answers 200",
            timeout.as_secs()
        ));
        return Ok(());
    }
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = http::get(&url, Duration::from_secs(1)) {
            eprintln!(
                "  ✓ {} ready after {:.1}s",
                spec.name,
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let state = cx
            .runner
            .probe(
                &docker("inspecting containers").args([
                    "inspect",
                    "--format",
                    "{{.State.Status}} {{.State.ExitCode}}",
                    &container,
                ]),
                Duration::from_secs(30),
            )
            .ok()
            .map(|p| p.stdout.trim().to_string())
            .unwrap_or_default();
        if state.starts_with("exited") || state.starts_with("dead") {
            let code = state.split_whitespace().nth(1).unwrap_or("?");
            bail!(
                "container {container} ({}) exited with code {code} before it was ready{}",
                spec.name,
                logs_tail(cx, &container)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "{} was not ready within {}s (container {container}: {state}){}",
                spec.name,
                timeout.as_secs(),
                logs_tail(cx, &container)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
