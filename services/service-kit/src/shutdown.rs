//! SIGTERM and SIGINT start a graceful shutdown. As PID 1 in a container a
//! process gets no default handler for either, so without this `docker stop`
//! waits its full timeout and then kills.

use std::time::Duration;

use crate::probes::Readiness;

/// Resolves when the process should stop accepting connections: after a
/// signal, readiness is turned off and `drain` has passed.
pub async fn signal(readiness: Readiness, drain: Duration) {
    let name = wait_for_signal().await;
    readiness.set(false);
    tracing::info!(
        signal = name,
        drain_secs = drain.as_secs(),
        "shutdown requested; draining"
    );
    if !drain.is_zero() {
        tokio::time::sleep(drain).await;
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            // Without handlers the default action (exit) still applies; keep
            // serving rather than stop at once.
            tracing::error!(error = %e, "cannot install signal handlers");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
