//! `GET …?watch=true` as the API server streams it: one JSON event a line
//! (`{"type":"ADDED"|"MODIFIED"|"DELETED","object":{…}}`), until
//! `timeoutSeconds` or the client goes. kube-fake-client has no watch, so
//! the stream is made by listing every 100 ms and comparing. With a
//! `resourceVersion` (a client that listed first), objects at or below it
//! are not sent again; without one, every current object comes as ADDED
//! first. A client that asks for Tables (`kubectl get -w`) gets each
//! object as a one-row Table.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The longest watch served, whatever `timeoutSeconds` asks.
const LONGEST: Duration = Duration::from_secs(1800);
const POLL: Duration = Duration::from_millis(100);

/// Whether `query` asks for a watch.
pub(crate) fn wanted(query: &str) -> bool {
    matches!(
        crate::writes::query_param(query, "watch"),
        Some("true" | "1")
    )
}

/// Answer a watch on `path` (a collection) with `query`: `list` lists it
/// (a `GET` of `path` with the query's selectors).
pub(crate) fn respond<F, Fut>(
    path: String,
    query: &str,
    table: bool,
    list: F,
) -> Response<BoxBody<Bytes, Infallible>>
where
    F: Fn(Request<kube::client::Body>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<Value>> + Send,
{
    let param = |k| crate::writes::query_param(query, k).map(str::to_string);
    let since: Option<u64> = param("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .filter(|rv| *rv > 0);
    let timeout = param("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(LONGEST, Duration::from_secs)
        .min(LONGEST);
    let selectors: Vec<String> = query
        .split('&')
        .filter(|kv| kv.starts_with("labelSelector=") || kv.starts_with("fieldSelector="))
        .map(str::to_string)
        .collect();
    let uri = if selectors.is_empty() {
        path
    } else {
        format!("{path}?{}", selectors.join("&"))
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = Instant::now() + timeout;
        let mut known: BTreeMap<String, Value> = BTreeMap::new();
        let mut first = true;
        while Instant::now() < deadline && !tx.is_closed() {
            let Ok(req) = Request::get(uri.as_str()).body(kube::client::Body::empty()) else {
                return;
            };
            let Some(listed) = list(req).await else {
                return;
            };
            let mut seen = BTreeMap::new();
            for item in listed["items"].as_array().into_iter().flatten() {
                let key = format!(
                    "{}/{}",
                    item["metadata"]["namespace"].as_str().unwrap_or_default(),
                    item["metadata"]["name"].as_str().unwrap_or_default()
                );
                let rv: u64 = item["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                let event = match known.get(&key) {
                    None if first && since.is_some_and(|s| rv <= s) => None,
                    None => Some("ADDED"),
                    Some(old) if old != item => Some("MODIFIED"),
                    Some(_) => None,
                };
                if let Some(kind) = event
                    && !send(&tx, kind, item, table).await
                {
                    return;
                }
                seen.insert(key, item.clone());
            }
            for (key, gone) in &known {
                if !seen.contains_key(key) && !send(&tx, "DELETED", gone, table).await {
                    return;
                }
            }
            known = seen;
            first = false;
            tokio::time::sleep(POLL).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// One event; with `table`, its object is a one-row Table (`kubectl get -w`).
async fn send(tx: &mpsc::Sender<Bytes>, kind: &str, object: &Value, table: bool) -> bool {
    let object = if table {
        crate::table::of(object)
    } else {
        object.clone()
    };
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    tx.send(Bytes::from(line)).await.is_ok()
}
