//! `cargo xtask bench`: throughput and latency figures from wrk, always
//! beside a reference measured in the same run on the same machine.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::build::cargo;
use crate::cli::{BenchArgs, BenchSubject};
use crate::context::Ctx;
use crate::http;
use crate::runner::{Attached, Cmd};

/// The bar: the test API reaches 0.9x the minimal axum handler.
const TEST_API_RATIO_TARGET: f64 = 0.9;

struct Figures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl BenchArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        match self.subject {
            BenchSubject::TestApi => test_api(cx, &self),
        }
    }
}

fn test_api(cx: &Ctx, args: &BenchArgs) -> Result<ExitCode> {
    cx.runner.locate("wrk", "cargo xtask bench")?;
    cx.runner.run(
        &Cmd::new(cargo(), "building the benchmark subjects")
            .args([
                "build",
                "--release",
                "--package",
                "test-api",
                "--bin",
                "test-api",
                "--example",
                "minimal_axum",
            ])
            .cwd(&cx.root),
    )?;
    let release = target_dir(cx).join("release");
    let subjects = [
        ("test-api", release.join("test-api")),
        ("minimal axum", release.join("examples/minimal_axum")),
    ];
    let mut results = Vec::new();
    for (label, bin) in &subjects {
        let port = free_port()?;
        let server = cx.runner.spawn_attached(
            &Cmd::new(bin.to_string_lossy(), "the benchmark")
                .env("PORT", port.to_string())
                .env("RUST_LOG", "warn"),
        )?;
        let url = format!("http://127.0.0.1:{port}/test_api");
        if let Some(server) = &server {
            wait_answering(server, &url)?;
        }
        let figures = wrk(cx, &url, args)?;
        drop(server);
        if let Some(f) = figures {
            results.push((*label, f));
        }
    }
    if cx.runner.is_dry_run() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "GET /test_api, {} connections, {}s each, loopback, {} cores",
        args.connections,
        args.duration,
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
    let ratio = results[0].1.requests_per_sec / results[1].1.requests_per_sec;
    let verdict = if ratio >= TEST_API_RATIO_TARGET {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "test-api / minimal axum = {ratio:.2} ({verdict} the target of {TEST_API_RATIO_TARGET:.2})"
    );
    Ok(ExitCode::SUCCESS)
}

fn target_dir(cx: &Ctx) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| cx.root.join("target"), Into::into)
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
        if matches!(http::get(url, Duration::from_secs(1)), Ok((200, _))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{url} did not answer within 10s")
}

fn wrk(cx: &Ctx, url: &str, args: &BenchArgs) -> Result<Option<Figures>> {
    let out = cx.runner.run(
        &Cmd::new("wrk", "cargo xtask bench")
            .arg("--threads")
            .arg("2")
            .arg("--connections")
            .arg(args.connections.to_string())
            .arg("--duration")
            .arg(format!("{}s", args.duration))
            .arg("--latency")
            .arg(url),
    )?;
    if cx.runner.is_dry_run() {
        return Ok(None);
    }
    parse_wrk(&out.stdout).map(Some)
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
