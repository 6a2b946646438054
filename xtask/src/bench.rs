//! `cargo xtask bench`: throughput and latency figures from wrk, always
//! beside a reference measured in the same run on the same machine.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::build;
use crate::cli::{BenchArgs, BenchSubject};
use crate::context::Ctx;
use crate::http;
use crate::image::{self, Builder};
use crate::runner::{Attached, Cmd};
use crate::services;
use crate::smoke::TUTORIAL_PAYLOAD;

/// The bars the figures are held to.
const TEST_API_RATIO_TARGET: f64 = 0.9;
const IDENTITY_RPS_TARGET: f64 = 20_000.0;
const IDENTITY_P99_MS_TARGET: f64 = 5.0;
const IRIS_RPS_TARGET: f64 = 10_000.0;

/// The iris model takes 4 features: the tutorial's payload shape, widened.
const IRIS_PAYLOAD: &str = r#"{"data":{"names":["a","b","c","d"],"tensor":{"shape":[2,4],"values":[5.1,3.5,1.4,0.2,6.3,3.3,6.0,2.5]}}}"#;

struct Figures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One server under load.
struct Case {
    label: &'static str,
    binary: PathBuf,
    env: Vec<(&'static str, &'static str)>,
    path: &'static str,
    /// A JSON body to POST; GET when None.
    body: Option<&'static str>,
}

