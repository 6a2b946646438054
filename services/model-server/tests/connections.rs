//! What the model server does with clients that read slowly or not at all,
//! and with requests in flight at shutdown: replies hold their admission
//! until written (so memory stays bounded), a client that takes nothing for
//! SEND_TIMEOUT_SECS is dropped, a slow but steady one gets every byte, and
//! every request admitted before SIGTERM is answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use service_kit::testing::{Result, Server, post_json};

/// A 52-byte request whose reply is about 5.6 MB: half a million default
/// column names for an empty batch.
const WIDE: &str = r#"{"data":{"tensor":{"shape":[0,500000],"values":[]}}}"#;

fn request(body: &str) -> String {
    format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn server(env: &[(&str, &str)]) -> Result<Server> {
    let mut all = vec![("MODEL", "identity")];
    all.extend_from_slice(env);
    Server::start(env!("CARGO_BIN_EXE_model-server"), &all)
}

#[test]
fn a_reply_nobody_reads_holds_its_admission_until_the_send_timeout() -> Result {
    let s = server(&[
        ("MAX_CONCURRENT_REQUESTS", "1"),
        ("SEND_TIMEOUT_SECS", "2"),
        ("RUST_LOG", "debug"),
    ])?;
    let mut stuck = TcpStream::connect(("127.0.0.1", s.port))?;
    stuck.write_all(request(WIDE).as_bytes())?;
    std::thread::sleep(Duration::from_millis(300));
    // The only admission is held by the unread reply: the next request waits.
    let start = Instant::now();
    let (status, _) = post_json(&s.url("/predict"), r#"{"strData":"next"}"#)?;
    let waited = start.elapsed();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(1200),
        "answered after {waited:?}: the unread reply had released its admission"
    );
    // It was answered because the server dropped the client that stopped
    // taking its reply (when that is depends on how much the kernel's
    // buffers absorbed first).
    assert!(
        s.logs()
            .iter()
            .any(|l| l["message"] == "closing a stalled connection" && l["why"] == "Reply"),
        "the stuck client was not dropped for its reply"
    );
    // The stuck client's connection was closed, its reply cut short.
    stuck.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut got = Vec::new();
    let _ = stuck.read_to_end(&mut got);
    assert!(got.len() < 5_000_000, "{} bytes", got.len());
    Ok(())
}

#[test]
fn a_slow_but_steady_reader_gets_every_byte() -> Result {
    // Reading takes longer than the header timeout and than the send
    // timeout, but never stalls for a whole send timeout.
    let s = server(&[
        ("HEADER_READ_TIMEOUT_SECS", "1"),
        ("SEND_TIMEOUT_SECS", "2"),
    ])?;
    let mut c = TcpStream::connect(("127.0.0.1", s.port))?;
    c.write_all(request(WIDE).as_bytes())?;
    let mut r = BufReader::new(c);
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
    }
    assert!(len > 5_000_000, "content-length {len}");
    let start = Instant::now();
    let mut got = 0;
    let mut buf = vec![0u8; 512 * 1024];
    while got < len {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(got, len, "the reply was cut after {:?}", start.elapsed());
    assert!(
        start.elapsed() > Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

#[test]
fn every_request_admitted_before_sigterm_is_answered() -> Result {
    // Handled requests (slow on purpose) and requests queued for admission
    // when the signal comes all finish with 200.
    let mut s = server(&[
        ("ARTIFICIAL_LATENCY_MS", "700"),
        ("MAX_CONCURRENT_REQUESTS", "1"),
    ])?;
    let url = s.url("/predict");
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                post_json(&url, &format!(r#"{{"strData":"{i}"}}"#)).map(|(st, _)| st)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    s.signal(Signal::SIGTERM)?;
    for c in clients {
        let status = c.join().map_err(|_| "client panicked")?;
        assert_eq!(status.map_err(|e| e.to_string())?, 200);
    }
    let (status, _) = s
        .wait_exit(Duration::from_secs(10))?
        .ok_or("still running 10 s after SIGTERM")?;
    assert!(status.success(), "{status}");
    Ok(())
}
