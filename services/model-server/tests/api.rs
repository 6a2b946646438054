//! The real model-server binary: every endpoint, request format and error.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use service_kit::testing::{Result, Server, agent, get, post, post_json};

mod common;
use common::{TUTORIAL, assert_failure, form, identity, iris};

#[test]
fn the_tutorial_payload_comes_back_on_every_predict_endpoint() -> Result {
    let s = identity()?;
    // Integers come back as integers, as Seldon's wrapper returns them.
    let expected = json!({"meta":{},"data":{"names":["t:0","t:1"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}});
    for path in ["/predict", "/api/v1.0/predictions", "/api/v0.1/predictions"] {
        let (status, body) = post_json(&s.url(path), TUTORIAL)?;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, expected, "{path}");
    }
    Ok(())
}

#[test]
fn form_query_and_multipart_requests() -> Result {
    let s = identity()?;
    let (status, body) = post(
        &s.url("/predict"),
        "application/x-www-form-urlencoded",
        form("json", TUTORIAL).as_bytes(),
    )?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""tensor":{"shape":[2,2]"#), "{body}");

    let (status, body) = get(&format!("{}?{}", s.url("/predict"), form("json", TUTORIAL)))?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""names":["t:0","t:1"]"#), "{body}");

    let boundary = "XBOUNDARYX";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{TUTORIAL}\r\n--{boundary}--\r\n"
    );
    let (status, body) = post(
        &s.url("/api/v1.0/predictions"),
        &format!("multipart/form-data; boundary={boundary}"),
        multipart.as_bytes(),
    )?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""values":[0,0,1,1]"#), "{body}");

    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"strData\"\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    let (_, body) = post(
        &s.url("/predict"),
        &format!("multipart/form-data; boundary={boundary}"),
        multipart.as_bytes(),
    )?;
    assert!(body.contains(r#""strData":"hello""#), "{body}");
    Ok(())
}

#[test]
fn every_payload_kind_keeps_its_form() -> Result {
    let s = identity()?;
    let url = s.url("/api/v1.0/predictions");
    let (_, b) = post_json(
        &url,
        r#"{"data":{"names":["x","y"],"ndarray":[[1,2],[3,4]]}}"#,
    )?;
    assert_eq!(
        b["data"],
        json!({"names":["t:0","t:1"],"ndarray":[[1,2],[3,4]]})
    );
    let (_, b) = post_json(&url, r#"{"data":{"ndarray":[["a","b"]]}}"#)?;
    assert_eq!(b["data"]["ndarray"], json!([["a", "b"]]));
    let (_, b) = post_json(&url, r#"{"jsonData":{"k":[1,2]}}"#)?;
    assert_eq!(b["jsonData"], json!({"k":[1,2]}));
    let (_, b) = post_json(&url, r#"{"strData":"hello"}"#)?;
    assert_eq!(b["strData"], "hello");
    let (_, b) = post_json(&url, r#"{"binData":"AAEC"}"#)?;
    assert_eq!(b["binData"], "AAEC");
    Ok(())
}

#[test]
fn meta_is_echoed_and_the_operator_environment_is_honoured() -> Result {
    let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
    let s = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[
            // What the Seldon Core v1 operator sets on a MODEL container
            // (it picks the ports; 9000 is its default for REST).
            ("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", &port.to_string()),
            ("PREDICTIVE_UNIT_SERVICE_PORT", &port.to_string()),
            ("PREDICTIVE_UNIT_GRPC_SERVICE_PORT", "9500"),
            ("PREDICTIVE_UNIT_METRICS_SERVICE_PORT", "6000"),
            ("PREDICTIVE_UNIT_METRICS_ENDPOINT", "/prometheus"),
            ("PREDICTIVE_UNIT_ID", "seldon-test-model"),
            ("PREDICTIVE_UNIT_IMAGE", "registry/model-server:1"),
            ("PREDICTOR_ID", "default"),
            ("PREDICTOR_LABELS", r#"{"version":"default"}"#),
            ("SELDON_DEPLOYMENT_ID", "seldon-test-model"),
            ("SELDON_EXECUTOR_ENABLED", "true"),
            ("MODEL", "identity"),
        ],
    )?;
    assert_eq!(
        s.port, port,
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT wins over PORT"
    );
    let (_, b) = post_json(
        &s.url("/api/v1.0/predictions"),
        r#"{"meta":{"puid":"p-42","tags":{"team":"ml"}},"data":{"ndarray":[[1]]}}"#,
    )?;
    assert_eq!(b["meta"]["puid"], "p-42");
    assert_eq!(b["meta"]["tags"], json!({"team":"ml"}));
    assert_eq!(
        b["meta"]["requestPath"],
        json!({"seldon-test-model":"registry/model-server:1"})
    );
    // The tutorial's call, as the executor forwards it.
    let (status, b) = post_json(
        &s.url("/api/v1.0/predictions"),
        r#"{"data":{"names":["a","b"],"tensor":{"shape":[2,2],"values":[0,0,1,1]}}}"#,
    )?;
    assert_eq!(status, 200);
    assert_eq!(
        b["data"]["tensor"],
        json!({"shape":[2,2],"values":[0,0,1,1]})
    );
    assert_eq!(
        b["meta"]["requestPath"]["seldon-test-model"],
        "registry/model-server:1"
    );
    Ok(())
}

#[test]
fn client_mistakes_are_4xx_in_seldons_shape() -> Result {
    let s = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[("MODEL", "identity"), ("MAX_BODY_BYTES", "2000")],
    )?;
    let url = s.url("/api/v1.0/predictions");
    assert_failure(post_json(&url, r#"{"data":"#)?, 400, "invalid JSON message");
    assert_failure(post_json(&url, "{}")?, 400, "the message has no payload");
    assert_failure(
        post_json(&url, r#"{"data":{"names":["a"]}}"#)?,
        400,
        "neither tensor nor ndarray",
    );
    assert_failure(
        post_json(
            &url,
            r#"{"data":{"tensor":{"shape":[2,2],"values":[0,0,1]}}}"#,
        )?,
        400,
        "shape [2, 2] holds 4 values, but 3 were sent",
    );
    assert_failure(
        post_json(&url, r#"{"data":{"ndarray":[[1,2],[3]]}}"#)?,
        400,
        "ragged",
    );
    assert_failure(
        post_json(&url, r#"{"data":{"tensor":{"shape":[1],"values":["x"]}}}"#)?,
        400,
        "data.tensor.values[0]",
    );
    assert_failure(
        post_json(&url, r#"{"strData":"x","jsonData":1}"#)?,
        400,
        "more than one",
    );
    assert_failure(
        post_json(&url, r#"{"binData":"not base64!"}"#)?,
        400,
        "not valid base64",
    );
    let big = format!(r#"{{"strData":"{}"}}"#, "x".repeat(5000));
    assert_failure(post_json(&url, &big)?, 413, "larger than 2000 bytes");
    assert_failure(
        post_json(&url, r#"{"strData":"a"} trailing"#)?,
        400,
        "trailing characters",
    );

    let (status, body) = post(&url, "application/xml", b"<x/>")?;
    assert_eq!(status, 415, "{body}");
    let (status, body) = get(&s.url("/predict"))?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`json` query parameter"), "{body}");
    let (status, body) = post(
        &s.url("/predict"),
        "application/x-www-form-urlencoded",
        b"data=1",
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`json` field"), "{body}");
    Ok(())
}

#[test]
fn iris_predicts_known_flowers() -> Result {
    let s = iris()?;
    let flowers = json!({"data":{"ndarray":[
        [5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2],
        [7.0, 3.2, 4.7, 1.4], [6.4, 3.2, 4.5, 1.5],
        [6.3, 3.3, 6.0, 2.5], [7.7, 3.0, 6.1, 2.3]
    ]}});
    let (status, b) = post_json(&s.url("/api/v1.0/predictions"), &flowers.to_string())?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        b["data"]["names"],
        json!(["setosa", "versicolor", "virginica"])
    );
    let rows = b["data"]["ndarray"].as_array().ok_or("ndarray rows")?;
    let expected = [0, 0, 1, 1, 2, 2];
    for (row, want) in rows.iter().zip(expected) {
        let p: Vec<f64> = row
            .as_array()
            .ok_or("row")?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
        let argmax = (0..3)
            .max_by(|a, b| p[*a].total_cmp(&p[*b]))
            .ok_or("empty")?;
        assert_eq!(argmax, want, "{row}");
        assert!(p[want] > 0.9, "confident: {row}");
    }
    // tensor in, tensor out
    let (_, b) = post_json(
        &s.url("/predict"),
        r#"{"data":{"tensor":{"shape":[1,4],"values":[5.1,3.5,1.4,0.2]}}}"#,
    )?;
    assert_eq!(b["data"]["tensor"]["shape"], json!([1, 3]));
    Ok(())
}

#[test]
fn iris_refuses_what_it_cannot_take() -> Result {
    let s = iris()?;
    let url = s.url("/api/v1.0/predictions");
    assert_failure(
        post_json(&url, r#"{"data":{"ndarray":[[1,2,3]]}}"#)?,
        400,
        "takes 4 features per row (sepal length (cm)",
    );
    assert_failure(
        post_json(&url, r#"{"data":{"ndarray":[[1,2,"x",4]]}}"#)?,
        400,
        "takes numbers; row 0, column 2 is \"x\"",
    );
    assert_failure(
        post_json(&url, r#"{"jsonData":{"a":1}}"#)?,
        400,
        "not jsonData",
    );
    assert_failure(
        post_json(&url, r#"{"data":{"ndarray":[]}}"#)?,
        400,
        "4 features",
    );
    Ok(())
}

#[test]
fn health_metadata_feedback_and_metrics() -> Result {
    let s = iris()?;
    assert_eq!(get(&s.url("/health/ping"))?, (200, "pong".to_string()));
    let (status, body) = get(&s.url("/health/status"))?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("setosa"), "{body}");
    for path in ["/metadata", "/api/v1.0/metadata"] {
        let (status, body) = get(&s.url(path))?;
        assert_eq!(status, 200);
        let m: Value = serde_json::from_str(&body)?;
        assert_eq!(m["name"], "iris");
        assert_eq!(
            m["outputs"][0]["schema"]["names"],
            json!(["setosa", "versicolor", "virginica"])
        );
        assert_eq!(m["inputs"][0]["schema"]["shape"], json!([4]));
    }
    let fb =
        r#"{"request":{"meta":{"puid":"f1"},"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}},"reward":1.0}"#;
    for path in ["/send-feedback", "/api/v1.0/feedback"] {
        let (status, b) = post_json(&s.url(path), fb)?;
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["meta"]["puid"], "f1");
    }
    assert_failure(
        post_json(&s.url("/send-feedback"), "{}")?,
        400,
        "at least one of",
    );
    assert_failure(
        post_json(
            &s.url("/send-feedback"),
            r#"{"request":{"data":{"ndarray":[[1],[1,2]]}}}"#,
        )?,
        400,
        "request: data.ndarray is ragged",
    );
    post_json(
        &s.url("/predict"),
        r#"{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}"#,
    )?;
    post_json(&s.url("/predict"), r#"{"data":{"ndarray":[[1]]}}"#)?;
    let (_, metrics) = get(&s.url("/metrics"))?;
    assert!(
        metrics.contains(r#"model_predictions_total{outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"model_predictions_total{outcome="bad_input"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("model_feedback_total 2"), "{metrics}");
    assert!(
        metrics.contains("model_feedback_reward_total 2.0"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn a_users_own_onnx_file_and_bad_model_settings() -> Result {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/iris.onnx");
    let s = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[
            ("MODEL", "onnx"),
            ("MODEL_PATH", path),
            ("CLASS_NAMES", "a,b,c"),
        ],
    )?;
    let (_, b) = post_json(
        &s.url("/predict"),
        r#"{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}"#,
    )?;
    assert_eq!(b["data"]["names"], json!(["a", "b", "c"]));
    let m: Value = serde_json::from_str(&get(&s.url("/metadata"))?.1)?;
    assert_eq!(m["name"], "iris", "named after the file");

    for (env, message) in [
        (
            vec![("MODEL", "bogus")],
            "unknown MODEL=\"bogus\": expected identity, iris or onnx",
        ),
        (vec![("MODEL", "onnx")], "MODEL=onnx needs MODEL_PATH"),
        (
            vec![("MODEL", "onnx"), ("MODEL_PATH", "/no/such.onnx")],
            "cannot read MODEL_PATH=/no/such.onnx",
        ),
        (
            vec![("MODEL", "onnx"), ("MODEL_PATH", "/etc/hostname")],
            "loading ONNX model /etc/hostname",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_model-server"))
            .envs(env)
            .env("PORT", "0")
            .output()?;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr} lacks {message}");
    }
    Ok(())
}

#[test]
fn sigterm_stops_it_gracefully() -> Result {
    let mut s = identity()?;
    agent().get(&s.url("/health/ping")).call()?;
    s.signal(Signal::SIGTERM)?;
    let (status, took) = s
        .wait_exit(Duration::from_secs(1))?
        .ok_or("still running after 1s")?;
    assert!(status.success());
    assert!(took < Duration::from_secs(1));
    Ok(())
}
