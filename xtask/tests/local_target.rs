//! The real xtask binary against the local target: deploy on free ports,
//! call the service, status, logs, teardown (twice), and the error paths.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod support;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Sandbox {
    dir: tempfile::TempDir,
    port: u16,
    identity_port: u16,
    iris_port: u16,
}

impl Sandbox {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let (port, identity_port, iris_port) = (free_port()?, free_port()?, free_port()?);
        let s = Self {
            dir,
            port,
            identity_port,
            iris_port,
        };
        std::fs::write(
            s.config(),
            format!(
                "[services.test-api]\nport = {port}\nimage = \"test-api\"\n\
                 [services.model-server]\nport = {identity_port}\nimage = \"m\"\nmodel = \"identity\"\n\
                 [services.iris-model]\nport = {iris_port}\nimage = \"m\"\nmodel = \"iris\"\n\
                 [local]\nrun_dir = \"run\"\nready_timeout_secs = 30\nstop_grace_secs = 5\n"
            ),
        )?;
        Ok(s)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("xtask.toml")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn xtask(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--config")
            .arg(self.config())
            .arg("--progress=never")
            .args(args)
            .output()?)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn pid(&self) -> Result<u32> {
        self.pid_of("test-api")
    }

    fn pid_of(&self, service: &str) -> Result<u32> {
        let path = self.run_dir().join(format!("{service}.json"));
        let state: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        Ok(u32::try_from(
            state["pid"].as_u64().ok_or("no pid in state")?,
        )?)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Never leave a service behind, whatever the test did.
        let _ = self.xtask(&["teardown"]);
    }
}

use support::free_port;

const CONTRACT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/model-server/contract.json"
);
const TUTORIAL: &str =
    r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#;

fn post(url: &str, body: &str) -> Result<(u16, String)> {
    let resp = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(5))
        .send()?;
    Ok((resp.status().as_u16(), resp.text()?))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> Result<(String, String)> {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    if !out.status.success() {
        return Err(format!("xtask failed ({}):\n{stdout}\n{stderr}", out.status).into());
    }
    Ok((stdout, stderr))
}

fn get(url: &str) -> Result<(u16, String)> {
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()?;
    Ok((resp.status().as_u16(), resp.text()?))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

#[test]
fn deploy_call_status_logs_teardown_twice() -> Result {
    let sb = Sandbox::new()?;
    let (stdout, stderr) = ok(&sb.xtask(&["deploy"])?)?;
    assert!(stdout.contains(&sb.url("")), "URL printed: {stdout}");
    assert!(stderr.contains("smoke test GET"), "{stderr}");
    let first = stdout;

    let (status, body) = get(&sb.url("/test_api"))?;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["message"], "Hello 127.0.0.1, you've reached 127.0.0.1");
    let pid = sb.pid()?;
    assert!(alive(pid));
    // What runs is a copy of the build in <run_dir>/bin, not the shared
    // target/ path a later build rewrites.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    assert_eq!(
        exe.parent(),
        Some(sb.run_dir().join("bin").as_path()),
        "{exe:?}"
    );

    // Nothing changed: the same process keeps running.
    let (_, stderr) = ok(&sb.xtask(&["deploy"])?)?;
    assert!(stderr.contains("already running and healthy"), "{stderr}");
    assert_eq!(sb.pid()?, pid);

    let (stdout, _) = ok(&sb.xtask(&["status"])?)?;
    assert!(stdout.contains("running, ready"), "{stdout}");
    assert!(stdout.contains(&format!("pid {pid}")), "{stdout}");

    // --output json: one document on stdout with the text's facts.
    let (json, _) = ok(&sb.xtask(&["deploy", "--output", "json"])?)?;
    let doc: Value = serde_json::from_str(&json)?;
    assert_eq!(doc["target"], "local");
    let services = doc["services"].as_array().ok_or("no services")?;
    assert!(!services.is_empty(), "{doc}");
    for s in services {
        let (name, url) = (
            s["name"].as_str().ok_or("name")?,
            s["url"].as_str().ok_or("url")?,
        );
        assert!(
            first.contains(&format!("{name:<14} {url}")),
            "{name} {url} not in the text output: {first}"
        );
    }
    let (json, _) = ok(&sb.xtask(&["status", "--output", "json"])?)?;
    let doc: Value = serde_json::from_str(&json)?;
    assert_eq!(doc["healthy"], true);
    for s in doc["services"].as_array().ok_or("no services")? {
        let (name, state) = (
            s["name"].as_str().ok_or("name")?,
            s["state"].as_str().ok_or("state")?,
        );
        assert_eq!(s["healthy"], true, "{s}");
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .ok_or("no text row")?;
        assert!(row.ends_with(state), "{row} vs {state}");
        let url = s["url"].as_str().ok_or("url")?;
        assert!(row.contains(url), "{row}");
        // A model's Open Inference Protocol URL, under its service's name.
        if name == "test-api" {
            assert!(s["v2_url"].is_null(), "{s}");
        } else {
            let v2 = s["v2_url"].as_str().ok_or("v2_url")?;
            assert_eq!(v2, format!("{url}/v2/models/{name}"));
            let (status, body) = get(&format!("{v2}/ready"))?;
            assert_eq!(status, 200, "{body}");
        }
    }

    let (stdout, _) = ok(&sb.xtask(&["logs", "test-api", "--tail", "50"])?)?;
    assert!(stdout.contains("\"message\":\"listening\""), "{stdout}");

    let (stdout, stderr) = ok(&sb.xtask(&["teardown"])?)?;
    assert!(
        stderr.contains(&format!("stopped test-api (pid {pid})")),
        "{stderr}"
    );
    assert!(stdout.contains("Torn down"), "{stdout}");
    assert!(!alive(pid), "pid {pid} still alive after teardown");
    assert!(get(&sb.url("/test_api")).is_err(), "port still answers");
    assert!(!sb.run_dir().join("test-api.json").exists());
    assert!(!exe.exists(), "teardown removes the copy it ran");

    let (_, stderr) = ok(&sb.xtask(&["teardown"])?)?;
    assert!(stderr.contains("test-api: not running"), "{stderr}");

    let out = sb.xtask(&["status"])?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "status of a stopped service fails"
    );
    assert!(text(&out.stdout).contains("stopped"));
    Ok(())
}

