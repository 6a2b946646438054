//! The one way the xtask runs external commands. It finds the tool first
//! (with an install hint when it is missing), passes argv and never a shell
//! string, shows a spinner with the live last line on a terminal and plain
//! lines otherwise, reports the full command, exit status and stderr tail on
//! failure, and under `--dry-run` records what it would do instead.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt::Display;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::Progress;
use crate::tools;

/// How many lines of stderr a failure report shows.
const TAIL_LINES: usize = 20;

/// A command as argv plus environment; built, then handed to the runner.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    envs: Vec<(String, String, bool)>,
    cwd: Option<PathBuf>,
    purpose: String,
}

impl Cmd {
    /// `purpose` says what needs the tool, for the missing-tool error.
    pub fn new(program: impl Into<String>, purpose: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            purpose: purpose.into(),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(items.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, val: impl Into<String>) -> Self {
        self.envs.push((key.into(), val.into(), false));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The command as a user would type it, quoted; secrets masked.
    pub fn display(&self) -> String {
        let mut words: Vec<String> = self
            .envs
            .iter()
            .map(|(k, v, secret)| format!("{k}={}", if *secret { "***".into() } else { quote(v) }))
            .collect();
        words.push(quote(&self.program));
        words.extend(self.args.iter().map(|a| quote(&a.to_string_lossy())));
        words.join(" ")
    }

    fn std_command(&self, path: &Path) -> Command {
        let mut c = Command::new(path);
        c.args(&self.args).stdin(Stdio::null());
        for (k, v, _) in &self.envs {
            c.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        c
    }

    fn duct_expression(&self, path: &Path) -> duct::Expression {
        let mut e = duct::cmd(path, &self.args).stdin_null();
        for (k, v, _) in &self.envs {
            e = e.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            e = e.dir(dir);
        }
        e
    }
}

/// What a finished command printed.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
}

/// A read-only probe's result (it may have failed: the caller decides).
#[derive(Debug)]
pub struct Probe {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

pub struct Runner {
    dry_run: bool,
    verbose: bool,
    spinners: bool,
    plan: RefCell<Vec<String>>,
}

impl Runner {
    pub fn new(dry_run: bool, verbose: bool, progress: Progress) -> Self {
        let spinners = match progress {
            Progress::Always => true,
            Progress::Never => false,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        Self {
            dry_run,
            verbose,
            spinners,
            plan: RefCell::new(Vec::new()),
        }
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The tool's path, or an error naming it, what needs it and how to install it.
    pub fn locate(&self, program: &str, purpose: &str) -> Result<PathBuf> {
        if program.contains('/') {
            let p = PathBuf::from(program);
            if p.is_file() {
                return Ok(p);
            }
            bail!("`{program}` does not exist; it is needed for {purpose}");
        }
        which::which(program).map_err(|_| {
            anyhow::anyhow!(
                "`{program}` was not found on PATH; it is needed for {purpose}.\n  install it: {}\n  then check with: cargo xtask doctor",
                tools::install_hint(program)
            )
        })
    }

    /// A step that is not a command (a file written, an HTTP check): recorded
    /// under `--dry-run`, announced otherwise.
    pub fn step(&self, what: impl Display) {
        if self.dry_run {
            self.plan.borrow_mut().push(what.to_string());
        } else {
            eprintln!("==> {what}");
        }
    }

    /// Runs a command that changes something. Under `--dry-run` it is only
    /// recorded and an empty output is returned.
    pub fn run(&self, cmd: &Cmd) -> Result<Output> {
        if self.dry_run {
            self.record(cmd);
            return Ok(Output::default());
        }
        let path = self.locate(&cmd.program, &cmd.purpose)?;
        self.execute(cmd, &path)
    }

    /// Runs a command with this terminal's stdout and stderr (logs, follow
    /// mode); fails with the command line when it fails.
    pub fn run_inherited(&self, cmd: &Cmd) -> Result<()> {
        if self.dry_run {
            self.record(cmd);
            return Ok(());
        }
        let path = self.locate(&cmd.program, &cmd.purpose)?;
        let status = cmd
            .std_command(&path)
            .status()
            .with_context(|| format!("cannot start `{}`", cmd.display()))?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}) while {}",
                cmd.display(),
                cmd.purpose
            );
        }
        Ok(())
    }

    /// Runs a read-only command (a version, the current context) even under
    /// `--dry-run`, quietly, killed after `timeout`.
    pub fn probe(&self, cmd: &Cmd, timeout: Duration) -> Result<Probe> {
        let path = self.locate(&cmd.program, &cmd.purpose)?;
        let handle = cmd
            .duct_expression(&path)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .with_context(|| format!("cannot start `{}`", cmd.display()))?;
        match handle.wait_timeout(timeout)? {
            Some(out) => Ok(Probe {
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            None => {
                let _ = handle.kill();
                bail!(
                    "`{}` did not answer within {}s",
                    cmd.display(),
                    timeout.as_secs()
                )
            }
        }
    }

    /// Starts a long-lived process that outlives the xtask: its own process
    /// group (so Ctrl-C in this terminal does not reach it), output appended
    /// to `log`. Returns its pid, or None under `--dry-run`.
    pub fn spawn_detached(&self, cmd: &Cmd, log: &Path) -> Result<Option<u32>> {
        if self.dry_run {
            self.plan.borrow_mut().push(format!(
                "$ {}  (in the background, output to {})",
                cmd.display(),
                log.display()
            ));
            return Ok(None);
        }
        let path = self.locate(&cmd.program, &cmd.purpose)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {}", log.display()))?;
        let handle = cmd
            .duct_expression(&path)
            .stdout_file(file.try_clone()?)
            .stderr_file(file)
            .before_spawn(|c| {
                use std::os::unix::process::CommandExt;
                c.process_group(0);
                Ok(())
            })
            .start()
            .with_context(|| format!("cannot start `{}`", cmd.display()))?;
        let pid = handle.pids().first().copied();
        eprintln!("==> started `{}` (pid {})", cmd.display(), pid.unwrap_or(0));
        // Dropping the handle neither waits for nor kills the process.
        drop(handle);
        pid.map(Some).context("the started process has no pid")
    }

    /// Starts a process tied to this one (bench servers): killed when the
    /// returned handle is dropped.
    pub fn spawn_attached(&self, cmd: &Cmd) -> Result<Option<Attached>> {
        if self.dry_run {
            self.plan
                .borrow_mut()
                .push(format!("$ {}  (in the background)", cmd.display()));
            return Ok(None);
        }
        let path = self.locate(&cmd.program, &cmd.purpose)?;
        let handle = cmd
            .duct_expression(&path)
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .start()
            .with_context(|| format!("cannot start `{}`", cmd.display()))?;
        Ok(Some(Attached(handle)))
    }

    /// Prints what `--dry-run` recorded, if anything.
    pub fn print_plan(&self) {
        let plan = self.plan.borrow();
        if !self.dry_run {
            return;
        }
        println!("Plan (dry run: nothing was run or changed):");
        for (i, step) in plan.iter().enumerate() {
            println!("  {:>2}. {step}", i + 1);
        }
        if plan.is_empty() {
            println!("  (nothing to do)");
        }
    }

    /// The recorded plan (tests read it).
    #[cfg(test)]
    pub fn plan(&self) -> Vec<String> {
        self.plan.borrow().clone()
    }

    fn record(&self, cmd: &Cmd) {
        let mut line = format!("$ {}", cmd.display());
        if let Some(dir) = &cmd.cwd {
            line.push_str(&format!("  (in {})", dir.display()));
        }
        if self.locate(&cmd.program, &cmd.purpose).is_err() {
            line.push_str(&format!(
                "  [not installed: {}]",
                tools::install_hint(&cmd.program)
            ));
        }
        self.plan.borrow_mut().push(line);
    }

    fn execute(&self, cmd: &Cmd, path: &Path) -> Result<Output> {
        let shown = cmd.display();
        let started = Instant::now();
        let bar = self.spinners.then(|| spinner(&shown));
        if bar.is_none() {
            eprintln!("$ {shown}");
        }
        let mut child = cmd
            .std_command(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{shown}`"))?;
        let (tx, rx) = mpsc::channel::<(bool, String)>();
        let readers = [
            child
                .stdout
                .take()
                .map(|s| forward_lines(s, false, tx.clone())),
            child
                .stderr
                .take()
                .map(|s| forward_lines(s, true, tx.clone())),
        ];
        drop(tx);

        let mut stdout = String::new();
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut stderr_lines = 0usize;
        for (is_err, line) in rx {
            // The live line is stderr's (where tools print progress) once
            // there is any; machine-readable stdout (cargo's JSON) is not shown.
            if let Some(bar) = &bar
                && (is_err || stderr_lines == 0)
                && !line.trim().is_empty()
            {
                bar.set_message(format!(
                    "{}  {}",
                    shorten(&shown, 60),
                    shorten(line.trim(), 80)
                ));
            }
            if self.verbose {
                match &bar {
                    Some(bar) => bar.suspend(|| eprintln!("    {line}")),
                    None => eprintln!("    {line}"),
                }
            }
            if !is_err {
                stdout.push_str(&line);
                stdout.push('\n');
            } else {
                stderr_lines += 1;
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        for r in readers.into_iter().flatten() {
            let _ = r.join();
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{shown}`"))?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if !status.success() {
            let mut msg = format!("`{shown}` failed ({status}) while {}", cmd.purpose);
            if tail.is_empty() {
                let out_tail: Vec<&str> = stdout.lines().rev().take(TAIL_LINES).collect();
                if !out_tail.is_empty() {
                    msg.push_str("\n  stdout (last lines):");
                    for l in out_tail.into_iter().rev() {
                        msg.push_str(&format!("\n    {l}"));
                    }
                }
            } else {
                msg.push_str(&format!(
                    "\n  stderr (last {} of {stderr_lines} lines):",
                    tail.len()
                ));
                for l in &tail {
                    msg.push_str(&format!("\n    {l}"));
                }
            }
            bail!(msg);
        }
        eprintln!(
            "  ✓ {} ({:.1}s)",
            shorten(&shown, 100),
            started.elapsed().as_secs_f64()
        );
        Ok(Output { stdout })
    }
}

/// A background process killed when dropped.
pub struct Attached(duct::Handle);

impl Attached {
    /// Whether it has exited already, with what it wrote to stderr.
    pub fn exited(&self) -> Option<String> {
        match self.0.try_wait() {
            Ok(Some(out)) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn spinner(shown: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>3} {wide_msg}") {
        bar.set_style(style);
    }
    bar.set_message(shorten(shown, 100));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Sends each line (lossily decoded) to `tx`, tagged with its stream.
fn forward_lines(
    stream: impl Read + Send + 'static,
    is_err: bool,
    tx: mpsc::Sender<(bool, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    if tx.send((is_err, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Quotes a word for display only when a shell would need it: settings
/// values printed in hints (`cargo xtask context use <name>`) go through it
/// too, so that a copied command means what it says.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        shlex::try_quote(word).map_or_else(|_| format!("{word:?}"), |q| q.into_owned())
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(dry: bool) -> Runner {
        Runner::new(dry, false, Progress::Never)
    }

    #[test]
    fn missing_tool_names_it_and_what_needs_it() {
        let err = quiet(false)
            .run(&Cmd::new("minikube-not-here", "starting the cluster"))
            .expect_err("tool is missing");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("`minikube-not-here` was not found on PATH"),
            "{msg}"
        );
        assert!(msg.contains("needed for starting the cluster"), "{msg}");
        assert!(msg.contains("cargo xtask doctor"), "{msg}");
    }

    #[test]
    fn known_tools_have_install_hints_for_both_systems() {
        for t in tools::TOOLS {
            let hint = tools::install_hint(t.name);
            assert!(
                hint.starts_with("Debian/Ubuntu: ") && hint.contains("; macOS: "),
                "{hint}"
            );
        }
        assert!(tools::install_hint("minikube").contains("brew install minikube"));
    }

    #[test]
    fn failure_reports_command_status_and_stderr_tail() {
        let cmd = Cmd::new("sh", "testing the runner").args([
            "-c",
            "for i in $(seq 1 30); do echo line$i >&2; done; echo out; exit 3",
            "ignored-arg with space",
        ]);
        let msg = format!("{:#}", quiet(false).run(&cmd).expect_err("exits 3"));
        assert!(
            msg.contains("'ignored-arg with space'"),
            "quoted argv: {msg}"
        );
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("while testing the runner"), "{msg}");
        assert!(msg.contains("line30"), "last line kept: {msg}");
        assert!(msg.contains("line11"), "20-line tail: {msg}");
        assert!(!msg.contains("line10\n"), "older lines dropped: {msg}");
        assert!(msg.contains("last 20 of 30 lines"), "{msg}");
    }

    #[test]
    fn arguments_are_argv_not_shell() -> Result<()> {
        let out = quiet(false).run(&Cmd::new("echo", "test").arg("$HOME; rm -rf /"))?;
        assert_eq!(out.stdout, "$HOME; rm -rf /\n");
        Ok(())
    }

    #[test]
    fn dry_run_records_and_runs_nothing() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let marker = dir.path().join("created");
        let r = quiet(true);
        let out = r.run(&Cmd::new("touch", "test").arg(&marker))?;
        assert!(out.stdout.is_empty());
        r.step("wait for something");
        let log = dir.path().join("log");
        assert_eq!(
            r.spawn_detached(&Cmd::new("sleep", "test").arg("100"), &log)?,
            None
        );
        assert!(!marker.exists(), "dry run must not run the command");
        assert!(!log.exists(), "dry run must not create the log");
        let plan = r.plan();
        assert_eq!(plan.len(), 3, "{plan:?}");
        assert!(plan[0].starts_with("$ touch "), "{plan:?}");
        assert_eq!(plan[1], "wait for something");
        assert!(plan[2].contains("sleep 100"), "{plan:?}");
        Ok(())
    }

    #[test]
    fn dry_run_marks_missing_tools() {
        let r = quiet(true);
        let _ = r.run(&Cmd::new("no-such-tool-xyz", "test"));
        assert!(r.plan()[0].contains("[not installed"), "{:?}", r.plan());
    }

    #[test]
    fn probe_times_out() {
        let err = quiet(false)
            .probe(
                &Cmd::new("sleep", "test").arg("5"),
                Duration::from_millis(200),
            )
            .expect_err("sleep outlives the timeout");
        assert!(format!("{err}").contains("did not answer"), "{err}");
    }

    #[test]
    fn secrets_are_masked_in_display() {
        let mut cmd = Cmd::new("docker", "test").arg("login");
        cmd.envs.push(("TOKEN".into(), "hunter2".into(), true));
        assert_eq!(cmd.display(), "TOKEN=*** docker login");
    }
}
