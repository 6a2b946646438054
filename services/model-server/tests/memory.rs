//! The model server under a burst of maximum-size requests stays under the
//! memory limit its Kubernetes manifest gives the pod, with the settings
//! that manifest sets. Peak memory is the process's high-water mark
//! (`VmHWM` in /proc/<pid>/status).

use std::io::Write;
use std::path::Path;

use serde_yaml_ng::Value as Yaml;
use std::time::Duration;

use service_kit::testing::{Result, Server, agent_with_timeout, get, post_with_agent};

/// The container of `file`'s Deployment: its memory limit in bytes and its
/// plain `env` values.
fn manifest(file: &str) -> Result<(u64, Vec<(String, String)>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/base")
        .join(file);
    let text = std::fs::read_to_string(&path)?;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: Yaml = serde::Deserialize::deserialize(doc)?;
        if doc["kind"] != "Deployment" {
            continue;
        }
        let c = &doc["spec"]["template"]["spec"]["containers"][0];
        let limit = c["resources"]["limits"]["memory"]
            .as_str()
            .ok_or("no memory limit")?;
        let (num, unit) = limit.split_at(
            limit
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(limit.len()),
        );
        let scale = match unit {
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "M" => 1_000_000,
            "" => 1,
            other => return Err(format!("memory unit {other} in {limit}").into()),
        };
        let env = c["env"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|e| {
                        Some((
                            e["name"].as_str()?.to_string(),
                            e["value"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Ok((num.parse::<u64>()? * scale, env));
    }
    Err(format!("no Deployment in {}", path.display()).into())
}

fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .ok_or("no VmHWM")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// Headers and body of one request.
type Request = (Vec<(&'static str, String)>, Vec<u8>);

/// A JSON list of `n` copies of `item`, comma-separated.
fn list(item: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * (item.len() + 1) + 2);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
    s.push(']');
    s
}

/// Requests just under `max` bytes that cost the server the most: one wide
/// row (half a million names in the reply), a flat tensor, an empty batch
/// half a million columns wide (a 5 MB reply from 60 bytes), a long string,
/// binary data (base64 grows it by a third), names by the hundred thousand,
/// `meta.tags` and `jsonData` made of tiny objects (each a hundred bytes as
/// a parsed JSON value), and a gzip body that decompresses to the limit.
/// For a model with `features` inputs, rows of that width instead.
fn worst_bodies(max: usize, features: Option<usize>) -> Result<Vec<Request>> {
    let json = vec![("content-type", "application/json".to_string())];
    let elems = (max - 64) / 2;
    let mut out = Vec::new();
    match features {
        None => {
            out.push((
                json.clone(),
                format!(r#"{{"data":{{"ndarray":[{}]}}}}"#, list("0", elems)).into_bytes(),
            ));
            out.push((
                json.clone(),
                format!(
                    r#"{{"data":{{"tensor":{{"shape":[1,{elems}],"values":{}}}}}}}"#,
                    list("0", elems)
                )
                .into_bytes(),
            ));
            out.push((
                json.clone(),
                format!(r#"{{"data":{{"tensor":{{"shape":[0,{elems}],"values":[]}}}}}}"#)
                    .into_bytes(),
            ));
            out.push((
                json.clone(),
                format!(r#"{{"strData":"{}"}}"#, "x".repeat(max - 64)).into_bytes(),
            ));
            out.push((
                json.clone(),
                format!(
                    r#"{{"data":{{"names":{},"ndarray":[[1]]}}}}"#,
                    list(r#""""#, (max - 64) / 3)
                )
                .into_bytes(),
            ));
            let tiny = r#"{"":0}"#;
            out.push((
                json.clone(),
                format!(
                    r#"{{"meta":{{"tags":{{"a":{}}}}},"strData":""}}"#,
                    list(tiny, (max - 64) / (tiny.len() + 1))
                )
                .into_bytes(),
            ));
            out.push((
                json.clone(),
                format!(
                    r#"{{"jsonData":{}}}"#,
                    list(tiny, (max - 64) / (tiny.len() + 1))
                )
                .into_bytes(),
            ));
            let boundary = "B0UNDARY";
            let mut mp =
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"binData\"\r\n\r\n")
                    .into_bytes();
            mp.extend(std::iter::repeat_n(7u8, max - 200));
            mp.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            out.push((
                vec![(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )],
                mp,
            ));
        }
        Some(f) => {
            let row = list("0", f);
            let rows = (max - 64) / (row.len() + 1);
            out.push((
                json.clone(),
                format!(r#"{{"data":{{"ndarray":{}}}}}"#, list(&row, rows)).into_bytes(),
            ));
        }
    }
    out.extend(worst_v2_bodies(max, features));
    let first = out[0].1.clone();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&first)?;
    let mut headers = json;
    headers.push(("content-encoding", "gzip".to_string()));
    out.push((headers, gz.finish()?));
    Ok(out)
}

/// The Open Inference Protocol's worst requests just under `max` bytes
/// (marked by a leading `/v2` header): a flat FP32 tensor in JSON; for
/// the identity model also BYTES elements that are each an empty string
/// (a heap vector apiece once read), in JSON and in the binary form, and
/// a binary FP32 tensor; for a model with `features` inputs, its rows in
/// JSON and in binary.
fn worst_v2_bodies(max: usize, features: Option<usize>) -> Vec<Request> {
    let v2 = |body: Vec<u8>, header: Option<usize>| {
        let mut h = vec![
            ("x-route", "/v2".to_string()),
            ("content-type", "application/json".to_string()),
        ];
        if let Some(n) = header {
            h.push(("inference-header-content-length", n.to_string()));
        }
        (h, body)
    };
    let binary = |name: &str, datatype: &str, shape: String, data: &[u8]| {
        let header = format!(
            r#"{{"inputs":[{{"name":"{name}","shape":{shape},"datatype":"{datatype}","parameters":{{"binary_data_size":{}}}}}]}}"#,
            data.len()
        );
        let n = header.len();
        let mut body = header.into_bytes();
        body.extend_from_slice(data);
        v2(body, Some(n))
    };
    let json = |name: &str, datatype: &str, shape: String, data: String| {
        v2(
            format!(r#"{{"inputs":[{{"name":"{name}","shape":{shape},"datatype":"{datatype}","data":{data}}}]}}"#)
                .into_bytes(),
            None,
        )
    };
    match features {
        None => {
            let elems = (max - 128) / 2;
            let strings = (max - 128) / 3;
            let binary_elems = (max - 256) / 4;
            vec![
                json("x", "FP32", format!("[{elems}]"), list("0", elems)),
                json("x", "BYTES", format!("[{strings}]"), list(r#""""#, strings)),
                binary(
                    "x",
                    "BYTES",
                    format!("[{binary_elems}]"),
                    &vec![0u8; binary_elems * 4],
                ),
                binary(
                    "x",
                    "FP32",
                    format!("[{binary_elems}]"),
                    &vec![0u8; binary_elems * 4],
                ),
            ]
        }
        Some(f) => {
            let row_bytes = 2 * f;
            let rows = (max - 128) / row_bytes;
            let binary_rows = (max - 256) / (4 * f);
            vec![
                json(
                    "input",
                    "FP32",
                    format!("[{rows},{f}]"),
                    list("0", rows * f),
                ),
                binary(
                    "input",
                    "FP32",
                    format!("[{binary_rows},{f}]"),
                    &vec![0u8; binary_rows * f * 4],
                ),
            ]
        }
    }
}

/// `model`: the MODEL the pod runs, over what the manifest says (every
/// model service gets the same resources; deploy/base has the identity
/// model's, and iris is a preset the committed settings do not deploy).
fn burst(file: &str, model: &str, features: Option<usize>) -> Result {
    let (limit, env) = manifest(file)?;
    let mut env: Vec<(&str, &str)> = env
        .iter()
        // The pod's address and port are the pod's; the test picks its own.
        .filter(|(k, _)| k != "POD_IP" && k != "PORT" && k != "MODEL")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("MODEL", model));
    // Only sooner: clients that never read are dropped after 3 s.
    env.push(("SEND_TIMEOUT_SECS", "3"));
    // Only later: an unoptimised build on two shared cores queues requests
    // for longer than the default 5 s, and a refused request would end the
    // test, where a longer wait only keeps more requests in memory at once.
    env.push(("MAX_QUEUE_WAIT_MS", "300000"));
    let s = Server::start(env!("CARGO_BIN_EXE_model-server"), &env)?;
    let max = service_kit::ServeEnv::from_lookup(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })?
    .max_body_bytes;
    let bodies = worst_bodies(max, features)?;
    let idle = peak_rss(s.pid())?;
    // Slow clients at the same time: every free connection slot holding a
    // request head just under the 64 KiB limit.
    let slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| -> Result<std::net::TcpStream> {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port))?;
            std::io::Write::write_all(
                &mut c,
                format!("GET /predict?json={}", "a".repeat(60_000)).as_bytes(),
            )?;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    // Clients that ask for a 5 MB reply and never read it: each holds an
    // admission (and its reply's memory) until the send timeout drops it.
    let wide = format!(
        r#"{{"data":{{"tensor":{{"shape":[0,{}],"values":[]}}}}}}"#,
        max / 2 - 1
    );
    let unread: Vec<std::net::TcpStream> = (0..8)
        .map(|_| -> Result<std::net::TcpStream> {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port))?;
            c.write_all(
                format!(
                    "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{wide}",
                    wide.len()
                )
                .as_bytes(),
            )?;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    // 24 clients at once, each sending every kind of request, to v1 or,
    // for the ones marked, to the model's v2 infer.
    let model_name = env
        .iter()
        .find(|(k, _)| *k == "MODEL_NAME")
        .map_or(model, |(_, v)| *v);
    let (v1_url, v2_url) = (
        s.url("/api/v1.0/predictions"),
        s.url(&format!("/v2/models/{model_name}/infer")),
    );
    let clients: Vec<_> = (0..24)
        .map(|i| {
            let (v1_url, v2_url, bodies) = (v1_url.clone(), v2_url.clone(), bodies.clone());
            std::thread::spawn(move || -> std::result::Result<(), String> {
                for k in 0..bodies.len() {
                    let (headers, body) = &bodies[(i + k) % bodies.len()];
                    let v2 = headers.iter().any(|(k, _)| *k == "x-route");
                    let url = if v2 { &v2_url } else { &v1_url };
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .filter(|(k, _)| *k != "x-route")
                        .map(|(k, v)| (*k, v.as_str()))
                        .collect();
                    // Unoptimised test builds of tract are slow: allow time.
                    let agent = agent_with_timeout(Duration::from_secs(300));
                    let (status, text) =
                        post_with_agent(&agent, url, &h, body).map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!(
                            "{url} {status}: {}",
                            &text.chars().take(300).collect::<String>()
                        ));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for c in clients {
        c.join().map_err(|_| "client panicked")??;
    }
    drop(slow);
    drop(unread);
    let peak = peak_rss(s.pid())?;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "{file}: peak {:.1} MiB (idle {:.1} MiB) under 24 clients x {} maximum-size requests, \
         200 slow clients and 8 that never read; limit {:.0} MiB",
        mib(peak),
        mib(idle),
        bodies.len(),
        mib(limit)
    );
    assert!(
        peak < limit,
        "{file}: peak {:.1} MiB is over the pod's {:.0} MiB limit",
        mib(peak),
        mib(limit)
    );
    // And it still answers.
    assert_eq!(get(&s.url("/health/ping"))?.0, 200);
    Ok(())
}

#[test]
fn identity_stays_under_its_pod_memory_limit() -> Result {
    burst("model-server.yaml", "identity", None)
}

#[test]
fn iris_stays_under_its_pod_memory_limit() -> Result {
    burst("model-server.yaml", "iris", Some(4))
}