#[test]
fn models_are_deployed_smoke_tested_and_contract_tested() -> Result {
    let sb = Sandbox::new()?;
    let (stdout, stderr) = ok(&sb.xtask(&["deploy", "model-server", "iris-model"])?)?;
    assert!(
        stdout.contains(&format!(
            "model-server   http://127.0.0.1:{}",
            sb.identity_port
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("iris-model     http://127.0.0.1:{}", sb.iris_port)),
        "{stdout}"
    );
    assert!(
        stderr.contains("3 of 3 requests satisfied the contract"),
        "iris smoke test: {stderr}"
    );
    assert!(
        !stdout.contains("test-api"),
        "only the named services: {stdout}"
    );

    // The tutorial's call to the identity model.
    let (status, body) = post(
        &format!("http://127.0.0.1:{}/api/v0.1/predictions", sb.identity_port),
        TUTORIAL,
    )?;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        v["data"]["tensor"]["values"],
        serde_json::json!([0, 0, 1, 1])
    );

    // The contract passes against iris, batch and tensor forms included.
    let iris = sb.iris_port.to_string();
    let (stdout, _) = ok(&sb.xtask(&[
        "contract-test",
        CONTRACT,
        "--port",
        &iris,
        "-b",
        "4",
        "-n",
        "5",
        "--tensor",
    ])?)?;
    assert!(
        stdout.contains("5 of 5 requests satisfied the contract"),
        "{stdout}"
    );
    let (stdout, _) = ok(&sb.xtask(&[
        "contract-test",
        CONTRACT,
        "--port",
        &iris,
        "--form",
        "-p",
        "--seed",
        "7",
    ])?)?;
    assert!(
        stdout.contains("request 1: {\"data\":{\"names\":[\"x1\",\"x2\",\"x3\",\"x4\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("response 1: HTTP 200"), "{stdout}");
    let (stdout, _) = ok(&sb.xtask(&[
        "contract-test",
        CONTRACT,
        "--port",
        &iris,
        "--endpoint",
        "send-feedback",
    ])?)?;
    assert!(stdout.contains("1 of 1 requests"), "{stdout}");
    // Over the Open Inference Protocol: the model named by its service, on
    // that service's port.
    let (stdout, _) = ok(&sb.xtask(&[
        "contract-test",
        CONTRACT,
        "--port",
        &iris,
        "--protocol",
        "v2",
        "-b",
        "3",
        "-n",
        "4",
    ])?)?;
    assert!(
        stdout.contains(&format!(
            "contract test against http://localhost:{iris}/v2/models/iris-model: 4 of 4 requests"
        )),
        "{stdout}"
    );
    let out = sb.xtask(&[
        "contract-test",
        CONTRACT,
        "--port",
        &iris,
        "--protocol",
        "v2",
        "--model",
        "nope",
    ])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("v2/models/nope answered 404"),
        "{}",
        text(&out.stderr)
    );

    // A server that answers wrongly: the identity model returns 4 columns.
    let out = sb.xtask(&[
        "contract-test",
        CONTRACT,
        "--port",
        &sb.identity_port.to_string(),
        "-n",
        "2",
        "--seed",
        "9",
    ])?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("0 of 2 requests satisfied the contract (seed 9)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("4 outputs per row, but the targets expect 3 (class:0, class:1, class:2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rerun the same inputs with --seed 9"),
        "{stdout}"
    );

    // Nothing listening: an error that says what to do.
    let out = sb.xtask(&["contract-test", CONTRACT, "--port", &sb.port.to_string()])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is the model server running?"),
        "{}",
        text(&out.stderr)
    );

    // One service torn down: the other, still in the settings, keeps running.
    let identity_pid = sb.pid_of("model-server")?;
    let iris_pid = sb.pid_of("iris-model")?;
    let (stdout, stderr) = ok(&sb.xtask(&["teardown", "iris-model"])?)?;
    assert!(!alive(iris_pid), "{stderr}");
    assert!(
        alive(identity_pid),
        "model-server was not asked for: {stderr}"
    );
    assert!(
        stdout.contains("Torn down on local: iris-model."),
        "{stdout}"
    );
    let (stdout, _) = ok(&sb.xtask(&["teardown"])?)?;
    assert!(!alive(identity_pid));
    // What it stopped (iris-model was already; test-api never ran here).
    assert!(
        stdout.contains("Torn down on local: model-server (none of"),
        "{stdout}"
    );
    let (stdout, _) = ok(&sb.xtask(&["teardown", "--output", "json"])?)?;
    let doc: Value = serde_json::from_str(&stdout)?;
    assert_eq!(
        doc["services"],
        serde_json::json!([]),
        "nothing left: {doc}"
    );
    Ok(())
}

#[test]
fn changed_binary_is_restarted() -> Result {
    let sb = Sandbox::new()?;
    ok(&sb.xtask(&["deploy", "test-api"])?)?;
    let pid = sb.pid()?;
    // Pretend the recorded binary differs from the one just built.
    let path = sb.run_dir().join("test-api.json");
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    state["binary_sha256"] = "0".repeat(64).into();
    std::fs::write(&path, serde_json::to_vec(&state)?)?;

    let (_, stderr) = ok(&sb.xtask(&["deploy", "test-api"])?)?;
    assert!(
        stderr.contains("binary, port or settings changed; restarting"),
        "{stderr}"
    );
    let new_pid = sb.pid()?;
    assert_ne!(new_pid, pid);
    // Stopped means exited (a zombie at most: reaping it is init's). A
    // process on its way out reads as an empty command line; that used to
    // count as gone while it still held its port, which made this flaky.
    assert!(!alive(pid), "old process stopped");
    assert_eq!(get(&sb.url("/test_api"))?.0, 200);
    ok(&sb.xtask(&["teardown"])?)?;
    assert!(!alive(new_pid));
    Ok(())
}

#[test]
fn a_port_in_use_is_named_with_the_setting_to_change() -> Result {
    let sb = Sandbox::new()?;
    let _squatter = TcpListener::bind(("0.0.0.0", sb.port))?;
    let out = sb.xtask(&["deploy", "test-api"])?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("port {} for test-api is not free", sb.port)),
        "{stderr}"
    );
    assert!(stderr.contains("[services.test-api]"), "{stderr}");
    assert!(
        !sb.run_dir().join("test-api.json").exists(),
        "no state for a service that never started"
    );
    Ok(())
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() -> Result {
    let sb = Sandbox::new()?;
    let (stdout, _) = ok(&sb.xtask(&["deploy", "--dry-run"])?)?;
    assert!(stdout.contains("Plan (dry run"), "{stdout}");
    for step in [
        "cargo build --profile release",
        "--package test-api --bin test-api --package model-server --bin model-server",
        "MODEL=iris",
        "/readyz",
        "smoke test: POST",
        "contract test",
    ] {
        assert!(stdout.contains(step), "plan lacks {step}: {stdout}");
    }
    assert!(stdout.contains(&format!("PORT={}", sb.port)), "{stdout}");
    assert!(
        !sb.run_dir().exists(),
        "dry run created {}",
        sb.run_dir().display()
    );
    assert!(
        get(&sb.url("/healthz")).is_err(),
        "dry run started a server"
    );
    Ok(())
}

