//! The writer pool: agents that flush sealed segments to the object store, retrying until
//! the store takes them, so an acknowledged record is never dropped while the process runs.
//!
//! Its queue is bounded (`writer_queue_segments`). A segment is sealed only once a queue slot
//! is reserved for it: when the queue is full, sealing is skipped and the records stay in the
//! partition's active segment, readable and counted in the [`UnflushedBudget`], until a later
//! append or the sealer's next tick finds room. So sealing never waits (it runs on the
//! produce path, on Tokio workers), never drops a segment, and the queue cannot grow without
//! bound; producers are pushed back by the budget, which counts the same bytes.
//!
//! Each job carries its topic's [`Incarnation`]. Every put attempt runs under the
//! incarnation's flush guard and first stores the topic's manifest if it is not stored yet
//! (so no segment is ever stored without a manifest naming its incarnation). Once the topic
//! is deleted, its queued and retrying segments are dropped, never put: the delete releases
//! their bytes from the budget (see [`Incarnation::wait_for_flushes`]).

mod budget;

pub use budget::{OverBudget, UnflushedBudget};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::LiteConfig;
use crate::partition_log::PartitionLog;
use crate::segment::SealedSegment;
use crate::topics::{Appending, Incarnation};

/// One segment to flush, its topic's incarnation, and the log to tell when it is stored.
struct Job {
    incarnation: Arc<Incarnation>,
    log: Arc<PartitionLog>,
    segment: Arc<SealedSegment>,
}

#[derive(Default)]
struct PoolState {
    running: AtomicU64,
    consecutive_failures: AtomicU64,
    queued: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Agents flushing segments; `streamhouse_agents_active` counts the ones running.
pub struct WriterPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    state: Arc<PoolState>,
    budget: Arc<UnflushedBudget>,
    configured: usize,
    agents: Mutex<Vec<JoinHandle<()>>>,
    _gauges: [GaugeRegistration; 2],
}

impl std::fmt::Debug for WriterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterPool")
            .field("configured", &self.configured)
            .field("running", &self.running_agents())
            .field("unflushed_bytes", &self.budget.used())
            .finish_non_exhaustive()
    }
}

/// What a stop left unflushed: segments queued or being flushed, and the bytes of every
/// record not in the store (those segments' and the ones still buffered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unflushed {
    /// Sealed segments not stored.
    pub segments: u64,
    /// Record bytes not stored.
    pub bytes: u64,
}

impl Unflushed {
    /// Whether everything reached the store.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.segments == 0
    }
}

/// How an agent retries a failed flush.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay; delays double up to it.
    pub max: Duration,
}

