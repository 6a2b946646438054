//! Any ONNX graph, over the Open Inference Protocol v2 (JSON and binary)
//! and Seldon v1 where v1 can carry it, on both runtimes (tract and ONNX
//! Runtime): an image CNN, a two-input int64 text model with two outputs,
//! a float64 model, the benchmark's MLP, CNN and tree ensemble, made by
//! `scripts/make_test_models.py` (onnx.helper, fixed seeds) with
//! onnxruntime's answers, which every answer here matches to 1e-5.
//!
//! The script needs onnx and onnxruntime: `KMLOPS_PYTHON` names a Python
//! that has them (`.ci/run` makes one). Without it the tests are skipped
//! with the reason printed, except in CI, where that fails.

mod common;

use serde_json::{Value, json};
use service_kit::testing::{Result, Server, agent, get, post_json};

/// An answer's output: name, shape, elements as f64.
type Output = (String, Vec<usize>, Vec<f64>);

struct Models {
    dir: tempfile::TempDir,
    cases: Value,
    /// The onnxruntime wheel's shared library, for RUNTIME=onnxruntime.
    library: String,
}

/// The runtimes every graph is served on.
const RUNTIMES: [&str; 2] = ["tract", "onnxruntime"];

fn models() -> Result<Option<Models>> {
    let Some(python) = std::env::var_os("KMLOPS_PYTHON") else {
        let why =
            "KMLOPS_PYTHON is not set (a Python with onnx and onnxruntime; `.ci/run` makes one)";
        assert!(std::env::var_os("CI").is_none(), "CI needs {why}");
        eprintln!("SKIPPED: {why}");
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make_test_models.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(dir.path())
        .output()?;
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: Value = serde_json::from_slice(&std::fs::read(dir.path().join("cases.json"))?)?;
    let library = all["onnxruntime_library"]
        .as_str()
        .ok_or("the onnxruntime package has no libonnxruntime.so")?
        .to_string();
    Ok(Some(Models {
        dir,
        cases: all["models"].take(),
        library,
    }))
}

impl Models {
    /// Serves the graph `name` on tract.
    fn serve(&self, name: &str) -> Result<Server> {
        self.serve_on(name, "tract")
    }

    /// Serves the graph `name` on `runtime`.
    fn serve_on(&self, name: &str, runtime: &str) -> Result<Server> {
        self.serve_with(name, runtime, &[])
    }

    /// Serves the graph `name` on `runtime` with more settings.
    fn serve_with(&self, name: &str, runtime: &str, more: &[(&str, &str)]) -> Result<Server> {
        let path = self.dir.path().join(format!("{name}.onnx"));
        let path = path.to_str().ok_or("path")?;
        let mut env = vec![
            ("MODEL", "onnx"),
            ("MODEL_PATH", path),
            ("MODEL_NAME", name),
            ("RUNTIME", runtime),
            ("ORT_DYLIB_PATH", &self.library),
        ];
        env.extend_from_slice(more);
        Server::start(env!("CARGO_BIN_EXE_model-server"), &env)
    }

    fn case(&self, name: &str) -> &Value {
        &self.cases[name]
    }
}

/// Every number in `v`, nested lists flattened.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(numbers).collect(),
        Value::Number(n) => n.as_f64().into_iter().collect(),
        _ => Vec::new(),
    }
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{what}[{i}]: {g} where onnxruntime answers {w}"
        );
    }
}

/// The case's outputs checked against an answer's `outputs` (by name).
fn assert_outputs(name: &str, case: &Value, outputs: &[Output]) {
    let want = case["outputs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(outputs.len(), want.len(), "{name}: {outputs:?}");
    for w in want {
        let n = w["name"].as_str().unwrap_or_default();
        let (_, shape, data) = outputs
            .iter()
            .find(|(o, _, _)| o == n)
            .unwrap_or_else(|| panic!("{name}: no output {n}"));
        let want_shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap_or_default();
        assert_eq!(shape, &want_shape, "{name}.{n}");
        assert_close(&format!("{name}.{n}"), data, &numbers(&w["data"]));
    }
}

fn json_outputs(body: &Value) -> Vec<Output> {
    body["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or_default().to_string(),
                serde_json::from_value(o["shape"].clone()).unwrap_or_default(),
                numbers(&o["data"]),
            )
        })
        .collect()
}

