//! The writer pool: agents that flush sealed segments to the object store, retrying until
//! the store takes them, so an acknowledged record is never dropped while the process runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::partition_log::PartitionLog;
use crate::segment::SealedSegment;

/// One segment to flush, and the log to tell when it is stored.
struct Job {
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
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    state: Arc<PoolState>,
    configured: usize,
    agents: Mutex<Vec<JoinHandle<()>>>,
    _agents_gauge: GaugeRegistration,
}

impl std::fmt::Debug for WriterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterPool")
            .field("configured", &self.configured)
            .field("running", &self.running_agents())
            .finish_non_exhaustive()
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
    /// Starts `agents` agents on the current Tokio runtime.
    pub fn start(
        agents: usize,
        store: Arc<dyn ObjectStore>,
        retry: RetryPolicy,
        telemetry: &Telemetry,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let state = Arc::new(PoolState::default());
        let handles = (0..agents)
            .map(|id| {
                let agent = Agent {
                    id,
                    jobs: Arc::clone(&rx),
                    store: Arc::clone(&store),
                    state: Arc::clone(&state),
                    retry,
                };
                tokio::spawn(agent.run())
            })
            .collect();
        let observed = Arc::clone(&state);
        WriterPool {
            jobs: Mutex::new(Some(tx)),
            _agents_gauge: telemetry
                .system()
                .observe_agents(move || observed.running.load(Ordering::Relaxed)),
            state,
            configured: agents,
            agents: Mutex::new(handles),
        }
    }

    /// Queues `segment` of `log` for flushing. After [`Self::shutdown`] it stays in memory.
    pub fn submit(&self, log: Arc<PartitionLog>, segment: Arc<SealedSegment>) {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(jobs) = jobs.as_ref() {
            self.state.queued.fetch_add(1, Ordering::Relaxed);
            if jobs.send(Job { log, segment }).is_err() {
                self.state.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
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
    /// `timeout`; agents still retrying then are stopped.
    pub async fn shutdown(&self, timeout: Duration) {
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
    jobs: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    store: Arc<dyn ObjectStore>,
    state: Arc<PoolState>,
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

    /// Puts the segment until the store takes it.
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
        let payload = PutPayload::from(segment.encode());
        let mut delay = self.retry.initial;
        loop {
            match self
                .store
                .put(&path, payload.clone())
                .instrument(span.clone())
                .await
            {
                Ok(_) => {
                    self.state.consecutive_failures.store(0, Ordering::Relaxed);
                    job.log.mark_flushed(segment);
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
