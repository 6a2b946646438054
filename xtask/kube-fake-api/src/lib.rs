//! A stateful in-memory Kubernetes API for tests:
//! kube-fake-client (server-side apply, status subresources, selectors,
//! custom resources) plus the few endpoints it does not serve, which the
//! engine needs: discovery, cluster-scoped namespaces, and pod logs. Use it
//! in-process ([`FakeCluster::client`]) or over HTTP ([`FakeCluster::serve`]),
//! so the real `kube-engine` binary can talk to it through a kubeconfig; an
//! optional controller plays the Deployment controller and the Seldon operator.
//!
//! Writes are refused as a real API server refuses them ([`writes`]): the
//! kinds' OpenAPI schemas ([`schema`]), the server's own rules
//! ([`rules`]), namespaces that must exist and Pod Security admission
//! ([`admission`]), with the `Status` bodies a real server sends ([`status`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ObjectMeta;
use kube::{Client, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use status::{json_response, not_found};

pub mod admission;
pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod names;
pub mod rules;
mod scale;
pub mod schema;
pub mod seldon_crd;
pub mod ssa;
pub mod status;
mod table;
mod watch;
mod writes;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];

/// The largest request body the API server reads (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The namespaces the API server refuses to delete.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-public", "kube-system"];

/// The SeldonDeployment kind, registered with the fake when Seldon Core is "installed".
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeldonDeployment {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl Default for SeldonDeployment {
    fn default() -> Self {
        Self {
            api_version: "machinelearning.seldon.io/v1".into(),
            kind: "SeldonDeployment".into(),
            metadata: ObjectMeta::default(),
            spec: Value::Null,
            status: None,
        }
    }
}

impl Resource for SeldonDeployment {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;
    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "SeldonDeployment".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "machinelearning.seldon.io".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "seldondeployments".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

pub struct FakeCluster {
    pub client: Client,
    /// Log text per `pod/container`.
    pub logs: Arc<Mutex<HashMap<String, String>>>,
    pub namespaces: Arc<Mutex<BTreeMap<String, Value>>>,
    /// Where a port-forward to a pod really goes: `namespace/pod`, or
    /// `namespace/<workload>` for the pods named after it, → address.
    pub backends: Arc<Mutex<HashMap<String, SocketAddr>>>,
    state: State,
    /// Taken by [`FakeCluster::start_controller`].
    controllers: Arc<Mutex<Option<controllers::Controllers>>>,
}

/// What both the in-process client and the HTTP server route through.
#[derive(Clone)]
struct State {
    inner: Client,
    /// Held while a write is judged and stored.
    writing: Arc<tokio::sync::Mutex<()>>,
    logs: Arc<Mutex<HashMap<String, String>>>,
    namespaces: Arc<Mutex<BTreeMap<String, Value>>>,
    backends: Arc<Mutex<HashMap<String, SocketAddr>>>,
    seldon: bool,
    /// The one node, as `GET /api/v1/nodes` lists it.
    node: Value,
}

#[derive(Default)]
pub struct Setup {
    pub seldon_installed: bool,
    pub objects: Vec<Value>,
    pub namespaces: Vec<Value>,
    /// The node's images and the registries it reaches (default: every
    /// image is there).
    pub node: controllers::Node,
    /// The external address LoadBalancer services get, and after how long
    /// (default: none, they stay pending as without a cloud).
    pub load_balancer: Option<(String, Duration)>,
}

/// `setup` as a running cluster for a test outside async code: built,
/// served on loopback and its controllers started, all on `rt`. Returns
/// the fake (to seed or inspect its state) and the address it serves.
///
/// # Errors
/// The loopback listener cannot be bound.
pub fn run_on(
    rt: &tokio::runtime::Runtime,
    setup: Setup,
) -> std::io::Result<(FakeCluster, SocketAddr)> {
    let fake = rt.block_on(cluster(setup));
    let addr = rt.block_on(fake.serve())?;
    let _guard = rt.enter();
    fake.start_controller();
    Ok((fake, addr))
}

pub async fn cluster(setup: Setup) -> FakeCluster {
    let mut builder = kube_fake_client::ClientBuilder::new()
        .with_status_subresource::<Deployment>()
        .with_status_subresource::<k8s_openapi::api::apps::v1::ReplicaSet>()
        .with_status_subresource::<k8s_openapi::api::core::v1::Service>()
        .with_status_subresource::<k8s_openapi::api::core::v1::Pod>()
        .with_runtime_objects(setup.objects.clone());
    if setup.seldon_installed {
        builder = builder
            .with_resource::<SeldonDeployment>()
            .with_status_subresource::<SeldonDeployment>();
    }
    // The namespaces of the objects a test starts with exist, as they would.
    let mut initial: BTreeMap<String, Value> = INITIAL_NAMESPACES
        .iter()
        .copied()
        .chain(
            setup
                .objects
                .iter()
                .filter_map(|o| o["metadata"]["namespace"].as_str()),
        )
        .map(|n| (n.to_string(), namespace_object(n, &Value::Null)))
        .collect();
    let inner = builder.build().await.expect("fake client");
    let logs = Arc::new(Mutex::new(HashMap::new()));
    for ns in setup.namespaces {
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        initial.insert(name, ns);
    }
    let namespaces = Arc::new(Mutex::new(initial));
    let backends = Arc::new(Mutex::new(HashMap::new()));
    let state = State {
        inner,
        writing: Arc::new(tokio::sync::Mutex::new(())),
        logs: logs.clone(),
        namespaces: namespaces.clone(),
        backends: backends.clone(),
        seldon: setup.seldon_installed,
        node: setup.node.object(),
    };
    let controllers = Arc::new(Mutex::new(Some(controllers::Controllers {
        namespaces: namespaces.clone(),
        terminating: HashMap::new(),
        kubelet: controllers::kubelet::Kubelet::new(setup.node),
        load_balancers: controllers::LoadBalancers::new(setup.load_balancer),
        seldon: setup
            .seldon_installed
            .then(controllers::SeldonOperator::default),
    })));
    let routed = state.clone();
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let state = routed.clone();
        async move { route(req, state).await }
    });
    FakeCluster {
        client: Client::new(service, "default"),
        logs,
        namespaces,
        backends,
        state,
        controllers,
    }
}

