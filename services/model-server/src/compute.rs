//! Where a request's work runs: at most `instances` at once (the model's
//! instances; by default the CPUs the process may use), a bounded queue
//! of requests waiting for one, large requests never holding every
//! instance (one is kept for small ones), and work that takes long off
//! the I/O threads.
//!
//! The queue is bounded in requests (`MAX_QUEUE_SIZE`) and in time: once
//! the request at the head of a lane (large or small) has waited longer
//! than `MAX_QUEUE_WAIT_MS`, further requests of that lane are refused
//! until it moves. A refused request is a 503 with `Retry-After`, and the
//! readiness probes say overloaded while the queue is past a bound, so
//! that a cluster sends the work elsewhere. (The wait is measured, not
//! predicted: a request's cost does not follow its size.)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use crate::model::ModelError;

/// The most instances (and ONNX Runtime threads per run) a model may
/// have: far above any CPU count a pod gets, far below what exhausts
/// memory.
pub const MAX_INSTANCES: usize = 256;

/// Work that took less than this (a moving average) runs on the I/O
/// thread that read the request: a thread hop would cost it more.
const INLINE_SECS: f64 = 0.000_2;

/// How the compute is shared out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComputeSettings {
    /// Requests computed at once (`MODEL_INSTANCES`).
    pub instances: usize,
    /// Requests that may wait for an instance (`MAX_QUEUE_SIZE`).
    pub max_queue: usize,
    /// The longest a lane's head may wait before the lane refuses more
    /// (`MAX_QUEUE_WAIT_MS`).
    pub max_wait: Duration,
}

impl ComputeSettings {
    /// `instances` at once; a queue of at most 256 requests and 5 s.
    pub fn new(instances: usize) -> Self {
        Self {
            instances: instances.max(1),
            max_queue: 256,
            max_wait: Duration::from_secs(5),
        }
    }

    /// `MODEL_INSTANCES` (default: the CPUs the process may use, its
    /// cgroup's quota where a pod's CPU limit sets one; see
    /// `std::thread::available_parallelism`), `MAX_QUEUE_SIZE` (default
    /// 256) and `MAX_QUEUE_WAIT_MS` (default 5000).
    ///
    /// # Errors
    /// A value that is not a positive whole number.
    pub fn from_env(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let positive = |key: &str, what: &str| -> anyhow::Result<Option<usize>> {
            match service_kit::env::parse::<usize>(lookup, key, what)? {
                Some(0) => anyhow::bail!("{key}=0: give at least 1"),
                n => Ok(n),
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let instances = positive("MODEL_INSTANCES", "a count")?.unwrap_or(cpus);
        if instances > MAX_INSTANCES {
            anyhow::bail!(
                "MODEL_INSTANCES={instances}: at most {MAX_INSTANCES} (each instance of an ONNX \
                 Runtime model is a session with its own copy of the weights; this process may \
                 use {cpus} CPU(s))"
            );
        }
        let mut settings = Self::new(instances);
        if let Some(n) = positive("MAX_QUEUE_SIZE", "a count of requests")? {
            settings.max_queue = n;
        }
        if let Some(ms) = positive("MAX_QUEUE_WAIT_MS", "milliseconds")? {
            settings.max_wait = Duration::from_millis(ms as u64);
        }
        Ok(settings)
    }
}

/// The compute of one model.
pub struct Compute {
    settings: ComputeSettings,
    slots: Arc<Semaphore>,
    /// Slots a large request may hold: all but one, when there are two.
    large: Arc<Semaphore>,
    queued: AtomicUsize,
    /// When each waiting request of a lane came, by arrival (small, large).
    lanes: [Mutex<BTreeSet<(Instant, u64)>>; 2],
    /// Names arrivals apart in `lanes`.
    arrivals: AtomicU64,
    /// A moving average of a run's seconds, as f64 bits.
    cost: AtomicU64,
    metrics: ComputeMetrics,
}

/// Queue and compute metrics (KServe's `request_*_seconds`, Triton's
/// queue and compute split).
#[derive(Clone)]
pub struct ComputeMetrics {
    /// Seconds a request waited for an instance.
    queue: Histogram,
    /// Seconds a request's work took (decode, run, encode).
    compute: Histogram,
    /// Requests waiting for an instance.
    queued: Gauge,
    /// Requests being computed.
    in_flight: Gauge,
}

/// One more request in flight until dropped (a client that goes away
/// mid-compute drops it too).
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ComputeMetrics {
    /// Counts a request in flight until what it returns is dropped.
    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// A request that waited `secs` for an instance.
    pub(crate) fn waited(&self, secs: f64) {
        self.queue.observe(secs);
    }

    /// Work (a request's, or a batch's run) that took `secs`.
    pub(crate) fn computed(&self, secs: f64) {
        self.compute.observe(secs);
    }

    /// Requests waiting now.
    #[cfg(test)]
    pub(crate) fn queued_now(&self) -> i64 {
        self.queued.get()
    }

    /// Requests waiting, as the batch queue counts them.
    pub(crate) fn set_queued(&self, n: usize) {
        self.queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn new() -> Self {
        Self {
            queue: Histogram::new(exponential_buckets(0.000_01, 2.0, 22)),
            compute: Histogram::new(exponential_buckets(0.000_01, 2.0, 22)),
            queued: Gauge::default(),
            in_flight: Gauge::default(),
        }
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "model_queue_duration_seconds",
            "Time a request waited for a model instance",
            self.queue.clone(),
        );
        r.register(
            "model_compute_duration_seconds",
            "Time a request's work took on its instance (decode, run, encode)",
            self.compute.clone(),
        );
        r.register(
            "model_queued_requests",
            "Requests waiting for a model instance",
            self.queued.clone(),
        );
        r.register(
            "model_in_flight_requests",
            "Requests being computed",
            self.in_flight.clone(),
        );
    }
}

/// A request in the queue, out of it when dropped (a client that goes
/// away while its request waits leaves the queue).
struct Waiting<'a> {
    compute: &'a Compute,
    lane: usize,
    key: (Instant, u64),
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.compute.queued.fetch_sub(1, Ordering::SeqCst);
        self.compute.lane(self.lane).remove(&self.key);
        self.compute.metrics.queued.dec();
    }
}

