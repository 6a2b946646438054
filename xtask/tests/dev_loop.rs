//! `cargo xtask dev` end to end on the local target and on the docker
//! target (a real engine), in a copy of the workspace: an edit is served, a
//! broken edit leaves the last good version serving with the compiler's
//! error shown, the fix is served, and Ctrl-C leaves nothing running (no
//! process, no container).

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Result, copy_workspace, target_dir};

fn xtask(ws: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--config")
        .arg(ws.join("xtask.toml"))
        .arg("--progress=never")
        .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// The loop's process; a failed assertion (a panic) still Ctrl-Cs it, so
/// that no loop outlives its test.
struct Stopper(std::process::Child);

impl std::ops::Deref for Stopper {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Stopper {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            if let Ok(pid) = i32::try_from(self.0.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `cargo xtask dev ARGS` in `ws`, and its stdout and stderr lines as they
/// come (one channel for both).
fn start_loop(ws: &Path, args: &[&str]) -> Result<(Stopper, mpsc::Receiver<String>)> {
    let mut child = Stopper(
        xtask(ws)
            .arg("dev")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().ok_or("stdout")?) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().ok_or("stderr")?),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
    }
    Ok((child, lines))
}

fn get(url: &str) -> Option<String> {
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    // As before: an answer other than 2xx is no page.
    resp.error_for_status().ok()?.text().ok()
}

/// Waits for a line of the loop's output that starts with `what` (the
/// loop's report lines start at the margin; the steps' own lines do not).
fn wait_for(lines: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) -> Result {
    wait_for_within(lines, what, seen, Duration::from_secs(300))
}

fn wait_for_within(
    lines: &mpsc::Receiver<String>,
    what: &str,
    seen: &mut Vec<String>,
    limit: Duration,
) -> Result {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            let hit = line.starts_with(what);
            seen.push(line);
            if hit {
                return Ok(());
            }
        }
    }
    Err(format!(
        "no line with {what:?} within {} s:\n{}",
        limit.as_secs(),
        seen.join("\n")
    )
    .into())
}

/// Saves `text` to `path` as editors do: a new file in the same directory
/// (named as `sed -i` names it), renamed over the old one.
fn rename_save(path: &Path, text: &str) -> Result {
    let tmp = path.with_file_name("sedK3mX9q");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Waits up to `limit` for a line of the loop's output containing `what`.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    what: &str,
    seen: &mut Vec<String>,
    limit: Duration,
) -> Result {
    let deadline = Instant::now() + limit;
    while !seen.iter().any(|l| l.contains(what)) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no line with {what:?} within {} s:\n{}",
                limit.as_secs(),
                seen.join("\n")
            )
            .into());
        }
        if let Ok(line) = lines.recv_timeout(left.min(Duration::from_millis(200))) {
            seen.push(line);
        }
    }
    Ok(())
}

#[test]
fn edits_are_served_a_broken_one_is_not_and_ctrl_c_leaves_nothing() -> Result {
    round_trip("local", "hello", "")
}

#[test]
fn the_same_on_the_docker_target() -> Result {
    if !support::engine() {
        return Ok(());
    }
    let prefix = format!("kmlops-devloop-{}", std::process::id());
    round_trip(
        "docker",
        "hola",
        &format!("[docker]\nname_prefix = \"{prefix}\"\n[images]\ndir = \"images\"\n"),
    )?;
    let left = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()?;
    let names = String::from_utf8_lossy(&left.stdout);
    assert!(
        !names.lines().any(|n| n.starts_with(&prefix)),
        "no container left after Ctrl-C: {names}"
    );
    Ok(())
}

