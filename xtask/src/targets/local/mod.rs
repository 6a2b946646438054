//! The local target: each service is a background process on this machine,
//! listening on `[local] bind` (loopback by default), run from a copy of its
//! built binary in `<run_dir>/bin` (`copies`), with its pid, binary hash and
//! port in `<run_dir>/<service>.json` and its output in
//! `<run_dir>/<service>.log`. The processes are also found by what they are
//! (`processes`), so a lost run directory loses nothing. A deploy that fails
//! or is interrupted stops what it started.

mod copies;
mod processes;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::build::Built;
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::interrupt;
use crate::ground::net;
use crate::ground::poll::{self, Check, Waited};
use crate::ground::services::ServiceSpec;
use crate::ground::settings;
use crate::targets::target::{Delivered, LogSource, Session, StatusRow, Target};

/// The local target: `[local]`'s run directory, bind address and
/// timeouts; `services`, the settings' service names (a run directory's
/// other services are leftovers).
pub struct Local {
    pub settings: settings::Local,
    pub services: Vec<String>,
}

const POLL: Duration = Duration::from_millis(100);

/// What we know of a service we started.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct State {
    pid: u32,
    port: u16,
    binary: PathBuf,
    binary_sha256: String,
    #[serde(default)]
    env: Vec<(String, String)>,
    /// The address it listens on (`[local] bind`).
    #[serde(default)]
    bind: String,
}

impl Target for Local {
    fn machines_run(&self) -> Option<String> {
        None
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo"]
    }

    fn open(&self, _cx: &Ctx) -> Result<Session> {
        Ok(Session::default())
    }

    fn prepare(&self, cx: &Ctx, _session: &Session, _delivering: bool) -> Result<()> {
        // Before anything is built or stopped: services can listen there.
        let bind = self.settings.bind;
        if let Err(e) = std::net::TcpListener::bind((bind, 0)) {
            cx.runner.precondition(anyhow::anyhow!(
                "local.bind = \"{bind}\" cannot be listened on here ({e}): use 127.0.0.1 (this \
                 machine only), 0.0.0.0 (every address) or an address of this machine (`ip addr`)"
            ))?;
        }
        let dir = &self.settings.run_dir;
        cx.runner.effect(format!("create {}", dir.display()), || {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the run directory {}", dir.display()))
        })?;
        Ok(())
    }

    fn deliver(&self, cx: &Ctx, _session: &Session, built: Vec<Built>) -> Result<Delivered> {
        cx.runner
            .step("deliver: nothing to do (each service runs from a copy of its built binary)");
        Ok(Delivered {
            built,
            images: Vec::new(),
        })
    }

    fn apply(&self, cx: &Ctx, _session: &Session, delivered: &Delivered) -> Result<()> {
        // What this run starts is stopped again if it fails or is
        // interrupted; once every service is ready, it stays: it is deployed.
        let started = Started::new(Duration::from_secs(self.settings.stop_grace_secs));
        let _cleanup = interrupt::on_interrupt({
            let started = started.clone();
            move || started.stop_all()
        });
        let result = delivered
            .built
            .iter()
            .try_for_each(|b| self.apply_one(cx, b, &started))
            .and_then(|()| {
                let timeout = Duration::from_secs(self.settings.ready_timeout_secs);
                delivered.built.iter().try_for_each(|b| {
                    let url = format!("{}/readyz", self.base_url(&b.spec));
                    let what = format!(
                        "wait up to {}s until GET {url} answers 200",
                        timeout.as_secs()
                    );
                    cx.runner
                        .effect(what, || self.wait_ready(&b.spec, timeout))
                        .map(drop)
                })
            });
        if result.is_err() && !interrupt::interrupted() {
            started.stop_all();
        }
        result
    }

    fn urls(&self, _cx: &Ctx, _session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        Ok(specs.iter().map(|s| self.base_url(s)).collect())
    }

