//! `cargo xtask bench`: throughput and latency figures from wrk, always
//! beside a reference measured in the same run on the same machine, and the
//! image figures.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use xshell::cmd;

use super::invocation::Invocation;
use crate::build;
use crate::ground::http;
use crate::ground::net;
use crate::ground::poll::{self, Check, Waited};
use crate::ground::runner::Attached;
use crate::ground::tools::engine_cli;
use crate::image::{self, Builder, Image};
use crate::publish::docker::Docker as Load;
use crate::publish::publisher::Publisher;
use crate::verify::smoke::TUTORIAL_PAYLOAD;

use super::wrk::{Body, Figures, lua_script, parse_wrk};

/// The bars the figures are held to.
const TEST_API_RATIO_TARGET: f64 = 0.9;
const IDENTITY_RPS_TARGET: f64 = 20_000.0;
const IDENTITY_P99_MS_TARGET: f64 = 5.0;
const IRIS_RPS_TARGET: f64 = 10_000.0;
/// Issue 21: v2 REST on iris at >= 40x MLServer's measured 1,106 req/s.
const IRIS_V2_RPS_TARGET: f64 = 40.0 * 1_106.0;
/// Issue 21: a float32 [32, 256] batch in the binary form in at most a
/// fifth of v1 JSON's time.
const BINARY_SPEEDUP_TARGET: f64 = 5.0;

/// The iris model takes 4 features: the tutorial's payload shape, widened.
const IRIS_PAYLOAD: &str = r#"{"data":{"names":["a","b","c","d"],"tensor":{"shape":[2,4],"values":[5.1,3.5,1.4,0.2,6.3,3.3,6.0,2.5]}}}"#;
/// The same tensors in the Open Inference Protocol's form.
const TUTORIAL_V2: &str =
    r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[0,0,1,1]}]}"#;
const IRIS_V2: &str = r#"{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2,6.3,3.3,6.0,2.5]}]}"#;