/// The case's inputs in the binary form: a JSON header, then each
/// tensor's little-endian elements.
fn binary_request(case: &Value) -> (Vec<u8>, usize) {
    let mut tail = Vec::new();
    let mut inputs = Vec::new();
    for i in case["inputs"].as_array().into_iter().flatten() {
        let before = tail.len();
        for x in numbers(&i["data"]) {
            match i["datatype"].as_str() {
                Some("FP32") => tail.extend_from_slice(&(x as f32).to_le_bytes()),
                Some("FP16") => {
                    tail.extend_from_slice(&half::f16::from_f64(x).to_bits().to_le_bytes())
                }
                Some("FP64") => tail.extend_from_slice(&x.to_le_bytes()),
                Some("INT64") => tail.extend_from_slice(&(x as i64).to_le_bytes()),
                other => panic!("no binary form for {other:?} in this test"),
            }
        }
        inputs.push(json!({
            "name": i["name"], "datatype": i["datatype"], "shape": i["shape"],
            "parameters": {"binary_data_size": tail.len() - before}
        }));
    }
    let header = json!({"inputs": inputs, "parameters": {"binary_data_output": true}}).to_string();
    let n = header.len();
    let mut body = header.into_bytes();
    body.extend_from_slice(&tail);
    (body, n)
}

/// Reads a binary answer: each output's elements from after the header.
fn binary_outputs(body: &[u8], header: usize) -> Result<Vec<Output>> {
    let head: Value = serde_json::from_slice(&body[..header])?;
    let mut at = header;
    let mut outputs = Vec::new();
    for o in head["outputs"].as_array().into_iter().flatten() {
        let size = o["parameters"]["binary_data_size"]
            .as_u64()
            .ok_or("binary_data_size")? as usize;
        let bytes = &body[at..at + size];
        at += size;
        let values: Vec<f64> = match o["datatype"].as_str() {
            Some("FP32") => bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Some("FP16") => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64())
                .collect(),
            Some("FP64") => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
            Some("INT64") => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect(),
            other => return Err(format!("unexpected datatype {other:?}").into()),
        };
        outputs.push((
            o["name"].as_str().unwrap_or_default().to_string(),
            serde_json::from_value(o["shape"].clone())?,
            values,
        ));
    }
    assert_eq!(at, body.len(), "every byte is some output's");
    Ok(outputs)
}

#[test]
fn the_committed_models_are_what_the_script_makes() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    for name in ["cnn", "text", "float64", "mlp", "cnn64", "trees"] {
        let file = format!("{name}.onnx");
        let committed = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/graphs")
                .join(&file),
        )?;
        assert!(
            std::fs::read(m.dir.path().join(&file))? == committed,
            "tests/graphs/{file} differs from what scripts/make_test_models.py makes: \
             run it and copy the .onnx files there"
        );
    }
    Ok(())
}

/// A ZipMap's input, its output once the ZipMap is cut, has no declared
/// shape: ONNX Runtime knows none, tract infers `[N, classes]`. Both
/// runtimes' metadata say `[-1, 3]` for the wine pipeline (skl2onnx's
/// defaults), as their answers' shapes do.
#[test]
fn a_zipmap_cut_output_has_its_shape_in_the_metadata_on_both_runtimes() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/exporters/wine-pipeline.onnx"
    );
    for runtime in RUNTIMES {
        let s = Server::start(
            env!("CARGO_BIN_EXE_model-server"),
            &[
                ("MODEL", "onnx"),
                ("MODEL_PATH", file),
                ("MODEL_NAME", "wine"),
                ("RUNTIME", runtime),
                ("ORT_DYLIB_PATH", &m.library),
            ],
        )?;
        let meta: Value = serde_json::from_str(&get(&s.url("/v2/models/wine"))?.1)?;
        let probabilities = meta["outputs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["name"] == "probabilities")
            .ok_or(format!("no probabilities in {meta}"))?;
        assert_eq!(probabilities["shape"], json!([-1, 3]), "{runtime}: {meta}");
    }
    Ok(())
}