impl BenchArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        if let BenchSubject::Images = self.subject {
            return images(cx);
        }
        cx.runner.locate("wrk", "cargo xtask bench")?;
        let release = build::release_dir(cx);
        // The services exactly as `cargo xtask deploy` builds them (the same
        // command, the same packages, so the same binaries).
        cx.runner.run(
            &build::release_command(cx, "building the services as deploy does")
                .args(build::all_packages(cx)),
        )?;
        let cases: Vec<Case> = match self.subject {
            BenchSubject::TestApi => {
                // The reference with cargo's default release settings (the
                // `reference` profile undoes our size profile): like with like
                // is a plain `cargo build --release` of a minimal server.
                cx.runner.run(
                    &Cmd::new(build::cargo(), "building the reference server")
                        .args(["build", "--profile", "reference", "--package", "test-api"])
                        .args(["--example", "minimal_axum"])
                        .cwd(&cx.root),
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
            BenchSubject::Images => bail!("images are measured by images()"),
            BenchSubject::ModelServer => vec![
                Case {
                    label: "identity",
                    binary: release.join("model-server"),
                    env: vec![("MODEL", "identity")],
                    path: "/api/v1.0/predictions",
                    body: Some(TUTORIAL_PAYLOAD),
                },
                Case {
                    label: "iris",
                    binary: release.join("model-server"),
                    env: vec![("MODEL", "iris")],
                    path: "/api/v1.0/predictions",
                    body: Some(IRIS_PAYLOAD),
                },
            ],
        };
        let mut rounds: Vec<Vec<Figures>> = cases.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.rounds {
            for (case, figures) in cases.iter().zip(&mut rounds) {
                figures.extend(measure(cx, case, &self)?);
            }
        }
        if cx.runner.is_dry_run() {
            return Ok(ExitCode::SUCCESS);
        }
        let results: Vec<(&str, Figures)> = cases
            .iter()
            .zip(rounds)
            .map(|(case, figures)| (case.label, median(figures)))
            .collect();
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
        let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
        match (self.subject, results.as_slice()) {
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
            _ => bail!("the benchmark produced {} results", results.len()),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The image issue's figures: sizes, assembly time against the docker
/// builder, how fast a service stops, and a redeploy with nothing changed.
fn images(cx: &Ctx) -> Result<ExitCode> {
    const TEST_API_MAX: u64 = 5_000_000;
    const MODEL_SERVER_MAX: u64 = 15_000_000;
    let specs = services::all(&cx.config);
    let built = build::build(cx, &specs)?;
    if cx.runner.is_dry_run() {
        return Ok(ExitCode::SUCCESS);
    }
    // Fresh assembly: forget earlier records so nothing is skipped.
    let _ = std::fs::remove_dir_all(&cx.config.images.dir);
    let start = Instant::now();
    let native = image::images_from(cx, &built, Builder::Native)?;
    let native_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    image::images_from(cx, &built, Builder::Docker)?;
    let docker_secs = start.elapsed().as_secs_f64();

    // docker stop of a running service (it handles SIGTERM as PID 1).
    let test_api = native
        .iter()
        .find(|i| i.name == cx.config.services.test_api.image)
        .context("no test-api image")?;
    image::load(cx, test_api, image::LoadInto::Docker)?;
    let name = format!("{}-bench-stop", cx.config.docker.name_prefix);
    let _ = cx.runner.probe(
        &Cmd::new(crate::tools::engine_cli(), "bench").args(["rm", "--force", &name]),
        Duration::from_secs(30),
    );
    cx.runner
        .run(&Cmd::new(crate::tools::engine_cli(), "bench").args([
            "run",
            "--detach",
            "--name",
            &name,
            &test_api.reference,
        ]))?;
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    cx.runner
        .run(&Cmd::new(crate::tools::engine_cli(), "bench").args(["stop", &name]))?;
    let stop_secs = start.elapsed().as_secs_f64();
    cx.runner
        .run(&Cmd::new(crate::tools::engine_cli(), "bench").args(["rm", "--force", &name]))?;

    // deploy --target docker twice; the second has nothing to do.
    let me = std::env::current_exe()?.to_string_lossy().into_owned();
    let deploy =
        Cmd::new(me.clone(), "bench").args(["--progress=never", "deploy", "--target", "docker"]);
    cx.runner.run(&deploy)?;
    let start = Instant::now();
    cx.runner.run(&deploy)?;
    let redeploy_secs = start.elapsed().as_secs_f64();
    cx.runner.run(&Cmd::new(me, "bench").args([
        "--progress=never",
        "teardown",
        "--target",
        "docker",
    ]))?;

    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!("{:<44} {:>12}  TARGET", "FIGURE", "VALUE");
    for i in &native {
        let max = if i.name == test_api.name {
            TEST_API_MAX
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
        "docker builder (build + save), all images", docker_secs
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

fn measure(cx: &Ctx, case: &Case, args: &BenchArgs) -> Result<Option<Figures>> {
    let port = free_port()?;
    let mut cmd = Cmd::new(case.binary.to_string_lossy(), "the benchmark")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn");
    for (k, v) in &case.env {
        cmd = cmd.env(*k, *v);
    }
    let server = cx.runner.spawn_attached(&cmd)?;
    let url = format!("http://127.0.0.1:{port}{}", case.path);
    if let Some(server) = &server {
        wait_answering(server, &url)?;
    }
    let mut wrk = Cmd::new("wrk", "cargo xtask bench")
        .args(["--threads", "2", "--connections"])
        .arg(args.connections.to_string())
        .arg("--duration")
        .arg(format!("{}s", args.duration))
        .arg("--latency");
    if let Some(body) = case.body {
        let script = lua_script(cx, case.label, body)?;
        wrk = wrk.arg("--script").arg(script);
    }
    let out = cx.runner.run(&wrk.arg(&url))?;
    drop(server);
    if cx.runner.is_dry_run() {
        return Ok(None);
    }
    parse_wrk(&out.stdout).map(Some)
}

/// A wrk script that POSTs `body` as JSON.
fn lua_script(cx: &Ctx, label: &str, body: &str) -> Result<PathBuf> {
    let dir = cx.root.join("target/xtask/bench");
    let path = dir.join(format!("{}.lua", label.replace(' ', "-")));
    if cx.runner.is_dry_run() {
        cx.runner
            .step(format!("write {} (POST {body})", path.display()));
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    Ok(path)
}

/// The round with the median requests/s (its latencies with it).
fn median(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn wait_answering(server: &Attached, url: &str) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(stderr) = server.exited() {
            bail!("the benchmark server exited: {stderr}");
        }
        // Any HTTP answer means it listens (a GET on a POST route gets 4xx).
        if http::get(url, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{url} did not answer within 10s")
}

/// Reads requests/s and the 50%/99% latencies from wrk's `--latency` output.
fn parse_wrk(out: &str) -> Result<Figures> {
    let field = |prefix: &str| {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(str::trim))
            .with_context(|| format!("wrk printed no `{prefix}` line:\n{out}"))
    };
    let errors = out
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(e) = errors {
        bail!("the benchmark saw errors: {}", e.trim());
    }
    Ok(Figures {
        requests_per_sec: field("Requests/sec:")?.parse().context("Requests/sec")?,
        p50_ms: millis(field("50%")?)?,
        p99_ms: millis(field("99%")?)?,
    })
}

/// wrk prints durations as `812.00us`, `1.20ms` or `2.01s`.
fn millis(s: &str) -> Result<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unrecognised wrk duration {s:?}")
    };
    Ok(num
        .parse::<f64>()
        .with_context(|| format!("duration {s:?}"))?
        * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:5000/test_api
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   180.21us  120.50us   5.01ms   90.00%
    Req/Sec    45.00k     2.00k   50.00k    70.00%
  Latency Distribution
     50%  150.00us
     75%  200.00us
     90%  300.00us
     99%    1.20ms
  900000 requests in 10.00s, 120.00MB read
Requests/sec:  90000.50
Transfer/sec:     12.00MB
";

    #[test]
    fn parses_wrk_output() -> Result<()> {
        let f = parse_wrk(SAMPLE)?;
        assert!((f.requests_per_sec - 90000.5).abs() < 1e-6);
        assert!((f.p50_ms - 0.15).abs() < 1e-9);
        assert!((f.p99_ms - 1.2).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn errors_in_wrk_output_fail_the_bench() {
        let out = format!("{SAMPLE}  Non-2xx or 3xx responses: 12\n");
        assert!(parse_wrk(&out).is_err());
    }
}
