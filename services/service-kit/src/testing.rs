//! Helpers for tests that run a service's real binary: start it on a free
//! port, call it, signal it, watch it exit. (Feature `testing`.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T = ()> = std::result::Result<T, Error>;

/// A service process started with `PORT=0`; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `binary` with `env` and waits for its `listening` log line.
    pub fn start(binary: &str, env: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = Command::new(binary);
        cmd.env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env_remove("POD_IP")
            .env_remove("PREDICTIVE_UNIT_HTTP_SERVICE_PORT")
            .env_remove("PREDICTIVE_UNIT_ID")
            .env_remove("MODEL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let line = lines.recv_timeout(Duration::from_secs(10))?;
            let v: Value = serde_json::from_str(&line)?;
            if v["message"] == "listening" {
                let port = v["port"].as_u64().ok_or("listening line without port")?;
                return Ok(Self {
                    child,
                    port: u16::try_from(port)?,
                    lines,
                });
            }
        }
        Err("the server never logged `listening`".into())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn signal(&self, sig: Signal) -> Result {
        kill(Pid::from_raw(i32::try_from(self.child.id())?), sig)?;
        Ok(())
    }

    /// Waits for the process to exit; None if it outlives `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<(ExitStatus, Duration)>> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some((status, start.elapsed())));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(None)
    }

    /// Log lines printed so far, parsed.
    pub fn logs(&self) -> Vec<Value> {
        self.lines
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs schemathesis against `server`'s `/openapi.json` with every check but
/// `positive_data_acceptance` (a schema cannot say that a tensor's shape
/// must fit its values, so schema-valid requests may rightly get 400), and
/// returns its report when it finds anything.
///
/// Schemathesis is found through `KMLOPS_SCHEMATHESIS` (what `.ci/run`
/// sets to its virtual environment) or on PATH. Without it the check is
/// skipped with the reason printed, except in CI (`CI` set), where that fails.
pub fn schemathesis(server: &Server, max_examples: u32) -> Result<Option<String>> {
    let st = std::env::var_os("KMLOPS_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("schemathesis"))
                    .find(|f| f.is_file())
            })
        });
    let Some(st) = st else {
        let why = "schemathesis is not installed (pip install schemathesis, or run .ci/run)";
        if std::env::var_os("CI").is_some() {
            return Err(format!("CI needs schemathesis: {why}").into());
        }
        eprintln!("SKIPPED: {why}");
        return Ok(None);
    };
    let out = Command::new(&st)
        .args(["run", &server.url("/openapi.json")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--seed", "1", "--workers", "2"])
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        .output()?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(if out.status.success() {
        None
    } else {
        Some(report)
    })
}

/// A client that returns 4xx/5xx as responses, not errors (10 s timeout).
pub fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(10))
}

pub fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

pub fn get(url: &str) -> Result<(u16, String)> {
    let mut resp = agent().get(url).call()?;
    Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
}

/// POSTs `body` with `content_type`.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut resp = agent()
        .post(url)
        .header("content-type", content_type)
        .send(body)?;
    Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
}

/// POSTs `body` with the given headers.
pub fn post_with(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, String)> {
    post_with_agent(&agent(), url, headers, body)
}

pub fn post_with_agent(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body)?;
    Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
}

/// POSTs JSON text and parses the JSON answer.
pub fn post_json(url: &str, body: &str) -> Result<(u16, Value)> {
    let (status, text) = post(url, "application/json", body.as_bytes())?;
    let v = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok((status, v))
}
