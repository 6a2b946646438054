//! `cargo xtask bench runtimes`: the model server on real models against
//! the floor, ONNX Runtime in-process (the onnxruntime wheel, one thread,
//! no server), side by side in one run: the benchmark's MLP, CNN and tree
//! ensemble (`services/model-server/tests/graphs/`), each at one row and a
//! batch, served on tract and on ONNX Runtime (one instance, one thread)
//! and called over the fastest protocol (OIP v2 with binary tensors, one
//! connection, one request at a time: end-to-end latency). Then dynamic
//! batching: 64 connections sending one MLP row each, on ONNX Runtime,
//! with batching and without.
//!
//! Where it can (Linux, `taskset`, two CPUs or more), the server and the
//! floor run on a CPU of their own and the client on the others: the
//! server's threads then stay where their caches are, as in a pod that
//! Kubernetes' static CPU manager gives whole CPUs, and the client takes
//! none of its time, as a client on another machine would not.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use xshell::cmd;

use super::invocation::Invocation;
use crate::build;
use crate::ground::net;

/// Issue 22: with batching, at least 5x the throughput without; p99
/// within the queue delay plus three batches' compute.
const BATCHING_SPEEDUP: f64 = 5.0;
const BATCH_CLIENTS: usize = 64;
const BATCH_DELAY_US: u64 = 2_000;

/// Issue 22: within 1.3x the floor plus 0.15 ms.
const FLOOR_FACTOR: f64 = 1.3;
const FLOOR_PLUS_MS: f64 = 0.15;

/// How long each case is measured (at least `MIN_RUNS` runs).
const SECONDS: u64 = 3;
const MIN_RUNS: usize = 3;

/// A model at a batch size.
struct Case {
    model: &'static str,
    input: &'static str,
    /// [rows, ...]
    shape: Vec<usize>,
}

impl Case {
    fn label(&self) -> String {
        format!("{}-{}", self.model, self.shape[0])
    }

    fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

fn cases() -> Vec<Case> {
    let case = |model, input, shape: &[usize]| Case {
        model,
        input,
        shape: shape.to_vec(),
    };
    vec![
        case("trees", "input", &[1, 40]),
        case("trees", "input", &[1000, 40]),
        case("mlp", "input", &[1, 256]),
        case("mlp", "input", &[32, 256]),
        case("cnn64", "image", &[1, 3, 64, 64]),
        case("cnn64", "image", &[32, 3, 64, 64]),
    ]
}

/// A batch of the batching figure, for the floor of its compute.
fn batch_case() -> Case {
    Case {
        model: "mlp",
        input: "input",
        shape: vec![BATCH_CLIENTS, 256],
    }
}

/// Which CPUs the server (and the floor) and the client run on.
#[derive(Debug, PartialEq)]
struct Placement {
    /// The argv prefix the server and the floor start with: `taskset -c
    /// <cpu>`, or nothing.
    server: Vec<String>,
    /// The argv prefix the client (wrk) starts with.
    client: Vec<String>,
    /// The CPUs the client may use.
    client_cpus: usize,
}

impl Placement {
    /// The last of `cpus` (the ids this process may run on) for the
    /// server, the others for the client, through `taskset`; everything
    /// shared when there is no `taskset` or fewer than two CPUs.
    fn new(cpus: &[usize], taskset: Option<&Path>) -> Self {
        match (taskset, cpus.split_last()) {
            (Some(taskset), Some((server, client))) if !client.is_empty() => {
                let pin =
                    |cpus: String| vec![taskset.display().to_string(), "--cpu-list".into(), cpus];
                let list: Vec<String> = client.iter().map(usize::to_string).collect();
                Self {
                    server: pin(server.to_string()),
                    client: pin(list.join(",")),
                    client_cpus: client.len(),
                }
            }
            _ => Self {
                server: Vec::new(),
                client: Vec::new(),
                client_cpus: cpus.len().max(1),
            },
        }
    }

    /// This host's: the CPUs this process may run on, and `taskset` from
    /// the `PATH`.
    fn here() -> Self {
        #[cfg(target_os = "linux")]
        let cpus: Vec<usize> = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .map(|set| {
                (0..nix::sched::CpuSet::count())
                    .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                    .collect()
            })
            .unwrap_or_default();
        // taskset is Linux's (util-linux).
        #[cfg(not(target_os = "linux"))]
        let cpus: Vec<usize> = Vec::new();
        Self::new(&cpus, which::which("taskset").ok().as_deref())
    }

