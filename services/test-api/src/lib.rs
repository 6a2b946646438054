//! The test API's one route. The server bootstrap lives in `service-kit`.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use service_kit::addrs::display_ip;
use service_kit::{ConnAddrs, ServeEnv, Service};

/// `{"message": "Hello <client ip>, you've reached <server ip>"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Greeting {
    #[schema(example = "Hello 10.0.0.2, you've reached 10.0.0.7")]
    pub message: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(test_api), components(schemas(Greeting)))]
struct ApiDoc;

/// Which address to report as ours: the pod IP when Kubernetes tells us,
/// otherwise the address the client actually reached.
#[derive(Clone, Copy)]
struct ServerIp(Option<IpAddr>);

/// The tutorial's route: who called, and which address answered.
#[utoipa::path(get, path = "/test_api", tag = "test-api", responses(
    (status = 200, description = "The client's and the server's addresses", body = Greeting)))]
async fn test_api(
    State(ServerIp(pod_ip)): State<ServerIp>,
    ConnectInfo(conn): ConnectInfo<ConnAddrs>,
) -> Json<Greeting> {
    let server = pod_ip.unwrap_or_else(|| display_ip(conn.local.ip()));
    Json(Greeting {
        message: format!(
            "Hello {}, you've reached {}",
            display_ip(conn.remote.ip()),
            server
        ),
    })
}

/// The test API as a service for `service_kit::run`.
pub fn service(env: &ServeEnv) -> Service {
    Service {
        busy: None,
        name: "test-api",
        version: env!("CARGO_PKG_VERSION"),
        routes: Router::new()
            .route("/test_api", get(test_api))
            .with_state(ServerIp(env.pod_ip)),
        metrics: Box::new(|_| {}),
        openapi: <ApiDoc as utoipa::OpenApi>::openapi(),
    }
}
