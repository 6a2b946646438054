//! The benchmark's reference: the smallest axum server that returns the same
//! JSON as `/test_api`, with none of our probes, metrics or shutdown handling.
//! `cargo xtask bench test-api` runs it beside the real service.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
struct Addrs(SocketAddr, SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Addrs {
    fn connect_info(s: IncomingStream<'_, TcpListener>) -> Self {
        let local = s.io().local_addr().unwrap_or(*s.remote_addr());
        Addrs(*s.remote_addr(), local)
    }
}

async fn handler(ConnectInfo(Addrs(remote, local)): ConnectInfo<Addrs>) -> Json<Value> {
    Json(json!({"message": format!("Hello {}, you've reached {}", remote.ip(), local.ip())}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new().route("/test_api", get(handler));
    axum::serve(listener, app.into_make_service_with_connect_info::<Addrs>()).await?;
    Ok(())
}