    /// What the output says about it.
    fn about(&self) -> String {
        match (self.server.last(), self.client.last()) {
            (Some(server), Some(client)) => {
                format!("server and floor on CPU {server}, client on CPU(s) {client}")
            }
            _ => "server, floor and client share the CPUs (no taskset, or one CPU)".to_string(),
        }
    }

    /// `program` run through `prefix` (the server's or the client's).
    fn prefixed<'a>(
        sh: &'a xshell::Shell,
        prefix: &[String],
        program: &std::ffi::OsStr,
    ) -> xshell::Cmd<'a> {
        match prefix.split_first() {
            Some((first, rest)) => sh.cmd(first).args(rest).arg(program),
            None => sh.cmd(program),
        }
    }

    /// `program` started through the server's prefix.
    fn server_command(&self, program: &Path) -> Command {
        match self.server.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// The runtimes the server is measured on.
const RUNTIMES: [&str; 2] = ["tract", "onnxruntime"];

/// What the floor script prints.
#[derive(serde::Deserialize)]
struct Floor {
    library: Option<String>,
    version: String,
    cases: std::collections::BTreeMap<String, FloorCase>,
}

#[derive(serde::Deserialize)]
struct FloorCase {
    median_ms: f64,
}

/// Runs the benchmark and prints each case's figures against the bar.
///
/// # Errors
/// No Python with onnxruntime (`KMLOPS_PYTHON`, else `python3`), a build
/// that fails, a server that does not start or answers other than 200.
pub fn run(cx: &Invocation, profile: build::Profile, python: &Path) -> Result<ExitCode> {
    let graphs = cx.root.join("services/model-server/tests/graphs");
    let scratch = tempfile::tempdir()?;
    let cases = cases();
    let spec_path = write_inputs(scratch.path(), &graphs, &cases)?;
    let script = cx.root.join("services/model-server/scripts/bench_floor.py");
    let placement = Placement::here();
    let out = cx.runner.run(
        Placement::prefixed(&cx.sh, &placement.server, python.as_os_str())
            .arg(&script)
            .arg(&spec_path),
        "measuring the floor: ONNX Runtime in-process (pip install -r .ci/requirements.txt)",
    )?;
    let Some(floor) = cx.runner.unless_dry_run(|| {
        serde_json::from_str::<Floor>(&out.stdout)
            .with_context(|| format!("reading what {} printed", script.display()))
    })?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let library = floor
        .library
        .clone()
        .context("the onnxruntime package has no libonnxruntime.so")?;

    // ONNX Runtime's library needs a dynamically linked server: the host
    // target's build, as a service with runtime = "onnxruntime" is built.
    let cargo = build::cargo();
    let profile_name = profile.as_str();
    cx.runner.run(
        cmd!(
            cx.sh,
            "{cargo} build --profile {profile_name} --package model-server"
        ),
        "building the model server (dynamically linked, tract and ONNX Runtime)",
    )?;
    let binary = build::target_dir(cx)
        .join(profile.as_str())
        .join("model-server");
    let server = Server {
        binary: &binary,
        graphs: &graphs,
        library: &library,
        placement: &placement,
    };

    cx.runner.locate("wrk", "cargo xtask bench runtimes")?;
    let transport_ms = transport(cx, &server)?;
    let mut rows = Vec::new();
    let mut compute = Vec::new();
    for case in &cases {
        let data = std::fs::read(scratch.path().join(format!("{}.bin", case.label())))?;
        let mut ours = Vec::new();
        let mut computes = Vec::new();
        for runtime in RUNTIMES {
            let (ms, compute_ms) = serve_and_time(cx, &server, runtime, case, &data)?;
            ours.push(ms);
            computes.push(compute_ms);
        }
        compute.push((case, computes));
        let floor_ms = floor
            .cases
            .get(&case.label())
            .with_context(|| format!("no floor for {}", case.label()))?
            .median_ms;
        rows.push((case, floor_ms, ours));
    }
    print_table(&floor, profile, &placement, &rows, &compute, transport_ms)?;
    let batch_floor = floor
        .cases
        .get(&batch_case().label())
        .context("no floor for the batch")?
        .median_ms;
    batching(cx, &server, batch_floor)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes each case's (and the batch's) request data, `<label>.bin`, and
/// the floor script's list of cases, `cases.json`, into `dir`; returns the
/// list's path.
fn write_inputs(dir: &Path, graphs: &Path, cases: &[Case]) -> Result<std::path::PathBuf> {
    let mut spec = Vec::new();
    for (i, case) in cases.iter().chain([&batch_case()]).enumerate() {
        std::fs::write(
            dir.join(format!("{}.bin", case.label())),
            inputs(case, i as u64),
        )?;
        spec.push(serde_json::json!({
            "label": case.label(),
            "model": graphs.join(format!("{}.onnx", case.model)),
            "input": case.input,
            "shape": case.shape,
            "seconds": SECONDS,
        }));
    }
    let spec_path = dir.join("cases.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    Ok(spec_path)
}

/// The figures: each case's latency on both runtimes against the floor
/// and the bar, the server's own time per request, and the transport's.
fn print_table(
    floor: &Floor,
    profile: build::Profile,
    placement: &Placement,
    rows: &[(&Case, f64, Vec<f64>)],
    compute: &[(&Case, Vec<f64>)],
    transport_ms: f64,
) -> Result<()> {
    println!(
        "end-to-end median latency, one connection, OIP v2 binary; floor: onnxruntime {} in-process, 1 thread; server: 1 instance, 1 thread; {} profile; {}",
        floor.version,
        profile.as_str(),
        placement.about()
    );
    println!(
        "{:<8} {:>6} {:>10} {:>18} {:>18} {:>10}  VERDICT (faster runtime)",
        "MODEL", "ROWS", "FLOOR MS", "TRACT MS", "ONNXRUNTIME MS", "BAR MS"
    );
    for (case, floor_ms, ours) in rows {
        let bar = floor_ms * FLOOR_FACTOR + FLOOR_PLUS_MS;
        let shown = |ms: f64| format!("{ms:.3} ({:.1}x)", ms / floor_ms);
        let (best, best_ms) = RUNTIMES
            .iter()
            .zip(ours)
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(r, ms)| (*r, *ms))
            .context("no runtime measured")?;
        println!(
            "{:<8} {:>6} {:>10.3} {:>18} {:>18} {:>10.3}  {} ({best})",
            case.model,
            case.shape[0],
            floor_ms,
            shown(ours[0]),
            shown(ours[1]),
            bar,
            if best_ms <= bar { "meets" } else { "MISSES" },
        );
    }
    println!(
        "the server's own time per request, the mean of model_compute_duration_seconds (decode, \
         run, encode; the rest is transport): the floor runs back to back with warm caches, a \
         served run after the HTTP stack's"
    );
    for (case, ms) in compute {
        println!(
            "{:<8} {:>6} {:>10} {:>18.3} {:>18.3}",
            case.model, case.shape[0], "", ms[0], ms[1]
        );
    }
    println!(
        "transport here: {transport_ms:.3} ms for a request that computes nothing (GET \
         /v2/health/live, same client and connection); the bar's 0.15 ms is meant for it"
    );
    Ok(())
}

/// The median milliseconds of a request the server answers without
/// computing (the liveness probe), timed as the cases are: what the
/// loopback, the HTTP stack and the client cost on this machine.
fn transport(cx: &Invocation, server: &Server<'_>) -> Result<f64> {
    let running = Running::start(server, "mlp", "tract", &[])?;
    Ok(load(cx, server.placement, &running, "/v2/health/live", 1, None)?.p50_ms)
}

/// wrk for `SECONDS` on `path` of the `running` server, over
/// `connections` connections (a `script` sets the request), from the
/// client's CPUs.
fn load(
    cx: &Invocation,
    placement: &Placement,
    running: &Running,
    path: &str,
    connections: usize,
    script: Option<&Path>,
) -> Result<super::wrk::Figures> {
    let url = format!("http://127.0.0.1:{}{path}", running.port);
    let duration = format!("{SECONDS}s");
    let threads = connections.min(placement.client_cpus).to_string();
    let connections = connections.to_string();
    let script: Vec<String> = script
        .map(|s| vec!["--script".to_string(), s.display().to_string()])
        .unwrap_or_default();
    let out = cx.runner.run(
        Placement::prefixed(&cx.sh, &placement.client, "wrk".as_ref())
            .args(["--threads", &threads, "--connections", &connections])
            .args(["--duration", &duration, "--timeout", "10s", "--latency"])
            .args(script)
            .arg(url),
        "cargo xtask bench runtimes",
    )?;
    super::wrk::parse_wrk(&out.stdout)
}

/// 64 clients sending one MLP row each over OIP v2 binary, on ONNX
/// Runtime: with dynamic batching (up to 64 rows, 2 ms), and without.
fn batching(cx: &Invocation, server: &Server<'_>, batch_floor_ms: f64) -> Result<()> {
    let case = Case {
        model: "mlp",
        input: "input",
        shape: vec![1, 256],
    };
    let (header, body) = binary_request(&case, &inputs(&case, 99));
    let script = super::wrk::lua_script(
        cx,
        "runtimes-mlp-row",
        &super::wrk::Body {
            bytes: body,
            header_length: Some(header.len()),
        },
    )?;
    let clients = BATCH_CLIENTS.to_string();
    let delay = BATCH_DELAY_US.to_string();
    let mut figures = Vec::new();
    for batch in [clients.as_str(), "1"] {
        let running = Running::start(
            server,
            "mlp",
            "onnxruntime",
            &[
                ("MAX_BATCH_SIZE", batch),
                ("MAX_QUEUE_DELAY_US", &delay),
                ("MAX_CONCURRENT_REQUESTS", &clients),
                ("MAX_CONNECTIONS", "512"),
            ],
        )?;
        let path = "/v2/models/mlp/infer";
        figures.push(load(
            cx,
            server.placement,
            &running,
            path,
            BATCH_CLIENTS,
            Some(&script),
        )?);
    }
    let (with, without) = (&figures[0], &figures[1]);
    let speedup = with.requests_per_sec / without.requests_per_sec;
    let p99_bar = BATCH_DELAY_US as f64 / 1000.0 + 3.0 * batch_floor_ms;
    println!(
        "{BATCH_CLIENTS} clients, one MLP row each, ONNX Runtime, OIP v2 binary: batching (<= {BATCH_CLIENTS} rows, {BATCH_DELAY_US} us) {:.0} req/s, p99 {:.2} ms; without {:.0} req/s, p99 {:.2} ms",
        with.requests_per_sec, with.p99_ms, without.requests_per_sec, without.p99_ms
    );
    println!(
        "batching: {speedup:.1}x the throughput ({} the target of {BATCHING_SPEEDUP:.0}x); p99 {:.2} ms ({} the bar of {p99_bar:.2} ms: the delay + 3 x one {BATCH_CLIENTS}-row batch's floor of {batch_floor_ms:.2} ms)",
        if speedup >= BATCHING_SPEEDUP {
            "meets"
        } else {
            "MISSES"
        },
        with.p99_ms,
        if with.p99_ms <= p99_bar {
            "meets"
        } else {
            "MISSES"
        },
    );
    Ok(())
}

/// The case's input: float32 uniform in [-2, 2) from a seed of its own,
/// little-endian (the binary tensor form, and what the floor reads).
fn inputs(case: &Case, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(22 + seed);
    (0..case.elements())
        .flat_map(|_| rng.random_range(-2.0f32..2.0).to_le_bytes())
        .collect()
}

/// The case's median end-to-end milliseconds on `runtime`, and the mean
/// milliseconds the server itself spent on a request
/// (`model_compute_duration_seconds` from its `/metrics`). `data`: the
/// case's input elements, little-endian float32.
fn serve_and_time(
    cx: &Invocation,
    server: &Server<'_>,
    runtime: &str,
    case: &Case,
    data: &[u8],
) -> Result<(f64, f64)> {
    let running = Running::start(
        server,
        case.model,
        runtime,
        &[
            ("MODEL_INSTANCES", "1"),
            // A batch of 32 64x64 images is 1.5 MB in binary.
            ("MAX_BODY_BYTES", "8388608"),
        ],
    )?;
    let ms = time_requests(cx, server.placement, &running, runtime, case, data)?;
    Ok((ms, compute_ms(running.port)?))
}

/// The mean of the server's `model_compute_duration_seconds`, in ms.
fn compute_ms(port: u16) -> Result<f64> {
    let (_, text) = crate::ground::http::get(
        &format!("http://127.0.0.1:{port}/metrics"),
        Duration::from_secs(10),
    )?;
    let value = |name: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .with_context(|| format!("the server's /metrics has no {name}"))
    };
    let count = value("model_compute_duration_seconds_count")?;
    Ok(1000.0 * value("model_compute_duration_seconds_sum")? / count.max(1.0))
}

