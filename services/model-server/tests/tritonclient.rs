//! tritonclient (`tritonclient[http]`, pinned in `.ci/requirements.txt`),
//! the client Triton and KServe users already have, against the model
//! server: health, server and model metadata, inference with binary and
//! JSON tensors, and an error it reports as the protocol says.
//!
//! `KMLOPS_PYTHON` names a Python with tritonclient (`.ci/run` makes
//! one). Without it the test is skipped with the reason printed, except
//! in CI, where that fails.

use service_kit::testing::{Result, Server};

const CLIENT: &str = r#"
import sys
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

c = httpclient.InferenceServerClient(url=sys.argv[1])
assert c.is_server_live() and c.is_server_ready()
assert "binary_tensor_data" in c.get_server_metadata()["extensions"]
m = c.get_model_metadata("flowers")
assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}], m
assert c.is_model_ready("flowers") and c.is_model_ready("flowers", "1")
assert not c.is_model_ready("nope")

x = np.array([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
for binary in (True, False):
    i = httpclient.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    o = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    r = c.infer("flowers", [i], outputs=[o], request_id="7")
    p = r.as_numpy("probabilities")
    assert p.shape == (2, 3) and p.dtype == np.float32, p
    assert p[0].argmax() == 0 and p[1].argmax() == 2, p
    assert r.get_response()["id"] == "7"

bad = httpclient.InferInput("input", [1, 3], "FP32")
bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
try:
    c.infer("flowers", [bad])
    raise SystemExit("a [1, 3] input was accepted")
except InferenceServerException as e:
    assert "takes FP32 [-1, 4]; got FP32 [1, 3]" in e.message(), e.message()
    assert e.status() == "400", e.status()
try:
    c.get_model_metadata("nope")
    raise SystemExit("an unknown model has metadata")
except InferenceServerException as e:
    assert "unknown model" in e.message(), e.message()
print("ok")
"#;

#[test]
fn tritonclient_speaks_to_the_model_server() -> Result {
    let Some(python) = std::env::var_os("KMLOPS_PYTHON") else {
        let why =
            "KMLOPS_PYTHON is not set (a Python with tritonclient[http]; `.ci/run` makes one)";
        assert!(std::env::var_os("CI").is_none(), "CI needs {why}");
        eprintln!("SKIPPED: {why}");
        return Ok(());
    };
    let s = Server::start(
        env!("CARGO_BIN_EXE_model-server"),
        &[("MODEL", "iris"), ("MODEL_NAME", "flowers")],
    )?;
    let host = s.url("");
    let host = host.trim_start_matches("http://").trim_end_matches('/');
    let out = std::process::Command::new(python)
        .args(["-c", CLIENT, host])
        .output()?;
    assert!(
        out.status.success(),
        "tritonclient: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    Ok(())
}
