//! SIGTERM and SIGINT start a graceful shutdown. As PID 1 in a container a
//! process gets no default handler for either, so without this `docker stop`
//! waits its full timeout and then kills.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::probes::Readiness;

/// The handlers, installed before the service reports itself listening, so
/// that a signal arriving right after start-up is never the default action.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn install() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Resolves when the process should stop accepting connections: after a
    /// signal, readiness is turned off and `drain` has passed.
    pub async fn wait(mut self, readiness: Readiness, drain: Duration) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
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
}