#[test]
fn every_graph_answers_as_onnxruntime_does_over_v2_json_and_binary() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let graphs = [
        "cnn", "text", "float64", "matmul", "half", "outer", "mlp", "cnn64", "trees", "prior",
    ];
    for (name, runtime) in graphs.iter().flat_map(|g| RUNTIMES.map(|r| (*g, r))) {
        let s = m.serve_on(name, runtime)?;
        let case = m.case(name);
        let what = format!("{name} on {runtime}");
        let meta: Value = serde_json::from_str(&get(&s.url(&format!("/v2/models/{name}")))?.1)?;
        let declared: Vec<&str> = meta["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str())
            .collect();
        let sent: Vec<&str> = case["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str())
            .collect();
        assert_eq!(declared, sent, "{name}: {meta}");
        let url = s.url(&format!("/v2/models/{name}/infer"));
        let (status, body) = post_json(&url, &json!({"inputs": case["inputs"]}).to_string())?;
        assert_eq!(status, 200, "{name}: {body}");
        assert_outputs(&what, case, &json_outputs(&body));

        let (request, header) = binary_request(case);
        let mut resp = agent()
            .post(&url)
            .header("inference-header-content-length", header.to_string())
            .header("content-type", "application/octet-stream")
            .send(&request[..])?;
        assert_eq!(resp.status().as_u16(), 200, "{name} binary");
        let n: usize = resp
            .headers()
            .get("inference-header-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or("no Inference-Header-Content-Length")?;
        let answer = resp.body_mut().read_to_vec()?;
        assert_outputs(&what, case, &binary_outputs(&answer, n)?);
    }
    Ok(())
}

#[test]
fn declared_shapes_and_types_are_the_metadata_and_are_enforced() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let text = m.serve("text")?;
    let meta: Value = serde_json::from_str(&get(&text.url("/v2/models/text"))?.1)?;
    assert_eq!(
        meta["inputs"],
        json!([
            {"name":"input_ids","datatype":"INT64","shape":[-1,-1]},
            {"name":"attention_mask","datatype":"INT64","shape":[-1,-1]}
        ])
    );
    assert_eq!(
        meta["outputs"],
        json!([
            {"name":"logits","datatype":"FP32","shape":[-1,3]},
            {"name":"probabilities","datatype":"FP32","shape":[-1,3]}
        ])
    );
    let url = text.url("/v2/models/text/infer");
    let ids = |shape: &str, data: &str, datatype: &str| {
        format!(r#"{{"name":"input_ids","shape":{shape},"datatype":"{datatype}","data":{data}}}"#)
    };
    let mask = |shape: &str, data: &str| {
        format!(r#"{{"name":"attention_mask","shape":{shape},"datatype":"INT64","data":{data}}}"#)
    };
    for (inputs, status, text) in [
        (
            ids("[1,2]", "[1,2]", "INT64"),
            400,
            "input \"attention_mask\" is missing",
        ),
        (
            format!(
                "{},{}",
                ids("[1,2]", "[1,2]", "FP32"),
                mask("[1,2]", "[1,1]")
            ),
            400,
            "input \"input_ids\" takes INT64 [-1, -1]; got FP32 [1, 2]",
        ),
        (
            format!(
                "{},{}",
                ids("[1,3]", "[1,2,3]", "INT64"),
                mask("[1,2]", "[1,1]")
            ),
            400,
            "must agree on their dimension \"sequence\": 3 and 2",
        ),
        (
            format!(
                "{},{},{}",
                ids("[1,2]", "[1,2]", "INT64"),
                mask("[1,2]", "[1,1]"),
                r#"{"name":"extra","shape":[1],"datatype":"INT64","data":[1]}"#
            ),
            400,
            "has no input \"extra\"",
        ),
    ] {
        let (got, body) = post_json(&url, &format!(r#"{{"inputs":[{inputs}]}}"#))?;
        assert_eq!(got, status, "{inputs}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{error:?} lacks {text:?}");
    }
    // Only the outputs asked for, in the order asked.
    let (status, body) = post_json(
        &url,
        &format!(
            r#"{{"inputs":[{},{}],"outputs":[{{"name":"probabilities"}}]}}"#,
            ids("[1,2]", "[1,2]", "INT64"),
            mask("[1,2]", "[1,1]")
        ),
    )?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["outputs"][0]["name"], "probabilities");

    let cnn = m.serve("cnn")?;
    let (status, body) = post_json(
        &cnn.url("/v2/models/cnn/infer"),
        r#"{"inputs":[{"name":"image","shape":[1,3,2,2],"datatype":"FP32","data":[0,0,0,0,0,0,0,0,0,0,0,0]}]}"#,
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("takes FP32 [-1, 3, 16, 16]; got FP32 [1, 3, 2, 2]")),
        "{body}"
    );
    Ok(())
}

/// What a new user's probe found (issue 21): inputs a graph cannot
/// compute, or that would make it allocate without bound, are 400s that
/// say why, and the server goes on serving.
#[test]
fn inputs_a_graph_cannot_compute_are_400s_and_the_server_lives() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    for runtime in RUNTIMES {
        cannot_compute(&m, runtime)?;
    }
    // A graph whose only output is float16 loads and answers over v1 too.
    let half = m.serve("half")?;
    let (status, body) = post_json(&half.url("/predict"), r#"{"data":{"ndarray":[[1.5,-2]]}}"#)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["ndarray"], json!([[3.0, -4.0]]));
    Ok(())
}

/// Inputs `runtime` cannot compute, or that would make it allocate
/// gigabytes: 400s with the reason, and the server still answers.
fn cannot_compute(m: &Models, runtime: &str) -> Result {
    let text = m.serve_on("text", runtime)?;
    let url = text.url("/v2/models/text/infer");
    let request = |ids: &str, shape: &str| {
        format!(
            r#"{{"inputs":[{{"name":"input_ids","shape":{shape},"datatype":"INT64","data":{ids}}},{{"name":"attention_mask","shape":{shape},"datatype":"INT64","data":{ids}}}]}}"#
        )
    };
    // A token id past the 50-row embedding: tract panics in Gather, ONNX
    // Runtime calls it an invalid argument.
    for _ in 0..2 {
        let (status, body) = post_json(&url, &request("[50]", "[1,1]"))?;
        assert_eq!(status, 400, "{runtime}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot compute this input")),
            "{body}"
        );
    }
    // A huge dimension beside a zero one.
    let (status, body) = post_json(&url, &request("[]", "[100000000,0]"))?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        post_json(&url, &request("[1,2]", "[1,2]"))?.0,
        200,
        "still serving"
    );

    // 10^8 elements out of a request of a few bytes.
    let matmul = m.serve_on("matmul", runtime)?;
    let (status, body) = post_json(
        &matmul.url("/v2/models/matmul/infer"),
        r#"{"inputs":[{"name":"a","shape":[10000,0],"datatype":"FP32","data":[]},{"name":"b","shape":[0,10000],"datatype":"FP32","data":[]}]}"#,
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("would compute outputs of 100000000 elements")),
        "{body}"
    );

    // An [N, N] tensor on the way to a scalar: 2.25 * 10^8 elements for a
    // request of 15,000 zeros (60 KB in binary).
    let outer = m.serve_on("outer", runtime)?;
    let zeros = format!(
        r#"{{"inputs":[{{"name":"x","shape":[15000],"datatype":"FP32","data":[{}]}}]}}"#,
        vec!["0"; 15000].join(",")
    );
    let (status, body) = post_json(&outer.url("/v2/models/outer/infer"), &zeros)?;
    assert_eq!(status, 400, "{runtime}: {body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("a tensor of 225000000 elements")),
        "{runtime}: {body}"
    );
    Ok(())
}