impl Compute {
    pub fn new(settings: ComputeSettings) -> Self {
        let large = if settings.instances > 1 {
            settings.instances - 1
        } else {
            1
        };
        Self {
            settings,
            slots: Arc::new(Semaphore::new(settings.instances)),
            large: Arc::new(Semaphore::new(large)),
            queued: AtomicUsize::new(0),
            lanes: Default::default(),
            arrivals: AtomicU64::new(0),
            cost: AtomicU64::new(0f64.to_bits()),
            metrics: ComputeMetrics::new(),
        }
    }

    pub fn metrics(&self) -> &ComputeMetrics {
        &self.metrics
    }

    /// The waiting requests of `lane` (0 small, 1 large).
    fn lane(&self, lane: usize) -> std::sync::MutexGuard<'_, BTreeSet<(Instant, u64)>> {
        // The set is whole whatever panicked while it was held.
        self.lanes[lane]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why the model takes no more work now: its queue is past a bound.
    pub fn overloaded(&self) -> Option<String> {
        let queued = self.queued.load(Ordering::SeqCst);
        (0..2).find_map(|lane| self.past_bounds(queued, lane).map(|(why, _)| why))
    }

    /// Whether the queue (`queued` requests) or `lane` is past a bound:
    /// why, and the seconds a client should wait before it tries again.
    fn past_bounds(&self, queued: usize, lane: usize) -> Option<(String, u64)> {
        let head = self.lane(lane).first().map(|(at, _)| at.elapsed());
        let retry = head.map_or(1, |h| h.as_secs().max(1));
        let instances = self.settings.instances;
        if queued >= self.settings.max_queue {
            return Some((
                format!(
                    "{queued} requests wait for the model's {instances} instance(s) \
                     (MAX_QUEUE_SIZE={})",
                    self.settings.max_queue
                ),
                retry,
            ));
        }
        let head = head.filter(|h| *h > self.settings.max_wait)?;
        Some((
            format!(
                "the oldest {} request waiting for the model's {instances} instance(s) has \
                 waited {:.1} s (MAX_QUEUE_WAIT_MS={})",
                if lane == 1 { "large" } else { "small" },
                head.as_secs_f64(),
                self.settings.max_wait.as_millis()
            ),
            retry,
        ))
    }

