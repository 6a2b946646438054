//! The local target: each service is a background process on this machine,
//! with its pid, binary hash and port in `<run_dir>/<service>.json` and its
//! output in `<run_dir>/<service>.log`.

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{StatusRow, Target};
use crate::build::Built;
use crate::context::Ctx;
use crate::http;
use crate::runner::Cmd;
use crate::services::ServiceSpec;

pub struct Local;

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
    fn ensure(&self, cx: &Ctx) -> Result<()> {
        let dir = &cx.config.local.run_dir;
        if cx.runner.is_dry_run() {
            cx.runner.step(format!("create {}", dir.display()));
            return Ok(());
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the run directory {}", dir.display()))
    }

    fn deliver(&self, cx: &Ctx, _built: &[Built]) -> Result<()> {
        cx.runner
            .step("deliver: nothing to do (the local target runs the built binaries in place)");
        Ok(())
    }

    fn apply(&self, cx: &Ctx, built: &[Built]) -> Result<()> {
        for b in built {
            apply_one(cx, b)?;
        }
        Ok(())
    }

    fn wait(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()> {
        let timeout = Duration::from_secs(cx.config.local.ready_timeout_secs);
        for spec in specs {
            let url = format!("{}/readyz", base_url(spec));
            if cx.runner.is_dry_run() {
                cx.runner.step(format!(
                    "wait up to {}s until GET {url} answers 200",
                    timeout.as_secs()
                ));
                continue;
            }
            wait_ready(cx, spec, &url, timeout)?;
        }
        Ok(())
    }

    fn urls(&self, _cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        Ok(specs.iter().map(base_url).collect())
    }

    fn status(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<Vec<StatusRow>> {
        specs
            .iter()
            .map(|spec| {
                let (state, healthy, url) = match running(cx, spec)? {
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
                    service: spec.name,
                    state,
                    healthy,
                    url,
                })
            })
            .collect()
    }

    fn logs(&self, cx: &Ctx, spec: &ServiceSpec, tail: Option<usize>, follow: bool) -> Result<()> {
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

    fn teardown(&self, cx: &Ctx, specs: &[ServiceSpec]) -> Result<()> {
        for spec in specs {
            match running(cx, spec)? {
                Some(st) => stop(cx, spec, &st)?,
                None => {
                    eprintln!("==> {}: not running", spec.name);
                    remove_state(cx, spec)?;
                }
            }
        }
        Ok(())
    }
}

fn base_url(spec: &ServiceSpec) -> String {
    format!("http://127.0.0.1:{}", spec.settings.port)
}

fn state_path(cx: &Ctx, spec: &ServiceSpec) -> PathBuf {
    cx.config.local.run_dir.join(format!("{}.json", spec.name))
}

fn log_path(cx: &Ctx, spec: &ServiceSpec) -> PathBuf {
    cx.config.local.run_dir.join(format!("{}.log", spec.name))
}

fn read_state(cx: &Ctx, spec: &ServiceSpec) -> Result<Option<State>> {
    let path = state_path(cx, spec);
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

fn remove_state(cx: &Ctx, spec: &ServiceSpec) -> Result<()> {
    let path = state_path(cx, spec);
    if cx.runner.is_dry_run() {
        if path.exists() {
            cx.runner.step(format!("remove {}", path.display()));
        }
        return Ok(());
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The recorded state when its process is still alive and is still ours.
fn running(cx: &Ctx, spec: &ServiceSpec) -> Result<Option<State>> {
    Ok(read_state(cx, spec)?.filter(is_ours))
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
    let dry = cx.runner.is_dry_run();
    // Under --dry-run the binary may not exist yet: then it counts as changed.
    let sha = if dry && !b.binary.exists() {
        String::new()
    } else {
        sha256_file(&b.binary)?
    };
    if let Some(st) = running(cx, spec)? {
        let same = st.binary == b.binary
            && st.binary_sha256 == sha
            && st.port == port
            && st.env == spec.env;
        if same && ready(port) {
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
        stop(cx, spec, &st)?;
    } else {
        remove_state(cx, spec)?;
    }
    if !dry {
        ensure_port_free(spec)?;
        let log = log_path(cx, spec);
        if log.exists() {
            std::fs::rename(&log, log.with_extension("log.1"))
                .with_context(|| format!("cannot rotate {}", log.display()))?;
        }
    }
    let mut cmd = Cmd::new(b.binary.to_string_lossy(), format!("running {}", spec.name))
        .env("PORT", port.to_string())
        .env("LOG_FORMAT", "json")
        .cwd(&cx.root);
    for (k, v) in &spec.env {
        cmd = cmd.env(k, v);
    }
    let Some(pid) = cx.runner.spawn_detached(&cmd, &log_path(cx, spec))? else {
        return Ok(());
    };
    let st = State {
        pid,
        port,
        binary: b.binary.clone(),
        binary_sha256: sha,
        env: spec.env.clone(),
    };
    let path = state_path(cx, spec);
    std::fs::write(&path, serde_json::to_vec_pretty(&st)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn ready(port: u16) -> bool {
    matches!(
        http::get(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(2)
        ),
        Ok((200, _))
    )
}

fn ensure_port_free(spec: &ServiceSpec) -> Result<()> {
    let port = spec.settings.port;
    match TcpListener::bind(("0.0.0.0", port)) {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "port {port} for {} is not free ({e}): stop what uses it, or set `port` under \
             [services.{}] in xtask.toml to a free one",
            spec.name,
            spec.name
        ),
    }
}

fn wait_ready(cx: &Ctx, spec: &ServiceSpec, url: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let last = match http::get(url, Duration::from_secs(1)) {
            Ok((200, _)) => {
                eprintln!(
                    "  ✓ {} ready after {:.1}s",
                    spec.name,
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok((code, body)) => format!("{url} answered {code}: {body}"),
            Err(e) => format!("{e:#}"),
        };
        if running(cx, spec)?.is_none() {
            bail!(
                "{} exited before it was ready.{}",
                spec.name,
                log_tail(cx, spec)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "{} was not ready within {}s (last: {last}); raise local.ready_timeout_secs \
                 in xtask.toml if it needs longer.{}",
                spec.name,
                timeout.as_secs(),
                log_tail(cx, spec)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
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
fn stop(cx: &Ctx, spec: &ServiceSpec, st: &State) -> Result<()> {
    let grace = Duration::from_secs(cx.config.local.stop_grace_secs);
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "stop {} (pid {}): SIGTERM, SIGKILL after {}s",
            spec.name,
            st.pid,
            grace.as_secs()
        ));
        return remove_state(cx, spec);
    }
    let pid = Pid::from_raw(i32::try_from(st.pid).context("pid out of range")?);
    let start = Instant::now();
    kill(pid, Signal::SIGTERM)
        .with_context(|| format!("cannot signal {} (pid {})", spec.name, st.pid))?;
    while is_ours(st) && start.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    if is_ours(st) {
        eprintln!(
            "==> {} did not stop within {}s; sending SIGKILL",
            spec.name,
            grace.as_secs()
        );
        let _ = kill(pid, Signal::SIGKILL);
        let killed = Instant::now();
        while is_ours(st) && killed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "==> stopped {} (pid {}) in {:.2}s",
        spec.name,
        st.pid,
        start.elapsed().as_secs_f64()
    );
    remove_state(cx, spec)
}
