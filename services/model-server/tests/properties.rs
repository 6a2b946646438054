//! Properties of the protocol codec and the predict handler, in process:
//! arbitrary SeldonMessages, and arbitrary mutations of them, never panic
//! and never get a 5xx; the identity model returns every well-formed
//! numeric input exactly as it was written.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use model_server::api::{AppState, ModelMetrics, Unit, routes};
use model_server::models::Identity;
use proptest::prelude::*;
use proptest::test_runner::{FailurePersistence, FileFailurePersistence, PersistedSeed};
use seldon_protocol::{Array, Element, Limits, SeldonMessage};
use tower::ServiceExt;

const MAX_BODY: usize = 64 * 1024;

fn app() -> axum::Router {
    routes(Arc::new(AppState {
        model: std::sync::Arc::new(model_server::api::ModelSlot::new(Box::new(
            Identity::default(),
        ))),
        served: model_server::v2::Served {
            name: "identity".into(),
            version: "1".into(),
        },
        unit: Unit::default(),
        limits: Limits::for_body(MAX_BODY),
        metrics: ModelMetrics::new(),
        compute: Arc::new(model_server::compute::Compute::new(
            model_server::compute::ComputeSettings::new(2),
        )),
        batcher: None,
    }))
}

/// Sends one request through the router; returns status and body text.
fn call(method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("a request");
        let resp = app().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let bytes = to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// JSON number literals of every kind a client writes.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "-?[1-9][0-9]{19,40}",
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| serde_json::Number::from_f64(x).map_or("0".into(), |n| n.to_string())),
        "-?(0|[1-9][0-9]{0,6})\\.[0-9]{1,8}([eE][+-]?[0-9]{1,2})?",
        "-?[1-9][0-9]{0,3}[eE][+-]?[0-9]{1,2}",
        Just("-0.0".to_string()),
        Just("7668.0".to_string()),
    ]
}

/// A shape of up to 3 dimensions and that many literals.
fn numeric_array() -> impl Strategy<Value = (Vec<usize>, Vec<String>)> {
    prop::collection::vec(0usize..4, 0..4).prop_flat_map(|shape| {
        let n = shape.iter().product::<usize>();
        (Just(shape), prop::collection::vec(number(), n))
    })
}