impl FakeCluster {
    /// Serve the API over plain HTTP on 127.0.0.1; returns the address.
    pub async fn serve(&self) -> std::io::Result<SocketAddr> {
        self.serve_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serve the API over plain HTTP on `addr` (port 0: any free one);
    /// returns the address it listens on.
    pub async fn serve_on(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        // A concrete error type (none: failures become 500s) keeps
                        // the connection future provably Send.
                        async move {
                            if let Some(target) = portforward_target(&req, &state) {
                                return Ok::<_, std::convert::Infallible>(
                                    portforward(req, target).map(BodyExt::boxed),
                                );
                            }
                            let query = req.uri().query().unwrap_or_default().to_string();
                            if req.method() == Method::GET && watch::wanted(&query) {
                                let table = req
                                    .headers()
                                    .get(http::header::ACCEPT)
                                    .and_then(|v| v.to_str().ok())
                                    .is_some_and(table::wanted);
                                let lister = state.clone();
                                let list = move |req: Request<kube::client::Body>| {
                                    let state = lister.clone();
                                    async move { listed(route(req, state).await.ok()?).await }
                                };
                                return Ok(watch::respond(
                                    req.uri().path().to_string(),
                                    &query,
                                    table,
                                    list,
                                ));
                            }
                            let (parts, body) = req.into_parts();
                            // The API server reads at most 3 MiB of a body.
                            let limited = http_body_util::Limited::new(body, MAX_BODY);
                            let answer = match limited.collect().await {
                                Err(_) => Ok(status::too_large(MAX_BODY)),
                                Ok(c) => {
                                    route(
                                        Request::from_parts(
                                            parts,
                                            kube::client::Body::from(c.to_bytes()),
                                        ),
                                        state,
                                    )
                                    .await
                                }
                            };
                            Ok(answer
                                .unwrap_or_else(|e| {
                                    let message = e.to_string();
                                    // A path kube-fake-client does not know
                                    // is a 404, as the API server answers.
                                    if message.contains("Invalid path") {
                                        return not_found(
                                            "the server could not find the requested resource",
                                        );
                                    }
                                    status::internal(&message)
                                })
                                .map(BodyExt::boxed))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(addr)
    }

    /// Play the controllers ([`controllers`]) from now on, every 200 ms:
    /// Deployments roll out as ReplicaSets and pods whose status the
    /// kubelet gives (the node's images, Pod Security refusals), load
    /// balancers get their address, and the Seldon operator rolls each
    /// SeldonDeployment out as Deployments. A second call does nothing.
    pub fn start_controller(&self) {
        let client = self.client.clone();
        let Some(mut controllers) = self.controllers.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        tokio::spawn(async move {
            loop {
                let _ = controllers.reconcile(&client).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

/// A successful list answer's JSON.
async fn listed(resp: Response<Full<Bytes>>) -> Option<Value> {
    if !resp.status().is_success() {
        return None;
    }
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// `GET …/namespaces/{ns}/pods/{pod}/portforward?ports=N` asking for a
/// WebSocket, for a pod with a registered backend: that backend and N.
fn portforward_target(req: &Request<Incoming>, state: &State) -> Option<(SocketAddr, u16)> {
    let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, "pods", pod, "portforward"] = parts.as_slice() else {
        return None;
    };
    let port = req
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("ports="))?
        .parse()
        .ok()?;
    let backends = state.backends.lock().ok()?;
    Some((backend_of(&backends, ns, pod)?, port))
}

/// Where a port-forward to `ns/pod` leads: the backend registered for
/// the pod, or else for the workload whose pods are named after it
/// (`ns/test-api` for the pods `test-api-<hash>-<suffix>`), the longest
/// such name first.
fn backend_of(backends: &HashMap<String, SocketAddr>, ns: &str, pod: &str) -> Option<SocketAddr> {
    let key = format!("{ns}/{pod}");
    if let Some(b) = backends.get(&key) {
        return Some(*b);
    }
    backends
        .iter()
        .filter(|(k, _)| key.starts_with(&format!("{k}-")))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, b)| *b)
}

/// Accept the WebSocket (protocol v4.channel.k8s.io) and relay channel 0 of
/// the one port to a TCP connection to the backend.
fn portforward(
    mut req: Request<Incoming>,
    (backend, port): (SocketAddr, u16),
) -> Response<Full<Bytes>> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(&mut req).await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let _ = relay(ws, backend, port).await;
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    for (name, value) in [
        ("upgrade", "websocket".to_string()),
        ("connection", "Upgrade".to_string()),
        ("sec-websocket-accept", key),
        ("sec-websocket-protocol", "v4.channel.k8s.io".to_string()),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

async fn relay<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    backend: SocketAddr,
    port: u16,
) -> Result<(), BoxError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut sink, mut stream) = ws.split();
    let [lo, hi] = port.to_le_bytes();
    // Each channel's first frame names the port: data (0), then error (1).
    sink.send(Message::binary(vec![0, lo, hi]))
        .await
        .map_err(boxed)?;
    sink.send(Message::binary(vec![1, lo, hi]))
        .await
        .map_err(boxed)?;
    let tcp = tokio::net::TcpStream::connect(backend)
        .await
        .map_err(boxed)?;
    let (mut from_backend, mut to_backend) = tcp.into_split();
    let upstream = async {
        while let Some(Ok(msg)) = stream.next().await {
            let data = match &msg {
                Message::Binary(bytes) if bytes.first() == Some(&0) => &bytes[1..],
                Message::Close(_) => break,
                _ => continue,
            };
            if to_backend.write_all(data).await.is_err() {
                break;
            }
        }
        let _ = to_backend.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_backend.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0);
                    frame.extend_from_slice(&buf[..n]);
                    if sink.send(Message::binary(frame)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    tokio::join!(upstream, downstream);
    Ok(())
}

/// A kubeconfig with one context, `context`, pointing at the served API.
pub fn kubeconfig(addr: SocketAddr, context: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {context}\n\
         clusters: [{{name: fake, cluster: {{server: 'http://{addr}'}}}}]\n\
         users: [{{name: fake, user: {{}}}}]\n\
         contexts: [{{name: {context}, context: {{cluster: fake, user: fake, namespace: default}}}}]\n"
    )
}

/// Answers one request; a `GET` that asks for a Table gets one
/// ([`table`]), as `kubectl get` prints it.
async fn route(
    req: Request<kube::client::Body>,
    state: State,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let table = req.method() == Method::GET
        && req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(table::wanted);
    let resp = answer(req, state).await?;
    if !table || !resp.status().is_success() {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(boxed)?.to_bytes();
    Ok(match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v["metadata"].is_object() => json_response(StatusCode::OK, &table::of(&v)),
        _ => Response::from_parts(parts, Full::new(bytes)),
    })
}

async fn answer(
    req: Request<kube::client::Body>,
    state: State,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let State {
        inner,
        logs,
        namespaces,
        seldon,
        writing,
        node,
        ..
    } = state;
    let path = req.uri().path().to_string();
    // Go decodes a query's `+` as a space (kube-rs sends `name+in+(x)`);
    // kube-fake-client decodes only %XX, so spell the spaces out for it.
    let query = req.uri().query().unwrap_or("").replace('+', "%20");
    // A server may ignore `limit` and answer whole lists (the API's
    // contract); kube-fake-client honours it without a `continue` token,
    // which would cut kubectl's chunked lists short.
    let query: String = query
        .split('&')
        .filter(|kv| !kv.starts_with("limit=") && !kv.is_empty())
        .collect::<Vec<_>>()
        .join("&");
    let mut req = req;
    if let Ok(uri) = http::Uri::try_from(if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    }) {
        *req.uri_mut() = uri;
    }
    if req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("protobuf"))
    {
        return Ok(json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "UnsupportedMediaType", "code": 415,
                "message": "the API fake decodes JSON only, not protobuf: send application/json (kubectl: apply --server-side)"}),
        ));
    }
    let aggregated = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if beyond_a_resource(&parts) {
        return Ok(not_found(
            "the server could not find the requested resource",
        ));
    }
    // dryRun takes one value (metav1's ValidateDryRun).
    if let Some(value) = writes::query_param(&query, "dryRun")
        && value != "All"
    {
        let options = match *req.method() {
            Method::POST => "CreateOptions",
            Method::PUT => "UpdateOptions",
            Method::DELETE => "DeleteOptions",
            _ => "PatchOptions",
        };
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        return Ok(status::invalid(
            "meta.k8s.io",
            options,
            "",
            &[status::Cause::not_supported(
                "dryRun",
                json!([value]),
                &["All"],
            )],
        ));
    }
    match parts.as_slice() {
        ["version"] => return Ok(json_response(StatusCode::OK, &discovery::version())),
        // The health endpoints (`kubectl get --raw /readyz`).
        ["readyz"] | ["livez"] | ["healthz"] => {
            return Ok(Response::new(Full::new(Bytes::from("ok"))));
        }
        // Aggregated discovery when asked for (kubectl asks first).
        ["api"] | ["apis"] if aggregated => {
            let mut resp = json_response(
                StatusCode::OK,
                &discovery::aggregated(parts[0] == "api", seldon),
            );
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(discovery::AGGREGATED),
            );
            return Ok(resp);
        }
        ["api"] => return Ok(json_response(StatusCode::OK, &discovery::api_versions())),
        ["apis"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::api_groups(seldon),
            ));
        }
        ["api", version] | ["apis", _, version] => {
            let group = if parts[0] == "api" { "" } else { parts[1] };
            return Ok(match discovery::resources(group, version, seldon) {
                Some(list) => json_response(StatusCode::OK, &list),
                None => not_found("the server could not find the requested resource"),
            });
        }
        // OpenAPI v2 is served as protobuf (gnostic) only, which the fake
        // does not speak: a 404, as from a server without it, makes
        // kubectl validate through v3 or on the server instead.
        ["openapi", "v2"] => {
            return Ok(not_found(
                "the API fake serves OpenAPI v3 only (/openapi/v3)",
            ));
        }
        ["openapi", "v3"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::openapi_index(seldon),
            ));
        }
        ["openapi", "v3", rest @ ..] => {
            return Ok(match discovery::openapi_document(&rest.join("/"), seldon) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => not_found("the server could not find the requested resource"),
            });
        }
        // Nodes are the kubelet's to register; clients only read them.
        ["api", "v1", "nodes"] | ["api", "v1", "nodes", _] => {
            return Ok(match (req.method().as_str(), parts.get(3)) {
                ("GET", None) => json_response(
                    StatusCode::OK,
                    &json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                            "items": [node]}),
                ),
                ("GET", Some(name)) if node["metadata"]["name"] == *name => {
                    json_response(StatusCode::OK, &node)
                }
                ("GET", Some(name)) => not_found(&format!("nodes \"{name}\" not found")),
                (method, _) => status::method_not_allowed(&format!(
                    "the API fake's node is the kubelet's: {method} is not served on nodes"
                )),
            });
        }
        ["api", "v1", "namespaces"] | ["api", "v1", "namespaces", _] => {
            let name = parts.get(3).map(|s| s.to_string());
            let method = req.method().clone();
            let (content_type, user_agent) = writer_headers(req.headers());
            let body = req.into_body().collect().await.map_err(boxed)?.to_bytes();
            if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                let _serial = writing.lock().await;
                let write = NamespaceWrite {
                    method: &method,
                    path: &path,
                    query: &query,
                    content_type: &content_type,
                    user_agent: &user_agent,
                    body,
                };
                return Ok(namespace_write(&namespaces, write).await);
            }
            let dry_run = writes::dry_run(&query, &body);
            return Ok(namespace_route(&namespaces, &method, name, &query, dry_run));
        }
        [
            "apis",
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            rest @ ..,
        ] => {
            return Ok(crds(req.method(), rest, seldon));
        }
        [
            "apis",
            "apps",
            "v1",
            "namespaces",
            _,
            "deployments" | "replicasets",
            _,
            "scale",
        ]
        | [
            "apis",
            "machinelearning.seldon.io",
            "v1",
            "namespaces",
            _,
            "seldondeployments",
            _,
            "scale",
        ] => {
            let method = req.method().clone();
            let (content_type, user_agent) = writer_headers(req.headers());
            let body = req.into_body().collect().await.map_err(boxed)?.to_bytes();
            let write = scale::Write {
                method: &method,
                query: &query,
                content_type: &content_type,
                user_agent: &user_agent,
                body: &body,
            };
            return scale::route(&inner, &path, write).await;
        }
        ["api", "v1", "namespaces", _, "pods", pod, "log"] => {
            let container = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("container="))
                .unwrap_or_default();
            let text = logs
                .lock()
                .expect("logs")
                .get(&format!("{pod}/{container}"))
                .cloned();
            // A pod that wrote nothing has an empty log; one that does not
            // exist, none.
            let pod_path = path.trim_end_matches("/log").to_string();
            return Ok(match text {
                Some(t) => Response::new(Full::new(Bytes::from(t))),
                None if writes::get(&inner, pod_path).await.is_some() => {
                    Response::new(Full::new(Bytes::new()))
                }
                None => {
                    status::not_found_object(&format!("pods {pod:?} not found"), "", "pods", pod)
                }
            });
        }
        _ => {}
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(boxed)?.to_bytes();
    let (content_type, user_agent) = writer_headers(&parts.headers);
    let lookup = |path: String| {
        let inner = inner.clone();
        async move { writes::get(&inner, path).await }
    };
    // A patch or an apply that loses a race with another write (a
    // controller's) is redone on the new object, as the API server
    // retries it; a replace keeps its resourceVersion and gets the 409.
    let attempts = if parts.method == Method::PATCH { 5 } else { 1 };
    // One write at a time, as etcd's compare-and-swap orders them: read,
    // merge and store happen together.
    let _serial = if parts.method == Method::GET {
        None
    } else {
        Some(writing.lock().await)
    };
    for attempt in 1..=attempts {
        let verdict = writes::admit(
            &parts.method,
            &path,
            &query,
            &content_type,
            &user_agent,
            body.clone(),
            &namespaces,
            lookup,
        )
        .await;
        let mut headers = parts.headers.clone();
        let (method, uri, sent, warnings, replaced) = match verdict {
            writes::Verdict::Answer(answer) => return Ok(answer),
            writes::Verdict::Forward { body } => (
                parts.method.clone(),
                parts.uri.clone(),
                body,
                Vec::new(),
                false,
            ),
            // Stored as judged and merged here: created in its collection,
            // or put in place of what was there (through the status path
            // when only metadata changes, so the generation stays).
            writes::Verdict::Store {
                object,
                collection,
                warnings,
                spec_changed,
            } => {
                let (method, uri) = match collection {
                    Some(c) => (Method::POST, c),
                    None if spec_changed => (Method::PUT, path.clone()),
                    None if path.ends_with("/status") => (Method::PUT, path.clone()),
                    None => (Method::PUT, format!("{path}/status")),
                };
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                let uri = http::Uri::try_from(uri).map_err(boxed)?;
                let replaced = method == Method::PUT;
                (
                    method,
                    uri,
                    Bytes::from(object.to_string()),
                    warnings,
                    replaced,
                )
            }
        };
        headers.remove(http::header::CONTENT_LENGTH);
        let mut req = Request::new(kube::client::Body::from(sent));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let resp = inner.send(req).await.map_err(boxed)?;
        let (mut answer, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(boxed)?.to_bytes();
        if replaced
            && answer.status == StatusCode::CONFLICT
            && String::from_utf8_lossy(&bytes).contains("Resource version mismatch")
        {
            if attempt < attempts {
                continue;
            }
            let target = writes::Target::parse(&path);
            return Ok(status::modified(
                target.as_ref().map_or("", |t| t.resource.as_str()),
                target.as_ref().map_or("", |t| t.group.as_str()),
                target
                    .as_ref()
                    .and_then(|t| t.name.as_deref())
                    .unwrap_or_default(),
            ));
        }
        for w in warnings {
            if let Ok(v) = http::HeaderValue::from_str(&format!("299 - {w:?}")) {
                answer.headers.append(http::header::WARNING, v);
            }
        }
        return Ok(Response::from_parts(answer, Full::new(bytes)));
    }
    Err(boxed("no attempt was made"))
}