#[test]
fn a_broken_settings_file_names_the_key_and_the_file() -> Result {
    let sb = Sandbox::new()?;
    std::fs::write(sb.config(), "[local]\nrun_dri = \"x\"\n")?;
    let out = sb.xtask(&["status"])?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&sb.config().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("run_dri"), "{stderr}");
    Ok(())
}

#[test]
fn unknown_service_is_an_error() -> Result {
    let sb = Sandbox::new()?;
    let out = sb.xtask(&["logs", "nope"])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("unknown service `nope`; known services: test-api, model-server, iris-model")
    );
    Ok(())
}

#[test]
fn a_missing_tool_fails_with_its_install_hint() -> Result {
    let sb = Sandbox::new()?;
    let empty = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(sb.config())
        .args(["--progress=never", "deploy"])
        .env("PATH", empty.path())
        .env_remove("CARGO")
        .output()?;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`cargo` was not found on PATH; it is needed for building the services"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Debian/Ubuntu: apt-get install rustup"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn teardown_stops_a_service_removed_from_the_settings_since_it_was_deployed() -> Result {
    let sb = Sandbox::new()?;
    let out = sb.xtask(&["deploy", "test-api"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The table goes; the process it started is still ours to stop.
    std::fs::write(
        sb.config(),
        format!(
            "[services.iris-model]\nport = {}\n[local]\nrun_dir = \"run\"\nstop_grace_secs = 5\n",
            sb.iris_port
        ),
    )?;
    let out = sb.xtask(&["teardown"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("test-api: no longer in the settings, but still running"),
        "{stderr}"
    );
    assert!(
        TcpListener::bind(("127.0.0.1", sb.port)).is_ok(),
        "test-api's port is free again"
    );
    assert!(!sb.run_dir().join("test-api.json").exists());
    Ok(())
}

/// The quick start's settings (no iris, no onnx): the model server is built
/// without its ONNX runtime, and serves the identity model.
#[test]
fn without_an_onnx_model_the_server_is_built_without_its_runtime() -> Result {
    let sb = Sandbox::new()?;
    std::fs::write(
        sb.config(),
        format!(
            "[services.model-server]\nport = {}\n[local]\nrun_dir = \"run\"\nstop_grace_secs = 5\n",
            sb.identity_port
        ),
    )?;
    let (plan, _) = ok(&sb.xtask(&["--dry-run", "deploy"])?)?;
    assert!(
        plan.contains("--package model-server --bin model-server --no-default-features"),
        "{plan}"
    );
    ok(&sb.xtask(&["deploy"])?)?;
    let (status, body) = post(
        &format!("http://127.0.0.1:{}/api/v0.1/predictions", sb.identity_port),
        TUTORIAL,
    )?;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        v["data"]["tensor"]["values"],
        serde_json::json!([0, 0, 1, 1])
    );
    // The binary has no ONNX runtime: MODEL=iris is refused, saying why.
    // The very file that runs (/proc/<pid>/exe): the path cargo wrote it
    // to may hold another build by now (the other tests build the model
    // server with its runtime), and a server that starts must not hang
    // the test.
    let exe = format!("/proc/{}/exe", sb.pid_of("model-server")?);
    let mut child = Command::new(exe)
        .env("MODEL", "iris")
        .env("PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("MODEL=iris started a server: the binary has an ONNX runtime".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("built without its ONNX runtime"),
        "{}",
        text(&out.stderr)
    );
    ok(&sb.xtask(&["teardown"])?)?;
    Ok(())
}

/// The address a service logged it listens on.
fn listening_on(sb: &Sandbox, service: &str) -> Result<String> {
    let (log, _) = ok(&sb.xtask(&["logs", service])?)?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("\"message\":\"listening\""))
        .ok_or_else(|| format!("no listening line: {log}"))?;
    let v: Value = serde_json::from_str(line)?;
    Ok(v["addr"].as_str().ok_or("no addr")?.to_string())
}

#[test]
fn services_listen_on_loopback_unless_bind_says_otherwise() -> Result {
    let sb = Sandbox::new()?;
    ok(&sb.xtask(&["deploy", "test-api"])?)?;
    assert_eq!(
        listening_on(&sb, "test-api")?,
        format!("127.0.0.1:{}", sb.port)
    );
    // [local] is the sandbox settings' last table.
    let mut settings = std::fs::read_to_string(sb.config())?;
    settings.push_str("bind = \"0.0.0.0\"\n");
    std::fs::write(sb.config(), settings)?;
    let (_, stderr) = ok(&sb.xtask(&["deploy", "test-api"])?)?;
    assert!(stderr.contains("settings changed; restarting"), "{stderr}");
    assert_eq!(
        listening_on(&sb, "test-api")?,
        format!("0.0.0.0:{}", sb.port)
    );
    assert_eq!(get(&sb.url("/test_api"))?.0, 200);
    // An address this machine does not have: refused before anything is
    // built or stopped; what runs keeps running.
    let pid = sb.pid()?;
    let settings = std::fs::read_to_string(sb.config())?.replace("0.0.0.0", "192.0.2.1");
    std::fs::write(sb.config(), settings)?;
    let out = sb.xtask(&["deploy", "test-api"])?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("local.bind = \"192.0.2.1\" cannot be listened on here"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cargo build") && !stderr.contains("cargo rustc"),
        "{stderr}"
    );
    assert!(alive(pid), "the running service was stopped: {stderr}");
    let settings = std::fs::read_to_string(sb.config())?.replace("192.0.2.1", "0.0.0.0");
    std::fs::write(sb.config(), settings)?;
    // Not an address: named with its key.
    let settings = std::fs::read_to_string(sb.config())?.replace("0.0.0.0", "localhost");
    std::fs::write(sb.config(), settings)?;
    let out = sb.xtask(&["status"])?;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("local.bind = \"localhost\" is not an IP address"),
        "{stderr}"
    );
    std::fs::write(
        sb.config(),
        std::fs::read_to_string(sb.config())?.replace("bind = \"localhost\"\n", ""),
    )?;
    Ok(())
}

#[test]
fn a_lost_run_dir_still_lets_status_show_and_teardown_stop_what_runs() -> Result {
    let sb = Sandbox::new()?;
    ok(&sb.xtask(&["deploy", "test-api"])?)?;
    let pid = sb.pid()?;
    std::fs::remove_dir_all(sb.run_dir())?;

    let out = sb.xtask(&["status"])?;
    let row = text(&out.stdout)
        .lines()
        .find(|l| l.starts_with("test-api"))
        .map(String::from)
        .ok_or("no test-api row")?;
    assert!(
        row.contains(&format!("running, ready (pid {pid})")),
        "{row}"
    );

    // A deploy replaces it (its state is lost, so it counts as changed)
    // instead of failing on the port it holds.
    let (_, stderr) = ok(&sb.xtask(&["deploy", "test-api"])?)?;
    assert!(
        stderr.contains(&format!("restarting (pid {pid})")),
        "{stderr}"
    );
    let pid = sb.pid()?;

    // Removed from the settings and its state lost: still listed, and
    // teardown stops it.
    let settings = std::fs::read_to_string(sb.config())?.replace(
        &format!(
            "[services.test-api]\nport = {}\nimage = \"test-api\"\n",
            sb.port
        ),
        "",
    );
    std::fs::write(sb.config(), settings)?;
    std::fs::remove_dir_all(sb.run_dir())?;
    let (stdout, _) = (text(&sb.xtask(&["status"])?.stdout), ());
    let row = stdout
        .lines()
        .find(|l| l.starts_with("test-api"))
        .ok_or_else(|| format!("no test-api row: {stdout}"))?;
    assert!(row.contains("no longer in the settings"), "{row}");
    assert!(row.contains(&format!("pid {pid}")), "{row}");
    // Asked for by name although the settings no longer have it: stopped,
    // and said so.
    let (stdout, stderr) = ok(&sb.xtask(&["teardown", "test-api"])?)?;
    assert!(
        stderr.contains(&format!("stopped test-api (pid {pid})")),
        "{stderr}"
    );
    assert!(stdout.contains("Torn down on local: test-api."), "{stdout}");
    assert!(!alive(pid), "pid {pid} still alive after teardown");
    // Again: nothing of that name runs, so it is an unknown service.
    let out = sb.xtask(&["teardown", "test-api"])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown service `test-api`"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn ctrl_c_mid_deploy_stops_what_that_run_started() -> Result {
    let sb = Sandbox::new()?;
    // Every request, /readyz included, waits a minute: the deploy is still
    // waiting for readiness when Ctrl-C arrives.
    let settings = std::fs::read_to_string(sb.config())?.replace(
        "image = \"test-api\"\n",
        "image = \"test-api\"\nenv = { ARTIFICIAL_LATENCY_MS = \"60000\" }\n",
    );
    std::fs::write(sb.config(), settings)?;
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(sb.config())
        .args(["--progress=never", "deploy", "test-api"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let state = sb.run_dir().join("test-api.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !state.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = sb.pid()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let out = child.wait_with_output()?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "stopping test-api (pid {pid}), started by this run"
        )),
        "{stderr}"
    );
    assert!(!alive(pid), "pid {pid} still runs after Ctrl-C");
    assert!(!state.exists(), "its state file is left");
    Ok(())
}

/// Two deploys of one checkout at once: the second waits for the first,
/// naming it, then finds test-api running and healthy; one process serves.
#[test]
fn two_deploys_at_once_leave_one_healthy_deployment() -> Result {
    let sb = Sandbox::new()?;
    ok(&sb.xtask(&["build"])?)?;
    let deploy = || {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--config")
            .arg(sb.config())
            .args(["--progress=never", "deploy", "test-api"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
    };
    let (first, second) = (deploy()?, deploy()?);
    let (_, e1) = ok(&first.wait_with_output()?)?;
    let (_, e2) = ok(&second.wait_with_output()?)?;
    let waited = [&e1, &e2]
        .into_iter()
        .filter(|e| {
            e.contains("==> waiting for `cargo xtask") && e.contains("deploy test-api` (pid")
        })
        .count();
    assert_eq!(waited, 1, "one waits for the other:\n{e1}\n---\n{e2}");
    assert!(
        [&e1, &e2]
            .iter()
            .any(|e| e.contains("already running and healthy")),
        "the second found the first's service:\n{e1}\n---\n{e2}"
    );
    let pid = sb.pid()?;
    assert!(alive(pid));
    assert_eq!(get(&sb.url("/test_api"))?.0, 200);
    // A dev loop holds the lock until stopped: a deploy is refused, naming it.
    let mut dev = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(sb.config())
        .args(["--progress=never", "dev", "test-api", "--no-logs"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // The loop is up once it watches.
    let mut loop_err = std::io::BufReader::new(dev.stderr.take().ok_or("stderr")?);
    let mut line = String::new();
    while !line.starts_with("==> watching") {
        line.clear();
        if std::io::BufRead::read_line(&mut loop_err, &mut line)? == 0 {
            return Err("the dev loop ended before it watched".into());
        }
    }
    // The run directory deleted (`cargo clean`) under the loop: its lock
    // is elsewhere and holds.
    std::fs::remove_dir_all(sb.run_dir())?;
    let out = sb.xtask(&["teardown"])?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(dev.id())?),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let _ = dev.wait();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`cargo xtask --config {} --progress=never dev test-api --no-logs` (pid {})",
            sb.config().display(),
            dev.id()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("stop it first"), "{stderr}");
    Ok(())
}

/// A /readyz slower than the probe's one-second timeout is named as such,
/// not as a deadline to raise.
#[test]
fn a_slow_readiness_probe_is_named_as_the_cause() -> Result {
    let sb = Sandbox::new()?;
    let settings = std::fs::read_to_string(sb.config())?
        .replace(
            "image = \"test-api\"\n",
            "image = \"test-api\"\nenv = { ARTIFICIAL_LATENCY_MS = \"1500\" }\n",
        )
        .replace("ready_timeout_secs = 30", "ready_timeout_secs = 4");
    std::fs::write(sb.config(), settings)?;
    let out = sb.xtask(&["deploy", "test-api"])?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("did not answer within 1s, the probe's timeout"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("raise local.ready_timeout_secs"),
        "{stderr}"
    );
    Ok(())
}
