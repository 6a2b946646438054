//! `cargo xtask bench dev-loop`: the onboarding figures, measured the way a
//! new user meets them, in a fresh clone of this repository's HEAD (its own
//! target directory, its own ports): the clone to `cargo xtask deploy`
//! serving, then `cargo xtask dev --target local` running while a source
//! file in `services/seldon-protocol` and one in `services/test-api` are
//! edited, each timed from the save to the service answering with the new
//! code.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::cmd;

use super::invocation::Invocation;
use crate::build;
use crate::ground::http;
use crate::ground::interrupt;
use crate::ground::net;

/// The bars (issue 13).
const SELDON_PROTOCOL_SECS: f64 = 20.0;
const TEST_API_SECS: f64 = 8.0;
const FRESH_CLONE_SECS: f64 = 180.0;

/// How long an edit may take to serve before the bench gives up.
const EDIT_LIMIT: Duration = Duration::from_secs(300);

/// An edit: in `file`, `anchor` becomes `anchor` + the marker; the service
/// at `port` answers `probe` with the marker once the new code serves.
struct Edit {
    label: &'static str,
    file: &'static str,
    anchor: &'static str,
    service: &'static str,
    probe: Probe,
}

enum Probe {
    Get(&'static str),
    Post(&'static str, &'static str),
}

/// A request both tensor and ndarray: seldon-protocol's error message.
const BOTH_TENSOR_AND_NDARRAY: &str =
    r#"{"data":{"tensor":{"shape":[1],"values":[1]},"ndarray":[1]}}"#;

const EDITS: [Edit; 2] = [
    Edit {
        label: "services/seldon-protocol edit to the model server's new answer",
        file: "services/seldon-protocol/src/array.rs",
        anchor: "data has both tensor and ndarray: send one of them",
        service: "model-server",
        probe: Probe::Post("/api/v1.0/predictions", BOTH_TENSOR_AND_NDARRAY),
    },
    Edit {
        label: "services/test-api edit to test-api's new answer",
        // The OpenAPI example: the greeting itself is what the smoke test
        // checks, so an edit there would (rightly) be rolled back.
        file: "services/test-api/src/lib.rs",
        anchor: "you've reached 10.0.0.7",
        service: "test-api",
        probe: Probe::Get("/openapi.json"),
    },
];

/// Runs the benchmark and prints the three figures against their bars.
///
/// # Errors
/// A step that fails (the clone, the deploy, the dev loop not starting, an
/// edit's anchor not found in the source, an edit not served within 300 s),
/// with its output.
pub fn run(cx: &Invocation, profile: build::Profile) -> Result<ExitCode> {
    let profile_name = profile.as_str();
    let scratch = std::env::temp_dir().join(format!("kube-mlops-bench-{}", std::process::id()));
    let clone = Clone::new(scratch);
    let root = &cx.root;
    cx.runner.locate("git", "cargo xtask bench dev-loop")?;
    let started = Instant::now();
    let dest = &clone.dir;
    cx.runner.run(
        cmd!(cx.sh, "git clone --quiet --no-hardlinks {root} {dest}"),
        "cloning HEAD into a scratch directory",
    )?;
    let ports = cx.runner.unless_dry_run(|| clone.own_ports())?;
    let mut deploy = Command::new(build::cargo());
    deploy
        .args(["xtask", "--progress=never", "deploy", "--target", "local"])
        .args(["--profile", profile_name])
        .current_dir(dest)
        .env("CARGO_TARGET_DIR", clone.target_dir())
        .env_remove("XTASK_CONFIG");
    // Ctrl-C: what the clone's deploy started goes too.
    let cleanup = clone.teardown_command();
    let scratch_dir = clone.dir.clone();
    let _guard = interrupt::on_interrupt(move || {
        let _ = Command::new(&cleanup[0]).args(&cleanup[1..]).status();
        let _ = std::fs::remove_dir_all(&scratch_dir);
    });
    cx.runner.run(
        deploy,
        "cargo xtask deploy in the fresh clone (a cold build)",
    )?;
    let fresh_secs = started.elapsed().as_secs_f64();
    let Some(ports) = ports else {
        cx.runner
            .step("start `cargo xtask dev --target local` in the clone");
        for e in &EDITS {
            cx.runner.step(format!(
                "edit {} and wait for {} to answer with the edit",
                e.file, e.service
            ));
        }
        cx.runner.step("Ctrl-C the dev loop; remove the clone");
        return Ok(ExitCode::SUCCESS);
    };

    let mut dev = DevLoop::start(&clone, profile_name)?;
    let mut figures = Vec::new();
    for (i, edit) in EDITS.iter().enumerate() {
        let port = ports
            .iter()
            .find(|(name, _)| name == edit.service)
            .map(|(_, p)| *p)
            .with_context(|| format!("the clone's xtask.toml has no {} service", edit.service))?;
        let secs = clone.measure(edit, port, &format!("[bench edit {i}]"), &mut dev)?;
        figures.push((edit, secs));
    }
    dev.stop();

    print_figures(profile_name, &figures, fresh_secs);
    Ok(ExitCode::SUCCESS)
}

/// The figures against their bars: each edit's seconds from the save to
/// the answer, and the fresh clone's to `cargo xtask deploy` serving.
fn print_figures(profile_name: &str, figures: &[(&Edit, f64)], fresh_secs: f64) {
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!(
        "local target, {} profile, {} cores; the dev loop's lines for each edit are above",
        profile_name,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<64} {:>8}  TARGET", "FIGURE", "SECONDS");
    for (edit, secs) in figures {
        let bar = match edit.service {
            "test-api" => TEST_API_SECS,
            _ => SELDON_PROTOCOL_SECS,
        };
        println!(
            "{:<64} {secs:>8.1}  <= {bar:.0} s ({})",
            edit.label,
            verdict(*secs <= bar)
        );
    }
    println!(
        "{:<64} {fresh_secs:>8.1}  <= {FRESH_CLONE_SECS:.0} s ({})",
        "fresh clone to `cargo xtask deploy` serving (cold build)",
        verdict(fresh_secs <= FRESH_CLONE_SECS)
    );
}

/// The scratch clone; torn down and removed when dropped.
struct Clone {
    dir: PathBuf,
}

impl Clone {
    fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn target_dir(&self) -> PathBuf {
        self.dir.join("target")
    }

