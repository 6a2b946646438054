//! The real test-api binary, started as a process on a free port.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use service_kit::testing::{Result, Server as Spawned, agent, get};

struct Server;

impl Server {
    fn start(env: &[(&str, &str)]) -> Result<Spawned> {
        Spawned::start(env!("CARGO_BIN_EXE_test-api"), env)
    }
}

#[test]
fn test_api_greets_the_client_from_the_address_it_reached() -> Result {
    let s = Server::start(&[])?;
    let (status, body) = get(&s.url("/test_api"))?;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        v,
        serde_json::json!({"message": "Hello 127.0.0.1, you've reached 127.0.0.1"})
    );
    Ok(())
}

#[test]
fn pod_ip_is_reported_as_the_server_ip() -> Result {
    let s = Server::start(&[("POD_IP", "10.9.8.7")])?;
    let (_, body) = get(&s.url("/test_api"))?;
    assert!(body.contains("you've reached 10.9.8.7"), "{body}");
    Ok(())
}

#[test]
fn unknown_paths_and_wrong_methods_get_json_errors() -> Result {
    let s = Server::start(&[])?;
    let (status, body) = get(&s.url("/nope"))?;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["error"]["status"], 404);
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("/nope"),
        "{body}"
    );

    let mut resp = agent().post(&s.url("/test_api")).send_empty()?;
    assert_eq!(resp.status().as_u16(), 405);
    let v: Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
    assert_eq!(v["error"]["reason"], "POST is not allowed on /test_api");
    Ok(())
}

#[test]
fn probes_and_metrics() -> Result {
    let s = Server::start(&[])?;
    assert_eq!(get(&s.url("/healthz"))?.0, 200);
    assert_eq!(
        get(&s.url("/readyz"))?,
        (200, r#"{"status":"ready"}"#.to_string())
    );
    get(&s.url("/test_api"))?;
    get(&s.url("/test_api"))?;
    let (status, metrics) = get(&s.url("/metrics"))?;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/test_api",status="200"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"http_request_duration_seconds_count{method="GET",route="/test_api"} 2"#),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn a_bad_port_setting_is_refused_with_its_name() -> Result {
    let out = Command::new(env!("CARGO_BIN_EXE_test-api"))
        .env("PORT", "fivethousand")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid PORT=\"fivethousand\""), "{stderr}");
    Ok(())
}

#[test]
fn sigterm_lets_in_flight_requests_finish() -> Result {
    let mut s = Server::start(&[("ARTIFICIAL_LATENCY_MS", "800")])?;
    let url = s.url("/test_api");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url).map_err(|e| e.to_string()))
        })
        .collect();
    // Every request is now inside the 800 ms handler.
    std::thread::sleep(Duration::from_millis(300));
    s.signal(Signal::SIGTERM)?;
    for c in clients {
        let (status, body) = c.join().map_err(|_| "client thread panicked")??;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("you've reached"), "{body}");
    }
    let (status, _) = s
        .wait_exit(Duration::from_secs(5))?
        .ok_or("still running 5s after SIGTERM")?;
    assert!(status.success(), "exit status {status}");
    assert!(get(&url).is_err(), "no new connections after shutdown");
    let logs = s.logs();
    assert!(
        logs.iter()
            .any(|l| l["message"] == "shutdown requested; draining" && l["signal"] == "SIGTERM")
    );
    assert!(logs.iter().any(|l| l["message"] == "stopped"));
    Ok(())
}

#[test]
fn idle_server_exits_within_a_second_on_sigterm_and_sigint() -> Result {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut s = Server::start(&[])?;
        // A pooled keep-alive connection must not hold the shutdown up.
        let a = agent();
        a.get(&s.url("/test_api")).call()?;
        s.signal(sig)?;
        let (status, took) = s
            .wait_exit(Duration::from_secs(1))?
            .ok_or(format!("{sig} : still running after 1s"))?;
        assert!(status.success(), "{sig}: {status}");
        assert!(took < Duration::from_secs(1), "{sig}: {took:?}");
    }
    Ok(())
}

#[test]
fn readiness_turns_false_while_draining() -> Result {
    let mut s = Server::start(&[("SHUTDOWN_DRAIN_SECS", "2")])?;
    s.signal(Signal::SIGTERM)?;
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = get(&s.url("/readyz"))?;
    assert_eq!((status, body.as_str()), (503, r#"{"status":"draining"}"#));
    // Still serving work while a load balancer takes it out of rotation.
    assert_eq!(get(&s.url("/test_api"))?.0, 200);
    s.wait_exit(Duration::from_secs(5))?
        .ok_or("did not exit after the drain")?;
    Ok(())
}
