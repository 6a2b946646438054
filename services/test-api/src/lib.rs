//! The test API's one route. The server bootstrap lives in `service-kit`.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use service_kit::addrs::display_ip;
use service_kit::{ConnAddrs, ServeEnv, Service};

#[derive(Serialize)]
pub struct Greeting {
    pub message: String,
}

/// Which address to report as ours: the pod IP when Kubernetes tells us,
/// otherwise the address the client actually reached.
#[derive(Clone, Copy)]
struct ServerIp(Option<IpAddr>);

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
        name: "test-api",
        version: env!("CARGO_PKG_VERSION"),
        routes: Router::new()
            .route("/test_api", get(test_api))
            .with_state(ServerIp(env.pod_ip)),
        metrics: Box::new(|_| {}),
    }
}
