//! `cargo xtask dev` end to end on the local target, in a copy of the
//! workspace: an edit is served, a broken edit leaves the last good version
//! serving with the compiler's error shown, the fix is served, and Ctrl-C
//! leaves nothing running.

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

fn get(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent.get(url).call().ok()?.body_mut().read_to_string().ok()
}

/// Waits for a line of the loop's output that starts with `what` (the
/// loop's report lines start at the margin; the steps' own lines do not).
fn wait_for(lines: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) -> Result {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            let hit = line.starts_with(what);
            seen.push(line);
            if hit {
                return Ok(());
            }
        }
    }
    Err(format!("no line with {what:?} within 300 s:\n{}", seen.join("\n")).into())
}

#[test]
fn edits_are_served_a_broken_one_is_not_and_ctrl_c_leaves_nothing() -> Result {
    let dir = tempfile::tempdir()?;
    let ws = dir.path();
    copy_workspace(ws)?;
    std::fs::write(
        ws.join("xtask.toml"),
        "[local]\nrun_dir = \"run\"\n\n[services.test-api]\nport = 1\n",
    )?;
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
    let out = xtask(ws)
        .args(["service", "add", "hello", "--port", &port.to_string()])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main = ws.join("services/hello/src/main.rs");
    let url = format!("http://127.0.0.1:{port}/hello");

    let mut child = xtask(ws)
        .args(["dev", "--target", "local", "--debounce-ms", "200", "hello"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
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
    let mut seen = Vec::new();
    let result = (|| -> Result {
        wait_for(&lines, "✓ hello", &mut seen)?;
        assert!(get(&url).is_some_and(|b| b.contains("Hello from hello")));

        // An edit: the new answer.
        let source = std::fs::read_to_string(&main)?;
        std::fs::write(
            &main,
            source.replace("Hello from hello", "Hello again from hello"),
        )?;
        wait_for(&lines, "✓ hello", &mut seen)?;
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
        wait_for(&lines, "✗ hello", &mut seen)?;
        assert!(
            seen.last().is_some_and(|l| l.contains("build failed")),
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
            seen.iter()
                .any(|l| l.contains("mismatched types") || l.contains("error[E")),
            "the compiler's error is shown:\n{}",
            seen.join("\n")
        );
        assert!(
            get(&url).is_some_and(|b| b.contains("Hello again")),
            "still serving"
        );

        // The fix: served again.
        std::fs::write(&main, source.replace("Hello from hello", "Hello, fixed"))?;
        wait_for(&lines, "✓ hello", &mut seen)?;
        assert!(get(&url).is_some_and(|b| b.contains("Hello, fixed")));
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
    assert!(!ws.join("run/hello.json").exists(), "no state left");
    Ok(())
}
