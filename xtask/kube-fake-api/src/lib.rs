//! A stateful in-memory Kubernetes API for tests:
//! kube-fake-client (server-side apply, status subresources, selectors,
//! custom resources) plus the few endpoints it does not serve, which the
//! engine needs: discovery, cluster-scoped namespaces, and pod logs. Use it
//! in-process ([`FakeCluster::client`]) or over HTTP ([`FakeCluster::serve`]),
//! so the real `kube-engine` binary can talk to it through a kubeconfig; an
//! optional controller plays the Deployment controller and the Seldon operator.

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
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Client, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Where a port-forward to a pod really goes: `namespace/pod` → address.
    pub backends: Arc<Mutex<HashMap<String, SocketAddr>>>,
    state: State,
}

/// What both the in-process client and the HTTP server route through.
#[derive(Clone)]
struct State {
    inner: Client,
    logs: Arc<Mutex<HashMap<String, String>>>,
    namespaces: Arc<Mutex<BTreeMap<String, Value>>>,
    backends: Arc<Mutex<HashMap<String, SocketAddr>>>,
    seldon: bool,
}

#[derive(Default)]
pub struct Setup {
    pub seldon_installed: bool,
    pub objects: Vec<Value>,
    pub namespaces: Vec<Value>,
}

pub async fn cluster(setup: Setup) -> FakeCluster {
    let mut builder = kube_fake_client::ClientBuilder::new()
        .with_status_subresource::<Deployment>()
        .with_runtime_objects(setup.objects);
    if setup.seldon_installed {
        builder = builder
            .with_resource::<SeldonDeployment>()
            .with_status_subresource::<SeldonDeployment>();
    }
    let inner = builder.build().await.expect("fake client");
    let logs = Arc::new(Mutex::new(HashMap::new()));
    let namespaces = Arc::new(Mutex::new(
        setup
            .namespaces
            .into_iter()
            .map(|ns| {
                (
                    ns["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ns,
                )
            })
            .collect::<BTreeMap<_, _>>(),
    ));
    let backends = Arc::new(Mutex::new(HashMap::new()));
    let state = State {
        inner,
        logs: logs.clone(),
        namespaces: namespaces.clone(),
        backends: backends.clone(),
        seldon: setup.seldon_installed,
    };
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
    }
}

impl FakeCluster {
    /// Serve the API over plain HTTP on 127.0.0.1; returns the address.
    pub async fn serve(&self) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
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
                                return Ok::<_, std::convert::Infallible>(portforward(req, target));
                            }
                            let (parts, body) = req.into_parts();
                            let answer = match body.collect().await {
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
                                Err(e) => Err(boxed(e)),
                            };
                            Ok(answer.unwrap_or_else(|e| {
                                json_response(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    &json!({"kind": "Status", "message": e.to_string()}),
                                )
                            }))
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

    /// Play the controllers: every Deployment becomes fully available and
    /// every SeldonDeployment `Available`, shortly after it is applied.
    pub fn start_controller(&self) {
        let client = self.client.clone();
        let seldon = self.state.seldon;
        tokio::spawn(async move {
            loop {
                let _ = reconcile(&client, seldon).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

async fn reconcile(client: &Client, seldon: bool) -> kube::Result<()> {
    let all: Api<Deployment> = Api::all(client.clone());
    for d in all.list(&ListParams::default()).await?.items {
        ensure_pod(client, &d).await?;
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = json!({"observedGeneration": d.metadata.generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        if d.status.as_ref().and_then(|s| s.observed_generation) != d.metadata.generation {
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            api.patch_status(
                &d.metadata.name.clone().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        }
    }
    if seldon {
        let all: Api<SeldonDeployment> = Api::all(client.clone());
        for sd in all.list(&ListParams::default()).await?.items {
            if sd.status.is_none() {
                let ns = sd.metadata.namespace.clone().unwrap_or_default();
                let api: Api<SeldonDeployment> = Api::namespaced(client.clone(), &ns);
                api.patch_status(
                    &sd.metadata.name.clone().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"state": "Available"}})),
                )
                .await?;
            }
        }
    }
    Ok(())
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
    let backend = *state.backends.lock().ok()?.get(&format!("{ns}/{pod}"))?;
    Some((backend, port))
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

/// One ready pod per Deployment, `<name>-0`, with its template's labels and
/// ports, owned by it.
async fn ensure_pod(client: &Client, d: &Deployment) -> kube::Result<()> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = format!("{}-0", d.metadata.name.clone().unwrap_or_default());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if pods.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": template.metadata.and_then(|m| m.labels),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d.metadata.name, "uid": d.metadata.uid}]},
        "spec": template.spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let pod: Pod = serde_json::from_value(pod).map_err(kube::Error::SerdeError)?;
    pods.create(&Default::default(), &pod).await?;
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

async fn route(
    req: Request<kube::client::Body>,
    state: State,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let State {
        inner,
        logs,
        namespaces,
        seldon,
        ..
    } = state;
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1"] => return Ok(json_response(StatusCode::OK, &discovery_core())),
        ["apis", "apps", "v1"] => return Ok(json_response(StatusCode::OK, &discovery_apps())),
        ["apis", "networking.k8s.io", "v1"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery_group(
                    "networking.k8s.io/v1",
                    &[("networkpolicies", "NetworkPolicy")],
                ),
            ));
        }
        ["apis", "policy", "v1"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery_group(
                    "policy/v1",
                    &[("poddisruptionbudgets", "PodDisruptionBudget")],
                ),
            ));
        }
        ["apis", "machinelearning.seldon.io", "v1"] if seldon => {
            return Ok(json_response(StatusCode::OK, &discovery_seldon()));
        }
        ["apis", _, _] => {
            return Ok(not_found(
                "the server could not find the requested resource",
            ));
        }
        ["api", "v1", "namespaces"] | ["api", "v1", "namespaces", _] => {
            let name = parts.get(3).map(|s| s.to_string());
            let method = req.method().clone();
            let body = req.into_body().collect().await.map_err(boxed)?.to_bytes();
            return Ok(namespace_route(&namespaces, &method, name, &query, &body));
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
            return Ok(match text {
                Some(t) => Response::new(Full::new(Bytes::from(t))),
                None => not_found("no logs"),
            });
        }
        _ => {}
    }
    let resp = inner.send(req).await.map_err(boxed)?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(boxed)?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(bytes)))
}