/// The apiextensions API, read-only: Seldon Core's CRD once Seldon Core is
/// "installed" (`--seldon`), as `kubectl get crd` and the xtask's install
/// checks read it.
fn crds(method: &Method, rest: &[&str], seldon: bool) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return status::method_not_allowed(
            "the API fake serves CustomResourceDefinitions read-only: Seldon Core's, when started with Seldon installed (--seldon)",
        );
    }
    let installed: Vec<Value> = seldon.then(seldon_crd::definition).into_iter().collect();
    match rest {
        [] => json_response(
            StatusCode::OK,
            &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                "metadata": {"resourceVersion": "1"}, "items": installed}),
        ),
        [name] => match installed
            .into_iter()
            .find(|c| c["metadata"]["name"] == *name)
        {
            Some(crd) => json_response(StatusCode::OK, &crd),
            None => status::not_found_object(
                &format!("customresourcedefinitions.apiextensions.k8s.io {name:?} not found"),
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                name,
            ),
        },
        _ => not_found("the server could not find the requested resource"),
    }
}

/// Whether a resource path goes on past `<resource>/<name>/<subresource>`
/// (`…/deployments/x/scale/y`), which no API server serves.
fn beyond_a_resource(parts: &[&str]) -> bool {
    let rest = match parts {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return false,
    };
    let most = if rest.first() == Some(&"namespaces") && rest.len() > 3 {
        5
    } else {
        3
    };
    rest.len() > most
}

