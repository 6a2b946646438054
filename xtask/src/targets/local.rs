//! The local target: each service is a background process on this machine,
//! with its pid, binary hash and port in `<run_dir>/<service>.json` and its
//! output in `<run_dir>/<service>.log`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::build::Built;
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::net;
use crate::ground::poll::{self, Check, Waited};
use crate::ground::services::ServiceSpec;
use crate::targets::target::{Delivered, LogSource, Session, StatusRow, Target};

pub struct Local;

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
}

impl Target for Local {
    fn tools(&self) -> &'static [&'static str] {
        &["cargo"]
    }

    fn open(&self, _cx: &Ctx) -> Result<Session> {
        Ok(Session::default())
    }

    fn prepare(&self, cx: &Ctx, _session: &Session) -> Result<()> {
        let dir = &cx.config.local.run_dir;
        cx.runner.effect(format!("create {}", dir.display()), || {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the run directory {}", dir.display()))
        })?;
        Ok(())
    }

    fn deliver(&self, cx: &Ctx, _session: &Session, built: Vec<Built>) -> Result<Delivered> {
        cx.runner
            .step("deliver: nothing to do (the local target runs the built binaries in place)");
        Ok(Delivered {
            built,
            images: Vec::new(),
        })
    }

    fn apply(&self, cx: &Ctx, _session: &Session, delivered: &Delivered) -> Result<()> {
        for b in &delivered.built {
            apply_one(cx, b)?;
        }
        let timeout = Duration::from_secs(cx.config.local.ready_timeout_secs);
        for b in &delivered.built {
            let url = format!("{}/readyz", base_url(&b.spec));
            let what = format!(
                "wait up to {}s until GET {url} answers 200",
                timeout.as_secs()
            );
            cx.runner
                .effect(what, || wait_ready(cx, &b.spec, timeout))?;
        }
        Ok(())
    }

    fn urls(&self, _cx: &Ctx, _session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        Ok(specs.iter().map(base_url).collect())
    }

    fn status(
        &self,
        cx: &Ctx,
        _session: &Session,
        specs: &[ServiceSpec],
    ) -> Result<Vec<StatusRow>> {
        specs
            .iter()
            .map(|spec| {
                let (state, healthy, url) = match running(cx, &spec.name)? {
                    None => ("stopped".to_string(), false, None),
                    Some(st) => {
                        let url = format!("http://127.0.0.1:{}", st.port);
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
            .collect()
    }

    fn log_source(&self, cx: &Ctx, spec: &ServiceSpec) -> Option<LogSource> {
        Some(LogSource::File(log_path(cx, spec)))
    }

    fn logs(
        &self,
        cx: &Ctx,
        _session: &Session,
        spec: &ServiceSpec,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<()> {
        let path = log_path(cx, spec);
        let mut file = std::fs::File::open(&path).with_context(|| {
            format!(
                "no log for {} at {}: it has not been deployed locally (run `cargo xtask deploy`)",
                spec.name,
                path.display()
            )
        })?;
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

    fn teardown(&self, cx: &Ctx, _session: &Session, specs: &[ServiceSpec]) -> Result<()> {
        for spec in specs {
            match running(cx, &spec.name)? {
                Some(st) => stop(cx, &spec.name, &st)?,
                None => {
                    eprintln!("==> {}: not running", spec.name);
                    remove_state(cx, &spec.name)?;
                }
            }
        }
        // Services deployed earlier and removed from the settings since
        // (not those still in the settings that were not asked for).
        let configured = crate::ground::services::names(&cx.config);
        for name in state_names(cx)? {
            if specs.iter().any(|s| s.name == name) || configured.contains(&name) {
                continue;
            }
            match running(cx, &name)? {
                Some(st) => {
                    eprintln!("==> {name}: no longer in the settings, but still running");
                    stop(cx, &name, &st)?;
                }
                None => remove_state(cx, &name)?,
            }
        }
        Ok(())
    }
}

fn base_url(spec: &ServiceSpec) -> String {
    format!("http://127.0.0.1:{}", spec.settings.port)
}

fn state_path(cx: &Ctx, name: &str) -> PathBuf {
    cx.config.local.run_dir.join(format!("{name}.json"))
}

/// The services with a state file in the run directory: what this target
/// started, whatever the settings say now.
fn state_names(cx: &Ctx) -> Result<Vec<String>> {
    let dir = &cx.config.local.run_dir;
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

fn log_path(cx: &Ctx, spec: &ServiceSpec) -> PathBuf {
    cx.config.local.run_dir.join(format!("{}.log", spec.name))
}

fn read_state(cx: &Ctx, name: &str) -> Result<Option<State>> {
    let path = state_path(cx, name);
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

fn remove_state(cx: &Ctx, name: &str) -> Result<()> {
    let path = state_path(cx, name);
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

/// The recorded state when its process is still alive and is still ours.
fn running(cx: &Ctx, name: &str) -> Result<Option<State>> {
    Ok(read_state(cx, name)?.filter(is_ours))
}

/// Alive, not a zombie, and (where /proc exists) running our binary: a pid
/// reused by another program is never signalled.
fn is_ours(st: &State) -> bool {
    let Ok(pid) = i32::try_from(st.pid) else {
        return false;
    };
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !Path::new("/proc/self").exists() {
        return true;
    }
    let zombie = std::fs::read_to_string(proc.join("stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    let argv0 = std::fs::read(proc.join("cmdline"))
        .ok()
        .and_then(|b| b.split(|c| *c == 0).next().map(|a| a.to_vec()));
    !zombie && argv0.as_deref() == Some(st.binary.as_os_str().as_encoded_bytes())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

fn apply_one(cx: &Ctx, b: &Built) -> Result<()> {
    let spec = &b.spec;
    let port = spec.settings.port;
    // Under --dry-run the binary may not exist yet: then it counts as changed.
    let sha = if b.binary.exists() {
        sha256_file(&b.binary)?
    } else {
        String::new()
    };
    if let Some(st) = running(cx, &spec.name)? {
        let same = st.binary == b.binary
            && st.binary_sha256 == sha
            && st.port == port
            && st.env == spec.host_env;
        if same && http::ready(&base_url(spec)) {
            eprintln!(
                "==> {}: already running and healthy (pid {}, port {}); binary unchanged",
                spec.name, st.pid, port
            );
            return Ok(());
        }
        let why = if same {
            "not healthy"
        } else {
            "binary, port or settings changed"
        };
        cx.runner
            .step(format!("{}: {why}; restarting (pid {})", spec.name, st.pid));
        stop(cx, &spec.name, &st)?;
    } else {
        remove_state(cx, &spec.name)?;
    }
    cx.runner.unless_dry_run(|| {
        ensure_port_free(spec)?;
        let log = log_path(cx, spec);
        if log.exists() {
            std::fs::rename(&log, log.with_extension("log.1"))
                .with_context(|| format!("cannot rotate {}", log.display()))?;
        }
        Ok(())
    })?;
    let mut cmd = Command::new(&b.binary);
    cmd.env("PORT", port.to_string())
        .env("LOG_FORMAT", "json")
        .envs(spec.host_env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cx.root);
    let running = format!("running {}", spec.name);
    let Some(pid) = cx
        .runner
        .spawn_detached(cmd, &running, &log_path(cx, spec))?
    else {
        return Ok(());
    };
    let st = State {
        pid,
        port,
        binary: b.binary.clone(),
        binary_sha256: sha,
        env: spec.host_env.clone(),
    };
    let path = state_path(cx, &spec.name);
    std::fs::write(&path, serde_json::to_vec_pretty(&st)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn ensure_port_free(spec: &ServiceSpec) -> Result<()> {
    let port = spec.settings.port;
    net::port_free("0.0.0.0", port).map_err(|e| {
        anyhow::anyhow!(
            "port {port} for {} is not free ({e}): stop what uses it, or set `port` under \
             [services.{}] in xtask.toml to a free one",
            spec.name,
            spec.name
        )
    })
}

fn wait_ready(cx: &Ctx, spec: &ServiceSpec, timeout: Duration) -> Result<()> {
    let base = base_url(spec);
    let waited = poll::until(timeout, POLL, || match http::readiness(&base) {
        Check::Done(()) => Ok(Check::Done(())),
        // Gone twice, 200 ms apart: a single look at /proc can catch a
        // process between fork and exec.
        Check::NotYet(_)
            if running(cx, &spec.name)?.is_none() && {
                std::thread::sleep(Duration::from_millis(200));
                running(cx, &spec.name)?.is_none()
            } =>
        {
            bail!(
                "{} exited before it was ready.{}",
                spec.name,
                log_tail(cx, spec)
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
            "{} was not ready within {}s (last: {last}); raise local.ready_timeout_secs \
             in xtask.toml if it needs longer.{}",
            spec.name,
            timeout.as_secs(),
            log_tail(cx, spec)
        ),
    }
}

/// The last lines of a service's log, for error messages.
fn log_tail(cx: &Ctx, spec: &ServiceSpec) -> String {
    let path = log_path(cx, spec);
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

/// SIGTERM, then SIGKILL after the grace period.
fn stop(cx: &Ctx, name: &str, st: &State) -> Result<()> {
    let grace = Duration::from_secs(cx.config.local.stop_grace_secs);
    let what = format!(
        "stop {} (pid {}): SIGTERM, SIGKILL after {}s",
        name,
        st.pid,
        grace.as_secs()
    );
    cx.runner.effect(what, || {
        let pid = Pid::from_raw(i32::try_from(st.pid).context("pid out of range")?);
        let start = Instant::now();
        let gone = || !is_ours(st);
        kill(pid, Signal::SIGTERM)
            .with_context(|| format!("cannot signal {} (pid {})", name, st.pid))?;
        if !poll::within(grace, Duration::from_millis(20), gone) {
            eprintln!(
                "==> {} did not stop within {}s; sending SIGKILL",
                name,
                grace.as_secs()
            );
            let _ = kill(pid, Signal::SIGKILL);
            poll::within(Duration::from_secs(5), Duration::from_millis(20), gone);
        }
        eprintln!(
            "==> stopped {} (pid {}) in {:.2}s",
            name,
            st.pid,
            start.elapsed().as_secs_f64()
        );
        Ok(())
    })?;
    remove_state(cx, name)
}
