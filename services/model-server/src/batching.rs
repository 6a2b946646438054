//! Dynamic batching, as Triton's dynamic batcher and MLServer's adaptive
//! batching do it: requests of a model with a batch dimension wait up to
//! `max_queue_delay` for others; requests whose tensors agree on every
//! other dimension are joined along the first, run once, and split back.
//! A run that fails is run again request by request, so one request's bad
//! input does not fail its batch mates; a request whose client has gone
//! is dropped before it runs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use inference_core::Tensor;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::oneshot;

use crate::api::ModelSlot;
use crate::model::ModelError;

/// How requests are batched (off when `max_batch_size` is 1).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSettings {
    /// The most rows a run takes (`MAX_BATCH_SIZE`); a request with more
    /// runs alone.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others
    /// (`MAX_QUEUE_DELAY_US`).
    pub max_queue_delay: Duration,
    /// Row counts at which a batch runs without waiting longer
    /// (`PREFERRED_BATCH_SIZES`, comma-separated); `max_batch_size` always
    /// is one.
    pub preferred: Vec<usize>,
    /// The most requests that may wait for a batch (`MAX_QUEUE_SIZE`).
    pub max_queue: usize,
    /// Once the oldest waiting request has waited this long, more are
    /// refused (`MAX_QUEUE_WAIT_MS`).
    pub max_wait: Duration,
}

impl BatchSettings {
    /// `MAX_BATCH_SIZE` (default 1: no batching), `MAX_QUEUE_DELAY_US`
    /// (default 500), `PREFERRED_BATCH_SIZES`; the queue's bounds from the
    /// compute settings.
    ///
    /// # Errors
    /// Values that are not whole numbers, a size of 0, a delay longer than
    /// the queue may wait.
    pub fn from_env(
        lookup: &impl Fn(&str) -> Option<String>,
        compute: &crate::compute::ComputeSettings,
    ) -> anyhow::Result<Self> {
        let max_batch_size =
            service_kit::env::parse::<usize>(lookup, "MAX_BATCH_SIZE", "rows")?.unwrap_or(1);
        if max_batch_size == 0 {
            anyhow::bail!("MAX_BATCH_SIZE=0: give at least 1 (1 turns batching off)");
        }
        let delay = service_kit::env::parse::<u64>(lookup, "MAX_QUEUE_DELAY_US", "microseconds")?
            .unwrap_or(500);
        if Duration::from_micros(delay) >= compute.max_wait {
            anyhow::bail!(
                "MAX_QUEUE_DELAY_US={delay}: a batch may wait at most less than \
                 MAX_QUEUE_WAIT_MS ({} ms), which refuses requests that wait longer",
                compute.max_wait.as_millis()
            );
        }
        let mut preferred = Vec::new();
        if let Some(list) = lookup("PREFERRED_BATCH_SIZES").filter(|l| !l.trim().is_empty()) {
            for item in list.split(',') {
                match item.trim().parse::<usize>() {
                    Ok(n) if n > 0 && n <= max_batch_size => preferred.push(n),
                    _ => anyhow::bail!(
                        "PREFERRED_BATCH_SIZES={list:?}: each size is a number of rows from 1 \
                         to MAX_BATCH_SIZE ({max_batch_size}), comma-separated"
                    ),
                }
            }
        }
        Ok(Self {
            max_batch_size,
            max_queue_delay: Duration::from_micros(delay),
            preferred,
            max_queue: compute.max_queue,
            max_wait: compute.max_wait,
        })
    }

    pub fn enabled(&self) -> bool {
        self.max_batch_size > 1
    }
}

/// The answer to a request queued for a batch: awaited, or waited for on
/// a blocking thread.
pub struct Answer(oneshot::Receiver<Result<Vec<Tensor>, ModelError>>);

impl Answer {
    /// Waits here (not on an async runtime's thread).
    ///
    /// # Errors
    /// What the run gave; `Internal` if the batch was dropped.
    pub fn blocking_wait(self) -> Result<Vec<Tensor>, ModelError> {
        self.0
            .blocking_recv()
            .map_err(|_| ModelError::Internal("the batch was dropped".into()))?
    }
}

impl std::future::IntoFuture for Answer {
    type Output = Result<Vec<Tensor>, ModelError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.0
                .await
                .map_err(|_| ModelError::Internal("the batch was dropped".into()))?
        })
    }
}

/// A request waiting for its batch.
struct Pending {
    inputs: Vec<Tensor>,
    rows: usize,
    came: Instant,
    reply: oneshot::Sender<Result<Vec<Tensor>, ModelError>>,
}

