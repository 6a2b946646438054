//! The Open Inference Protocol v2 over REST with the identity model:
//! every endpoint, the binary tensor data extension, and hostile requests
//! (each a 4xx with a reason, the server unharmed).

mod common;

use common::identity;
use serde_json::{Value, json};
use service_kit::testing::{Result, Server, agent, get, post_json, post_with};

/// POSTs `body` with headers; returns status, headers' header-length and
/// the raw body.
fn post_raw(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Option<usize>, Vec<u8>)> {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body)?;
    let header = resp
        .headers()
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok((
        resp.status().as_u16(),
        header,
        resp.body_mut().read_to_vec()?,
    ))
}

/// Asserts a v2 error: `status` and an `error` that contains `text`.
fn assert_error((status, body): (u16, Value), want: u16, text: &str) {
    assert_eq!(status, want, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(text), "{error:?} lacks {text:?}");
}

fn infer(s: &Server, body: &str) -> Result<(u16, Value)> {
    post_json(&s.url("/v2/models/identity/infer"), body)
}

#[test]
fn health_server_and_model_metadata() -> Result {
    let s = identity()?;
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/identity/ready",
    ] {
        assert_eq!(get(&s.url(path))?.0, 200, "{path}");
    }
    let server: Value = serde_json::from_str(&get(&s.url("/v2"))?.1)?;
    assert_eq!(server["name"], "model-server");
    assert!(
        server["extensions"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("binary_tensor_data"))),
        "{server}"
    );
    for path in ["/v2/models/identity", "/v2/models/identity/versions/1"] {
        let (status, body) = get(&s.url(path))?;
        assert_eq!(status, 200, "{body}");
        let m: Value = serde_json::from_str(&body)?;
        assert_eq!(m["name"], "identity");
        assert_eq!(m["versions"], json!(["1"]));
        assert_eq!(m["platform"], "rust");
    }
    // Paths and methods the protocol does not have: its error shape too.
    for (path, status, text) in [
        ("/v2/models", 404, "not an endpoint"),
        ("/v2/models/identity/config", 404, "not an endpoint"),
        ("/v2/models/identity/", 404, "not an endpoint"),
    ] {
        let (got, body) = get(&s.url(path))?;
        assert_error((got, serde_json::from_str(&body)?), status, text);
    }
    assert_error(
        post_json(&s.url("/v2/models/identity/ready"), "{}")?,
        405,
        "POST is not allowed",
    );
    for (path, text) in [
        ("/v2/models/nope", "unknown model \"nope\""),
        ("/v2/models/nope/ready", "unknown model"),
        ("/v2/models/identity/versions/2", "has no version \"2\""),
        ("/v2/models/identity/versions/2/ready", "has no version"),
    ] {
        let (status, body) = get(&s.url(path))?;
        assert_error((status, serde_json::from_str(&body)?), 404, text);
    }
    Ok(())
}

#[test]
fn the_tutorial_tensor_comes_back_with_its_id_and_parameters() -> Result {
    let s = identity()?;
    let (status, body) = infer(
        &s,
        r#"{"id":"42","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[0,0],[1,1]]}]}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "42");
    assert_eq!(body["model_name"], "identity");
    assert_eq!(body["model_version"], "1");
    assert_eq!(
        body["outputs"],
        json!([{"name":"x","datatype":"FP32","shape":[2,2],"data":[0.0,0.0,1.0,1.0]}])
    );
    // Every datatype, versioned path, requested outputs.
    let (status, body) = post_json(
        &s.url("/v2/models/identity/versions/1/infer"),
        r#"{"inputs":[
            {"name":"b","shape":[2],"datatype":"BOOL","data":[true,false]},
            {"name":"i","shape":[1],"datatype":"INT64","data":[9007199254740993]},
            {"name":"u","shape":[1],"datatype":"UINT8","data":[255]},
            {"name":"t","shape":[1],"datatype":"BYTES","data":["héllo"]}
        ],"outputs":[{"name":"t"},{"name":"i"}]}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["outputs"],
        json!([
            {"name":"t","datatype":"BYTES","shape":[1],"data":["héllo"]},
            {"name":"i","datatype":"INT64","shape":[1],"data":[9_007_199_254_740_993_i64]}
        ])
    );
    assert_error(
        infer(
            &s,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y"}]}"#,
        )?,
        400,
        "unknown output \"y\"",
    );
    Ok(())
}

#[test]
fn binary_tensors_in_and_out() -> Result {
    let s = identity()?;
    let values: Vec<f32> = (0..32 * 256).map(|i| i as f32 * 0.5).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name":"x","shape":[32,256],"datatype":"FP32",
                    "parameters":{"binary_data_size": data.len()}}]
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&data);
    let length = header.len().to_string();
    let (status, answer_header, answer) = post_raw(
        &s.url("/v2/models/identity/infer"),
        &[
            ("content-type", "application/octet-stream"),
            ("inference-header-content-length", &length),
        ],
        &body,
    )?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let n = answer_header.ok_or("no Inference-Header-Content-Length")?;
    let head: Value = serde_json::from_slice(&answer[..n])?;
    assert_eq!(
        head["outputs"][0]["parameters"]["binary_data_size"],
        data.len()
    );
    assert_eq!(
        &answer[n..],
        &data[..],
        "the tensor comes back byte for byte"
    );

    // The same tensor asked for in JSON.
    let json_header = header.replace("true", "false");
    let (status, _, answer) = post_raw(
        &s.url("/v2/models/identity/infer"),
        &[(
            "inference-header-content-length",
            &json_header.len().to_string(),
        )],
        &[json_header.as_bytes(), &data].concat(),
    )?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let head: Value = serde_json::from_slice(&answer)?;
    assert_eq!(head["outputs"][0]["data"][511], 255.5);
    Ok(())
}