impl WriterPool {
    /// Starts `config.writer_agents` agents on the current Tokio runtime, with a queue of
    /// `config.writer_queue_segments` segments and a budget of `config.max_unflushed_bytes`.
    pub fn start(config: &LiteConfig, store: Arc<dyn ObjectStore>, telemetry: &Telemetry) -> Self {
        let retry = RetryPolicy {
            initial: config.flush_retry_initial,
            max: config.flush_retry_max,
        };
        let (tx, rx) = mpsc::channel(config.writer_queue_segments.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let state = Arc::new(PoolState::default());
        let budget = Arc::new(UnflushedBudget::new(config.max_unflushed_bytes));
        let handles = (0..config.writer_agents)
            .map(|id| {
                let agent = Agent {
                    id,
                    jobs: Arc::clone(&rx),
                    store: Arc::clone(&store),
                    state: Arc::clone(&state),
                    budget: Arc::clone(&budget),
                    retry,
                };
                tokio::spawn(agent.run())
            })
            .collect();
        let observed = Arc::clone(&state);
        let unflushed = Arc::clone(&budget);
        WriterPool {
            jobs: Mutex::new(Some(tx)),
            _gauges: [
                telemetry
                    .system()
                    .observe_agents(move || observed.running.load(Ordering::Relaxed)),
                telemetry
                    .storage()
                    .observe_unflushed_bytes(move || unflushed.used() as u64),
            ],
            state,
            budget,
            configured: config.writer_agents,
            agents: Mutex::new(handles),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Seals `log` (a partition of the incarnation `alive` guards) with `seal` and queues the
    /// segment, if a queue slot is free; returns whether one was. Without a slot (or after
    /// [`Self::shutdown`]) nothing is sealed: the records stay in the active segment for a
    /// later call.
    pub fn try_seal(
        &self,
        alive: &Appending<'_>,
        log: &Arc<PartitionLog>,
        seal: impl FnOnce(&PartitionLog) -> Option<Arc<SealedSegment>>,
    ) -> bool {
        let Some(jobs) = self.sender() else {
            return false;
        };
        let Ok(permit) = jobs.try_reserve() else {
            return false;
        };
        self.seal_into(permit, alive, log, seal);
        true
    }

    /// As [`Self::try_seal`], waiting for a queue slot (at shutdown, under a deadline); a
    /// partition of a topic deleted meanwhile is left alone.
    pub async fn seal_waiting(
        &self,
        incarnation: &Arc<Incarnation>,
        log: &Arc<PartitionLog>,
        seal: impl FnOnce(&PartitionLog) -> Option<Arc<SealedSegment>>,
    ) {
        let Some(jobs) = self.sender() else {
            return;
        };
        if let Ok(permit) = jobs.reserve().await
            && let Some(alive) = incarnation.appending()
        {
            self.seal_into(permit, &alive, log, seal);
        }
    }

    fn seal_into(
        &self,
        permit: mpsc::Permit<'_, Job>,
        alive: &Appending<'_>,
        log: &Arc<PartitionLog>,
        seal: impl FnOnce(&PartitionLog) -> Option<Arc<SealedSegment>>,
    ) {
        if let Some(segment) = seal(log) {
            self.state.queued.fetch_add(1, Ordering::Relaxed);
            permit.send(Job {
                incarnation: Arc::clone(alive.incarnation()),
                log: Arc::clone(log),
                segment,
            });
        }
    }

    /// The global budget of payload bytes waiting for a flush.
    pub fn budget(&self) -> &UnflushedBudget {
        &self.budget
    }

    /// Payload bytes appended and not yet in the store, over all partitions.
    pub fn unflushed_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Agents running now.
    pub fn running_agents(&self) -> u64 {
        self.state.running.load(Ordering::Relaxed)
    }

    /// Segments queued or being flushed.
    pub fn pending(&self) -> u64 {
        self.state.queued.load(Ordering::Relaxed)
    }

    /// `Ok` when every agent runs and the last flush succeeded; the reason otherwise.
    pub fn health(&self) -> Result<(), String> {
        let running = self.running_agents();
        if running < self.configured as u64 {
            return Err(format!("{running} of {} agents running", self.configured));
        }
        let failures = self.state.consecutive_failures.load(Ordering::Relaxed);
        if failures > 0 {
            let last = self
                .state
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            return Err(format!("{failures} flushes failed in a row; last: {last}"));
        }
        Ok(())
    }

    /// Stops taking segments, lets the agents drain the queue, and waits for them at most
    /// `timeout`; agents still retrying then are stopped. Returns what was left unflushed.
    pub async fn shutdown(&self, timeout: Duration) -> Unflushed {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handles =
            std::mem::take(&mut *self.agents.lock().unwrap_or_else(PoisonError::into_inner));
        let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(timeout, futures::future::join_all(handles))
            .await
            .is_err()
        {
            aborts.iter().for_each(|a| a.abort());
        }
        Unflushed {
            segments: self.pending(),
            bytes: self.budget.used() as u64,
        }
    }
}

impl Drop for WriterPool {
    fn drop(&mut self) {
        for handle in self
            .agents
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            handle.abort();
        }
    }
}

struct Agent {
    id: usize,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    store: Arc<dyn ObjectStore>,
    state: Arc<PoolState>,
    budget: Arc<UnflushedBudget>,
    retry: RetryPolicy,
}

/// Counts an agent as running for as long as it lives, however it ends.
struct Running(Arc<PoolState>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Agent {
    async fn run(self) {
        self.state.running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(Arc::clone(&self.state));
        loop {
            let job = self.jobs.lock().await.recv().await;
            let Some(job) = job else { break };
            self.flush(&job).await;
            self.state.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Puts the segment until the store takes it or its topic is deleted.
    async fn flush(&self, job: &Job) {
        let segment = &job.segment;
        let span = tracing::info_span!(
            "segment.flush",
            topic = %segment.topic,
            partition = segment.partition,
            base_offset = segment.base_offset,
            records = segment.records.len(),
            agent = self.id,
        );
        let path = segment.path();
        let encoded = segment.encode();
        let encoded_bytes = encoded.len();
        let payload = PutPayload::from(encoded);
        let mut delay = self.retry.initial;
        loop {
            let attempt = async {
                // Held through the put and the bookkeeping, so a delete waits for them.
                let Some(_flushing) = job.incarnation.flushing().await else {
                    return Ok(false);
                };
                if !job.incarnation.ensure_stored(self.store.as_ref()).await? {
                    return Ok(false);
                }
                self.store.put(&path, payload.clone()).await?;
                job.log.mark_flushed(segment);
                self.budget.release(segment.payload_bytes);
                job.incarnation
                    .flushed(segment.payload_bytes, encoded_bytes);
                Ok::<_, object_store::Error>(true)
            };
            match attempt.instrument(span.clone()).await {
                Ok(true) => {
                    self.state.consecutive_failures.store(0, Ordering::Relaxed);
                    return;
                }
                Ok(false) => {
                    // The delete releases its bytes from the budget. Failures putting a
                    // segment nobody wants any more no longer make the pool unhealthy.
                    self.state.consecutive_failures.store(0, Ordering::Relaxed);
                    span.in_scope(|| tracing::debug!("topic deleted; segment dropped"));
                    return;
                }
                Err(error) => {
                    self.state
                        .consecutive_failures
                        .fetch_add(1, Ordering::Relaxed);
                    span.in_scope(
                        || tracing::warn!(%error, ?delay, "segment flush failed; retrying"),
                    );
                    *self
                        .state
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutResult, Result,
    };
    use streamhouse_observability::TelemetryConfig;

    use super::*;
    use crate::record::NewRecord;
    use crate::topics::{Topic, TopicLimits, TopicRegistry};

    /// A topic `t` of one partition whose segments seal at 4 bytes.
    fn topic(telemetry: &Telemetry) -> Arc<Topic> {
        let limits = TopicLimits {
            max_topics: 1,
            max_partitions: 1,
            max_total_partitions: 1,
        };
        let registry = TopicRegistry::new(telemetry, 4, limits);
        registry.create("t", 1).unwrap()
    }

    /// A store whose puts never finish: an agent that takes a segment keeps it.
    #[derive(Debug, Default)]
    struct StuckStore(InMemory);

    impl fmt::Display for StuckStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("StuckStore")
        }
    }

    #[async_trait]
    impl ObjectStore for StuckStore {
        async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
            std::future::pending().await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.0.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.0.delete_stream(locations)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.0.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }

        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    fn append_full(log: &PartitionLog, value: &str) {
        let record = NewRecord {
            key: None,
            value: value.to_owned(),
            headers: Default::default(),
        };
        assert!(log.append(vec![record], 1).1, "one record fills a segment");
    }

    #[tokio::test]
    async fn a_full_queue_leaves_the_segment_unsealed_and_readable() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let config = LiteConfig {
            writer_agents: 1,
            writer_queue_segments: 1,
            ..LiteConfig::default()
        };
        let pool = WriterPool::start(&config, Arc::new(StuckStore::default()), &telemetry);
        let topic = topic(&telemetry);
        let log = Arc::clone(&topic.partitions[0]);
        let alive = topic.incarnation().appending().unwrap();

        append_full(&log, "aaaa");
        assert!(pool.try_seal(&alive, &log, PartitionLog::seal_if_full));
        // The agent takes it (and is stuck putting it), freeing the one slot.
        let jobs = pool.sender().unwrap();
        let taken = async {
            while jobs.capacity() == 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), taken)
            .await
            .expect("the agent takes the first segment");
        append_full(&log, "bbbb");
        assert!(pool.try_seal(&alive, &log, PartitionLog::seal_if_full));
        assert_eq!(jobs.capacity(), 0, "the slot is taken");

        append_full(&log, "cccc");
        let mut sealed = false;
        let room = pool.try_seal(&alive, &log, |log| {
            sealed = true;
            log.seal_if_full()
        });
        assert!(!room && !sealed, "no slot, so nothing sealed");
        assert_eq!(pool.pending(), 2);
        // Not lost: still in the active segment, sealed later with what follows.
        assert!(
            matches!(log.plan_read(2, 10), crate::partition_log::ReadPlan::Memory(r) if r[0].value == "cccc")
        );
        append_full(&log, "dddd");
        let next = log.seal_if_due(Duration::from_secs(3600)).unwrap();
        assert_eq!((next.base_offset, next.records.len()), (2, 2));
    }

    #[tokio::test]
    async fn segments_of_a_deleted_topic_are_dropped_not_stored() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let config = LiteConfig {
            writer_agents: 1,
            ..LiteConfig::default()
        };
        let store = Arc::new(InMemory::new());
        let pool = WriterPool::start(&config, Arc::clone(&store) as _, &telemetry);
        let topic = topic(&telemetry);
        let log = Arc::clone(&topic.partitions[0]);
        let incarnation = Arc::clone(topic.incarnation());

        // The delete is under way: appends are over, the agent waits to flush.
        let flushes = incarnation.block_flushes().await;
        {
            let alive = incarnation.appending().unwrap();
            pool.budget().try_reserve(4).unwrap();
            incarnation.appended(4);
            append_full(&log, "aaaa");
            assert!(pool.try_seal(&alive, &log, PartitionLog::seal_if_full));
        }
        incarnation.stop_appends();
        assert!(incarnation.appending().is_none());
        drop(flushes);
        assert_eq!(incarnation.wait_for_flushes().await, 4);
        pool.budget().release(4);
        let drained = async {
            while pool.pending() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("the agent drops the segment");
        let stored: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
            .await
            .unwrap();
        assert!(
            stored.is_empty(),
            "nothing stored, not even the manifest: {stored:?}"
        );
        assert_eq!(pool.unflushed_bytes(), 0);
    }
}