    /// The clone's xtask, built by its deploy (`cargo xtask` is `cargo run`
    /// in the dev profile).
    fn xtask(&self) -> PathBuf {
        self.target_dir().join("debug/xtask")
    }

    fn teardown_command(&self) -> Vec<PathBuf> {
        vec![
            self.xtask(),
            "--progress=never".into(),
            "teardown".into(),
            "--target".into(),
            "local".into(),
        ]
    }

    /// Gives every service of the clone's xtask.toml a free port, so that
    /// the bench runs beside a deploy of this checkout; returns them.
    fn own_ports(&self) -> Result<Vec<(String, u16)>> {
        let path = self.dir.join("xtask.toml");
        let mut doc = crate::ground::toml_files::read_document(&path)?;
        let services = doc
            .get_mut("services")
            .and_then(|s| s.as_table_like_mut())
            .with_context(|| format!("{} has no [services.*] tables", path.display()))?;
        let mut ports = Vec::new();
        for (name, table) in services.iter_mut() {
            let port = net::free_port().context("no free port on this machine")?;
            if let Some(t) = table.as_table_like_mut() {
                t.insert("port", toml_edit::value(i64::from(port)));
                ports.push((name.to_string(), port));
            }
        }
        std::fs::write(&path, doc.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(ports)
    }

    /// Edits the clone's `edit.file` and returns the seconds until the
    /// service answers with `marker`.
    fn measure(&self, edit: &Edit, port: u16, marker: &str, dev: &mut DevLoop) -> Result<f64> {
        let file = self.dir.join(edit.file);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        if !text.contains(edit.anchor) {
            bail!(
                "{} no longer contains {:?}: update the bench's edit to a string the service sends",
                edit.file,
                edit.anchor
            );
        }
        let edited = text.replacen(edit.anchor, &format!("{}{marker}", edit.anchor), 1);
        let url = format!("http://127.0.0.1:{port}");
        let saved = Instant::now();
        std::fs::write(&file, edited)
            .with_context(|| format!("cannot write {}", file.display()))?;
        while saved.elapsed() < EDIT_LIMIT {
            dev.echo_lines();
            let answer = match edit.probe {
                Probe::Get(path) => http::get(&format!("{url}{path}"), Duration::from_secs(2)),
                Probe::Post(path, body) => http::post(
                    &format!("{url}{path}"),
                    "application/json",
                    body,
                    Duration::from_secs(2),
                ),
            };
            if matches!(&answer, Ok((_, body)) if body.contains(marker)) {
                let secs = saved.elapsed().as_secs_f64();
                // Served, but only a round that passed its smoke test counts
                // (a failed one is rolled back).
                dev.round_of(edit.service, edit.file)?;
                return Ok(secs);
            }
            if let Some(status) = dev.exited() {
                bail!(
                    "the dev loop ended ({status}) before {} served the edit:\n{}",
                    edit.service,
                    dev.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not answer with the edit to {} within {} s:\n{}",
            edit.service,
            edit.file,
            EDIT_LIMIT.as_secs(),
            dev.output()
        )
    }
}

impl Drop for Clone {
    fn drop(&mut self) {
        if self.xtask().exists() {
            let cmd = self.teardown_command();
            let _ = Command::new(&cmd[0])
                .args(&cmd[1..])
                .current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask dev --target local` in the clone, its report lines echoed.
struct DevLoop {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl DevLoop {
    /// Starts the loop and waits for its first round to serve every service.
    fn start(clone: &Clone, profile: &str) -> Result<Self> {
        let mut child = Command::new(clone.xtask())
            .args([
                "--progress=never",
                "dev",
                "--target",
                "local",
                "--no-logs",
                "--profile",
                profile,
            ])
            .current_dir(&clone.dir)
            .env("CARGO_TARGET_DIR", clone.target_dir())
            .env_remove("XTASK_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", clone.xtask().display()))?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().context("the dev loop's stdout")?;
        let stderr = child.stderr.take().context("the dev loop's stderr")?;
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut dev = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        dev.first_round()?;
        Ok(dev)
    }

    /// The next line, if one comes within `wait`; kept for error reports,
    /// echoed when it is one of the loop's report lines.
    fn next(&mut self, wait: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(wait).ok()?;
        if is_report(&line) {
            println!("  {line}");
        }
        self.seen.push(line.clone());
        Some(line)
    }

    /// What the loop printed, for an error.
    fn output(&self) -> String {
        let from = self.seen.len().saturating_sub(40);
        self.seen[from..].join("\n")
    }

    /// Waits until the loop says it watches (its first round served).
    fn first_round(&mut self) -> Result<()> {
        let deadline = Instant::now() + EDIT_LIMIT;
        while Instant::now() < deadline {
            if let Some(line) = self.next(Duration::from_millis(200)) {
                if line.starts_with('✗') {
                    bail!("the dev loop's first round failed:\n{}", self.output());
                }
                if line.starts_with("==> watching") {
                    return Ok(());
                }
            }
            if let Some(status) = self.exited() {
                bail!(
                    "the dev loop ended ({status}) before it served:\n{}",
                    self.output()
                );
            }
        }
        bail!(
            "the dev loop did not serve within {} s:\n{}",
            EDIT_LIMIT.as_secs(),
            self.output()
        )
    }

    /// Waits for the loop's report line for `service` after an edit of
    /// `file`: Ok when it passed, the loop's output when it failed.
    fn round_of(&mut self, service: &str, file: &str) -> Result<()> {
        let deadline = Instant::now() + EDIT_LIMIT;
        let (passed, failed) = (format!("✓ {service} "), format!("✗ {service} "));
        let already = self
            .seen
            .iter()
            .rev()
            .find(|l| (l.starts_with(&passed) || l.starts_with(&failed)) && l.contains(file))
            .cloned();
        let mut line = already;
        while line.is_none() && Instant::now() < deadline {
            line = self
                .next(Duration::from_millis(200))
                .filter(|l| (l.starts_with(&passed) || l.starts_with(&failed)) && l.contains(file));
        }
        match line {
            Some(l) if l.starts_with(&passed) => Ok(()),
            Some(_) => bail!(
                "the edit served, but the loop's round for {service} failed and was rolled back:\n{}",
                self.output()
            ),
            None => bail!(
                "no report line for {service} from the dev loop:\n{}",
                self.output()
            ),
        }
    }

    fn echo_lines(&mut self) {
        while self.next(Duration::ZERO).is_some() {}
    }

    fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.to_string())
    }

    /// Ctrl-C, as a user stops it.
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
    }
}

impl Drop for DevLoop {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop();
        }
    }
}

/// The loop's own report lines (one per service and round) start with a
/// verdict mark.
fn is_report(line: &str) -> bool {
    line.starts_with('✓') || line.starts_with('✗')
}