    fn status(
        &self,
        _cx: &Ctx,
        _session: &Session,
        specs: &[ServiceSpec],
    ) -> Result<Vec<StatusRow>> {
        let mut rows = specs
            .iter()
            .map(|spec| {
                let (state, healthy, url) = match self.running(&spec.name)? {
                    None => ("stopped".to_string(), false, None),
                    Some(st) => {
                        let url = format!("http://{}:{}", self.url_host(), st.port);
                        match http::get(&format!("{url}/readyz"), Duration::from_secs(2)) {
                            Ok((200, _)) => {
                                (format!("running, ready (pid {})", st.pid), true, Some(url))
                            }
                            Ok((code, _)) => (
                                format!(
                                    "running, not ready: /readyz answered {code} (pid {})",
                                    st.pid
                                ),
                                false,
                                Some(url),
                            ),
                            Err(e) => (
                                format!("running, not answering: {e:#} (pid {})", st.pid),
                                false,
                                Some(url),
                            ),
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
        // Services of this run directory that still run although the
        // settings no longer have them: shown, so they can be stopped.
        for name in self.unconfigured()? {
            if rows.iter().any(|r| r.service == name) {
                continue;
            }
            if let Some(st) = self.running(&name)? {
                let url = format!("http://{}:{}", self.url_host(), st.port);
                rows.push(StatusRow {
                    service: name,
                    state: format!(
                        "running (pid {}) but no longer in the settings: `cargo xtask teardown` stops it",
                        st.pid
                    ),
                    healthy: http::ready(&url),
                    url: Some(url),
                });
            }
        }
        Ok(rows)
    }

    fn log_source(&self, _cx: &Ctx, spec: &ServiceSpec) -> Option<LogSource> {
        Some(LogSource::File(self.log_path(spec)))
    }

    fn logs(
        &self,
        _cx: &Ctx,
        _session: &Session,
        spec: &ServiceSpec,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<()> {
        let path = self.log_path(spec);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if let Some(st) = self.running(&spec.name)? {
                    bail!(
                        "the log of {} ({}) is gone ({e}; the run directory was deleted?) while \
                         it still runs (pid {}): `cargo xtask deploy {}` restarts it with a new log",
                        spec.name,
                        path.display(),
                        st.pid,
                        spec.name
                    );
                }
                bail!(
                    "no log for {} at {}: it has not been deployed locally (run `cargo xtask deploy`)",
                    spec.name,
                    path.display()
                );
            }
        };
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let lines: Vec<&str> = text.lines().collect();
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
        for l in &lines[skip..] {
            println!("{l}");
        }
        if follow {
            let mut pos = file.stream_position()?;
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let len = std::fs::metadata(&path)?.len();
                if len < pos {
                    pos = 0; // truncated or rotated by a new deploy
                }
                file = std::fs::File::open(&path)?;
                file.seek(SeekFrom::Start(pos))?;
                let mut more = String::new();
                pos += file.read_to_string(&mut more)? as u64;
                print!("{more}");
            }
        }
        Ok(())
    }

    fn teardown(&self, cx: &Ctx, _session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        let mut stopped = Vec::new();
        for spec in specs {
            match self.running(&spec.name)? {
                Some(st) => {
                    self.stop(cx, &spec.name, &st)?;
                    stopped.push(spec.name.clone());
                }
                None => {
                    eprintln!("==> {}: not running", spec.name);
                    self.remove_state(cx, &spec.name)?;
                }
            }
            self.forget_copies(cx, &spec.name)?;
        }
        // Services deployed earlier and removed from the settings since
        // (not those still in the settings that were not asked for).
        for name in self.unconfigured()? {
            if specs.iter().any(|s| s.name == name) {
                continue;
            }
            match self.running(&name)? {
                Some(st) => {
                    eprintln!("==> {name}: no longer in the settings, but still running");
                    self.stop(cx, &name, &st)?;
                    self.forget_copies(cx, &name)?;
                    stopped.push(name);
                }
                None => {
                    self.remove_state(cx, &name)?;
                    self.forget_copies(cx, &name)?;
                }
            }
        }
        Ok(stopped)
    }
}

impl Local {
    /// Where this machine reaches what listens on `[local] bind`: loopback for
    /// the unspecified address (every address), else the address itself.
    fn url_host(&self) -> String {
        match self.settings.bind {
            std::net::IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".into(),
            std::net::IpAddr::V6(a) if a.is_unspecified() => "[::1]".into(),
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => format!("[{a}]"),
        }
    }

    fn base_url(&self, spec: &ServiceSpec) -> String {
        format!("http://{}:{}", self.url_host(), spec.settings.port)
    }

    /// Services of this run directory (state files, running processes) that
    /// the settings do not have, sorted.
    fn unconfigured(&self) -> Result<Vec<String>> {
        let configured = self.services.clone();
        let mut names = self.state_names()?;
        names.extend(
            processes::discover(&self.settings.run_dir)
                .into_iter()
                .map(|f| f.name),
        );
        names.retain(|n| !configured.contains(n));
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Removes a stopped service's binary copies (`<run_dir>/bin`).
    fn forget_copies(&self, cx: &Ctx, name: &str) -> Result<()> {
        cx.runner
            .unless_dry_run(|| {
                copies::prune(&self.settings.run_dir, name, None);
                Ok(())
            })
            .map(drop)
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.settings.run_dir.join(format!("{name}.json"))
    }

    /// The services with a state file in the run directory: what this target
    /// started, whatever the settings say now.
    fn state_names(&self) -> Result<Vec<String>> {
        let dir = &self.settings.run_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(String::from)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn log_path(&self, spec: &ServiceSpec) -> PathBuf {
        self.settings.run_dir.join(format!("{}.log", spec.name))
    }

    fn read_state(&self, name: &str) -> Result<Option<State>> {
        let path = self.state_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "corrupt state file {}: delete it and stop the service by hand",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn remove_state(&self, cx: &Ctx, name: &str) -> Result<()> {
        let path = self.state_path(name);
        if !path.exists() {
            return Ok(());
        }
        cx.runner.effect(
            format!("remove {}", path.display()),
            || match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
        )?;
        Ok(())
    }

    /// The recorded state when its process is still alive and is still ours;
    /// else a process found running as this service of this run directory
    /// (its state file lost: it counts as changed, so a deploy replaces it).
    fn running(&self, name: &str) -> Result<Option<State>> {
        if let Some(st) = self
            .read_state(name)?
            .filter(|st| processes::alive(st.pid, &st.binary))
        {
            return Ok(Some(st));
        }
        Ok(processes::discover(&self.settings.run_dir)
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| State {
                pid: f.pid,
                port: f.port.unwrap_or_default(),
                binary: f.binary,
                binary_sha256: String::new(),
                env: Vec::new(),
                bind: String::new(),
            }))
    }

    fn apply_one(&self, cx: &Ctx, b: &Built, started: &Started) -> Result<()> {
        let spec = &b.spec;
        let port = spec.settings.port;
        let run_dir = &self.settings.run_dir;
        // What starts is a copy, hashed as it is taken (`copies`). Under
        // --dry-run nothing is copied, and a binary not built yet counts as
        // changed.
        let exe = match cx
            .runner
            .unless_dry_run(|| copies::take(run_dir, &spec.name, &b.binary))?
        {
            Some(copy) => copy,
            None if b.binary.exists() => copies::would_take(run_dir, &spec.name, &b.binary)?,
            None => copies::Copy {
                sha256: String::new(),
                path: b.binary.clone(),
            },
        };
        let sha = exe.sha256.clone();
        if self.kept_running(cx, spec, &exe)? {
            return Ok(());
        }
        cx.runner.unless_dry_run(|| {
            self.ensure_port_free(spec)?;
            let log = self.log_path(spec);
            if log.exists() {
                std::fs::rename(&log, log.with_extension("log.1"))
                    .with_context(|| format!("cannot rotate {}", log.display()))?;
            }
            Ok(())
        })?;
        let mut cmd = Command::new(&exe.path);
        cmd.env("PORT", port.to_string())
            .env("BIND_ADDR", self.settings.bind.to_string())
            .env("LOG_FORMAT", "json")
            .envs(spec.host_env.iter().map(|(k, v)| (k, v)))
            .env(processes::SERVICE_VAR, &spec.name)
            .env(
                processes::RUN_DIR_VAR,
                processes::run_dir_key(&self.settings.run_dir),
            )
            .current_dir(&cx.root);
        let running = format!("running {}", spec.name);
        // Ctrl-C waits for the start and its record: a process that appeared
        // after the cleanup ran would be left behind.
        let Some(pid) = interrupt::critical(|| {
            let pid = cx
                .runner
                .spawn_detached(cmd, &running, &self.log_path(spec))?;
            if let Some(pid) = pid {
                started.add(&spec.name, pid, &exe.path, self.state_path(&spec.name));
            }
            Ok::<_, anyhow::Error>(pid)
        })?
        else {
            return Ok(());
        };
        // The copies of builds that no longer run.
        copies::prune(run_dir, &spec.name, Some(&exe.path));
        let st = State {
            pid,
            port,
            binary: exe.path.clone(),
            binary_sha256: sha,
            env: spec.host_env.clone(),
            bind: self.settings.bind.to_string(),
        };
        let path = self.state_path(&spec.name);
        std::fs::write(&path, serde_json::to_vec_pretty(&st)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Whether `spec` runs healthy from the same binary (`exe`), port and
    /// settings, and is left alone; otherwise what runs of it is stopped (or
    /// its stale record removed), saying why, for a new start.
    fn kept_running(&self, cx: &Ctx, spec: &ServiceSpec, exe: &copies::Copy) -> Result<bool> {
        let Some(st) = self.running(&spec.name)? else {
            self.remove_state(cx, &spec.name)?;
            return Ok(false);
        };
        let port = spec.settings.port;
        let same = st.binary == exe.path
            && st.binary_sha256 == exe.sha256
            && st.port == port
            && st.env == spec.host_env
            && st.bind == self.settings.bind.to_string();
        if same && http::ready(&self.base_url(spec)) {
            eprintln!(
                "==> {}: already running and healthy (pid {}, port {}); binary unchanged",
                spec.name, st.pid, port
            );
            return Ok(true);
        }
        let why = if st.binary_sha256.is_empty() {
            "its record in the run directory is gone (deleted?)"
        } else if same {
            "not healthy"
        } else {
            "binary, port or settings changed"
        };
        cx.runner
            .step(format!("{}: {why}; restarting (pid {})", spec.name, st.pid));
        self.stop(cx, &spec.name, &st)?;
        Ok(false)
    }

    fn ensure_port_free(&self, spec: &ServiceSpec) -> Result<()> {
        let port = spec.settings.port;
        let bind = self.settings.bind.to_string();
        net::port_free(&bind, port).map_err(|e| {
            // One of ours under another name (renamed, or removed from the
            // settings) says how to stop it.
            let ours = processes::discover(&self.settings.run_dir)
                .into_iter()
                .find(|f| f.port == Some(port) && f.name != spec.name);
            match ours {
                Some(f) => anyhow::anyhow!(
                    "port {port} for {} is held by {} (pid {}), which this checkout started and \
                     its settings no longer name: `cargo xtask teardown` stops it",
                    spec.name,
                    f.name,
                    f.pid
                ),
                None => anyhow::anyhow!(
                    "port {port} for {} is not free on {bind} ({e}): stop what uses it, or set \
                     `port` under [services.{}] in xtask.toml to a free one",
                    spec.name,
                    spec.name
                ),
            }
        })
    }

    fn wait_ready(&self, spec: &ServiceSpec, timeout: Duration) -> Result<()> {
        let base = self.base_url(spec);
        let waited = poll::until(timeout, POLL, || match http::readiness(&base) {
            Check::Done(()) => Ok(Check::Done(())),
            // Gone twice, 200 ms apart: a single look at /proc can catch a
            // process between fork and exec.
            Check::NotYet(_)
                if self.running(&spec.name)?.is_none() && {
                    std::thread::sleep(Duration::from_millis(200));
                    self.running(&spec.name)?.is_none()
                } =>
            {
                bail!(
                    "{} exited before it was ready.{}",
                    spec.name,
                    self.log_tail(spec)
                )
            }
            not_yet => Ok(not_yet),
        })?;
        match waited {
            Waited::Done { after, .. } => {
                eprintln!("  ✓ {} ready after {:.1}s", spec.name, after.as_secs_f64());
                Ok(())
            }
            Waited::TimedOut { last } => bail!(
                "{} was not ready within {}s (last: {last}){}.{}",
                spec.name,
                timeout.as_secs(),
                if last.contains("the probe's timeout") {
                    ""
                } else {
                    "; raise local.ready_timeout_secs in xtask.toml if it needs longer to start"
                },
                self.log_tail(spec)
            ),
        }
    }

    /// The last lines of a service's log, for error messages.
    fn log_tail(&self, spec: &ServiceSpec) -> String {
        let path = self.log_path(spec);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(10)..];
        if tail.is_empty() {
            return format!("\n  (its log {} is empty)", path.display());
        }
        let mut out = format!("\n  last lines of {}:", path.display());
        for l in tail {
            out.push_str("\n    ");
            out.push_str(l);
        }
        out
    }

    /// SIGTERM, then SIGKILL after the grace period; the state file goes.
    fn stop(&self, cx: &Ctx, name: &str, st: &State) -> Result<()> {
        let grace = Duration::from_secs(self.settings.stop_grace_secs);
        let what = format!(
            "stop {} (pid {}): SIGTERM, SIGKILL after {}s",
            name,
            st.pid,
            grace.as_secs()
        );
        cx.runner.effect(&what, || {
            // Said first: a service that drains takes a while.
            eprintln!("==> {what}");
            processes::stop(name, st.pid, &st.binary, grace)
        })?;
        self.remove_state(cx, name)
    }
}

/// Processes this run started: stopped again (and their state files
/// removed) when it fails or is interrupted. Holds what the Ctrl-C thread
/// needs, not the context.
#[derive(Clone)]
struct Started {
    grace: Duration,
    list: Arc<Mutex<Vec<StartedProcess>>>,
}

struct StartedProcess {
    name: String,
    pid: u32,
    binary: PathBuf,
    state: PathBuf,
}

impl Started {
    fn new(grace: Duration) -> Self {
        Self {
            grace,
            list: Arc::default(),
        }
    }

    fn add(&self, name: &str, pid: u32, binary: &Path, state: PathBuf) {
        if let Ok(mut v) = self.list.lock() {
            v.push(StartedProcess {
                name: name.to_string(),
                pid,
                binary: binary.to_path_buf(),
                state,
            });
        }
    }

    /// Stops each one still running, saying so (this also runs from the
    /// Ctrl-C handler).
    fn stop_all(&self) {
        let list = self
            .list
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for StartedProcess {
            name,
            pid,
            binary,
            state,
        } in list
        {
            if processes::alive(pid, &binary) {
                use std::io::Write;
                // Not eprintln!: stderr may be a closed pipe by now.
                let _ = writeln!(
                    std::io::stderr(),
                    "==> stopping {name} (pid {pid}), started by this run"
                );
                let _ = processes::stop(&name, pid, &binary, self.grace);
            }
            let _ = std::fs::remove_file(state);
        }
    }
}