/// The batch queue of one model and the threads that run its batches.
pub struct Batcher {
    settings: BatchSettings,
    queue: Mutex<VecDeque<Pending>>,
    arrived: Condvar,
    /// Queue and compute times, queued and in-flight requests (shared
    /// with `compute`, which batching stands in for).
    metrics: crate::compute::ComputeMetrics,
    /// Rows per run.
    pub(crate) sizes: Histogram,
}

impl Batcher {
    /// Starts `instances` threads that run batches of the model in `slot`.
    ///
    /// # Errors
    /// A thread that cannot be started.
    pub fn start(
        settings: BatchSettings,
        slot: Arc<ModelSlot>,
        instances: usize,
        metrics: crate::compute::ComputeMetrics,
    ) -> std::io::Result<Arc<Self>> {
        let batcher = Arc::new(Self {
            settings,
            queue: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            metrics,
            sizes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        });
        for i in 0..instances.max(1) {
            let b = Arc::clone(&batcher);
            let slot = Arc::clone(&slot);
            std::thread::Builder::new()
                .name(format!("batch-{i}"))
                .spawn(move || {
                    loop {
                        let batch = b.next_batch();
                        b.run(&slot, batch);
                    }
                })?;
        }
        Ok(batcher)
    }

    /// Why the model takes no more work now: its batch queue is past a
    /// bound (as many requests as it may hold, or one that has waited as
    /// long as any may).
    pub fn overloaded(&self) -> Option<String> {
        self.past_bounds(&self.lock())
    }

