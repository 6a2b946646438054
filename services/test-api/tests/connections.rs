//! Connection hygiene of every service (service-kit), through the real
//! test-api binary and raw sockets: clients that stop sending, kept-alive
//! clients across a drain, and the bound on open connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use service_kit::testing::{Result, Server, get};

fn start(env: &[(&str, &str)]) -> Result<Server> {
    Server::start(env!("CARGO_BIN_EXE_test-api"), env)
}

/// Reads one response; returns its status line's code and whether it says
/// `Connection: close`. None when the server closed without answering.
fn read_response(r: &mut BufReader<TcpStream>) -> Option<(u16, bool)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut len, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        close |= h == "connection: close";
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((status, close))
}

#[test]
fn a_half_sent_request_does_not_delay_shutdown() -> Result {
    let mut s = start(&[("SHUTDOWN_DRAIN_SECS", "1")])?;
    let mut half = TcpStream::connect(("127.0.0.1", s.port))?;
    half.write_all(b"GET /test_api HTTP/1.1\r\nHost: x\r\n")?;
    std::thread::sleep(Duration::from_millis(100));
    s.signal(Signal::SIGTERM)?;
    let (status, took) = s
        .wait_exit(Duration::from_secs(5))?
        .ok_or("still running 5 s after SIGTERM")?;
    assert!(status.success(), "{status}");
    assert!(took >= Duration::from_millis(900), "drained for {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "exit {took:?} after SIGTERM: more than the 1 s drain plus one second"
    );
    Ok(())
}

#[test]
fn kept_alive_clients_lose_no_request_across_sigterm() -> Result {
    let mut s = start(&[("SHUTDOWN_DRAIN_SECS", "1")])?;
    let port = s.port;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut ok, mut closes, mut lost) = (0u32, 0u32, 0u32);
                let mut conn: Option<BufReader<TcpStream>> = None;
                while !stop.load(Ordering::SeqCst) {
                    let reused = conn.is_some();
                    let mut r = match conn.take() {
                        Some(r) => r,
                        None => match TcpStream::connect(("127.0.0.1", port)) {
                            Ok(c) => BufReader::new(c),
                            Err(_) => break, // refused: the listener is closed
                        },
                    };
                    let sent = r
                        .get_mut()
                        .write_all(b"GET /test_api HTTP/1.1\r\nHost: t\r\n\r\n");
                    match (sent, read_response(&mut r)) {
                        (Ok(()), Some((200, close))) => {
                            ok += 1;
                            if close {
                                closes += 1;
                            } else {
                                conn = Some(r);
                            }
                        }
                        // On a fresh connection the listener had already
                        // closed: like a refused connection, nothing was lost.
                        _ if !reused => break,
                        _ => {
                            lost += 1;
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                (ok, closes, lost)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    s.signal(Signal::SIGTERM)?;
    s.wait_exit(Duration::from_secs(5))?.ok_or("no exit")?;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let (ok, closes, lost) = c.join().map_err(|_| "client panicked")?;
        assert_eq!(lost, 0, "requests lost on kept-alive connections");
        assert!(ok > 20, "only {ok} requests answered");
        assert!(
            closes > 5,
            "responses during the drain must say Connection: close ({closes})"
        );
    }
    Ok(())
}

#[test]
fn open_connections_are_bounded_and_idle_ones_time_out() -> Result {
    let s = start(&[("MAX_CONNECTIONS", "3"), ("HEADER_READ_TIMEOUT_SECS", "1")])?;
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)))
        .collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(100));
    // A fourth client waits in the backlog until an idle one is closed.
    let start = Instant::now();
    let (status, _) = get(&s.url("/test_api"))?;
    let waited = start.elapsed();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(700),
        "served after {waited:?}: the limit of 3 connections was not held"
    );
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    // The idle ones were closed by the server.
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 1];
        assert!(
            matches!(c.read(&mut buf), Ok(0)),
            "idle connection still open"
        );
    }
    Ok(())
}

/// How long the server keeps `setup`'s connection open, from when `setup`
/// returns to when the server closes it.
fn closed_after(s: &Server, setup: impl FnOnce(&mut TcpStream) -> Result) -> Result<Duration> {
    let mut c = TcpStream::connect(("127.0.0.1", s.port))?;
    setup(&mut c)?;
    let start = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    Ok(start.elapsed())
}

#[test]
fn the_header_timeout_is_kept_to_the_setting() -> Result {
    let s = start(&[("HEADER_READ_TIMEOUT_SECS", "2")])?;
    let within = |what: &str, took: Duration| {
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(2600),
            "{what}: closed after {took:?}, not 2 s"
        );
    };
    within("idle", closed_after(&s, |_| Ok(()))?);
    within(
        "half a head",
        closed_after(&s, |c| Ok(c.write_all(b"GET /test_api HTTP/1.1\r\n")?))?,
    );
    // A kept-alive connection: 2 s after its last response.
    within(
        "kept alive",
        closed_after(&s, |c| {
            c.write_all(b"GET /test_api HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut r = BufReader::new(c.try_clone()?);
            read_response(&mut r).ok_or("no response")?;
            Ok(())
        })?,
    );
    Ok(())
}
