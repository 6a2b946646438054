//! A server's life after start-up: serving; draining once a signal came
//! (readiness false, every response says `Connection: close` so kept-alive
//! clients reconnect elsewhere instead of losing a request when the
//! listener closes); stopping, when clients that stopped sending are no
//! longer waited for. Also counts the requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use crate::probes::Readiness;

tokio::task_local! {
    /// The current request's place in flight, and through it the lifecycle
    /// of the server handling it (a task-local rather than a request
    /// extension, which would cost an insert on every request).
    pub static CURRENT: InFlight;
}

/// How request bodies are read (see [`crate::body::read`]).
#[derive(Clone, Debug)]
pub struct BodyPolicy {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Shared by the accept loop, every request and the body reader.
pub struct Lifecycle {
    pub(crate) readiness: Readiness,
    pub(crate) body: BodyPolicy,
    /// Admission of requests that carry a payload (`MAX_CONCURRENT_REQUESTS`).
    pub(crate) admission: Arc<Semaphore>,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Set once the server no longer waits for clients that are sending.
    stop_reading: watch::Sender<bool>,
}

impl Lifecycle {
    pub fn new(
        readiness: Readiness,
        body: BodyPolicy,
        max_concurrent_requests: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            readiness,
            body,
            admission: Arc::new(Semaphore::new(max_concurrent_requests)),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            stop_reading: watch::channel(false).0,
        })
    }

    /// Whether shutdown has begun (responses then close their connection).
    pub fn draining(&self) -> bool {
        !self.readiness.is_ready()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves once no request is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// From now on body reads end at once (the client gets 503).
    pub fn stop_reading(&self) {
        self.stop_reading.send_replace(true);
    }

    /// Resolves when [`Self::stop_reading`] has been called.
    pub async fn reading_stopped(&self) {
        let mut rx = self.stop_reading.subscribe();
        // An error means the sender is gone: the server is gone too.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight; derefs to its server's lifecycle.
pub struct InFlight(Arc<Lifecycle>);

impl std::ops::Deref for InFlight {
    type Target = Arc<Lifecycle>;

    fn deref(&self) -> &Arc<Lifecycle> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
