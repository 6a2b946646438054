//! The one executor of external commands. Call sites write commands with
//! xshell's `cmd!` (or build a `std::process::Command`); the runner takes
//! anything that converts into a `Command` and says what it is for. It
//! finds the tool first (with an install hint when it is missing), runs
//! argv and never a shell string, shows a spinner with the live last line
//! on a terminal and plain lines otherwise, reports the full command, exit
//! status and stderr tail on failure, and under `--dry-run` records what it
//! would do instead: every task can print its whole plan.

mod blocked;
mod display;
mod pump;

use std::cell::RefCell;
use std::fmt::Display;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use blocked::{Blocked, Cause};
pub use display::{quote, shown};

use super::tools;

/// Whether to draw spinners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Only when stderr is a terminal.
    Auto,
    Always,
    Never,
}

/// How results reach stdout: text for people, or one JSON document for
/// scripts (`--output json`). Progress and errors go to stderr either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// What a finished command printed on stdout.
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
    /// The command as shown.
    line: String,
    /// What its failure comes from, where that is a known cause.
    cause: Option<Cause>,
}

impl Probe {
    /// Its failure as an error, "`<command>` failed: <stderr>", of the
    /// cause a dry run recognises (the tool could not start; kubectl found
    /// no such context).
    pub fn failure(&self) -> anyhow::Error {
        self.failure_saying(format!("`{}` failed: {}", self.line, self.stderr.trim()))
    }

    /// `message` as the error of this probe's failure: of its cause, as
    /// `failure`.
    pub fn failure_saying(&self, message: String) -> anyhow::Error {
        match &self.cause {
            Some(c) => Blocked::error(c.clone(), message),
            None => anyhow::anyhow!(message),
        }
    }
}

pub struct Runner {
    dry_run: bool,
    verbose: bool,
    spinners: bool,
    /// Where commands run unless they say otherwise (the workspace root);
    /// the plan names other directories.
    home: PathBuf,
    plan: RefCell<Vec<String>>,
    /// Preconditions a dry run found unmet (see `precondition`).
    blockers: RefCell<blocked::Blockers>,
    /// stdout carries one JSON document: children's stdout goes to stderr.
    format: Format,
    /// A dry run's result document, printed inside the plan's.
    result: RefCell<Option<serde_json::Value>>,
    /// The tools it can say how to install: `tools::TOOLS` and those
    /// `know` adds (the cluster kinds' own).
    tools: Vec<&'static tools::Tool>,
}