#[test]
fn hostile_requests_are_4xx_with_a_reason_and_the_server_carries_on() -> Result {
    let s = identity()?;
    let url = s.url("/v2/models/identity/infer");
    let one = |shape: &str, datatype: &str, data: &str| {
        format!(
            r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"{datatype}","data":{data}}}]}}"#
        )
    };
    for (body, text) in [
        (one("[4294967296,4294967296]", "FP32", "[1]"), "shape"),
        (one("[-1,2]", "FP32", "[1,2]"), "-1"),
        (one("[3]", "FP32", "[1,2]"), "3"),
        (one("[2]", "INT8", "[1,300]"), "300"),
        (one("[1]", "FP33", "[1]"), "unknown datatype \"FP33\""),
        (one("[1]", "UINT8", "[-1]"), "-1"),
        (one("[1]", "FP32", "[1e39]"), "out of FP32's range"),
        ("{\"inputs\":[]}".to_string(), "no inputs"),
        ("not json".to_string(), "not an inference request"),
    ] {
        let (status, answer) = post_json(&url, &body)?;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{body}: {error:?} lacks {text:?}");
    }
    // Header lengths past the body, or not a number; sizes that lie.
    let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}"#;
    let mut body = header.as_bytes().to_vec();
    // Two BYTES elements: the second claims 100 bytes of the 1 that remain.
    body.extend_from_slice(&[0, 0, 0, 0, 100, 0, 0, 0, b'a']);
    let length = header.len().to_string();
    for (value, text) in [
        ("99999999999", "but the body has"),
        ("18446744073709551616", "must be the JSON header's length"),
        ("-1", "must be the JSON header's length"),
        (length.as_str(), "says 100 bytes, but 1 remain"),
    ] {
        let (status, answer) =
            post_with(&url, &[("inference-header-content-length", value)], &body)?;
        assert_eq!(status, 400, "{value}: {answer}");
        assert!(answer.contains(text), "{value}: {answer} lacks {text:?}");
    }
    // A million tiny inputs are refused as they are read.
    let many = format!(
        r#"{{"inputs":[{}]}}"#,
        vec![r#"{"name":"x","shape":[1],"datatype":"BOOL","data":[true]}"#; 1_000_000].join(",")
    );
    let roomy = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[("MODEL", "identity"), ("MAX_BODY_BYTES", "100000000")],
    )?;
    let (status, answer) = post_with(
        &roomy.url("/v2/models/identity/infer"),
        &[("content-type", "application/json")],
        many.as_bytes(),
    )?;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("at most 256 inputs"), "{answer}");
    drop(roomy);
    // Unknown model and version.
    assert_error(
        post_json(&s.url("/v2/models/other/infer"), &one("[1]", "FP32", "[1]"))?,
        404,
        "unknown model \"other\"",
    );
    assert_error(
        post_json(
            &s.url("/v2/models/identity/versions/7/infer"),
            &one("[1]", "FP32", "[1]"),
        )?,
        404,
        "no version \"7\"",
    );
    // Still serving.
    assert_eq!(infer(&s, &one("[1]", "FP32", "[1]"))?.0, 200);
    let (_, metrics) = get(&s.url("/metrics"))?;
    assert!(
        metrics.contains(r#"model_predictions_total{outcome="bad_input"}"#),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn readiness_turns_false_while_draining_as_readyz_does() -> Result {
    let mut s = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[("MODEL", "identity"), ("SHUTDOWN_DRAIN_SECS", "2")],
    )?;
    assert_eq!(get(&s.url("/v2/health/ready"))?.0, 200);
    s.signal(nix::sys::signal::Signal::SIGTERM)?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(get(&s.url("/readyz"))?.0, 503);
    let (status, body) = get(&s.url("/v2/health/ready"))?;
    assert_eq!((status, body.as_str()), (503, r#"{"ready":false}"#));
    assert_eq!(get(&s.url("/v2/models/identity/ready"))?.0, 503);
    // Alive, and still serving work while it is taken out of rotation.
    assert_eq!(get(&s.url("/v2/health/live"))?.0, 200);
    assert_eq!(
        infer(
            &s,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#
        )?
        .0,
        200
    );
    s.wait_exit(std::time::Duration::from_secs(5))?
        .ok_or("did not exit after the drain")?;
    Ok(())
}

#[test]
fn the_v2_name_is_the_services_name() -> Result {
    let s = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[
            ("MODEL", "iris"),
            ("MODEL_NAME", "flowers"),
            ("MODEL_VERSION", "3"),
        ],
    )?;
    let m: Value = serde_json::from_str(&get(&s.url("/v2/models/flowers"))?.1)?;
    assert_eq!(m["versions"], json!(["3"]));
    assert_eq!(
        m["inputs"],
        json!([{"name":"input","datatype":"FP32","shape":[-1,4]}])
    );
    let (status, body) = post_json(
        &s.url("/v2/models/flowers/versions/3/infer"),
        r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}],"outputs":[{"name":"probabilities"}]}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    let p = body["outputs"][0]["data"].as_array().ok_or("data")?;
    assert!(p[0].as_f64().is_some_and(|x| x > 0.9), "setosa: {body}");
    assert_error(
        post_json(
            &s.url("/v2/models/flowers/infer"),
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
        )?,
        400,
        "input \"input\" takes FP32 [-1, 4]; got FP32 [1, 3]",
    );
    assert_error(
        post_json(
            &s.url("/v2/models/flowers/infer"),
            r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}"#,
        )?,
        400,
        "takes FP32 [-1, 4]; got FP64",
    );
    assert_error(
        post_json(&s.url("/v2/models/iris/infer"), "{}")?,
        404,
        "serves \"flowers\"",
    );
    Ok(())
}
