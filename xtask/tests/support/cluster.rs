//! The parts of a fake cluster that tests share: the kube engine binary,
//! Ambassador's objects as the API fake holds them, and an ingress that
//! routes `/seldon/<namespace>/<name>/…` to model servers running here.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The newest modification time of the files under `dir`.
fn newest(dir: &std::path::Path) -> std::io::Result<std::time::SystemTime> {
    let mut latest = std::time::SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let time = if entry.file_type()?.is_dir() {
            newest(&entry.path())?
        } else {
            entry.metadata()?.modified()?
        };
        latest = latest.max(time);
    }
    Ok(latest)
}

/// The engine `cargo test --workspace` built beside the xtask; built now when
/// missing or older than its sources (`cargo test -p xtask` does not build it).
pub fn engine() -> Result<PathBuf> {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_xtask")).with_file_name("kube-engine");
    let sources = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kube-engine");
    let fresh = std::fs::metadata(&built)
        .and_then(|m| m.modified())
        .is_ok_and(|t| newest(&sources.join("src")).is_ok_and(|s| s <= t));
    if !fresh {
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--package", "kube-engine", "--bin", "kube-engine"])
                .status()?;
        if !status.success() {
            return Err("cargo build --package kube-engine failed".into());
        }
    }
    Ok(built)
}

/// Ambassador as the fake cluster holds it: a Service and its ready pod.
pub fn ambassador() -> Vec<serde_json::Value> {
    let labels = serde_json::json!({"app.kubernetes.io/name": "ambassador"});
    vec![
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ambassador", "namespace": "ambassador"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ambassador-0", "namespace": "ambassador", "labels": labels},
            "spec": {"containers": [{"name": "ambassador", "image": "ambassador", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    ]
}

/// The ingress's routing: `/seldon/<namespace>/<name>/api/v1.0/…` to the
/// model behind `<name>`, one request per connection.
pub fn ingress(routes: Vec<(String, std::net::SocketAddr)>) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let routes = routes.clone();
            // The handler's error is dropped: the client sees the connection close.
            std::thread::spawn(move || {
                let _ = proxy_one(conn, &routes);
            });
        }
    });
    Ok(addr)
}

fn proxy_one(conn: std::net::TcpStream, routes: &[(String, std::net::SocketAddr)]) -> Result {
    use std::io::{BufRead, BufReader, Read, Write};
    {
        {
            let mut reader = BufReader::new(conn.try_clone()?);
            let mut request_line = String::new();
            reader.read_line(&mut request_line)?;
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let (mut length, mut content_type) = (0usize, String::from("application/json"));
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "content-length" => length = v.trim().parse()?,
                        "content-type" => content_type = v.trim().to_string(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            let routed = routes.iter().find_map(|(prefix, backend)| {
                path.strip_prefix(prefix.as_str())
                    .map(|rest| format!("http://{backend}{rest}"))
            });
            let (status, answer) = match routed {
                Some(url) => {
                    let resp = reqwest::blocking::Client::new()
                        .post(&url)
                        .header("content-type", &content_type)
                        .body(body)
                        .send()?;
                    (resp.status().as_u16(), resp.text()?)
                }
                None => (404, "no route".to_string()),
            };
            let mut conn = conn;
            write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            )?;
            Ok(())
        }
    }
}