/// A write's `Content-Type` (how its body is to be read) and `User-Agent`
/// (the field manager when none is named), each "" when absent.
fn writer_headers(headers: &http::HeaderMap) -> (String, String) {
    let header = |name: http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    (
        header(http::header::CONTENT_TYPE),
        header(http::header::USER_AGENT),
    )
}

/// Errors as owned text: keeps the routing future `Send` for any caller
/// (a boxed `dyn Error` with a borrowed lifetime would not be).
fn boxed(e: impl std::fmt::Display) -> BoxError {
    BoxError::from(e.to_string())
}

/// A create, replace or patch of a namespace, as it came.
struct NamespaceWrite<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    content_type: &'a str,
    user_agent: &'a str,
    body: Bytes,
}

/// Namespace writes are judged as every other write is ([`writes::admit`]:
/// schema, name rules, server-side apply and field managers, `dryRun`), then
/// kept in the namespace store with what the API server adds: the
/// `kubernetes.io/metadata.name` label, the `kubernetes` finalizer and
/// phase `Active`.
async fn namespace_write(
    store: &Mutex<BTreeMap<String, Value>>,
    w: NamespaceWrite<'_>,
) -> Response<Full<Bytes>> {
    let lookup = |path: String| {
        let found = path
            .rsplit('/')
            .next()
            .and_then(|n| store.lock().expect("namespaces").get(n).cloned());
        async move { found }
    };
    let verdict = writes::admit(
        w.method,
        w.path,
        w.query,
        w.content_type,
        w.user_agent,
        w.body,
        store,
        lookup,
    )
    .await;
    let mut ns = match verdict {
        writes::Verdict::Answer(answer) => return answer,
        // A patch of a namespace that is not there.
        writes::Verdict::Forward { .. } => {
            let name = w.path.rsplit('/').next().unwrap_or_default();
            return not_found(&format!("namespaces \"{name}\" not found"));
        }
        writes::Verdict::Store { object, .. } => object,
    };
    let Some(name) = ns["metadata"]["name"].as_str().map(str::to_string) else {
        return status::invalid(
            "",
            "Namespace",
            "",
            &[status::Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        );
    };
    let mut store = store.lock().expect("namespaces");
    let old = store.get(&name).cloned();
    if w.method == Method::POST && old.is_some() {
        return status::json_response(
            StatusCode::CONFLICT,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("namespaces {name:?} already exists"), "reason": "AlreadyExists",
                "code": 409, "details": {"name": name, "kind": "namespaces"}}),
        );
    }
    let base = old
        .clone()
        .unwrap_or_else(|| namespace_object(&name, &Value::Null));
    // What the server keeps, whatever the write says.
    for key in ["uid", "creationTimestamp", "deletionTimestamp"] {
        match base["metadata"].get(key) {
            Some(v) => ns["metadata"][key] = v.clone(),
            None => {
                if let Some(m) = ns["metadata"].as_object_mut() {
                    m.remove(key);
                }
            }
        }
    }
    if let Some(m) = ns["metadata"].as_object_mut() {
        m.remove("generation");
    }
    let version = base["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    ns["metadata"]["resourceVersion"] = json!((version + u64::from(old.is_some())).to_string());
    ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    if ns["spec"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        ns["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    ns["status"] = base["status"].clone();
    let dry_run = writes::query_param(w.query, "dryRun") == Some("All");
    if !dry_run {
        store.insert(name, ns.clone());
    }
    let code = if old.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    status::json_response(code, &ns)
}

fn namespace_route(
    store: &Mutex<BTreeMap<String, Value>>,
    method: &Method,
    name: Option<String>,
    query: &str,
    dry_run: bool,
) -> Response<Full<Bytes>> {
    let mut store = store.lock().expect("namespaces");
    match (method.as_str(), name) {
        ("GET", None) => {
            let selector = writes::query_param(query, "labelSelector")
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default();
            let items: Vec<Value> = store
                .values()
                .filter(|ns| matches(ns, &selector))
                .cloned()
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }
        ("GET", Some(n)) => match store.get(&n) {
            Some(ns) => json_response(StatusCode::OK, ns),
            None => not_found(&format!("namespaces \"{n}\" not found")),
        },
        // The API server refuses to delete the system namespaces; any
        // other goes Terminating, and the namespace controller
        // ([`controllers`]) removes it once its contents are gone.
        ("DELETE", Some(n)) if PROTECTED_NAMESPACES.contains(&n.as_str()) => status::forbidden(
            &format!("namespaces {n:?} is forbidden: this namespace may not be deleted"),
            "namespaces",
            &n,
        ),
        ("DELETE", Some(n)) => match store.get_mut(&n) {
            Some(ns) => {
                let mut terminating = ns.clone();
                if terminating["metadata"].get("deletionTimestamp").is_none() {
                    terminating["metadata"]["deletionTimestamp"] = json!(controllers::now());
                    terminating["status"]["phase"] = json!("Terminating");
                }
                if !dry_run {
                    *ns = terminating.clone();
                }
                json_response(StatusCode::OK, &terminating)
            }
            None => not_found(&format!("namespaces \"{n}\" not found")),
        },
        _ => status::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ),
    }
}

/// A Namespace object as the API server keeps it, with the name label it adds.
fn namespace_object(name: &str, labels: &Value) -> Value {
    let mut labels = if labels.is_object() {
        labels.clone()
    } else {
        json!({})
    };
    labels["kubernetes.io/metadata.name"] = json!(name);
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "resourceVersion": "1", "labels": labels,
            "uid": format!("00000000-0000-4000-8000-{:012x}", name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) & 0xffff_ffff_ffff),
            "creationTimestamp": controllers::now()},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}})
}

/// Whether a label selector (any form: `k=v`, `k in (a,b)`, `!k`) selects
/// `obj`, parsed as kube-fake-client parses them for the other kinds.
fn matches(obj: &Value, selector: &str) -> bool {
    if selector.trim().is_empty() {
        return true;
    }
    let labels: BTreeMap<String, String> = obj["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    kube_fake_client::label_selector::matches_label_selector(&labels, selector).unwrap_or(false)
}