#[derive(Args)]
pub struct BenchArgs {
    /// What to measure
    #[arg(value_enum)]
    pub subject: BenchSubject,
    /// Seconds per measurement
    #[arg(long, default_value_t = 10)]
    pub duration: u32,
    /// Concurrent connections
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Rounds: the servers are measured in turn this many times, and each
    /// one's median round is reported (alternating evens out drift)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// The services' profile (default: release; dist for `images`, whose sizes are what ships)
    #[command(flatten)]
    pub profile: super::args::ProfileArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchSubject {
    /// GET /test_api against a minimal axum handler returning the same JSON
    TestApi,
    /// The tutorial's tensor payload against the identity and iris models
    ModelServer,
    /// Seldon v1 beside the Open Inference Protocol v2 (JSON and binary):
    /// the tutorial tensor, iris, and a float32 [32, 256] batch through the
    /// identity model
    Protocols,
    /// Image sizes, native vs docker builder time, docker stop, redeploy time
    Images,
    /// In a fresh clone: the clone to `deploy` serving, then `dev` with an
    /// edit in seldon-protocol and one in test-api, each to its new answer
    DevLoop,
    /// The model server on an MLP, a CNN and a tree ensemble, on tract and
    /// ONNX Runtime, against ONNX Runtime in-process (the floor; needs a
    /// Python with onnxruntime: KMLOPS_PYTHON, else python3)
    Runtimes,
}

/// One server under load.
struct Case {
    label: &'static str,
    binary: PathBuf,
    env: Vec<(&'static str, &'static str)>,
    path: &'static str,
    /// A body to POST; GET when None.
    body: Option<Body>,
}

/// The batch of the protocol figures: float32 [32, 256], a real model's
/// input size (an MLP's), values like a normalised feature's.
fn batch() -> Vec<f32> {
    (0..32 * 256)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// `bench protocols`: Seldon v1 beside the Open Inference Protocol v2,
/// JSON and binary, on `server`: the tutorial tensor (identity), iris, and
/// a float32 `[32, 256]` batch through identity.
fn protocol_cases(server: &std::path::Path) -> Vec<Case> {
    let case = |label, model, path, body| Case {
        label,
        binary: server.to_path_buf(),
        env: vec![("MODEL", model)],
        path,
        body,
    };
    let [v1, v2, binary] = batch_bodies();
    vec![
        case(
            "tensor v1",
            "identity",
            "/api/v1.0/predictions",
            Body::json(TUTORIAL_PAYLOAD),
        ),
        case(
            "tensor v2",
            "identity",
            "/v2/models/identity/infer",
            Body::json(TUTORIAL_V2),
        ),
        case(
            "iris v1",
            "iris",
            "/api/v1.0/predictions",
            Body::json(IRIS_PAYLOAD),
        ),
        case(
            "iris v2",
            "iris",
            "/v2/models/iris/infer",
            Body::json(IRIS_V2),
        ),
        case("32x256 v1", "identity", "/api/v1.0/predictions", v1),
        case("32x256 v2", "identity", "/v2/models/identity/infer", v2),
        case(
            "32x256 binary",
            "identity",
            "/v2/models/identity/infer",
            binary,
        ),
    ]
}

/// The batch as Seldon v1 JSON, Open Inference Protocol JSON, and OIP
/// with the binary tensor data extension.
fn batch_bodies() -> [Option<Body>; 3] {
    let values = batch();
    let list = serde_json::to_string(&values).unwrap_or_default();
    let v1 = format!(r#"{{"data":{{"tensor":{{"shape":[32,256],"values":{list}}}}}}}"#);
    let v2 = format!(
        r#"{{"inputs":[{{"name":"x","shape":[32,256],"datatype":"FP32","data":{list}}}]}}"#
    );
    let header = format!(
        r#"{{"inputs":[{{"name":"x","shape":[32,256],"datatype":"FP32","parameters":{{"binary_data_size":{}}}}}],"parameters":{{"binary_data_output":true}}}}"#,
        values.len() * 4
    );
    let mut binary = header.clone().into_bytes();
    binary.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    [
        Body::json(&v1),
        Body::json(&v2),
        Some(Body {
            bytes: binary,
            header_length: Some(header.len()),
        }),
    ]
}

impl BenchArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        if let BenchSubject::Images = self.subject {
            return images(cx, self.profile.or(build::Profile::Dist));
        }
        if let BenchSubject::DevLoop = self.subject {
            return super::bench_dev_loop::run(cx, self.profile.or(build::Profile::Release));
        }
        if let BenchSubject::Runtimes = self.subject {
            let python = super::bench_runtimes::python(|k| std::env::var(k).ok());
            return super::bench_runtimes::run(
                cx,
                self.profile.or(build::Profile::Release),
                &python,
            );
        }
        cx.runner.locate("wrk", "cargo xtask bench")?;
        let cases = self.cases(cx)?;
        let Some(results) = self.measure_all(cx, &cases)? else {
            return Ok(ExitCode::SUCCESS);
        };
        println!(
            "{} connections, {}s each, median of {} alternating rounds, wrk with 2 threads, loopback, {} cores",
            self.connections,
            self.duration,
            self.rounds,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!(
            "{:<14} {:>12} {:>10} {:>10}",
            "SERVER", "REQUESTS/S", "P50 MS", "P99 MS"
        );
        for (label, f) in &results {
            println!(
                "{label:<14} {:>12.0} {:>10.3} {:>10.3}",
                f.requests_per_sec, f.p50_ms, f.p99_ms
            );
        }
        self.verdicts(&results)?;
        Ok(ExitCode::SUCCESS)
    }

    /// The servers to measure, built: the services exactly as `cargo xtask
    /// deploy` builds them (the same command, the same packages, so the
    /// same binaries), and for test-api a reference.
    fn cases(&self, cx: &Invocation) -> Result<Vec<Case>> {
        let profile = self.profile.or(build::Profile::Release);
        let release = build::release_dir(cx, profile);
        let mut deploy_build = build::static_command(cx, profile);
        deploy_build.args(build::selection(cx, &cx.all_services())?.build_args());
        if matches!(
            self.subject,
            BenchSubject::ModelServer | BenchSubject::Protocols
        ) {
            // iris is measured too: the ONNX runtime, whatever the settings.
            deploy_build.args(["--features", "model-server/onnx"]);
        }
        cx.runner
            .run(deploy_build, "building the services as deploy does")?;
        Ok(match self.subject {
            BenchSubject::TestApi => {
                // The reference with cargo's default release settings (the
                // `reference` profile undoes our size profile): like with like
                // is a plain `cargo build --release` of a minimal server.
                let cargo = build::cargo();
                cx.runner.run(
                    cmd!(
                        cx.sh,
                        "{cargo} build --profile reference --package test-api --example minimal_axum"
                    ),
                    "building the reference server",
                )?;
                vec![
                    Case {
                        label: "test-api",
                        binary: release.join("test-api"),
                        env: vec![],
                        path: "/test_api",
                        body: None,
                    },
                    Case {
                        label: "minimal axum",
                        binary: build::target_dir(cx).join("reference/examples/minimal_axum"),
                        env: vec![],
                        path: "/test_api",
                        body: None,
                    },
                ]
            }
            BenchSubject::ModelServer => vec![
                Case {
                    label: "identity",
                    binary: release.join("model-server"),
                    env: vec![("MODEL", "identity")],
                    path: "/api/v1.0/predictions",
                    body: Body::json(TUTORIAL_PAYLOAD),
                },
                Case {
                    label: "iris",
                    binary: release.join("model-server"),
                    env: vec![("MODEL", "iris")],
                    path: "/api/v1.0/predictions",
                    body: Body::json(IRIS_PAYLOAD),
                },
            ],
            BenchSubject::Protocols => protocol_cases(&release.join("model-server")),
            BenchSubject::Images | BenchSubject::DevLoop | BenchSubject::Runtimes => {
                bail!("measured apart from the servers' throughput")
            }
        })
    }

    /// Every case `rounds` times, in turn; each case's median round.
    /// None under `--dry-run`.
    fn measure_all<'a>(
        &self,
        cx: &Invocation,
        cases: &'a [Case],
    ) -> Result<Option<Vec<(&'a str, Figures)>>> {
        let mut rounds: Vec<Vec<Figures>> = cases.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.rounds {
            for (case, figures) in cases.iter().zip(&mut rounds) {
                figures.extend(measure(cx, case, self)?);
            }
        }
        if rounds.iter().any(Vec::is_empty) {
            return Ok(None);
        }
        Ok(Some(
            cases
                .iter()
                .zip(rounds)
                .map(|(case, figures)| (case.label, median(figures)))
                .collect(),
        ))
    }

    /// Each figure against its bar.
    fn verdicts(&self, results: &[(&str, Figures)]) -> Result<()> {
        let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
        match (self.subject, results) {
            (BenchSubject::TestApi, [(_, ours), (_, reference)]) => {
                let ratio = ours.requests_per_sec / reference.requests_per_sec;
                println!(
                    "test-api / minimal axum = {ratio:.2} ({} the target of {TEST_API_RATIO_TARGET:.2})",
                    verdict(ratio >= TEST_API_RATIO_TARGET)
                );
            }
            (BenchSubject::ModelServer, [(_, identity), (_, iris)]) => {
                println!(
                    "identity: {} the target of {IDENTITY_RPS_TARGET:.0} req/s and p99 < {IDENTITY_P99_MS_TARGET} ms",
                    verdict(
                        identity.requests_per_sec >= IDENTITY_RPS_TARGET
                            && identity.p99_ms < IDENTITY_P99_MS_TARGET
                    )
                );
                println!(
                    "iris: {} the target of {IRIS_RPS_TARGET:.0} req/s",
                    verdict(iris.requests_per_sec >= IRIS_RPS_TARGET)
                );
            }
            (BenchSubject::Protocols, [_, _, _, (_, iris), (_, v1), (_, v2), (_, binary)]) => {
                println!(
                    "iris over v2: {:.0} req/s = {:.1}x MLServer's 1,106 ({} the target of 40x)",
                    iris.requests_per_sec,
                    iris.requests_per_sec / 1_106.0,
                    verdict(iris.requests_per_sec >= IRIS_V2_RPS_TARGET)
                );
                let speedup = binary.requests_per_sec / v1.requests_per_sec;
                println!(
                    "32x256 float32: binary {speedup:.1}x v1 JSON's rate, v2 JSON {:.1}x ({} the target of {BINARY_SPEEDUP_TARGET:.0}x)",
                    v2.requests_per_sec / v1.requests_per_sec,
                    verdict(speedup >= BINARY_SPEEDUP_TARGET)
                );
            }
            _ => bail!("the benchmark produced {} results", results.len()),
        }
        Ok(())
    }
}

/// The image issue's figures: sizes, assembly time against the docker
/// builder, how fast a service stops, and a redeploy with nothing changed.
fn images(cx: &Invocation, profile: build::Profile) -> Result<ExitCode> {
    const TEST_API_MAX: u64 = 5_000_000;
    const MODEL_SERVER_MAX: u64 = 15_000_000;
    // A model server with ONNX Runtime: its C runtime base and library.
    const ONNXRUNTIME_MAX: u64 = 60_000_000;
    let setup = cx.image_setup();
    let built = build::build(cx, &setup.all, &setup.all, profile)?;
    let Some(figures) = cx.runner.unless_dry_run(|| {
        // Fresh assembly: forget earlier records so nothing is skipped.
        let _ = std::fs::remove_dir_all(&setup.images.dir);
        let start = Instant::now();
        let native = image::images_from(cx, &setup, &built, Builder::Native)?;
        let native_secs = start.elapsed().as_secs_f64();
        // The docker builder's Dockerfiles build FROM scratch: not for
        // ONNX Runtime's images.
        let scratch: Vec<build::Built> = built
            .iter()
            .filter(|b| b.runtime_library.is_none())
            .cloned()
            .collect();
        let start = Instant::now();
        image::images_from(cx, &setup, &scratch, Builder::Docker)?;
        let docker_secs = start.elapsed().as_secs_f64();
        let test_api = native
            .iter()
            .find(|i| i.name == test_api_image(cx))
            .context("no test-api image")?;
        let stop_secs = stop_time(cx, test_api)?;
        let redeploy_secs = redeploy_time(cx)?;
        Ok((native, native_secs, docker_secs, stop_secs, redeploy_secs))
    })?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let (native, native_secs, docker_secs, stop_secs, redeploy_secs) = figures;
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!("{:<44} {:>12}  TARGET", "FIGURE", "VALUE");
    for i in &native {
        let onnxruntime = built
            .iter()
            .any(|b| b.spec.settings.image == i.name && b.runtime_library.is_some());
        let max = if i.name == test_api_image(cx) {
            TEST_API_MAX
        } else if onnxruntime {
            ONNXRUNTIME_MAX
        } else {
            MODEL_SERVER_MAX
        };
        println!(
            "{:<44} {:>9.1} MB  <= {:.0} MB ({})",
            format!("{} image, uncompressed", i.name),
            i.size as f64 / 1e6,
            max as f64 / 1e6,
            verdict(i.size <= max)
        );
    }
    println!(
        "{:<44} {:>10.2} s  <= 1 s per image ({})",
        "native assembly, all images",
        native_secs,
        verdict(native_secs / native.len().max(1) as f64 <= 1.0)
    );
    println!(
        "{:<44} {:>10.2} s  (for comparison)",
        "docker builder (build + save), FROM scratch", docker_secs
    );
    println!(
        "{:<44} {:>10.2} s  < 1 s ({})",
        "docker stop of a running test-api",
        stop_secs,
        verdict(stop_secs < 1.0)
    );
    println!(
        "{:<44} {:>10.2} s  <= 3 s ({})",
        "deploy --target docker, nothing changed",
        redeploy_secs,
        verdict(redeploy_secs <= 3.0)
    );
    Ok(ExitCode::SUCCESS)
}

/// Seconds `docker stop` takes on a running test-api (it handles SIGTERM
/// as PID 1).
fn stop_time(cx: &Invocation, test_api: &Image) -> Result<f64> {
    Load.publish(cx, test_api)?;
    let docker = engine_cli();
    let name = format!("{}-bench-stop", cx.config.docker.name_prefix);
    let reference = &test_api.reference;
    let _ = cx.runner.probe(
        cmd!(cx.sh, "{docker} rm --force {name}"),
        "bench",
        Duration::from_secs(30),
    );
    cx.runner.run(
        cmd!(cx.sh, "{docker} run --detach --name {name} {reference}"),
        "bench",
    )?;
    // Timed from when the server is up (its signal handling installed).
    cx.runner.unless_dry_run(|| {
        let started = poll::until(Duration::from_secs(30), Duration::from_millis(50), || {
            let logs = cx.runner.probe(
                cmd!(cx.sh, "{docker} logs {name}"),
                "bench",
                Duration::from_secs(10),
            )?;
            Ok(if logs.stdout.contains("listening") {
                Check::Done(())
            } else {
                Check::NotYet(format!(
                    "has not logged `listening`: {}",
                    logs.stderr.trim()
                ))
            })
        })?;
        match started {
            Waited::Done { .. } => Ok(()),
            Waited::TimedOut { last } => bail!("the container {name} {last}"),
        }
    })?;
    let start = Instant::now();
    cx.runner
        .run(cmd!(cx.sh, "{docker} stop {name}"), "bench")?;
    let secs = start.elapsed().as_secs_f64();
    cx.runner
        .run(cmd!(cx.sh, "{docker} rm --force {name}"), "bench")?;
    Ok(secs)
}

/// Seconds a second `deploy --target docker` takes, with nothing changed.
fn redeploy_time(cx: &Invocation) -> Result<f64> {
    let me = std::env::current_exe()?;
    let xtask = |args: &[&str]| cmd!(cx.sh, "{me} --progress=never {args...}");
    cx.runner
        .run(xtask(&["deploy", "--target", "docker"]), "bench")?;
    let start = Instant::now();
    cx.runner
        .run(xtask(&["deploy", "--target", "docker"]), "bench")?;
    let secs = start.elapsed().as_secs_f64();
    cx.runner
        .run(xtask(&["teardown", "--target", "docker"]), "bench")?;
    Ok(secs)
}

/// One wrk run against `case`, started on a free port. None under `--dry-run`.
fn measure(cx: &Invocation, case: &Case, args: &BenchArgs) -> Result<Option<Figures>> {
    let port = net::free_port()?;
    let mut server = Command::new(&case.binary);
    server
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .envs(case.env.iter().copied());
    let server = cx.runner.spawn_attached(server, "the benchmark")?;
    let url = format!("http://127.0.0.1:{port}{}", case.path);
    if let Some(server) = &server {
        wait_answering(server, &url)?;
    }
    let script = match &case.body {
        Some(body) => vec!["--script".into(), lua_script(cx, case.label, body)?],
        None => Vec::new(),
    };
    let (connections, duration) = (args.connections.to_string(), format!("{}s", args.duration));
    let out = cx.runner.run(
        cmd!(
            cx.sh,
            "wrk --threads 2 --connections {connections} --duration {duration} --latency {script...} {url}"
        ),
        "cargo xtask bench",
    )?;
    drop(server);
    cx.runner.unless_dry_run(|| parse_wrk(&out.stdout))
}

/// The round with the median requests/s (its latencies with it).
fn median(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}

fn wait_answering(server: &Attached, url: &str) -> Result<()> {
    let waited = poll::until(Duration::from_secs(10), Duration::from_millis(50), || {
        if let Some(stderr) = server.exited() {
            bail!("the benchmark server exited: {stderr}");
        }
        // Any HTTP answer means it listens (a GET on a POST route gets 4xx).
        Ok(match http::get(url, Duration::from_secs(1)) {
            Ok(_) => Check::Done(()),
            Err(e) => Check::NotYet(format!("{e:#}")),
        })
    })?;
    match waited {
        Waited::Done { .. } => Ok(()),
        Waited::TimedOut { .. } => bail!("{url} did not answer within 10s"),
    }
}

/// The image of the service built from the test-api package.
fn test_api_image(cx: &Invocation) -> String {
    cx.all_services()
        .into_iter()
        .find(|s| s.package == "test-api")
        .map_or_else(|| "test-api".into(), |s| s.settings.image)
}
