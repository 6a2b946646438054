//! Every service's log lines on the dev loop's terminal, each prefixed with
//! its service's name: a file followed (local), or a command's output
//! (`docker logs --follow`).

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
            LogSource::Command(mut cmd) => {
                cmd.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let Ok(mut child) = cmd.spawn() else { return };
                // docker logs writes the container's stderr to its own.
                if let Some(err) = child.stderr.take() {
                    let name = name.clone();
                    let _ = std::thread::spawn(move || print_lines(&name, err));
                }
                if let Some(out) = child.stdout.take() {
                    print_lines(&name, out);
                }
                let _ = child.wait();
            }
        });
}

fn print_lines(name: &str, from: impl Read) {
    for line in BufReader::new(from).lines().map_while(Result::ok) {
        println!("{name:>14} | {}", readable(&line));
    }
}

/// A JSON log line as `LEVEL message key=value…`; other lines as they are.
fn readable(line: &str) -> String {
    let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
    let fields = v.get("fields").and_then(|f| f.as_object());
    let message = fields
        .and_then(|f| f.get("message"))
        .or_else(|| v.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let rest: Vec<String> = fields
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "message")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!("{level:<5} {message} {}", rest.join(" "))
        .trim_end()
        .to_string()
}

/// Follows a log file from its end; a new file (a restart rotates it) is
/// read from its start.
fn follow_file(name: &str, path: &std::path::Path) {
    let mut pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
            continue;
        };
        if len < pos {
            pos = 0;
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
        assert_eq!(readable("plain text"), "plain text");
    }
}