/// tract-onnx 0.23 labels a binary TreeEnsembleClassifier's rows with the
/// other class (it takes the argmax before laying the scores out as
/// `[1 - p, p]`) and refuses one with a single base value (a prior, as
/// scikit-learn's gradient boosting and XGBoost are exported); the model
/// server relabels the rows as ONNX Runtime does (by the raw score, above
/// 0.5 where every leaf weight is at least 0: `prior`'s rows in (0, 0.5)
/// are its first class, not the class of the larger probability), so both
/// runtimes give ONNX Runtime's labels.
#[test]
fn binary_tree_ensembles_are_labelled_as_onnxruntime_labels_them() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    for name in ["trees", "prior"] {
        let case = m.case(name);
        let want = case["outputs"][0]["data"].clone();
        let classes: std::collections::BTreeSet<String> = want
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        assert_eq!(classes.len(), 2, "{name} has rows of both classes: {want}");
        for runtime in RUNTIMES {
            let s = m.serve_on(name, runtime)?;
            let (status, body) = post_json(
                &s.url(&format!("/v2/models/{name}/infer")),
                &json!({"inputs": case["inputs"], "outputs": [{"name": "label"}]}).to_string(),
            )?;
            assert_eq!(status, 200, "{name} on {runtime}: {body}");
            assert_eq!(body["outputs"][0]["data"], want, "{name} on {runtime}");
        }
    }
    Ok(())
}