    fn past_bounds(&self, queue: &VecDeque<Pending>) -> Option<String> {
        let waiting = queue.len();
        if waiting >= self.settings.max_queue {
            return Some(format!(
                "{waiting} requests wait for a batch (MAX_QUEUE_SIZE={})",
                self.settings.max_queue
            ));
        }
        let oldest = queue.iter().map(|p| p.came.elapsed()).max()?;
        (oldest > self.settings.max_wait).then(|| {
            format!(
                "the oldest of {waiting} requests waiting for a batch has waited {:.1} s \
                 (MAX_QUEUE_WAIT_MS={})",
                oldest.as_secs_f64(),
                self.settings.max_wait.as_millis()
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        // A queue is whole whatever panicked while it was held.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `inputs` (checked, in the model's order, a batch dimension
    /// first) in a batch with others, waiting for the answer here (a
    /// blocking-pool thread).
    ///
    /// # Errors
    /// `Overloaded` when `max_queue` requests wait already; what the run
    /// of this request gives.
    pub fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        self.submit(inputs)?.blocking_wait()
    }

    /// Queues `inputs` (as `infer` takes them) for a batch; the answer
    /// comes through what it returns. Dropping that takes the request out
    /// of the queue before it runs (a client that went away).
    ///
    /// # Errors
    /// `Overloaded` when `max_queue` requests wait already.
    pub fn submit(&self, inputs: Vec<Tensor>) -> Result<Answer, ModelError> {
        let rows = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = self.lock();
            if let Some(why) = self.past_bounds(&queue) {
                return Err(ModelError::Overloaded {
                    retry_after_secs: 1,
                    why: format!("the model is busy: {why}; try again later"),
                });
            }
            queue.push_back(Pending {
                inputs,
                rows,
                came: Instant::now(),
                reply,
            });
            self.metrics.set_queued(queue.len());
            // A batch thread is woken only when this request can change
            // what one does: the first starts a batch's wait, and enough
            // rows that go with it end it. Waking every thread on every
            // request costs a 64-row batch over a hundred context switches.
            if queue.len() == 1 || self.ready(self.fitting(&queue).0) {
                self.arrived.notify_one();
            }
        }
        Ok(Answer(answer))
    }

    /// Waits for the first request, then up to `max_queue_delay` from its
    /// arrival for more that fit with it; takes them off the queue.
    fn next_batch(&self) -> Vec<Pending> {
        let mut queue = self.lock();
        loop {
            // Requests whose clients have gone are dropped unrun.
            queue.retain(|p| !p.reply.is_closed());
            self.metrics.set_queued(queue.len());
            if let Some(first) = queue.front() {
                let (rows, _) = self.fitting(&queue);
                let full = self.ready(rows) || first.rows >= self.settings.max_batch_size;
                let waited = first.came.elapsed();
                if full || waited >= self.settings.max_queue_delay {
                    let (_, take) = self.fitting(&queue);
                    let mut batch = Vec::with_capacity(take.len());
                    // Highest index first, so the others stay where they are.
                    for i in take.into_iter().rev() {
                        if let Some(p) = queue.remove(i) {
                            batch.push(p);
                        }
                    }
                    batch.reverse();
                    self.metrics.set_queued(queue.len());
                    // What is left waits on another thread's clock.
                    if !queue.is_empty() {
                        self.arrived.notify_one();
                    }
                    for p in &batch {
                        self.metrics.waited(p.came.elapsed().as_secs_f64());
                    }
                    return batch;
                }
                let left = self.settings.max_queue_delay - waited;
                queue = self
                    .arrived
                    .wait_timeout(queue, left)
                    .map_or_else(|p| p.into_inner().0, |(q, _)| q);
            } else {
                queue = self
                    .arrived
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    /// Whether `rows` rows make a batch that runs without waiting longer:
    /// `max_batch_size` or more, or a preferred size.
    fn ready(&self, rows: usize) -> bool {
        rows >= self.settings.max_batch_size || self.settings.preferred.contains(&rows)
    }

    /// The rows and positions of the requests that go with the first: same
    /// datatypes and trailing dimensions, within `max_batch_size` rows.
    fn fitting(&self, queue: &VecDeque<Pending>) -> (usize, Vec<usize>) {
        let Some(first) = queue.front() else {
            return (0, Vec::new());
        };
        let mut rows = first.rows;
        let mut take = vec![0];
        for (i, p) in queue.iter().enumerate().skip(1) {
            if rows + p.rows > self.settings.max_batch_size {
                continue;
            }
            if compatible(&first.inputs, &p.inputs) {
                rows += p.rows;
                take.push(i);
            }
        }
        (rows, take)
    }

    /// Runs `batch` once, joined, and answers each request with its rows;
    /// if the run fails, runs each request alone.
    fn run(&self, slot: &ModelSlot, batch: Vec<Pending>) {
        let started = Instant::now();
        let _in_flight: Vec<_> = batch.iter().map(|_| self.metrics.in_flight()).collect();
        self.run_batch(slot, batch);
        self.metrics.computed(started.elapsed().as_secs_f64());
    }

    fn run_batch(&self, slot: &ModelSlot, batch: Vec<Pending>) {
        let model = slot.current();
        let rows: usize = batch.iter().map(|p| p.rows).sum();
        self.sizes.observe(rows as f64);
        if batch.len() == 1 {
            for p in batch {
                let _ = p.reply.send(model.infer(p.inputs));
            }
            return;
        }
        let counts: Vec<usize> = batch.iter().map(|p| p.rows).collect();
        let (inputs, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.inputs, p.reply)).unzip();
        let joined = join(&inputs);
        match joined.map(|j| model.infer(j)) {
            Some(Ok(outputs)) => match split(outputs, &counts) {
                Some(parts) => {
                    for (reply, part) in replies.into_iter().zip(parts) {
                        let _ = reply.send(Ok(part));
                    }
                }
                None => {
                    for reply in replies {
                        let _ = reply.send(Err(ModelError::Internal(
                            "the batch's outputs do not have one row per input row".into(),
                        )));
                    }
                }
            },
            // One request may have made the run fail: each runs alone.
            _ => {
                for (reply, inputs) in replies.into_iter().zip(inputs) {
                    if !reply.is_closed() {
                        let _ = reply.send(model.infer(inputs));
                    }
                }
            }
        }
    }
}

/// Whether two requests' inputs can be joined along the first dimension.
fn compatible(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name() == y.name()
                && x.datatype() == y.datatype()
                && x.shape().len() == y.shape().len()
                && !x.shape().is_empty()
                && x.shape()[1..] == y.shape()[1..]
        })
}

/// The requests' inputs joined along the first dimension, input by input.
fn join(requests: &[Vec<Tensor>]) -> Option<Vec<Tensor>> {
    let first = requests.first()?;
    (0..first.len())
        .map(|i| {
            let parts: Vec<&Tensor> = requests.iter().map(|r| &r[i]).collect();
            let rows: usize = parts.iter().map(|t| t.shape()[0]).sum();
            let mut shape = parts[0].shape().to_vec();
            shape[0] = rows;
            let mut data = parts[0].data().clone();
            for t in &parts[1..] {
                data.extend(t.data().clone()).ok()?;
            }
            Tensor::new(parts[0].name(), shape, data).ok()
        })
        .collect()
}

/// `outputs` cut into `counts` rows each, output by output.
fn split(outputs: Vec<Tensor>, counts: &[usize]) -> Option<Vec<Vec<Tensor>>> {
    let total: usize = counts.iter().sum();
    let mut parts: Vec<Vec<Tensor>> = counts.iter().map(|_| Vec::new()).collect();
    for t in outputs {
        let (name, shape, data) = t.into_parts();
        if shape.first() != Some(&total) {
            return None;
        }
        let per_row = shape[1..].iter().product::<usize>();
        let mut start = 0;
        for (part, rows) in parts.iter_mut().zip(counts) {
            let mut s = shape.clone();
            s[0] = *rows;
            let piece = data.slice(start * per_row, (start + rows) * per_row)?;
            part.push(Tensor::new(name.clone(), s, piece).ok()?);
            start += rows;
        }
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use inference_core::{Data, TensorSpec};

    use super::*;
    use crate::model::{Labels, Model};

    /// Doubles its input `x` [N, 2]; a row holding a negative number is
    /// bad input (so a batch holding one fails as a whole). Counts runs.
    struct Doubler {
        runs: std::sync::atomic::AtomicUsize,
        labels: Labels,
    }

    impl Model for Doubler {
        fn name(&self) -> &str {
            "doubler"
        }
        fn platform(&self) -> &str {
            "test"
        }
        fn inputs(&self) -> &[TensorSpec] {
            &[]
        }
        fn outputs(&self) -> &[TensorSpec] {
            &[]
        }
        fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
            self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (_, shape, data) = inputs.into_iter().next().expect("one input").into_parts();
            let Data::Fp32(v) = data else {
                return Err(ModelError::BadInput("not FP32".into()));
            };
            if v.iter().any(|x| *x < 0.0) {
                return Err(ModelError::BadInput("a negative number".into()));
            }
            let doubled = v.iter().map(|x| x * 2.0).collect();
            Ok(vec![
                Tensor::new("y", shape, Data::Fp32(doubled)).expect("tensor"),
            ])
        }
        fn probe(&self) -> Vec<Tensor> {
            Vec::new()
        }
        fn labels(&self) -> &Labels {
            &self.labels
        }
        fn batched(&self) -> bool {
            true
        }
    }

    fn rows(first: f32, n: usize) -> Vec<Tensor> {
        let v = (0..n * 2).map(|i| first + i as f32).collect();
        vec![Tensor::new("x", vec![n, 2], Data::Fp32(v)).expect("tensor")]
    }

    fn start(delay_ms: u64) -> (Arc<Batcher>, Arc<Doubler>) {
        start_preferring(delay_ms, Vec::new())
    }

    /// A batcher of up to 8 rows on one thread.
    fn start_preferring(delay_ms: u64, preferred: Vec<usize>) -> (Arc<Batcher>, Arc<Doubler>) {
        let model = Arc::new(Doubler {
            runs: Default::default(),
            labels: Labels::default(),
        });
        let slot = Arc::new(ModelSlot::new(Box::new(Doubler {
            runs: Default::default(),
            labels: Labels::default(),
        })));
        slot.replace(Arc::clone(&model) as Arc<dyn Model>);
        let settings = BatchSettings {
            max_batch_size: 8,
            max_queue_delay: Duration::from_millis(delay_ms),
            preferred,
            max_queue: 100,
            max_wait: Duration::from_secs(5),
        };
        let metrics = crate::compute::Compute::new(crate::compute::ComputeSettings::new(1))
            .metrics()
            .clone();
        (
            Batcher::start(settings, slot, 1, metrics).expect("threads"),
            model,
        )
    }

    #[test]
    fn concurrent_requests_run_as_one_batch_and_each_gets_its_rows() {
        let (b, model) = start(200);
        let answers: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = [(0.0, 1), (10.0, 2), (20.0, 3)]
                .into_iter()
                .map(|(first, n)| {
                    let b = &b;
                    s.spawn(move || b.infer(rows(first, n)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("joined"))
                .collect()
        });
        assert_eq!(model.runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        for ((first, n), answer) in [(0.0f32, 1usize), (10.0, 2), (20.0, 3)].iter().zip(answers) {
            let out = answer.expect("answered");
            assert_eq!(out[0].shape(), &[*n, 2]);
            let want: Vec<f32> = (0..n * 2).map(|i| (first + i as f32) * 2.0).collect();
            assert_eq!(out[0].data(), &Data::Fp32(want));
        }
    }

    #[test]
    fn a_bad_request_does_not_fail_its_batch_mates() {
        let (b, model) = start(200);
        let answers: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = [1.0f32, -5.0, 3.0]
                .into_iter()
                .map(|first| {
                    let b = &b;
                    s.spawn(move || b.infer(rows(first, 1)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("joined"))
                .collect::<Vec<_>>()
        });
        assert!(matches!(&answers[1], Err(ModelError::BadInput(m)) if m.contains("negative")));
        assert_eq!(
            answers[0].as_ref().map(|o| o[0].data().clone()),
            Ok(Data::Fp32(vec![2.0, 4.0]))
        );
        assert_eq!(
            answers[2].as_ref().map(|o| o[0].data().clone()),
            Ok(Data::Fp32(vec![6.0, 8.0]))
        );
        // The batch, then each of the three alone.
        assert_eq!(model.runs.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[test]
    fn a_request_waiting_longer_than_the_queue_may_overloads_it_and_is_counted() {
        // A delay past the wait bound: the first request waits in the queue.
        let (b, _) = start(400);
        let mut settings = b.settings.clone();
        settings.max_wait = Duration::from_millis(100);
        let b = Arc::new(Batcher {
            settings,
            queue: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            metrics: b.metrics.clone(),
            sizes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        });
        let waiting = b.submit(rows(1.0, 1)).expect("queued");
        assert_eq!(b.metrics.queued_now(), 1);
        assert_eq!(b.overloaded(), None);
        std::thread::sleep(Duration::from_millis(150));
        assert!(
            b.overloaded()
                .is_some_and(|why| why.contains("MAX_QUEUE_WAIT_MS=100")),
            "{:?}",
            b.overloaded()
        );
        assert!(matches!(
            b.submit(rows(2.0, 1)),
            Err(ModelError::Overloaded { .. })
        ));
        drop(waiting);
    }

    #[test]
    fn shapes_that_differ_beyond_the_batch_dimension_are_not_joined() {
        let a = rows(0.0, 2);
        let b = vec![Tensor::new("x", vec![1, 3], Data::Fp32(vec![0.0; 3])).expect("tensor")];
        assert!(!compatible(&a, &b));
        assert!(compatible(&a, &rows(5.0, 4)));
        let joined = join(&[a, rows(5.0, 1)]).expect("joined");
        assert_eq!(joined[0].shape(), &[3, 2]);
        let parts = split(joined, &[2, 1]).expect("split");
        assert_eq!(parts[1][0].data(), &Data::Fp32(vec![5.0, 6.0]));
        // Outputs without a row per input row cannot be split.
        let scalar = vec![Tensor::new("s", vec![], Data::Fp32(vec![1.0])).expect("tensor")];
        assert!(split(scalar, &[2, 1]).is_none());
    }

    #[test]
    fn a_full_or_preferred_batch_runs_without_waiting_out_the_delay() {
        // A delay far longer than the test: only a full batch (8 rows)
        // or a preferred size (3 rows) may start a run.
        let (b, model) = start(60_000);
        let start_at = Instant::now();
        std::thread::scope(|s| {
            let first = s.spawn(|| b.infer(rows(0.0, 3)));
            std::thread::sleep(Duration::from_millis(50));
            let second = s.spawn(|| b.infer(rows(10.0, 5)));
            assert!(first.join().expect("joined").is_ok());
            assert!(second.join().expect("joined").is_ok());
        });
        assert_eq!(model.runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            start_at.elapsed() < Duration::from_secs(5),
            "{:?}",
            start_at.elapsed()
        );

        let (b, _) = start_preferring(60_000, vec![3]);
        let start_at = Instant::now();
        assert!(b.infer(rows(0.0, 3)).is_ok());
        assert!(
            start_at.elapsed() < Duration::from_secs(5),
            "{:?}",
            start_at.elapsed()
        );

        // The rows that go with the first count, not every queued row: a
        // request of another shape beside them hides no preferred size.
        let (b, _) = start_preferring(60_000, vec![3]);
        let first = b.submit(rows(0.0, 1)).expect("queued");
        let other = vec![Tensor::new("x", vec![1, 3], Data::Fp32(vec![0.0; 3])).expect("tensor")];
        // The batch thread waits on the first before the others come.
        std::thread::sleep(Duration::from_millis(50));
        let other = b.submit(other).expect("queued");
        let start_at = Instant::now();
        assert!(b.infer(rows(10.0, 2)).is_ok());
        assert!(first.blocking_wait().is_ok());
        assert!(
            start_at.elapsed() < Duration::from_secs(5),
            "{:?}",
            start_at.elapsed()
        );
        drop(other);
    }
}