/// The loop on `target` for a new service `name` (each test its own, as
/// they share the build cache), with `settings` added to the copy's
/// xtask.toml.
fn round_trip(target: &str, name: &str, settings: &str) -> Result {
    let greeting = format!("Hello from {name}");
    let report = format!("✓ {name}");
    let failure = format!("✗ {name}");
    let dir = tempfile::tempdir()?;
    let ws = dir.path();
    copy_workspace(ws)?;
    std::fs::write(
        ws.join("xtask.toml"),
        format!("[local]\nrun_dir = \"run\"\n\n[services.test-api]\nport = 1\n{settings}"),
    )?;
    let port = support::free_port()?;
    let out = xtask(ws)
        .args(["service", "add", name, "--port", &port.to_string()])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main = ws.join(format!("services/{name}/src/main.rs"));
    let url = format!("http://127.0.0.1:{port}/hello");

    let (mut child, lines) = start_loop(ws, &["--target", target, "--debounce-ms", "200", name])?;
    let mut seen = Vec::new();
    let result = (|| -> Result {
        wait_for(&lines, &report, &mut seen)?;
        assert!(get(&url).is_some_and(|b| b.contains(&greeting)));

        // An edit: the new answer.
        let source = std::fs::read_to_string(&main)?;
        std::fs::write(&main, source.replace(&greeting, "Hello again"))?;
        wait_for(&lines, &report, &mut seen)?;
        assert!(
            get(&url).is_some_and(|b| b.contains("Hello again")),
            "{:?}\n{}",
            get(&url),
            seen.join("\n")
        );

        // A broken edit: the compiler's error, the last good version serving.
        std::fs::write(
            &main,
            source.replace(
                "fn main()",
                "fn main() { let x: u8 = \"no\"; }\nfn unused()",
            ),
        )?;
        wait_for(&lines, &failure, &mut seen)?;
        // The error goes to stderr, the verdict to stdout: either may come
        // first through the two pipes (so a line already seen counts).
        let compiler_error = |l: &String| l.contains("mismatched types") || l.contains("error[E");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.iter().any(compiler_error) && Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                seen.push(line);
            }
        }
        assert!(
            seen.iter()
                .any(|l| l.starts_with(&failure) && l.contains("build or model check failed")),
            "{}",
            seen.join("\n")
        );
        assert!(
            seen.iter()
                .any(|l| l.contains("the last good version serves")),
            "{}",
            seen.join("\n")
        );
        assert!(
            seen.iter().any(compiler_error),
            "the compiler's error is shown:\n{}",
            seen.join("\n")
        );
        assert!(
            get(&url).is_some_and(|b| b.contains("Hello again")),
            "still serving"
        );

        // The fix: served again.
        std::fs::write(&main, source.replace(&greeting, "Hello, fixed"))?;
        wait_for(&lines, &report, &mut seen)?;
        assert!(get(&url).is_some_and(|b| b.contains("Hello, fixed")));
        // Three versions were built; only the serving one and the last
        // good one before it are kept.
        let copies = std::fs::read_dir(ws.join("run/dev"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(name))
            .count();
        assert!((1..=2).contains(&copies), "{copies} copies of {name}");
        Ok(())
    })();
    // Ctrl-C: the loop tears down what it started.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let status = child.wait()?;
    result?;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(2),
        "dies of SIGINT after its teardown"
    );
    assert!(get(&url).is_none(), "nothing answers after Ctrl-C");
    assert!(
        !ws.join(format!("run/{name}.json")).exists(),
        "no state left"
    );
    Ok(())
}