/// tract panics on some graphs while it folds their constants (a Gather
/// past a constant table's end): refused with a reason, at start-up and by
/// `inspect`, never a crash.
#[test]
fn a_graph_tract_panics_on_is_refused_when_loaded() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let path = m.dir.path().join("cgather.onnx");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_model-server"))
        .arg("inspect")
        .arg(&path)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot load the graph"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_model-server"))
        .env("MODEL", "onnx")
        .env("MODEL_PATH", &path)
        .env("PORT", "0")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot load the graph"), "{stderr}");
    Ok(())
}

#[test]
fn v1_feeds_one_input_of_any_rank_and_points_several_to_v2() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    for name in ["cnn", "float64"] {
        let s = m.serve(name)?;
        let case = m.case(name);
        let input = &case["inputs"][0];
        let message =
            json!({"data": {"tensor": {"shape": input["shape"], "values": input["data"]}}});
        let (status, body) = post_json(&s.url("/api/v1.0/predictions"), &message.to_string())?;
        assert_eq!(status, 200, "{name}: {body}");
        let output = &case["outputs"][0];
        assert_eq!(body["data"]["tensor"]["shape"], output["shape"], "{name}");
        assert_close(
            name,
            &numbers(&body["data"]["tensor"]["values"]),
            &numbers(&output["data"]),
        );
    }
    let s = m.serve("text")?;
    let (status, body) = post_json(&s.url("/predict"), r#"{"data":{"ndarray":[[1,2,3]]}}"#)?;
    common::assert_failure((status, body), 400, "POST /v2/models/text/infer");
    Ok(())
}

/// One instance and a queue of one: of sixteen large requests at once, the
/// ones past the queue are 503s with `Retry-After` and the reason, the
/// others are answered, and the server serves on.
#[test]
fn requests_past_the_queue_are_503s_with_retry_after() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let s = m.serve_with(
        "cnn64",
        "onnxruntime",
        &[
            ("MODEL_INSTANCES", "1"),
            ("MAX_QUEUE_SIZE", "1"),
            ("MAX_BODY_BYTES", "8388608"),
        ],
    )?;
    let images = 32 * 3 * 64 * 64;
    let header = json!({"inputs": [{"name": "image", "datatype": "FP32",
        "shape": [32, 3, 64, 64], "parameters": {"binary_data_size": images * 4}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(std::iter::repeat_n(0u8, images * 4));
    let url = s.url("/v2/models/cnn64/infer");
    let answers: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| -> Result<(u16, Option<String>, String)> {
                    let mut resp = agent()
                        .post(&url)
                        .header("inference-header-content-length", header.len().to_string())
                        .header("content-type", "application/octet-stream")
                        .send(&body[..])?;
                    let retry = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    let text =
                        String::from_utf8_lossy(&resp.body_mut().read_to_vec()?).into_owned();
                    Ok((resp.status().as_u16(), retry, text))
                })
            })
            .collect();
        sent.into_iter()
            .map(|h| h.join().map_err(|_| "a client panicked")?)
            .collect::<Result<Vec<_>>>()
    })?;
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(
        !refused.is_empty(),
        "none refused: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(answers.iter().any(|(s, _, _)| *s == 200));
    assert!(answers.iter().all(|(s, _, _)| *s == 200 || *s == 503));
    for (_, retry, text) in refused {
        assert!(
            retry
                .as_deref()
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|r| r >= 1),
            "{retry:?}"
        );
        assert!(text.contains("MAX_QUEUE_SIZE=1"), "{text}");
    }
    assert_eq!(
        get(&s.url("/readyz"))?.0,
        200,
        "ready once the queue is empty"
    );
    let metrics = get(&s.url("/metrics"))?.1;
    assert!(
        metrics.contains("model_queue_duration_seconds_count"),
        "{metrics}"
    );
    Ok(())
}

