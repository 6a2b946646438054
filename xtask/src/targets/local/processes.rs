//! The local target's processes, found by what they are rather than only
//! by what was written down: each service starts with `KMLOPS_SERVICE=<name>`
//! and `KMLOPS_RUN_DIR=<run dir>` in its environment, so that a run
//! directory that was deleted (a `cargo clean`, a moved `target/`) still
//! lets `status` show what runs and `teardown` stop it. Linux only (it reads
//! `/proc/<pid>/environ`); elsewhere the state files are all there is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::ground::poll;

/// The environment variable naming the service a process is.
pub const SERVICE_VAR: &str = "KMLOPS_SERVICE";
/// The environment variable naming the run directory (the checkout's
/// settings) that started it.
pub const RUN_DIR_VAR: &str = "KMLOPS_RUN_DIR";

/// A running service process of this run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub pid: u32,
    /// Its `PORT`, when it has one.
    pub port: Option<u16>,
    /// Its argv[0]: the binary it was started as.
    pub binary: PathBuf,
}

/// How a run directory is named in the environment: absolute, so that every
/// invocation from the same checkout names it alike.
pub fn run_dir_key(run_dir: &Path) -> String {
    std::path::absolute(run_dir)
        .unwrap_or_else(|_| run_dir.to_path_buf())
        .display()
        .to_string()
}

/// Every live (not zombie) process whose environment says it is a service
/// of `run_dir`, by pid.
pub fn discover(run_dir: &Path) -> Vec<Found> {
    let key = run_dir_key(run_dir);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let var = |name: &str| {
                let prefix = format!("{name}=");
                environ
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            if var(RUN_DIR_VAR)? != key || zombie(pid) {
                return None;
            }
            Some(Found {
                name: var(SERVICE_VAR)?,
                pid,
                port: var("PORT").and_then(|p| p.parse().ok()),
                binary: argv0(pid)?,
            })
        })
        .collect();
    found.sort_by_key(|f| f.pid);
    found
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn argv0(pid: u32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = cmdline.split(|c| *c == 0).next()?;
    Some(PathBuf::from(String::from_utf8_lossy(first).into_owned()))
}

/// Alive, not a zombie, and (where /proc exists) running `binary`: a pid
/// reused by another program is never signalled.
pub fn alive(pid: u32, binary: &Path) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if kill(Pid::from_raw(raw), None).is_err() {
        return false;
    }
    if !Path::new("/proc/self").exists() {
        return true;
    }
    // An empty command line is a process on its way out (its memory is
    // released before it becomes a zombie): it still holds its port.
    !zombie(pid) && argv0(pid).is_some_and(|a| a.as_os_str().is_empty() || a == binary)
}

/// SIGTERM, then SIGKILL after `grace`; says what it did on stderr.
///
/// # Errors
/// The process cannot be signalled.
pub fn stop(name: &str, pid: u32, binary: &Path, grace: Duration) -> Result<()> {
    let raw = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    let start = Instant::now();
    let gone = || !alive(pid, binary);
    kill(raw, Signal::SIGTERM).with_context(|| format!("cannot signal {name} (pid {pid})"))?;
    if !poll::within(grace, Duration::from_millis(20), gone) {
        eprintln!(
            "==> {name} did not stop within {}s; sending SIGKILL",
            grace.as_secs()
        );
        let _ = kill(raw, Signal::SIGKILL);
        poll::within(Duration::from_secs(5), Duration::from_millis(20), gone);
    }
    eprintln!(
        "==> stopped {name} (pid {pid}) in {:.2}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_found_by_its_environment_and_stopped() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let run_dir = dir.path().join("run");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(SERVICE_VAR, "svc")
            .env(RUN_DIR_VAR, run_dir_key(&run_dir))
            .env("PORT", "4321")
            .spawn()?;
        let pid = child.id();
        let found = poll::within(Duration::from_secs(5), Duration::from_millis(20), || {
            discover(&run_dir).iter().any(|f| f.pid == pid)
        });
        assert!(found, "sleep {pid} was not found");
        let f = discover(&run_dir)
            .into_iter()
            .find(|f| f.pid == pid)
            .context("found")?;
        assert_eq!((f.name.as_str(), f.port), ("svc", Some(4321)));
        assert_eq!(f.binary, Path::new("sleep"));
        // Another run directory's processes are not ours.
        assert!(discover(&dir.path().join("other")).is_empty());
        assert!(alive(pid, &f.binary));
        assert!(!alive(pid, Path::new("/bin/other")), "another binary");
        // The child is ours to reap: wait for it on another thread.
        let reaper = std::thread::spawn(move || child.wait());
        stop("svc", pid, &f.binary, Duration::from_secs(5))?;
        let _ = reaper.join();
        assert!(discover(&run_dir).is_empty());
        Ok(())
    }
}