    /// Runs `work` (one request's decode, run and encode) on an instance
    /// when one is free: here if such work has been quick, else on the
    /// blocking pool. `large`: a request big enough to leave one instance
    /// to the others.
    ///
    /// # Errors
    /// `ModelError::Overloaded` when `max_queue` requests wait already;
    /// what `work` returns.
    pub async fn run<T, E>(
        &self,
        large: bool,
        work: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<ModelError> + Send + 'static,
    {
        let lane = usize::from(large);
        if let Some((why, retry_after_secs)) =
            self.past_bounds(self.queued.load(Ordering::SeqCst), lane)
        {
            return Err(E::from(ModelError::Overloaded {
                retry_after_secs,
                why: format!("the model is busy: {why}; try again later"),
            }));
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.metrics.queued.inc();
        let start = Instant::now();
        let key = (start, self.arrivals.fetch_add(1, Ordering::Relaxed));
        self.lane(lane).insert(key);
        let waiting = Waiting {
            compute: self,
            lane,
            key,
        };
        let closed = |_| E::from(ModelError::Internal("the model's queue is closed".into()));
        let _large = if large {
            Some(
                Arc::clone(&self.large)
                    .acquire_owned()
                    .await
                    .map_err(closed)?,
            )
        } else {
            None
        };
        let _slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(closed)?;
        drop(waiting);
        self.metrics.waited(start.elapsed().as_secs_f64());
        let in_flight = self.metrics.in_flight();
        let ran = Instant::now();
        let cost = f64::from_bits(self.cost.load(Ordering::Relaxed));
        let result = if !large && cost < INLINE_SECS {
            work()
        } else {
            blocking(work).await
        };
        let took = ran.elapsed().as_secs_f64();
        drop(in_flight);
        self.metrics.computed(took);
        // Moving averages over about the last eight requests.
        let average = |now: f64, was: f64| {
            if was == 0.0 {
                now
            } else {
                was + (now - was) / 8.0
            }
        };
        self.cost
            .store(average(took, cost).to_bits(), Ordering::Relaxed);
        result
    }
}

/// `work` on the blocking pool, its failure to finish (a panic) made
/// the caller's error. (Tried: tokio's `block_in_place`, which keeps the
/// work on this thread and saves the hop's two context switches, 0.1 ms
/// a request on a small VM; the thread that reads requests then changes,
/// their buffers spread over more malloc arenas, and the memory test's
/// peak rose from 104 to 136 MiB.)
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ModelError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(ModelError::Internal(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(instances: usize, max_queue: usize, max_wait_ms: u64) -> ComputeSettings {
        ComputeSettings {
            instances,
            max_queue,
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    /// Work that takes `ms` and says who it was.
    fn sleeps(ms: u64, who: &'static str) -> impl FnOnce() -> Result<&'static str, ModelError> {
        move || {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(who)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_queue_is_refused_with_retry_after_and_leaves_when_clients_go() {
        let c = Arc::new(Compute::new(settings(1, 2, 100_000)));
        let running = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.run(true, sleeps(400, "first")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let c = Arc::clone(&c);
                tokio::spawn(async move { c.run(false, sleeps(1, "queued")).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            c.overloaded()
                .is_some_and(|why| why.contains("MAX_QUEUE_SIZE=2"))
        );
        match c.run(false, sleeps(1, "refused")).await {
            Err(ModelError::Overloaded {
                retry_after_secs,
                why,
            }) => {
                assert!(retry_after_secs >= 1);
                assert!(why.contains("2 requests wait"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // A client that goes away leaves the queue.
        for w in &waiting {
            w.abort();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.overloaded(), None);
        assert_eq!(running.await.ok().and_then(Result::ok), Some("first"));
        assert_eq!(c.run(false, sleeps(1, "later")).await, Ok("later"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lane_whose_head_waited_too_long_refuses_more() {
        let c = Arc::new(Compute::new(settings(1, 100, 200)));
        let running = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.run(true, sleeps(600, "running")).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let queued = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.run(true, sleeps(1, "queued")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.overloaded(), None, "the head has waited 50 ms of 200");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            c.overloaded()
                .is_some_and(|why| why.contains("oldest large request")
                    && why.contains("MAX_QUEUE_WAIT_MS=200")),
            "{:?}",
            c.overloaded()
        );
        match c.run(true, sleeps(1, "refused")).await {
            Err(ModelError::Overloaded {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        // The small lane has no one waiting long: it is still taken.
        let small = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.run(false, sleeps(1, "small")).await }
        });
        assert_eq!(running.await.ok().and_then(Result::ok), Some("running"));
        assert_eq!(queued.await.ok().and_then(Result::ok), Some("queued"));
        assert_eq!(small.await.ok().and_then(Result::ok), Some("small"));
        assert_eq!(c.overloaded(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_client_that_goes_away_mid_compute_is_no_longer_in_flight() {
        let c = Arc::new(Compute::new(settings(1, 10, 100_000)));
        let gone = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.run(true, sleeps(300, "gone")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.metrics.in_flight.get(), 1);
        gone.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.metrics.in_flight.get(), 0);
        assert_eq!(c.metrics.queued.get(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn large_requests_leave_an_instance_to_small_ones() {
        let c = Arc::new(Compute::new(settings(2, 100, 100_000)));
        let large: Vec<_> = (0..3)
            .map(|_| {
                let c = Arc::clone(&c);
                tokio::spawn(async move { c.run(true, sleeps(300, "large")).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        assert_eq!(c.run(false, sleeps(1, "small")).await, Ok("small"));
        assert!(
            start.elapsed() < Duration::from_millis(150),
            "the small request waited {:?} behind large ones",
            start.elapsed()
        );
        for l in large {
            assert_eq!(l.await.ok().and_then(Result::ok), Some("large"));
        }
    }
}