/// Errors as owned text: keeps the routing future `Send` for any caller
/// (a boxed `dyn Error` with a borrowed lifetime would not be).
fn boxed(e: impl std::fmt::Display) -> BoxError {
    BoxError::from(e.to_string())
}

fn namespace_route(
    store: &Mutex<BTreeMap<String, Value>>,
    method: &Method,
    name: Option<String>,
    query: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut store = store.lock().expect("namespaces");
    match (method.as_str(), name) {
        ("GET", None) => {
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(|s| {
                    s.replace("%3D", "=")
                        .replace("%2F", "/")
                        .replace("%2C", ",")
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
        ("PATCH", Some(n)) => {
            let patch: Value = serde_json::from_slice(body).unwrap_or_default();
            let entry = store.entry(n.clone()).or_insert_with(|| {
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "resourceVersion": "1"}})
            });
            if let Some(labels) = patch["metadata"].get("labels") {
                entry["metadata"]["labels"] = labels.clone();
            }
            json_response(StatusCode::OK, entry)
        }
        ("DELETE", Some(n)) => match store.remove(&n) {
            Some(ns) => json_response(StatusCode::OK, &ns),
            None => not_found(&format!("namespaces \"{n}\" not found")),
        },
        _ => json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({})),
    }
}

/// `k=v,k2=v2` selectors only: what the engine sends.
fn matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn not_found(message: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": "NotFound", "code": 404}),
    )
}

fn resource(name: &str, kind: &str, namespaced: bool) -> Value {
    json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
}

fn discovery_core() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
        resource("namespaces", "Namespace", false),
        resource("pods", "Pod", true),
        resource("pods/log", "Pod", true),
        resource("services", "Service", true),
        resource("events", "Event", true),
        resource("configmaps", "ConfigMap", true),
    ]})
}

fn discovery_apps() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
        resource("deployments", "Deployment", true),
        resource("deployments/status", "Deployment", true),
        resource("replicasets", "ReplicaSet", true),
    ]})
}

/// A group's namespaced resources (only what the manifests use).
fn discovery_group(group_version: &str, kinds: &[(&str, &str)]) -> Value {
    let resources: Vec<Value> = kinds.iter().map(|(p, k)| resource(p, k, true)).collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn discovery_seldon() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "machinelearning.seldon.io/v1", "resources": [
        resource("seldondeployments", "SeldonDeployment", true),
        resource("seldondeployments/status", "SeldonDeployment", true),
    ]})
}