/// With dynamic batching, concurrent one-row requests are joined into
/// batches and each answered with its own row, as onnxruntime answers it;
/// a request the model cannot compute is a 400 and its batch mates are
/// answered.
#[test]
fn dynamic_batching_joins_requests_and_keeps_their_answers_apart() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let batching = [
        ("MAX_BATCH_SIZE", "16"),
        ("MAX_QUEUE_DELAY_US", "200000"),
        ("MAX_CONCURRENT_REQUESTS", "16"),
    ];
    for runtime in RUNTIMES {
        let s = m.serve_with("mlp", runtime, &batching)?;
        let case = m.case("mlp");
        let input = &case["inputs"][0];
        let x = numbers(&input["data"]);
        let want = numbers(&case["outputs"][0]["data"]);
        let url = s.url("/v2/models/mlp/infer");
        // Each of the case's two rows, four times over, at once: over v2,
        // and every fourth over Seldon v1.
        let v1 = s.url("/api/v1.0/predictions");
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let sent: Vec<_> = (0..8)
                .map(|i| {
                    let row = &x[(i % 2) * 256..(i % 2 + 1) * 256];
                    let (url, v1) = (&url, &v1);
                    scope.spawn(move || {
                        if i % 4 == 3 {
                            post_json(v1, &json!({"data": {"ndarray": [row]}}).to_string())
                        } else {
                            post_json(
                                url,
                                &json!({"inputs": [{"name": "input", "datatype": "FP32",
                                    "shape": [1, 256], "data": row}]})
                                .to_string(),
                            )
                        }
                    })
                })
                .collect();
            sent.into_iter()
                .map(|h| h.join().map_err(|_| "a client panicked")?)
                .collect::<Result<Vec<_>>>()
        })?;
        for (i, (status, body)) in answers.iter().enumerate() {
            assert_eq!(*status, 200, "{runtime}: {body}");
            let row = i % 2;
            let got = if i % 4 == 3 {
                numbers(&body["data"]["ndarray"])
            } else {
                numbers(&body["outputs"][0]["data"])
            };
            assert_close(
                &format!("mlp on {runtime}, request {i}"),
                &got,
                &want[row * 10..(row + 1) * 10],
            );
        }
        let metrics = get(&s.url("/metrics"))?.1;
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let (rows, runs) = (
            value("model_batch_size_sum"),
            value("model_batch_size_count"),
        );
        assert_eq!(rows, 8.0, "{runtime}: {metrics}");
        assert!(runs < 8.0, "{runtime}: no two requests shared a run");
        // Batching stands in for the compute queue: its times are counted.
        assert_eq!(
            value("model_queue_duration_seconds_count"),
            8.0,
            "{metrics}"
        );
        assert_eq!(
            value("model_compute_duration_seconds_count"),
            runs,
            "{metrics}"
        );
        assert_eq!(value("model_in_flight_requests"), 0.0, "{metrics}");
    }

    // A token id past the vocabulary in one request of a batch.
    let s = m.serve_with("text", "onnxruntime", &batching)?;
    let url = s.url("/v2/models/text/infer");
    let request = |id: i64| {
        json!({"inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [id, 1]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [1, 2], "data": [1, 1]}]})
        .to_string()
    };
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let sent: Vec<_> = [3, 50, 7]
            .into_iter()
            .map(|id| {
                let (url, body) = (&url, request(id));
                scope.spawn(move || post_json(url, &body))
            })
            .collect();
        sent.into_iter()
            .map(|h| h.join().map_err(|_| "a client panicked")?)
            .collect::<Result<Vec<_>>>()
    })?;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 400, 200], "{answers:?}");
    Ok(())
}

/// Settings that cannot work are refused at start, saying why.
#[test]
fn settings_that_cannot_work_are_refused_at_start() -> Result {
    let Some(m) = models()? else { return Ok(()) };
    let path = m.dir.path().join("mlp.onnx");
    for (settings, says) in [
        (
            vec![("MAX_BATCH_SIZE", "8"), ("MAX_QUEUE_DELAY_US", "7000000")],
            "MAX_QUEUE_DELAY_US=7000000",
        ),
        (
            vec![("MODEL_INSTANCES", "100000")],
            "MODEL_INSTANCES=100000: at most 256",
        ),
        (
            vec![("RUNTIME", "onnxruntime"), ("INTRA_OP_THREADS", "100000")],
            "INTRA_OP_THREADS=100000: at most 256",
        ),
        (vec![("INTRA_OP_THREADS", "0")], "INTRA_OP_THREADS=0"),
        (
            vec![
                ("RUNTIME", "onnxruntime"),
                ("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"),
            ],
            "ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so is not a file",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_model-server"))
            .env("PORT", "0")
            .env("MODEL", "onnx")
            .env("MODEL_PATH", &path)
            .env("ORT_DYLIB_PATH", &m.library)
            .envs(settings.iter().copied())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{settings:?} started");
        assert!(stderr.contains(says), "{settings:?}: {stderr}");
    }
    Ok(())
}