impl Runner {
    pub fn new(dry_run: bool, verbose: bool, progress: Progress, home: PathBuf) -> Self {
        let spinners = match progress {
            Progress::Always => true,
            Progress::Never => false,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        Self {
            dry_run,
            verbose,
            spinners,
            home,
            plan: RefCell::new(Vec::new()),
            blockers: RefCell::new(blocked::Blockers::default()),
            format: Format::Text,
            result: RefCell::new(None),
            tools: tools::TOOLS.iter().collect(),
        }
    }

    /// Adds `more` to the tools it can say how to install.
    pub fn know(&mut self, more: &'static [tools::Tool]) {
        self.tools.extend(more);
    }

    /// Every tool it knows, `tools::TOOLS` first.
    pub fn tools(&self) -> &[&'static tools::Tool] {
        &self.tools
    }

    /// Prints `doc` on stdout under `Format::Json`; a dry run keeps it for
    /// its plan document (`print_plan`), so stdout holds one document.
    pub fn emit(&self, doc: &serde_json::Value) {
        if self.format != Format::Json {
            return;
        }
        if self.dry_run {
            *self.result.borrow_mut() = Some(doc.clone());
        } else {
            println!("{doc:#}");
        }
    }

    /// The same runner printing results as `format`.
    #[must_use]
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// How results are printed.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The tool's path, or an error naming it, what needs it and how to
    /// install it. Under `--dry-run` a missing tool is a precondition
    /// ("would stop here") and the plan goes on with its bare name.
    pub fn locate(&self, program: &str, purpose: &str) -> Result<PathBuf> {
        match self.find(program, purpose) {
            Err(e) if self.dry_run => {
                self.block(&e);
                Ok(PathBuf::from(program))
            }
            found => found,
        }
    }

    /// Whether `program` is there (on PATH, or the file a path names): a
    /// question, never a dry run's blocker (`doctor` reports it itself).
    pub fn on_path(&self, program: &str) -> bool {
        self.find(program, "").is_ok()
    }

    fn find(&self, program: &str, purpose: &str) -> Result<PathBuf> {
        if program.contains('/') {
            let p = PathBuf::from(program);
            if p.is_file() {
                return Ok(p);
            }
            bail!("`{program}` does not exist; it is needed for {purpose}");
        }
        which::which(program).map_err(|_| {
            Blocked::error(
                Cause::MissingTool(program.to_string()),
                format!(
                    "`{program}` was not found on PATH; it is needed for {purpose}.\n  install it: {}\n  then check with: cargo xtask doctor",
                    tools::install_hint(&self.tools, program)
                ),
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

    /// A precondition that does not hold (no kube context, no project, no
    /// engine): an error on a real run; under `--dry-run` it is listed at
    /// the top of the plan as "would stop here" and the plan goes on, with
    /// the caller using a placeholder for what is missing.
    pub fn precondition(&self, problem: anyhow::Error) -> Result<()> {
        if !self.dry_run {
            return Err(problem);
        }
        self.block(&problem);
        Ok(())
    }

    /// Records a dry run's blocker, unless an earlier one has its cause
    /// (a tool already missing, the kube context, the GKE project) or its
    /// text: one cause, one line.
    fn block(&self, problem: &anyhow::Error) {
        self.blockers.borrow_mut().add(problem);
    }

    /// An effect that is not a command (a file written, a process
    /// signalled): under `--dry-run` only `what` is recorded and `None`
    /// returned; otherwise `act` runs.
    pub fn effect<T>(
        &self,
        what: impl Display,
        act: impl FnOnce() -> Result<T>,
    ) -> Result<Option<T>> {
        if self.dry_run {
            self.plan.borrow_mut().push(what.to_string());
            return Ok(None);
        }
        act().map(Some)
    }

    /// Runs `act` unless this is a dry run: for work on what earlier,
    /// recorded steps produced (reading a built archive, say), which a plan
    /// need not list.
    pub fn unless_dry_run<T>(&self, act: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
        if self.dry_run {
            return Ok(None);
        }
        act().map(Some)
    }

    /// Runs a command that changes something. Under `--dry-run` it is only
    /// recorded and an empty output is returned.
    pub fn run(&self, cmd: impl Into<Command>, purpose: &str) -> Result<Output> {
        let cmd = cmd.into();
        if self.dry_run {
            self.record(&cmd, purpose, "");
            return Ok(Output::default());
        }
        let line = shown(&cmd);
        let mut cmd = self.resolved(cmd, purpose)?;
        self.execute(&mut cmd, &line, purpose, None)
    }

    /// As [`Runner::run`], with `input` on the command's standard input (a
    /// manifest for `kubectl apply -f -`); the plan under `--dry-run` says
    /// what goes there (`what_input`, never the input: it may hold secrets).
    pub fn run_with_input(
        &self,
        cmd: impl Into<Command>,
        input: &str,
        what_input: &str,
        purpose: &str,
    ) -> Result<Output> {
        let cmd = cmd.into();
        if self.dry_run {
            self.record(&cmd, purpose, &format!("  <<< {what_input}"));
            return Ok(Output::default());
        }
        let line = shown(&cmd);
        let mut cmd = self.resolved(cmd, purpose)?;
        self.execute(&mut cmd, &line, purpose, Some(input))
    }

    /// Runs a command with this terminal's stdout and stderr (logs, follow
    /// mode); fails with the command line when it fails.
    pub fn run_inherited(&self, cmd: impl Into<Command>, purpose: &str) -> Result<()> {
        let cmd = cmd.into();
        if self.dry_run {
            self.record(&cmd, purpose, "");
            return Ok(());
        }
        let line = shown(&cmd);
        let mut resolved = self.resolved(cmd, purpose)?;
        if self.format == Format::Json {
            // stdout is the JSON document's alone.
            resolved.stdout(Stdio::from(std::io::stderr()));
        }
        let mut child = resolved
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let _forward = crate::ground::interrupt::forward_to(child.id());
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{line}`"))?;
        if !status.success() {
            bail!("`{line}` failed ({status}) while {purpose}");
        }
        Ok(())
    }

    /// Runs a read-only command (a version, the current context) even under
    /// `--dry-run`, quietly, killed after `timeout`.
    pub fn probe(
        &self,
        cmd: impl Into<Command>,
        purpose: &str,
        timeout: Duration,
    ) -> Result<Probe> {
        let cmd = cmd.into();
        let line = shown(&cmd);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let started = duct_of(&self.resolved(cmd, purpose)?)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start();
        let handle = match started {
            Ok(h) => h,
            // A dry run without the tool: a failed probe, which the caller
            // lists as a precondition.
            Err(e) if self.dry_run => {
                return Ok(Probe {
                    success: false,
                    stdout: String::new(),
                    stderr: format!("cannot start `{line}`: {e}"),
                    cause: Some(Cause::MissingTool(program)),
                    line,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("cannot start `{line}`")),
        };
        match handle.wait_timeout(timeout)? {
            Some(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                // kubectl's words for a context the kubeconfig lacks.
                let cause = stderr
                    .contains("context was not found")
                    .then_some(Cause::KubeContext);
                Ok(Probe {
                    success: out.status.success(),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr,
                    line,
                    cause,
                })
            }
            None => {
                let _ = handle.kill();
                bail!("`{line}` did not answer within {}s", timeout.as_secs())
            }
        }
    }

    /// Starts a long-lived process that outlives the xtask: its own process
    /// group (so Ctrl-C in this terminal does not reach it), output appended
    /// to `log`. Returns its pid, or None under `--dry-run`.
    pub fn spawn_detached(
        &self,
        cmd: impl Into<Command>,
        purpose: &str,
        log: &Path,
    ) -> Result<Option<u32>> {
        let cmd = cmd.into();
        if self.dry_run {
            let background = format!("  (in the background, output to {})", log.display());
            self.record(&cmd, purpose, &background);
            return Ok(None);
        }
        let line = shown(&cmd);
        let expression = duct_of(&self.resolved(cmd, purpose)?);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {}", log.display()))?;
        let handle = expression
            .stdout_file(file.try_clone()?)
            .stderr_file(file)
            .before_spawn(|c| {
                c.process_group(0);
                Ok(())
            })
            .start()
            .with_context(|| format!("cannot start `{line}`"))?;
        let pid = handle.pids().first().copied();
        eprintln!("==> started `{line}` (pid {})", pid.unwrap_or(0));
        // Dropping the handle neither waits for nor kills the process.
        drop(handle);
        pid.map(Some).context("the started process has no pid")
    }

    /// Starts a process tied to this one (bench servers): killed when the
    /// returned handle is dropped.
    pub fn spawn_attached(
        &self,
        cmd: impl Into<Command>,
        purpose: &str,
    ) -> Result<Option<Attached>> {
        let cmd = cmd.into();
        if self.dry_run {
            self.record(&cmd, purpose, "  (in the background)");
            return Ok(None);
        }
        let line = shown(&cmd);
        let handle = duct_of(&self.resolved(cmd, purpose)?)
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .before_spawn(|c| {
                c.process_group(0);
                Ok(())
            })
            .start()
            .with_context(|| format!("cannot start `{line}`"))?;
        let forward = handle
            .pids()
            .first()
            .map(|&pid| crate::ground::interrupt::forward_to(pid));
        Ok(Some(Attached {
            handle,
            _forward: forward,
        }))
    }

    /// Prints what `--dry-run` recorded; after an error (`failed`), only
    /// the steps planned before it, if any. With `Format::Json`, one
    /// document: `{"dry_run": true, "blockers": [...], "plan": [...],
    /// "error": <the error or null>, "result": <what `emit` got, or null>}`.
    /// Returns whether this was a dry run (its plan, or the JSON document,
    /// was printed).
    pub fn print_plan(&self, failed: Option<&anyhow::Error>) -> bool {
        let plan = self.plan.borrow();
        if !self.dry_run {
            return false;
        }
        let blockers = self.blockers.borrow();
        if self.format == Format::Json {
            println!("{:#}", self.plan_document(failed));
            return true;
        }
        let failed = failed.is_some();
        if failed && plan.is_empty() {
            return true;
        }
        if !blockers.is_empty() {
            println!("A real run would stop here first; fix these, then run again:");
            for b in blockers.texts() {
                println!("  - would stop here: {}", b.replace('\n', "\n    "));
            }
            println!();
        }
        if failed {
            println!("Plan until the error below (dry run: nothing was run or changed):");
        } else {
            println!("Plan (dry run: nothing was run or changed):");
        }
        for (i, step) in plan.iter().enumerate() {
            println!("  {:>2}. {step}", i + 1);
        }
        if plan.is_empty() {
            println!("  (nothing to do)");
        }
        true
    }

    /// The dry run's JSON document (see `print_plan`).
    fn plan_document(&self, failed: Option<&anyhow::Error>) -> serde_json::Value {
        serde_json::json!({
            "dry_run": true,
            "blockers": self.blockers.borrow().texts(),
            "plan": *self.plan.borrow(),
            "error": failed.map(|e| format!("{e:#}")),
            "result": *self.result.borrow(),
        })
    }

    /// The recorded plan (tests read it).
    #[cfg(test)]
    pub fn plan(&self) -> Vec<String> {
        self.plan.borrow().clone()
    }

    /// The same command with its program resolved (or a missing-tool error).
    fn resolved(&self, cmd: Command, purpose: &str) -> Result<Command> {
        let path = self.locate(&cmd.get_program().to_string_lossy(), purpose)?;
        let mut c = Command::new(path);
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        Ok(c)
    }

    fn record(&self, cmd: &Command, purpose: &str, suffix: &str) {
        let mut line = format!("$ {}{suffix}", shown(cmd));
        if let Some(dir) = cmd.get_current_dir().filter(|d| *d != self.home) {
            line.push_str(&format!("  (in {})", dir.display()));
        }
        let program = cmd.get_program().to_string_lossy();
        // A path names a binary the plan itself builds (a service, the
        // engine); only tools looked up on PATH can be missing.
        let on_path = !program.contains(std::path::MAIN_SEPARATOR);
        if on_path && let Err(missing) = self.find(&program, purpose) {
            // A real run would stop at this step: listed first, too.
            self.block(&missing);
            line.push_str(&format!(
                "  [not installed: {}]",
                tools::install_hint(&self.tools, &program)
            ));
        }
        self.plan.borrow_mut().push(line);
    }

    /// Runs `cmd` to the end: live display while it runs, its stdout
    /// returned, the command and its stderr tail reported when it fails.
    fn execute(
        &self,
        cmd: &mut Command,
        line: &str,
        purpose: &str,
        input: Option<&str>,
    ) -> Result<Output> {
        let started = Instant::now();
        let live = display::Live::start(line, self.spinners, self.verbose);
        // A process group of its own: Ctrl-C reaches its whole tree through
        // `interrupt::forward_to` (cargo-zigbuild's cargo, rustc), whether
        // the terminal or a `kill` sent it.
        let mut child = cmd
            .process_group(0)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let _forward = crate::ground::interrupt::forward_to(child.id());
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // From a thread: a command that writes before it has read all
            // its input must not wait on us. Dropping the pipe closes it.
            let input = input.to_string();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(input.as_bytes());
            });
        }
        let finished = pump::drain(child, |stream, text| live.line(stream, text))
            .with_context(|| format!("waiting for `{line}`"))?;
        live.finish();
        if !finished.status.success() {
            bail!(finished.failure(line, purpose));
        }
        eprintln!(
            "  ✓ {} ({:.1}s)",
            display::shorten(line, 100),
            started.elapsed().as_secs_f64()
        );
        Ok(Output {
            stdout: finished.stdout,
        })
    }
}

/// A background process killed when dropped.
pub struct Attached {
    handle: duct::Handle,
    /// Ctrl-C passed on to it while it runs.
    _forward: Option<crate::ground::interrupt::Guard>,
}

impl Attached {
    /// Whether it has exited already, with what it wrote to stderr.
    pub fn exited(&self) -> Option<String> {
        match self.handle.try_wait() {
            Ok(Some(out)) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.handle.kill();
    }
}

/// The same command as a duct expression (probes and background processes
/// need duct's timeouts and handles), stdin closed.
fn duct_of(cmd: &Command) -> duct::Expression {
    let mut e = duct::cmd(cmd.get_program(), cmd.get_args()).stdin_null();
    for (k, v) in cmd.get_envs() {
        e = match v {
            Some(v) => e.env(k, v),
            None => e.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        e = e.dir(dir);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use xshell::{Shell, cmd};

    fn quiet(dry: bool) -> Runner {
        Runner::new(dry, false, Progress::Never, PathBuf::from("/"))
    }

    #[test]
    fn missing_tool_names_it_and_what_needs_it() -> Result<()> {
        let sh = Shell::new()?;
        let err = quiet(false)
            .run(cmd!(sh, "minikube-not-here"), "starting the cluster")
            .expect_err("tool is missing");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("`minikube-not-here` was not found on PATH"),
            "{msg}"
        );
        assert!(msg.contains("needed for starting the cluster"), "{msg}");
        assert!(msg.contains("cargo xtask doctor"), "{msg}");
        Ok(())
    }

    #[test]
    fn known_tools_have_install_hints_for_both_systems() {
        let known: Vec<&tools::Tool> = tools::TOOLS.iter().collect();
        for t in tools::TOOLS {
            let hint = tools::install_hint(&known, t.name);
            assert!(
                hint.starts_with("Debian/Ubuntu: ") && hint.contains("; macOS: "),
                "{hint}"
            );
        }
        assert!(tools::install_hint(&known, "helm").contains("brew install helm"));
        assert!(tools::install_hint(&known, "nope").contains("package manager"));
    }

    #[test]
    fn failure_reports_command_status_and_stderr_tail() -> Result<()> {
        let sh = Shell::new()?;
        let script = "for i in $(seq 1 30); do echo line$i >&2; done; echo out; exit 3";
        let extra = "ignored-arg with space";
        let msg = format!(
            "{:#}",
            quiet(false)
                .run(cmd!(sh, "sh -c {script} {extra}"), "testing the runner")
                .expect_err("exits 3")
        );
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
        Ok(())
    }

    #[test]
    fn arguments_are_argv_not_shell() -> Result<()> {
        let sh = Shell::new()?;
        let nasty = "$HOME; rm -rf /";
        let out = quiet(false).run(cmd!(sh, "echo {nasty}"), "test")?;
        assert_eq!(out.stdout, "$HOME; rm -rf /\n");
        Ok(())
    }

    #[test]
    fn dry_run_records_and_runs_nothing() -> Result<()> {
        let sh = Shell::new()?;
        let dir = tempfile::tempdir()?;
        let marker = dir.path().join("created");
        let r = quiet(true);
        let out = r.run(cmd!(sh, "touch {marker}"), "test")?;
        assert!(out.stdout.is_empty());
        r.step("wait for something");
        let log = dir.path().join("log");
        assert_eq!(r.spawn_detached(cmd!(sh, "sleep 100"), "test", &log)?, None);
        let wrote = r.effect("write a file", || {
            std::fs::write(dir.path().join("effect"), "x")?;
            Ok(())
        })?;
        assert_eq!(wrote, None);
        assert!(!marker.exists(), "dry run must not run the command");
        assert!(!log.exists(), "dry run must not create the log");
        assert!(!dir.path().join("effect").exists(), "dry run must not act");
        let plan = r.plan();
        assert_eq!(plan.len(), 4, "{plan:?}");
        assert!(plan[0].starts_with("$ touch "), "{plan:?}");
        assert_eq!(plan[1], "wait for something");
        assert!(plan[2].contains("sleep 100"), "{plan:?}");
        assert_eq!(plan[3], "write a file");
        Ok(())
    }

    #[test]
    fn dry_run_marks_missing_tools() -> Result<()> {
        let sh = Shell::new()?;
        let r = quiet(true);
        r.run(cmd!(sh, "no-such-tool-xyz"), "test")?;
        assert!(r.plan()[0].contains("[not installed"), "{:?}", r.plan());
        Ok(())
    }

    #[test]
    fn a_json_dry_run_is_one_document_with_blockers_plan_and_result() -> Result<()> {
        let sh = Shell::new()?;
        let r = quiet(true).with_format(Format::Json);
        r.precondition(anyhow::anyhow!("no kube context"))?;
        r.run(cmd!(sh, "kubectl apply -f x.yaml"), "applying")?;
        r.emit(&serde_json::json!({ "target": "kind" }));
        let doc = r.plan_document(None);
        assert_eq!(doc["dry_run"], true);
        assert_eq!(doc["blockers"], serde_json::json!(["no kube context"]));
        assert!(
            doc["plan"][0]
                .as_str()
                .is_some_and(|s| s.contains("kubectl apply -f x.yaml")),
            "{doc}"
        );
        assert_eq!(doc["result"]["target"], "kind");
        assert!(doc["error"].is_null());
        let failed = r.plan_document(Some(&anyhow::anyhow!("boom")));
        assert_eq!(failed["error"], "boom");
        Ok(())
    }

    #[test]
    fn a_dry_run_names_each_cause_once() -> Result<()> {
        let sh = Shell::new()?;
        let r = quiet(true);
        r.precondition(Blocked::error(
            Cause::KubeContext,
            "no kube context is selected; run x",
        ))?;
        r.run(cmd!(sh, "no-such-tool-xyz install"), "installing")?;
        r.run(cmd!(sh, "no-such-tool-xyz upgrade"), "upgrading")?;
        // A probe of the missing tool fails as it cannot start, and its
        // failure names that cause.
        let probe = r.probe(
            cmd!(sh, "no-such-tool-xyz list"),
            "listing",
            Duration::from_secs(5),
        )?;
        assert!(!probe.success);
        r.precondition(probe.failure().context("listing what is installed"))?;
        // kubectl run against a context the kubeconfig lacks.
        let kubectl = r.probe(
            cmd!(
                sh,
                "sh -c 'echo \"error: context was not found for specified context: m\" >&2; exit 1'"
            ),
            "reading",
            Duration::from_secs(5),
        )?;
        r.precondition(kubectl.failure())?;
        r.precondition(anyhow::anyhow!("the CRD is missing"))?;
        let doc = r.plan_document(None);
        let blockers = doc["blockers"].as_array().context("blockers")?;
        assert_eq!(blockers.len(), 3, "{blockers:?}");
        assert!(
            blockers[1]
                .as_str()
                .is_some_and(|b| b.starts_with("`no-such-tool-xyz` was not found")),
            "{blockers:?}"
        );
        assert_eq!(blockers[2], "the CRD is missing");
        Ok(())
    }

    #[test]
    fn probe_times_out() -> Result<()> {
        let sh = Shell::new()?;
        let err = quiet(false)
            .probe(cmd!(sh, "sleep 5"), "test", Duration::from_millis(200))
            .expect_err("sleep outlives the timeout");
        assert!(format!("{err}").contains("did not answer"), "{err}");
        Ok(())
    }

    #[test]
    fn secrets_are_masked_in_display() -> Result<()> {
        let sh = Shell::new()?;
        let cmd: Command = cmd!(sh, "docker login")
            .env("REGISTRY_TOKEN", "hunter2")
            .into();
        assert_eq!(shown(&cmd), "REGISTRY_TOKEN=*** docker login");
        Ok(())
    }
}