/// A model server on a free port, answering (killed when dropped).
struct Running {
    child: std::process::Child,
    port: u16,
}

impl Running {
    /// Serves the benchmark's graph `name` on `runtime` with one thread
    /// per run and `more` settings, on the server's CPU, once it answers
    /// `/readyz`.
    fn start(
        server: &Server<'_>,
        name: &str,
        runtime: &str,
        more: &[(&str, &str)],
    ) -> Result<Self> {
        let port = net::free_port()?;
        let binary = server.binary;
        let model = server.graphs.join(format!("{name}.onnx"));
        let child = server
            .placement
            .server_command(binary)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .env("MODEL", "onnx")
            .env("MODEL_PATH", model)
            .env("MODEL_NAME", name)
            .env("RUNTIME", runtime)
            .env("ORT_DYLIB_PATH", server.library)
            .env("INTRA_OP_THREADS", "1")
            .envs(more.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut running = Self { child, port };
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while !crate::ground::http::ready(&base) {
            if let Ok(Some(status)) = running.child.try_wait() {
                bail!("the model server ({runtime}, {name}) exited: {status}");
            }
            if started.elapsed() > Duration::from_secs(60) {
                running.stop();
                bail!("the model server ({runtime}, {name}) did not get ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(running)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An OIP v2 binary request of `data` for `case`: its JSON header and
/// the whole body.
fn binary_request(case: &Case, data: &[u8]) -> (String, Vec<u8>) {
    let header = serde_json::json!({
        "inputs": [{"name": case.input, "datatype": "FP32", "shape": case.shape,
                    "parameters": {"binary_data_size": data.len()}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(data);
    (header, body)
}

/// A request slower than this is timed by itself, not by wrk.
const SLOW_MS: f64 = 200.0;

/// The built server and what every run of it shares.
struct Server<'a> {
    binary: &'a Path,
    /// The benchmark's graphs, `<name>.onnx`.
    graphs: &'a Path,
    /// ONNX Runtime's shared library.
    library: &'a str,
    placement: &'a Placement,
}

/// Median milliseconds of `case`'s requests to the `running` server, one
/// at a time over one connection: wrk's median for `SECONDS` (its client
/// costs least), or for a request slower than `SLOW_MS` the median of
/// `MIN_RUNS` (tract on the tree ensemble takes seconds a request).
fn time_requests(
    cx: &Invocation,
    placement: &Placement,
    running: &Running,
    runtime: &str,
    case: &Case,
    data: &[u8],
) -> Result<f64> {
    let path = format!("/v2/models/{}/infer", case.model);
    let url = format!("http://127.0.0.1:{}{path}", running.port);
    // Its own client: one kept connection for every request (the shared
    // one keeps none), to the server on loopback, never through a proxy.
    let client = reqwest::blocking::Client::builder().no_proxy().build()?;
    let (header, body) = binary_request(case, data);
    let once = || -> Result<f64> {
        let start = Instant::now();
        let resp = client
            .post(&url)
            .header("inference-header-content-length", header.len().to_string())
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .timeout(Duration::from_secs(600))
            .send()?;
        let status = resp.status();
        let answer = resp.bytes()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if status != 200 {
            bail!(
                "{} on {runtime}: {} {}",
                case.label(),
                status,
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(ms)
    };
    let mut times = (0..MIN_RUNS).map(|_| once()).collect::<Result<Vec<_>>>()?;
    times.sort_by(f64::total_cmp);
    let warm = times[times.len() / 2];
    if warm > SLOW_MS {
        return Ok(warm);
    }
    let script = super::wrk::lua_script(
        cx,
        &format!("runtimes-{}-{runtime}", case.label()),
        &super::wrk::Body {
            bytes: body,
            header_length: Some(header.len()),
        },
    )?;
    Ok(load(cx, placement, running, &path, 1, Some(&script))?.p50_ms)
}

/// The Python the floor runs in: `KMLOPS_PYTHON`, else `python3`.
pub fn python(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    lookup("KMLOPS_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_gets_the_last_cpu_and_the_client_the_others() {
        let taskset = Path::new("/usr/bin/taskset");
        let p = Placement::new(&[0, 2, 3, 5], Some(taskset));
        assert_eq!(p.server, ["/usr/bin/taskset", "--cpu-list", "5"]);
        assert_eq!(p.client, ["/usr/bin/taskset", "--cpu-list", "0,2,3"]);
        assert_eq!(p.client_cpus, 3);
        assert_eq!(
            p.about(),
            "server and floor on CPU 5, client on CPU(s) 0,2,3"
        );
        let started = p.server_command(Path::new("/srv/model-server"));
        assert_eq!(started.get_program(), "/usr/bin/taskset");
        let args: Vec<_> = started.get_args().collect();
        assert_eq!(args, ["--cpu-list", "5", "/srv/model-server"]);
    }

    #[test]
    fn one_cpu_or_no_taskset_shares_everything() {
        for p in [
            Placement::new(&[0], Some(Path::new("taskset"))),
            Placement::new(&[0, 1], None),
        ] {
            assert!(p.server.is_empty() && p.client.is_empty(), "{p:?}");
            assert!(p.about().starts_with("server, floor and client share"));
            let started = p.server_command(Path::new("/srv/model-server"));
            assert_eq!(started.get_program(), "/srv/model-server");
        }
        assert_eq!(Placement::new(&[0, 1], None).client_cpus, 2);
    }
}
