//! Settings every service reads from its environment, validated up front so a
//! typo fails at start-up with the variable's name, not at the first request.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Environment of a service process. Values are read once, at start-up.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeEnv {
    /// `PORT`, default 5000 (the tutorial's port). 0 picks a free port.
    pub port: u16,
    /// `BIND_ADDR`, default 0.0.0.0 so the port is reachable in a container.
    pub bind: IpAddr,
    /// `POD_IP` (Kubernetes downward API): reported as the server ip when set.
    pub pod_ip: Option<IpAddr>,
    /// `SHUTDOWN_DRAIN_SECS`: after SIGTERM, how long readiness reports
    /// "draining" before the listener closes (lets a load balancer notice).
    pub drain: Duration,
    /// `ARTIFICIAL_LATENCY_MS`: delay added to every request, for drills of
    /// probes, timeouts and graceful shutdown. Off (0) by default.
    pub artificial_latency: Duration,
    /// `MAX_BODY_BYTES`: request bodies above this size get 413 (also after
    /// decompression). At most 1 GiB.
    pub max_body_bytes: usize,
    /// `HEADER_READ_TIMEOUT_SECS`: how long a client may take to send a
    /// request's headers; also how long an idle keep-alive connection stays
    /// open. Default 10.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_SECS`: how long a client may take to send a
    /// request body once its headers are in (408 after). Default 10.
    pub body_read_timeout: Duration,
    /// `SEND_TIMEOUT_SECS`: how long a client may go without taking any of
    /// a reply (replies are written 64 KiB at a time) before its
    /// connection is closed, as nginx's `send_timeout`. Default 10.
    pub send_timeout: Duration,
    /// `MAX_CONNECTIONS`: open connections at most; further clients wait in
    /// the listen backlog until one closes. Default 256.
    pub max_connections: usize,
    /// `MAX_CONCURRENT_REQUESTS`: requests whose payload is read and
    /// processed at once (the rest queue, first come first served), which
    /// bounds memory at about this many times the per-request peak; see
    /// the model server README's memory arithmetic. Default 4.
    pub max_concurrent_requests: usize,
}

/// The largest `MAX_BODY_BYTES` accepted (array elements are indexed with u32).
pub const MAX_BODY_BYTES_LIMIT: usize = 1 << 30;

impl Default for ServeEnv {
    fn default() -> Self {
        Self {
            port: 5000,
            bind: IpAddr::from([0, 0, 0, 0]),
            pod_ip: None,
            drain: Duration::ZERO,
            artificial_latency: Duration::ZERO,
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_concurrent_requests: 4,
        }
    }
}

impl ServeEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the real env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            port: parse(&lookup, "PORT", "a port number 0-65535")?.unwrap_or(d.port),
            bind: parse(&lookup, "BIND_ADDR", "an IP address such as 0.0.0.0")?.unwrap_or(d.bind),
            pod_ip: parse(&lookup, "POD_IP", "an IP address")?,
            drain: parse(&lookup, "SHUTDOWN_DRAIN_SECS", "whole seconds")?
                .map_or(d.drain, Duration::from_secs),
            artificial_latency: parse(&lookup, "ARTIFICIAL_LATENCY_MS", "whole milliseconds")?
                .map_or(d.artificial_latency, Duration::from_millis),
            max_body_bytes: match parse::<usize>(&lookup, "MAX_BODY_BYTES", "a byte count")? {
                Some(0) => bail!("MAX_BODY_BYTES=0: must be at least 1"),
                Some(n) if n > MAX_BODY_BYTES_LIMIT => {
                    bail!("MAX_BODY_BYTES={n}: must be at most {MAX_BODY_BYTES_LIMIT} (1 GiB)")
                }
                Some(n) => n,
                None => d.max_body_bytes,
            },
            header_read_timeout: positive_secs(&lookup, "HEADER_READ_TIMEOUT_SECS")?
                .unwrap_or(d.header_read_timeout),
            body_read_timeout: positive_secs(&lookup, "BODY_READ_TIMEOUT_SECS")?
                .unwrap_or(d.body_read_timeout),
            send_timeout: positive_secs(&lookup, "SEND_TIMEOUT_SECS")?.unwrap_or(d.send_timeout),
            max_connections: positive(&lookup, "MAX_CONNECTIONS")?.unwrap_or(d.max_connections),
            max_concurrent_requests: positive(&lookup, "MAX_CONCURRENT_REQUESTS")?
                .unwrap_or(d.max_concurrent_requests),
        })
    }
}

/// A count that must be at least 1.
fn positive(lookup: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<usize>> {
    match parse::<usize>(lookup, key, "a whole number of at least 1")? {
        Some(0) => bail!("{key}=0: must be at least 1"),
        n => Ok(n),
    }
}

fn positive_secs(lookup: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<Duration>> {
    Ok(positive(lookup, key)?.map(|s| Duration::from_secs(s as u64)))
}

/// Parses variable `key` when it is set and not empty.
pub fn parse<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    key: &str,
    expected: &str,
) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match lookup(key).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .with_context(|| format!("invalid {key}={v:?}: expected {expected}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<ServeEnv> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServeEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_tutorial() -> Result<()> {
        let e = env(&[])?;
        assert_eq!(e.port, 5000);
        assert_eq!(e.bind.to_string(), "0.0.0.0");
        assert_eq!(e.drain, Duration::ZERO);
        Ok(())
    }

    #[test]
    fn values_are_read() -> Result<()> {
        let e = env(&[
            ("PORT", "8080"),
            ("POD_IP", "10.1.2.3"),
            ("SHUTDOWN_DRAIN_SECS", "5"),
            ("ARTIFICIAL_LATENCY_MS", "250"),
        ])?;
        assert_eq!(e.port, 8080);
        assert_eq!(e.pod_ip, Some("10.1.2.3".parse()?));
        assert_eq!(e.drain, Duration::from_secs(5));
        assert_eq!(e.artificial_latency, Duration::from_millis(250));
        Ok(())
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = format!("{:#}", env(&[("PORT", "http")]).expect_err("rejected"));
        assert!(err.contains("PORT=\"http\""), "{err}");
        assert!(err.contains("port number"), "{err}");
        let err = format!("{:#}", env(&[("PORT", "70000")]).expect_err("rejected"));
        assert!(err.contains("PORT=\"70000\""), "{err}");
        let err = format!(
            "{:#}",
            env(&[("MAX_BODY_BYTES", "0")]).expect_err("rejected")
        );
        assert!(err.contains("MAX_BODY_BYTES"), "{err}");
        let err = format!(
            "{:#}",
            env(&[("MAX_BODY_BYTES", "2000000000")]).expect_err("rejected")
        );
        assert!(err.contains("at most 1073741824"), "{err}");
        for key in [
            "MAX_CONNECTIONS",
            "MAX_CONCURRENT_REQUESTS",
            "BODY_READ_TIMEOUT_SECS",
            "SEND_TIMEOUT_SECS",
        ] {
            let err = format!("{:#}", env(&[(key, "0")]).expect_err("rejected"));
            assert!(
                err.contains(&format!("{key}=0: must be at least 1")),
                "{err}"
            );
        }
    }
}
