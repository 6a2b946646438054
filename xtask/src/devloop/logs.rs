//! Every service's log lines on the dev loop's terminal, each prefixed with
//! its service's name: a file followed (local; a restart rotates it), or a
//! container's (`docker logs --follow`, started again for the container a
//! redeploy puts under the same name).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::time::Duration;

use crate::targets::target::LogSource;

/// Prints `source`'s new lines as `name | line` on a thread of its own
/// until the process ends.
pub fn stream(name: String, source: LogSource) {
    let _ = std::thread::Builder::new()
        .name(format!("logs-{name}"))
        .spawn(move || match source {
            LogSource::File(path) => follow_file(&name, &path),
            LogSource::Container {
                cli,
                name: container,
            } => {
                follow_container(&name, &cli, &container);
            }
        });
}

/// `cli logs --follow` of `container` whenever it runs: from now on the
/// first time, then, after the stream ends (the container was replaced
/// or stopped), from the moment it ended, so a new container's start-up
/// lines are shown.
fn follow_container(name: &str, cli: &str, container: &str) {
    let mut ended: Option<std::time::Instant> = None;
    loop {
        let running = std::process::Command::new(cli)
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Running}}",
                container,
            ])
            .stderr(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true");
        if !running {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let mut cmd = std::process::Command::new(cli);
        cmd.args(["logs", "--follow"]);
        match ended {
            None => cmd.args(["--tail", "0"]),
            Some(t) => cmd.args(["--since", &format!("{}s", t.elapsed().as_secs() + 1)]),
        };
        cmd.arg(container)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let Ok(mut child) = cmd.spawn() else { return };
        // docker logs writes the container's stderr to its own.
        let err = child.stderr.take().map(|err| {
            let name = name.to_string();
            std::thread::spawn(move || print_lines(&name, err))
        });
        if let Some(out) = child.stdout.take() {
            print_lines(name, out);
        }
        let _ = child.wait();
        if let Some(e) = err {
            let _ = e.join();
        }
        ended = Some(std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn print_lines(name: &str, from: impl Read) {
    for line in BufReader::new(from).lines().map_while(Result::ok) {
        println!("{name:>14} | {}", readable(&line));
    }
}

/// A JSON log line as `LEVEL message key=value…`; other lines as they are.
/// tracing-subscriber's JSON puts the fields under `fields`, or at the top
/// level when flattened (what the services write).
fn readable(line: &str) -> String {
    let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
    let fields = v.get("fields").and_then(|f| f.as_object()).unwrap_or(&v);
    let message = fields
        .get("message")
        .or_else(|| v.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    const NOT_FIELDS: [&str; 7] = [
        "message",
        "timestamp",
        "level",
        "target",
        "span",
        "spans",
        "fields",
    ];
    let rest: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !NOT_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!("{level:<5} {message} {}", rest.join(" "))
        .trim_end()
        .to_string()
}

/// Follows a log file from its end; a new file (a restart rotates it: a
/// new inode, whatever its length) is read from its start.
fn follow_file(name: &str, path: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let (mut pos, mut inode) = std::fs::metadata(path).map_or((0, 0), |m| (m.len(), m.ino()));
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Ok((len, ino)) = std::fs::metadata(path).map(|m| (m.len(), m.ino())) else {
            continue;
        };
        if len < pos || ino != inode {
            pos = 0;
            inode = ino;
        }
        if len == pos {
            continue;
        }
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        if f.seek(SeekFrom::Start(pos)).is_err() {
            continue;
        }
        let mut more = String::new();
        let Ok(n) = f.read_to_string(&mut more) else {
            continue;
        };
        // Only whole lines; the rest waits for the next read.
        let whole = more.rfind('\n').map_or(0, |i| i + 1);
        pos += u64::try_from(whole.min(n)).unwrap_or(0);
        for line in more[..whole].lines() {
            println!("{name:>14} | {}", readable(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_read_as_level_message_fields() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"listening","port":5000},"target":"x"}"#;
        assert_eq!(readable(line), "INFO  listening port=5000");
        let flat = r#"{"timestamp":"t","level":"INFO","message":"listening","service":"test-api","port":5000,"target":"x"}"#;
        assert_eq!(readable(flat), "INFO  listening port=5000 service=test-api");
        assert_eq!(readable("plain text"), "plain text");
    }
}