/// A change made while another crate is broken (one cargo invocation builds
/// both, so both rounds fail) is built once the break is fixed, not
/// forgotten; and a second loop in the same checkout is refused.
#[test]
fn a_change_made_during_a_broken_build_is_served_after_the_fix() -> Result {
    let dir = tempfile::tempdir()?;
    let ws = dir.path();
    copy_workspace(ws)?;
    std::fs::write(
        ws.join("xtask.toml"),
        "[local]\nrun_dir = \"run\"\n\n[services.test-api]\nport = 1\n",
    )?;
    let mut urls = Vec::new();
    let mut ports = Vec::new();
    for name in ["uno", "dos"] {
        let port = support::free_port()?;
        let out = xtask(ws)
            .args(["service", "add", name, "--port", &port.to_string()])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        urls.push(format!("http://127.0.0.1:{port}/hello"));
        ports.push(port);
    }
    let (uno, dos) = (
        ws.join("services/uno/src/main.rs"),
        ws.join("services/dos/src/main.rs"),
    );
    let (mut child, lines) = start_loop(
        ws,
        &[
            "--target",
            "local",
            "--debounce-ms",
            "200",
            "--no-logs",
            "uno",
            "dos",
        ],
    )?;
    let mut seen = Vec::new();
    let result = (|| -> Result {
        wait_for(&lines, "✓ uno", &mut seen)?;
        wait_for(&lines, "✓ dos", &mut seen)?;

        // One loop per checkout and target, and no deploy beside it.
        for args in [&["dev", "uno"][..], &["deploy", "dos"]] {
            let second = xtask(ws).args(args).output()?;
            let stderr = String::from_utf8_lossy(&second.stderr);
            assert!(!second.status.success(), "{stderr}");
            assert!(stderr.contains("dev --target local"), "{stderr}");
            assert!(
                stderr.contains(&format!("(pid {})", child.id())),
                "{stderr}"
            );
        }

        let uno_source = std::fs::read_to_string(&uno)?;
        std::fs::write(
            &uno,
            uno_source.replace(
                "fn main()",
                "fn main() { let x: u8 = \"no\"; }\nfn unused()",
            ),
        )?;
        wait_for(&lines, "✗ uno", &mut seen)?;
        let dos_source = std::fs::read_to_string(&dos)?;
        std::fs::write(
            &dos,
            dos_source.replace("Hello from dos", "Hello from dos, edited"),
        )?;
        wait_for(&lines, "✗ dos", &mut seen)?;
        assert!(get(&urls[1]).is_some_and(|b| !b.contains("edited")));

        // The fix to uno: dos's edit is built and served too.
        std::fs::write(&uno, &uno_source)?;
        let mut ok = Vec::new();
        while ok.len() < 2 {
            let before = seen.len();
            wait_for(&lines, "✓ ", &mut seen)?;
            ok.extend(
                seen[before..]
                    .iter()
                    .filter(|l| l.starts_with("✓ uno") || l.starts_with("✓ dos"))
                    .cloned(),
            );
        }
        assert!(
            get(&urls[1]).is_some_and(|b| b.contains("Hello from dos, edited")),
            "{}",
            seen.join("\n")
        );

        // A settings change restarts the loop with them: dos moves port.
        let old_port = ports[1].to_string();
        let new_port = support::free_port()?;
        let settings = std::fs::read_to_string(ws.join("xtask.toml"))?;
        let moved = settings.replace(&format!("port = {old_port}"), &format!("port = {new_port}"));
        assert_ne!(settings, moved);
        // A half-edited file first: the loop keeps running as it was.
        // Both saved as vim, emacs, JetBrains IDEs and `sed -i` save: a new
        // file renamed over the old one (the loop used to watch the old
        // file, and saw nothing after the first such save).
        rename_save(&ws.join("xtask.toml"), "[services.dos\n")?;
        wait_for_line(&lines, "does not load", &mut seen, Duration::from_secs(3))?;
        rename_save(&ws.join("xtask.toml"), &moved)?;
        wait_for_line(
            &lines,
            "loads again: starting the dev loop again with the new settings",
            &mut seen,
            Duration::from_secs(3),
        )?;
        let moved_url = format!("http://127.0.0.1:{new_port}/hello");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !get(&moved_url).is_some_and(|b| b.contains("edited")) {
            assert!(Instant::now() < deadline, "{}", seen.join("\n"));
            std::thread::sleep(Duration::from_millis(300));
        }
        urls[1] = moved_url;

        // dos's table removed: the loop stops it (nothing else would know
        // it runs) and goes on with uno.
        let settings = std::fs::read_to_string(ws.join("xtask.toml"))?;
        let start = settings.find("[services.dos]").ok_or("no dos table")?;
        let end = settings[start + 1..]
            .find("\n[")
            .map_or(settings.len(), |i| start + 1 + i + 1);
        let without = format!("{}{}", &settings[..start], &settings[end..]);
        rename_save(&ws.join("xtask.toml"), &without)?;
        wait_for_line(
            &lines,
            "dos left the settings: stopping it",
            &mut seen,
            Duration::from_secs(10),
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&urls[1]).is_some() {
            assert!(Instant::now() < deadline, "{}", seen.join("\n"));
            std::thread::sleep(Duration::from_millis(300));
        }
        // The loop runs on with uno alone: an edit is served. Watched for at
        // the URL: the edit may land in the restarted loop's first round (made
        // before it watches) or in a round of its own, and a ✓ of the first
        // round may come after the edit was written.
        std::fs::write(
            &uno,
            uno_source.replace("Hello from uno", "Hello from uno, again"),
        )?;
        let deadline = Instant::now() + Duration::from_secs(300);
        while !get(&urls[0]).is_some_and(|b| b.contains("again")) {
            while let Ok(line) = lines.try_recv() {
                seen.push(line);
            }
            assert!(Instant::now() < deadline, "{}", seen.join("\n"));
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    })();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let _ = child.wait()?;
    result?;
    // The lock went with the loop: a teardown neither waits nor is refused.
    let after = xtask(ws).args(["teardown", "uno"]).output()?;
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(!String::from_utf8_lossy(&after.stderr).contains("waiting for"));
    // The loop's last words (its teardown), for the message below.
    std::thread::sleep(Duration::from_millis(200));
    seen.extend(lines.try_iter());
    assert!(
        get(&urls[0]).is_none() && get(&urls[1]).is_none(),
        "{urls:?} still answer after Ctrl-C:\n{}",
        seen.join("\n")
    );
    Ok(())
}

/// A model file replaced three times by a rename-save on the docker target:
/// each replacement is seen within 3 s and served (issue 19: only the first
/// was, since the loop watched the replaced file itself).
#[test]
fn a_model_file_replaced_by_rename_is_seen_every_time_on_docker() -> Result {
    if !support::engine() {
        return Ok(());
    }
    let exporters = Path::new(support::EXPORTERS);
    let (pipeline, forest) = (
        std::fs::read(exporters.join("wine-pipeline.onnx"))?,
        std::fs::read(exporters.join("wine-forest.onnx"))?,
    );
    let prefix = format!("kmlops-devmodel-{}", std::process::id());
    let (dir, url, mut child, lines) = wine_loop(
        "docker",
        &format!("[images]\ndir = \"images\"\n[docker]\nname_prefix = \"{prefix}\"\n"),
        "",
    )?;
    let ws = dir.path();
    let mut seen = Vec::new();
    let result = (|| -> Result {
        wait_for(&lines, "✓ wine", &mut seen)?;
        let first = predict_row(&url)?.to_string();
        let mut answers = vec![first.clone()];
        for (round, model) in [&forest, &pipeline, &forest].into_iter().enumerate() {
            let before = seen.len();
            let tmp = ws.join("models/sedQ1w2e3");
            std::fs::write(&tmp, model)?;
            std::fs::rename(&tmp, ws.join("models/wine.onnx"))?;
            wait_for_line(
                &lines,
                "models/wine.onnx changed: redeploying wine",
                &mut seen,
                Duration::from_secs(3),
            )
            .map_err(|e| format!("replacement {}: {e}", round + 1))?;
            while !seen[before..].iter().any(|l| l.starts_with("✓ wine")) {
                wait_for(&lines, "✓ wine", &mut seen)?;
            }
            answers.push(predict_row(&url)?.to_string());
        }
        assert_ne!(answers[0], answers[1], "the forest answers differently");
        assert_eq!(answers[0], answers[2], "the pipeline again");
        assert_eq!(answers[1], answers[3], "the forest again");
        Ok(())
    })();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let _ = child.wait()?;
    result?;
    let left = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()?;
    let names = String::from_utf8_lossy(&left.stdout);
    assert!(!names.lines().any(|n| n.starts_with(&prefix)), "{names}");
    Ok(())
}

/// On the local target a model file that fails its check leaves the last
/// good model serving (issue 19's probe: the server used to load the
/// user's file by itself before the loop judged it, so a file the check
/// refused was served anyway, and verdicts came a round late). The loop
/// runs the server on a kept copy with its own reloading off.
#[test]
fn a_model_that_fails_its_check_leaves_the_last_good_one_serving_locally() -> Result {
    let exporters = Path::new(support::EXPORTERS);
    let (dir, url, mut child, lines) = wine_loop(
        "local",
        "",
        "class_names = [\"barolo\", \"grignolino\", \"barbera\"]\n",
    )?;
    let ws = dir.path();
    let mut seen = Vec::new();
    let result = (|| -> Result {
        wait_for(&lines, "✓ wine", &mut seen)?;
        support::answers_like_scikit_learn(&url)?;
        let pipeline = predict_row(&url)?;
        // A regressor (one column) under three class names: refused.
        let before = seen.len();
        rename_save_bytes(
            &ws.join("models/wine.onnx"),
            &std::fs::read(exporters.join("diabetes-linear.onnx"))?,
        )?;
        wait_for(&lines, "✗ wine", &mut seen)?;
        let verdict = seen[before..]
            .iter()
            .find(|l| l.starts_with("✗ wine"))
            .cloned()
            .unwrap_or_default();
        assert!(
            verdict.contains("the last good version serves"),
            "{verdict}"
        );
        // The reason goes to stderr, the verdict to stdout: either first.
        wait_for_line(
            &lines,
            "3 names, but the model answers 1",
            &mut seen,
            Duration::from_secs(10),
        )?;
        // Still the pipeline, a few reload periods later.
        std::thread::sleep(Duration::from_secs(3));
        support::answers_like_scikit_learn(&url)?;
        // The forest: checked, then served.
        let before = seen.len();
        rename_save_bytes(
            &ws.join("models/wine.onnx"),
            &std::fs::read(exporters.join("wine-forest.onnx"))?,
        )?;
        while !seen[before..].iter().any(|l| l.starts_with("✓ wine")) {
            wait_for(&lines, "✓ wine", &mut seen)?;
        }
        let forest = predict_row(&url)?;
        assert_eq!(forest["data"]["names"], pipeline["data"]["names"]);
        assert_ne!(
            forest["data"]["ndarray"][0], pipeline["data"]["ndarray"][0],
            "the forest answers otherwise than the pipeline"
        );
        Ok(())
    })();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let _ = child.wait()?;
    result
}

/// The wine model's answer for the README's row.
fn predict_row(url: &str) -> Result<serde_json::Value> {
    let row =
        r#"{"data":{"ndarray":[[13.7,1.67,2.25,16.4,118,2.6,2.9,0.21,1.62,5.85,0.92,3.2,1060]]}}"#;
    let resp = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(row)
        .timeout(Duration::from_secs(5))
        .send()?
        .error_for_status()?;
    Ok(serde_json::from_str(&resp.text()?)?)
}

/// `rename_save` for bytes.
fn rename_save_bytes(path: &Path, bytes: &[u8]) -> Result {
    let tmp = path.with_file_name("sedB7v2k1");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A copy of the workspace serving the wine pipeline as `models/wine.onnx`
/// (service `wine`, with `wine_keys` in its table and `settings` beside
/// it), and `cargo xtask dev --target TARGET wine` running on it: the copy,
/// the model's /predict URL, the loop and its output lines.
fn wine_loop(
    target: &str,
    settings: &str,
    wine_keys: &str,
) -> Result<(tempfile::TempDir, String, Stopper, mpsc::Receiver<String>)> {
    let dir = tempfile::tempdir()?;
    let ws = dir.path();
    copy_workspace(ws)?;
    std::fs::create_dir_all(ws.join("models"))?;
    std::fs::copy(
        Path::new(support::EXPORTERS).join("wine-pipeline.onnx"),
        ws.join("models/wine.onnx"),
    )?;
    let port = support::free_port()?;
    std::fs::write(
        ws.join("xtask.toml"),
        format!(
            "[local]\nrun_dir = \"run\"\n{settings}\
             [services.wine]\nmodel = \"onnx\"\nmodel_path = \"models/wine.onnx\"\n\
             {wine_keys}port = {port}\n"
        ),
    )?;
    let (child, lines) = start_loop(
        ws,
        &[
            "--target",
            target,
            "--debounce-ms",
            "200",
            "--no-logs",
            "wine",
        ],
    )?;
    Ok((
        dir,
        format!("http://127.0.0.1:{port}/predict"),
        child,
        lines,
    ))
}
