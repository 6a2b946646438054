//! One run at a time per checkout and target for the commands that change
//! what runs there (`deploy`, `teardown`, `dev`): two deploys at once would
//! remove each other's containers and processes. The lock is an advisory
//! file lock (`flock`) on a file named after the checkout's run directory
//! and the target, kept outside the checkout (in the user's runtime
//! directory) so that deleting `target/` (`cargo clean`) while a loop runs
//! cannot take its lock away. The kernel releases the lock when its holder
//! dies, however it dies: a stale lock cannot exist. The
//! file names its holder (pid and command line) for the message a second
//! run prints. A short run (deploy, teardown) waits for another short one;
//! a dev loop, which holds the lock until Ctrl-C, is never waited for: the
//! second run is refused, naming it. A child the holder starts to act for
//! it (the dev loop's teardown on Ctrl-C) inherits the lock through
//! `HELD_BY`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Set by a lock holder on a child that acts for it: the holder's pid.
pub const HELD_BY: &str = "KMLOPS_LOCK_HELD_BY";

/// What a run that holds the lock is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Ends on its own (deploy, teardown): others wait for it.
    Run,
    /// Runs until stopped (the dev loop): others are refused.
    Loop,
}

/// The lock file's text: who holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    kind: Kind,
    command: String,
}

/// A held lock; released when dropped (or when the process ends).
pub struct RunLock {
    file: Option<File>,
    /// Clears the holder's text on Ctrl-C too (the handler exits without
    /// dropping; the kernel releases the lock itself).
    _cleanup: Option<super::interrupt::Guard>,
}

impl RunLock {
    /// The lock file for `target` runs of the checkout whose run directory
    /// is `run_dir`: `$XDG_RUNTIME_DIR/kube-mlops/` (else the temporary
    /// directory's `kube-mlops-<uid>/`), named `<target>-<a hash of the
    /// run directory's absolute path>.lock`.
    pub fn path(run_dir: &Path, target: &str) -> PathBuf {
        let id = super::files::path_id(run_dir);
        locks_dir().join(format!("{target}-{id}.lock"))
    }

