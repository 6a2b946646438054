//! Small blocking HTTP helpers for readiness waits, smoke and contract tests.
//! Any status is a result; only a transport failure (refused, timed out) is
//! an error.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::blocking::{Client, RequestBuilder};

/// The client for `url`, one per run. No idle connections are kept: the
/// server at an address may be replaced between two calls (the dev loop,
/// a redeploy). This machine's own addresses (the local target, the
/// port-forwards) are reached directly, whatever `HTTP_PROXY` says, as
/// kubectl and curl's `localhost` do; others through the environment's
/// proxy.
///
/// # Errors
/// The TLS backend cannot be set up.
pub fn client(url: &str) -> Result<&'static Client> {
    static DIRECT: OnceLock<Client> = OnceLock::new();
    static PROXIED: OnceLock<Client> = OnceLock::new();
    let direct = loopback(url);
    let cell = if direct { &DIRECT } else { &PROXIED };
    if let Some(c) = cell.get() {
        return Ok(c);
    }
    let mut builder = Client::builder().pool_max_idle_per_host(0);
    if direct {
        builder = builder.no_proxy();
    }
    let made = builder.build().context("making an HTTP client")?;
    Ok(cell.get_or_init(|| made))
}

/// Whether `url` names this machine: `localhost` or a loopback address.
fn loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

fn call(request: RequestBuilder, timeout: Duration, what: &str) -> Result<(u16, String)> {
    // reqwest's errors repeat the URL, which `what` names already.
    let failed = |e: reqwest::Error, doing: &str| {
        let slow = e.is_timeout();
        let e = anyhow::Error::new(e.without_url());
        if slow {
            e.context(format!(
                "{what}: no answer within {}s {doing}",
                timeout.as_secs_f64()
            ))
        } else {
            e.context(format!("{what} {doing}").trim_end().to_string())
        }
    };
    let resp = request.timeout(timeout).send().map_err(|e| failed(e, ""))?;
    let status = resp.status().as_u16();
    let body = resp.text().map_err(|e| failed(e, "(reading the body)"))?;
    Ok((status, body))
}

/// A GET of `url`: the status and the body, whatever the status.
///
/// # Errors
/// A transport failure (refused, no answer within `timeout`).
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String)> {
    call(client(url)?.get(url), timeout, &format!("GET {url}"))
}

/// A POST of `body` with `content_type`: the status and the body.
///
/// # Errors
/// A transport failure (refused, no answer within `timeout`).
pub fn post(url: &str, content_type: &str, body: &str, timeout: Duration) -> Result<(u16, String)> {
    let request = client(url)?
        .post(url)
        .header("content-type", content_type)
        .body(body.to_string());
    call(request, timeout, &format!("POST {url}"))
}

/// Whether `err` (from `get` or `post`) is a timeout.
pub fn timed_out(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
    })
}

/// Whether `base` answers `GET /readyz` with 200 (every service's
/// readiness probe) within two seconds.
pub fn ready(base: &str) -> bool {
    matches!(
        get(&format!("{base}/readyz"), Duration::from_secs(2)),
        Ok((200, _))
    )
}

/// How long one readiness probe may take: Kubernetes' default probe
/// `timeoutSeconds`, so that what is ready here is ready in a pod.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `GET <base>/readyz` says now: 200 is ready; anything else (an
/// answer, a refused connection, no answer within `PROBE_TIMEOUT`) is
/// described for the error when time runs out.
pub fn readiness(base: &str) -> super::poll::Check<()> {
    let url = format!("{base}/readyz");
    match get(&url, PROBE_TIMEOUT) {
        Ok((200, _)) => super::poll::Check::Done(()),
        Ok((code, body)) => super::poll::Check::NotYet(format!("{url} answered {code}: {body}")),
        Err(e) if timed_out(&e) => super::poll::Check::NotYet(format!(
            "GET {url} did not answer within {}s, the probe's timeout (as Kubernetes' default \
             timeoutSeconds): the service's /readyz itself is slow (ARTIFICIAL_LATENCY_MS? a \
             busy process?), which a longer deploy deadline does not change",
            PROBE_TIMEOUT.as_secs()
        )),
        Err(e) => super::poll::Check::NotYet(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_never_answers_is_a_timeout_and_a_closed_port_is_not() -> Result<()> {
        // Accepted by the kernel's backlog, never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/readyz", silent.local_addr()?);
        let err = get(&url, Duration::from_millis(200))
            .err()
            .context("answered")?;
        assert!(timed_out(&err), "{err:#}");
        assert!(format!("{err:#}").contains(&url), "{err:#}");

        let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let err = get(&format!("http://{closed}/"), Duration::from_secs(5))
            .err()
            .context("answered")?;
        assert!(!timed_out(&err), "{err:#}");
        Ok(())
    }

    #[test]
    fn this_machines_addresses_are_told_from_others() {
        for url in [
            "http://127.0.0.1:5000/readyz",
            "http://127.8.0.1/",
            "http://localhost:8003/seldon",
            "http://[::1]:5001/v2",
        ] {
            assert!(loopback(url), "{url}");
        }
        for url in ["http://10.0.0.7/", "http://example.com/", "not a url"] {
            assert!(!loopback(url), "{url}");
        }
    }
}
