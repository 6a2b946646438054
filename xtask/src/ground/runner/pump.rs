//! Reads a child's stdout and stderr line by line as they come (both at
//! once, so neither pipe fills), keeps stdout and the tail of stderr, and
//! writes the failure report.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;

/// How many lines of stderr a failure report shows.
pub const TAIL_LINES: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A finished command: its status, stdout, and the last lines of stderr.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    tail: VecDeque<String>,
    stderr_lines: usize,
}

impl Finished {
    /// `` `command` failed (status) while purpose ``, then stderr's last
    /// lines (or stdout's, for tools that report errors there).
    pub fn failure(&self, shown: &str, purpose: &str) -> String {
        let mut msg = format!("`{shown}` failed ({}) while {purpose}", self.status);
        if self.tail.is_empty() {
            let out_tail: Vec<&str> = self.stdout.lines().rev().take(TAIL_LINES).collect();
            if !out_tail.is_empty() {
                msg.push_str("\n  stdout (last lines):");
                for l in out_tail.into_iter().rev() {
                    msg.push_str(&format!("\n    {l}"));
                }
            }
        } else {
            msg.push_str(&format!(
                "\n  stderr (last {} of {} lines):",
                self.tail.len(),
                self.stderr_lines
            ));
            for l in &self.tail {
                msg.push_str(&format!("\n    {l}"));
            }
        }
        msg
    }
}

/// Reads `child`'s output to the end, calling `on_line` for each line as
/// it arrives, then waits for it.
pub fn drain(mut child: Child, mut on_line: impl FnMut(Stream, &str)) -> std::io::Result<Finished> {
    let (tx, rx) = mpsc::channel::<(Stream, String)>();
    let readers = [
        child
            .stdout
            .take()
            .map(|s| forward_lines(s, Stream::Stdout, tx.clone())),
        child
            .stderr
            .take()
            .map(|s| forward_lines(s, Stream::Stderr, tx.clone())),
    ];
    drop(tx);
    let mut stdout = String::new();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut stderr_lines = 0usize;
    for (stream, line) in rx {
        on_line(stream, &line);
        match stream {
            Stream::Stdout => {
                stdout.push_str(&line);
                stdout.push('\n');
            }
            Stream::Stderr => {
                stderr_lines += 1;
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    }
    for r in readers.into_iter().flatten() {
        let _ = r.join();
    }
    Ok(Finished {
        status: child.wait()?,
        stdout,
        tail,
        stderr_lines,
    })
}

/// Sends each line (lossily decoded) to `tx`, tagged with its stream.
fn forward_lines(
    stream: impl Read + Send + 'static,
    tag: Stream,
    tx: mpsc::Sender<(Stream, String)>,
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
                    if tx.send((tag, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}