    /// Takes the lock at `path` for a run of `kind` described by `command`
    /// (`cargo xtask deploy --target docker`). A `Run` waits for a `Run`
    /// holder (saying so once on stderr); a `Loop` holder refuses every
    /// other run, and a `Loop` is refused by any holder. A holder that is
    /// our parent and started us to act for it (`HELD_BY`) lets us through.
    ///
    /// # Errors
    /// The lock file cannot be created; a dev loop holds it; this is a
    /// loop and another run holds it.
    pub fn take(path: &Path, kind: Kind, command: &str) -> Result<Self> {
        let mut file = open(path)?;
        let mut announced = false;
        // A holder writes its name just after it takes the lock: a moment
        // to read it, so the message names who to wait for.
        let mut unnamed = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
            let holder = read_holder(&mut file);
            if holder.is_none() && unnamed < UNNAMED_TRIES {
                unnamed += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if let Some(h) = &holder
                && inherited(h.pid)
            {
                // Our parent holds it and started us to act for it.
                return Ok(Self {
                    file: None,
                    _cleanup: None,
                });
            }
            let who = refuse_beside(holder.as_ref(), kind, path)?;
            if !announced {
                eprintln!(
                    "==> waiting for {who} to finish: it is changing what runs on this target \
                     ({} holds its lock; Ctrl-C gives up)",
                    path.display()
                );
                announced = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let me = Holder {
            pid: std::process::id(),
            kind,
            command: command.to_string(),
        };
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(serde_json::to_string(&me)?.as_bytes())?;
        file.flush()?;
        if announced {
            eprintln!("==> {} is free now", path.display());
        }
        let cleanup = file.try_clone().ok().map(|f| {
            super::interrupt::on_interrupt(move || {
                let _ = f.set_len(0);
            })
        });
        Ok(Self {
            file: Some(file),
            _cleanup: cleanup,
        })
    }
}

/// The lock file at `path`, its directory made (mode 0700) when missing.
fn open(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

/// Who holds the lock at `path`, to wait for; an error where a `kind`
/// run does not wait beside it: nothing runs beside a dev loop, and a dev
/// loop does not start beside a deploy or teardown.
fn refuse_beside(holder: Option<&Holder>, kind: Kind, path: &Path) -> Result<String> {
    let who = holder.map_or_else(
        || "another run".to_string(),
        |h| format!("`{}` (pid {})", h.command, h.pid),
    );
    if let Some(h) = holder.filter(|h| h.kind == Kind::Loop) {
        bail!(
            "{who} is running the services of this checkout on this target ({} holds \
             its lock): stop it first (Ctrl-C in its terminal, or `kill -INT {}`); \
             it redeploys what you edit by itself",
            path.display(),
            h.pid
        );
    }
    if kind == Kind::Loop {
        bail!(
            "{who} is changing what runs on this target ({} holds its lock): wait until \
             it ends, then start the dev loop again",
            path.display()
        );
    }
    Ok(who)
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock")
            .field("held", &self.file.is_some())
            .finish()
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The file stays (removing a lock file races with a waiter that
        // opened it); its text is cleared so that nobody is named.
        if let Some(f) = &self.file {
            let _ = f.set_len(0);
            let _ = f.unlock();
        }
    }
}

/// How often (every 100 ms) a waiter looks for the holder's name before
/// it says "another run".
const UNNAMED_TRIES: u32 = 10;

/// Where lock files live: per user, outside any checkout.
fn locks_dir() -> PathBuf {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(runtime).join("kube-mlops");
    }
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to this process's user (Linux); elsewhere $USER.
    let user = std::fs::metadata("/proc/self").map_or_else(
        |_| std::env::var("USER").unwrap_or_default(),
        |m| m.uid().to_string(),
    );
    std::env::temp_dir().join(format!("kube-mlops-{user}"))
}

/// This process's command line as a user typed it (`cargo xtask deploy
/// --target docker`), for the lock file.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| super::runner::quote(&a))
        .collect();
    format!("cargo xtask {}", args.join(" "))
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the holder `pid` is our parent and marked us as acting for it.
fn inherited(pid: u32) -> bool {
    let parent = std::os::unix::process::parent_id();
    std::env::var(HELD_BY)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        == Some(pid)
        && parent == pid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_refuses_and_is_refused_runs_wait_and_a_dead_holder_frees_it() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = RunLock::path(&dir.path().join("run"), "local");
        assert!(
            !path.starts_with(dir.path()),
            "outside the checkout: {path:?}"
        );
        assert_ne!(path, RunLock::path(&dir.path().join("run"), "docker"));
        assert_ne!(path, RunLock::path(&dir.path().join("other"), "local"));
        let held = RunLock::take(&path, Kind::Loop, "cargo xtask dev")?;
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains("\"kind\":\"loop\""), "{text}");
        // flock is per open file: a second take in this process conflicts.
        let e = RunLock::take(&path, Kind::Run, "cargo xtask deploy").expect_err("a loop holds it");
        let e = format!("{e:#}");
        assert!(e.contains("`cargo xtask dev` (pid"), "{e}");
        assert!(e.contains("kill -INT"), "{e}");
        drop(held);
        assert_eq!(std::fs::read_to_string(&path)?, "", "the holder is cleared");

        // A run waits for a run.
        let held = RunLock::take(&path, Kind::Run, "cargo xtask teardown")?;
        let e = RunLock::take(&path, Kind::Loop, "cargo xtask dev").expect_err("busy");
        assert!(format!("{e:#}").contains("wait until it ends"), "{e:#}");
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || RunLock::take(&path, Kind::Run, "cargo xtask deploy"))
        };
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiter.is_finished(), "the second run waits");
        drop(held);
        let second = waiter.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        drop(second);

        // A holder that died (here: a child holding the lock, killed)
        // leaves no stale lock: the kernel released it.
        // (-o: flock holds it, not the sleep it starts.)
        let mut child = std::process::Command::new("flock")
            .arg("-o")
            .arg(&path)
            .args(["sleep", "5"])
            .spawn()?;
        std::thread::sleep(Duration::from_millis(300));
        assert!(RunLock::take(&path, Kind::Loop, "cargo xtask dev").is_err());

        // A holder named a moment after it locked (as a run writes its
        // name just after taking the lock) is still named.
        let path2 = RunLock::path(&dir.path().join("late"), "local");
        std::fs::create_dir_all(path2.parent().ok_or_else(|| anyhow::anyhow!("parent"))?)?;
        let late = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path2)?;
        late.try_lock()?;
        let named = {
            let mut late = late.try_clone()?;
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let me = Holder {
                    pid: 4242,
                    kind: Kind::Run,
                    command: "cargo xtask deploy --target local".into(),
                };
                let _ = late.write_all(serde_json::to_string(&me).unwrap_or_default().as_bytes());
            })
        };
        let e = RunLock::take(&path2, Kind::Loop, "cargo xtask dev").expect_err("held");
        named.join().map_err(|_| anyhow::anyhow!("panicked"))?;
        assert!(
            format!("{e:#}").contains("`cargo xtask deploy --target local` (pid 4242)"),
            "{e:#}"
        );
        drop(late);
        child.kill()?;
        child.wait()?;
        drop(RunLock::take(&path, Kind::Loop, "cargo xtask dev")?);
        Ok(())
    }
}
