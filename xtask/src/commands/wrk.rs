//! wrk, the load generator the benchmarks drive: the Lua script that POSTs
//! a body, and what its `--latency` output says.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::invocation::Invocation;

/// What wrk measured.
pub struct Figures {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A request body, with what must be said about it.
pub struct Body {
    pub bytes: Vec<u8>,
    /// `Inference-Header-Content-Length`: the JSON header's length in a
    /// binary-extension body.
    pub header_length: Option<usize>,
}

impl Body {
    /// A JSON body.
    pub fn json(text: &str) -> Option<Self> {
        Some(Self {
            bytes: text.as_bytes().to_vec(),
            header_length: None,
        })
    }
}

/// A wrk script that POSTs `body` (JSON, or the binary extension's form
/// with its header length), read from a file beside it.
pub fn lua_script(cx: &Invocation, label: &str, body: &Body) -> Result<PathBuf> {
    let dir = cx.root.join("target/xtask/bench");
    let stem = label.replace(' ', "-");
    let path = dir.join(format!("{stem}.lua"));
    let data = dir.join(format!("{stem}.body"));
    let (content_type, extra) = match body.header_length {
        None => ("application/json", String::new()),
        Some(n) => (
            "application/octet-stream",
            format!("wrk.headers[\"Inference-Header-Content-Length\"] = \"{n}\"\n"),
        ),
    };
    cx.runner.effect(
        format!(
            "write {} (POST the {} bytes of {})",
            path.display(),
            body.bytes.len(),
            data.display()
        ),
        || {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&data, &body.bytes)?;
            std::fs::write(
                &path,
                format!(
                    "wrk.method = \"POST\"\nlocal f = assert(io.open({data:?}, \"rb\"))\nwrk.body = f:read(\"*a\")\nf:close()\nwrk.headers[\"Content-Type\"] = \"{content_type}\"\n{extra}",
                    data = data.display().to_string()
                ),
            )?;
            Ok(())
        },
    )?;
    Ok(path)
}

/// Reads requests/s and the 50%/99% latencies from wrk's `--latency` output.
pub fn parse_wrk(out: &str) -> Result<Figures> {
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