fn nest(shape: &[usize], lits: &mut impl Iterator<Item = String>) -> String {
    match shape.split_first() {
        None => lits.next().unwrap_or_else(|| "0".into()),
        Some((n, rest)) => {
            let items: Vec<String> = (0..*n).map(|_| nest(rest, lits)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// A well-formed numeric message: tensor (maybe with a -1) or ndarray.
fn numeric_message() -> impl Strategy<Value = (String, Vec<usize>, Vec<String>)> {
    (numeric_array(), any::<bool>(), any::<bool>()).prop_map(|((shape, lits), tensor, infer)| {
        let body = if tensor {
            let mut dims: Vec<i64> = shape.iter().map(|d| *d as i64).collect();
            let n: usize = shape.iter().product();
            if infer && n > 0 && !dims.is_empty() {
                dims[0] = -1;
            }
            format!(
                r#"{{"data":{{"names":["a"],"tensor":{{"shape":{dims:?},"values":[{}]}}}}}}"#,
                lits.join(" , ")
            )
        } else {
            format!(
                r#"{{"meta":{{"puid":"p","tags":{{"t":1}}}},"data":{{"ndarray":{}}}}}"#,
                nest(&shape, &mut lits.clone().into_iter())
            )
        };
        // Nested lists cannot say what follows an empty dimension: `[]` is
        // shape [0], as numpy reads it.
        let shape = if tensor {
            shape
        } else {
            let cut = shape
                .iter()
                .position(|d| *d == 0)
                .map_or(shape.len(), |i| i + 1);
            shape[..cut].to_vec()
        };
        (body, shape, lits)
    })
}

/// Any message: numeric, strings, jsonData, strData, binData, odd shapes.
fn any_message() -> impl Strategy<Value = String> {
    prop_oneof![
        numeric_message().prop_map(|(b, _, _)| b),
        (
            prop::collection::vec(any::<i64>(), 0..4),
            prop::collection::vec(number(), 0..6)
        )
            .prop_map(|(shape, v)| format!(
                r#"{{"data":{{"tensor":{{"shape":{shape:?},"values":[{}]}}}}}}"#,
                v.join(",")
            )),
        prop::collection::vec(".*", 0..4)
            .prop_map(|s| { format!(r#"{{"data":{{"ndarray":[{}]}}}}"#, serde_json::json!(s)) }),
        ".*".prop_map(|s| serde_json::json!({ "strData": s }).to_string()),
        "[A-Za-z0-9+/=\n ]{0,40}".prop_map(|s| serde_json::json!({ "binData": s }).to_string()),
        any::<i32>().prop_map(|n| format!(r#"{{"jsonData":{{"n":{n},"l":[1,"x",null]}}}}"#)),
    ]
}

/// A byte-level edit: delete, insert or replace at a position.
fn mutate(text: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for (pos, kind, byte) in edits {
        if b.is_empty() {
            b.push(*byte);
            continue;
        }
        let i = pos % b.len();
        match kind % 3 {
            0 => {
                b.remove(i);
            }
            1 => b.insert(i, *byte),
            _ => b[i] = *byte,
        }
    }
    b
}

fn form(message: &[u8]) -> Vec<u8> {
    let mut s = b"json=".to_vec();
    for b in message {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => s.push(*b),
            _ => s.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
    s
}

/// Where failing cases go. Known ones are replayed from the committed
/// `tests/properties.proptest-regressions` (where proptest keeps them
/// beside the test, for version control); a new failure is written under
/// the target directory instead, so that a failing run never leaves the
/// work tree dirty, and the message says how to keep the case.
#[derive(Debug, Clone, PartialEq)]
struct Regressions;

const COMMITTED: FileFailurePersistence =
    FileFailurePersistence::WithSource("proptest-regressions");
const NEW_FAILURES: &str = concat!(
    env!("CARGO_TARGET_TMPDIR"),
    "/properties.proptest-regressions"
);

impl FailurePersistence for Regressions {
    fn load_persisted_failures2(&self, source_file: Option<&'static str>) -> Vec<PersistedSeed> {
        COMMITTED.load_persisted_failures2(source_file)
    }

    fn save_persisted_failure2(
        &mut self,
        source_file: Option<&'static str>,
        seed: PersistedSeed,
        shrunken_value: &dyn std::fmt::Debug,
    ) {
        FileFailurePersistence::Direct(NEW_FAILURES).save_persisted_failure2(
            source_file,
            seed,
            shrunken_value,
        );
        eprintln!(
            "proptest: the failing case's seed is in {NEW_FAILURES}; after the fix, append its \
             `cc` line to services/model-server/tests/properties.proptest-regressions so that \
             every run replays it"
        );
    }

    fn box_clone(&self) -> Box<dyn FailurePersistence> {
        Box::new(self.clone())
    }

    fn eq(&self, other: &dyn FailurePersistence) -> bool {
        other.as_any().downcast_ref::<Self>().is_some()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: Some(Box::new(Regressions)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn identity_returns_numbers_exactly((body, shape, lits) in numeric_message()) {
        let (status, text) = call("POST", "/api/v1.0/predictions", "application/json", body.clone().into_bytes());
        prop_assert_eq!(status, 200, "{} -> {}", body, text);
        let reply: SeldonMessage = seldon_protocol::message::from_json(&text).map_err(TestCaseError::fail)?;
        let data = reply.data.ok_or_else(|| TestCaseError::fail("no data"))?;
        let a = Array::from_data(&data, Limits::for_body(usize::MAX)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(a.shape(), &shape[..]);
        let back: Vec<&str> = a.elements().map(|e| match e {
            Element::Number(l) | Element::String(l) | Element::Literal(l) => l,
        }).collect();
        prop_assert_eq!(back, lits.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn no_message_or_mutation_gets_a_server_error(
        msg in any_message(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
        how in 0u8..4,
    ) {
        let body = mutate(&msg, &edits);
        let (status, text) = match how {
            0 => call("POST", "/predict", "application/json", body),
            1 => call("POST", "/api/v0.1/predictions", "application/x-www-form-urlencoded", form(&body)),
            2 => {
                let q = String::from_utf8_lossy(&form(&body)).into_owned();
                call("GET", &format!("/predict?{q}"), "application/json", Vec::new())
            }
            _ => call("POST", "/send-feedback", "application/json",
                format!(r#"{{"request":{},"reward":1}}"#, String::from_utf8_lossy(&body)).into_bytes()),
        };
        prop_assert!(status < 500, "{} for {:?}: {}", status, String::from_utf8_lossy(&mutate(&msg, &edits)), text);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "not JSON: {}", text);
    }
}
