//! The writer pool: agents that flush sealed segments to the object store, so an
//! acknowledged record is never dropped while the process runs.
//!
//! **Ordered, one partition at a time.** A job is a partition, not a segment: a partition
//! with sealed segments is queued once ([`PartitionLog::schedule`]), and the agent that takes
//! it puts its segments one after another, oldest first, until none is left. So a partition's
//! segments reach the store in offset order, and a crash or the abort at the end of a stop
//! leaves a stored prefix, never a hole.
//!
//! **Bounded.** At most `writer_queue_segments` segments are sealed and not yet stored. A
//! segment is sealed only once a slot is reserved for it: without one, sealing is skipped and
//! the records stay in the partition's active segment, readable and counted in the
//! [`UnflushedBudget`], until a later append or the sealer's next tick finds room. So sealing
//! never waits (it runs on the produce path, on Tokio workers) and never drops a segment.
//!
//! **Group commit.** A produce waiting for its records to be stored
//! ([`crate::config::ProduceAck::Flushed`]) seals the active segment at once when no flush of
//! its partition is in flight; otherwise the agent seals it when the put in flight ends, so
//! every request that arrived meanwhile shares one put.
//!
//! **Errors.** A transient error (network, server, timeout) is retried with exponential
//! backoff and jitter. A permanent one (refused credentials or permissions, an invalid path,
//! a segment already stored with other content: a second server on the same store) fences
//! the partition: its produces answer 503, its waiting produces fail, its bytes leave the
//! global budget so the other partitions keep going, and its agent is free. A fenced
//! partition is probed again every `flush_retry_max`; the first put the store takes lifts the
//! fence. Readiness names fenced partitions, and `streamhouse_partitions_failed` counts them.
//!
//! **Puts are create-only** ([`PutMode::Create`]): a segment is never overwritten. An
//! existing object with the same bytes is our own earlier attempt whose answer was lost.
//!
//! Each job carries its topic's [`Incarnation`]. Every put attempt runs under the
//! incarnation's flush guard and first stores the topic's manifest if it is not stored yet
//! (so no segment is ever stored without a manifest naming its incarnation). Once the topic
//! is deleted, its segments are dropped, never put: the delete releases their bytes from the
//! budget (see [`Incarnation::wait_for_flushes`]).

mod budget;

pub use budget::{OverBudget, UnflushedBudget};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use streamhouse_observability::Telemetry;
use streamhouse_observability::metrics::GaugeRegistration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::LiteConfig;
use crate::partition_log::{NextFlush, PartitionLog};
use crate::segment::SealedSegment;
use crate::topics::{Appending, Incarnation};

/// A partition with segments to flush, and its topic's incarnation.
struct Job {
    incarnation: Arc<Incarnation>,
    log: Arc<PartitionLog>,
}

#[derive(Default)]
struct PoolState {
    running: AtomicU64,
    consecutive_failures: AtomicU64,
    /// Segments sealed and not yet stored (or dropped).
    sealed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Agents flushing segments; `streamhouse_agents_active` counts the ones running.
pub struct WriterPool {
    jobs: Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>,
    state: Arc<PoolState>,
    budget: Arc<UnflushedBudget>,
    configured: usize,
    max_sealed: u64,
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

/// What a stop left unflushed: segments sealed and not stored, and the bytes of every record
/// not in the store (those segments' and the ones still buffered).
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
    /// Longest delay; delays double up to it. Also the interval between probes of a fenced
    /// partition.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay after `delay`: doubled up to the maximum.
    fn next(&self, delay: Duration) -> Duration {
        (delay * 2).min(self.max)
    }

    /// `delay` with jitter: uniform in its upper half, so agents retrying together spread.
    fn jittered(delay: Duration) -> Duration {
        delay.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// Why a flush failed.
#[derive(Debug)]
enum FlushError {
    /// Worth retrying: the network, the server, a timeout.
    Transient(object_store::Error),
    /// Retrying the same put cannot succeed: the partition is fenced.
    Permanent(String),
}

impl From<object_store::Error> for FlushError {
    fn from(error: object_store::Error) -> Self {
        use object_store::Error as E;
        match error {
            E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::Precondition { .. }
            | E::AlreadyExists { .. }
            | E::UnknownConfigurationKey { .. } => FlushError::Permanent(error.to_string()),
            _ => FlushError::Transient(error),
        }
    }
}

impl WriterPool {
    /// Starts `config.writer_agents` agents on the current Tokio runtime, with at most
    /// `config.writer_queue_segments` segments sealed and a budget of
    /// `config.max_unflushed_bytes`.
    pub fn start(config: &LiteConfig, store: Arc<dyn ObjectStore>, telemetry: &Telemetry) -> Self {
        let retry = RetryPolicy {
            initial: config.flush_retry_initial,
            max: config.flush_retry_max,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let jobs = Arc::new(Mutex::new(Some(tx)));
        let state = Arc::new(PoolState::default());
        let budget = Arc::new(UnflushedBudget::new(config.max_unflushed_bytes));
        let max_sealed = config.writer_queue_segments.max(1) as u64;
        let handles = (0..config.writer_agents)
            .map(|id| {
                let agent = Agent {
                    id,
                    jobs: Arc::clone(&rx),
                    requeue: Arc::downgrade(&jobs),
                    store: Arc::clone(&store),
                    state: Arc::clone(&state),
                    budget: Arc::clone(&budget),
                    retry,
                    max_sealed,
                };
                tokio::spawn(agent.run())
            })
            .collect();
        let observed = Arc::clone(&state);
        let unflushed = Arc::clone(&budget);
        WriterPool {
            jobs,
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
            max_sealed,
            agents: Mutex::new(handles),
        }
    }

    fn sender(&self) -> Option<mpsc::UnboundedSender<Job>> {
        lock(&self.jobs).clone()
    }

    /// Seals `log` (a partition of the incarnation `alive` guards) with `seal` and schedules
    /// it, if a slot is free; returns whether one was. A fenced partition is not sealed
    /// (its records wait in the active segment, holding no slot). Without a slot (or after
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
        if !take_slot(&self.state, self.max_sealed) {
            return false;
        }
        if seal(log).is_none() {
            self.state.sealed.fetch_sub(1, Ordering::Relaxed);
        } else if log.schedule() {
            let job = Job {
                incarnation: Arc::clone(alive.incarnation()),
                log: Arc::clone(log),
            };
            // Closed only by a stop, whose final flush no longer takes new segments.
            let _ = jobs.send(job);
        }
        true
    }

    /// Asks for the active segment of `log` to be stored soon, for a produce waiting on it:
    /// sealed now when no flush of the partition is in flight, else by its agent when the
    /// flush in flight ends (group commit).
    pub fn request_flush(&self, alive: &Appending<'_>, log: &Arc<PartitionLog>) {
        if log.want_flush() {
            self.try_seal(alive, log, PartitionLog::seal_now);
        }
    }

    /// As [`Self::try_seal`], waiting for a slot (at shutdown, under a deadline); a
    /// partition of a topic deleted meanwhile is left alone.
    pub async fn seal_waiting(
        &self,
        incarnation: &Arc<Incarnation>,
        log: &Arc<PartitionLog>,
        seal: impl Fn(&PartitionLog) -> Option<Arc<SealedSegment>>,
    ) {
        let mut wait = Duration::from_millis(1);
        loop {
            let done = match incarnation.appending() {
                Some(alive) => self.sender().is_none() || self.try_seal(&alive, log, &seal),
                None => true,
            };
            if done {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(50));
        }
    }

    /// The global budget of payload bytes waiting for a flush.
    pub fn budget(&self) -> &UnflushedBudget {
        &self.budget
    }

    /// Payload bytes appended and not yet in the store, over all partitions not fenced.
    pub fn unflushed_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Agents running now.
    pub fn running_agents(&self) -> u64 {
        self.state.running.load(Ordering::Relaxed)
    }

    /// Segments sealed and not yet stored, fenced partitions' aside.
    pub fn pending(&self) -> u64 {
        self.state.sealed.load(Ordering::Relaxed)
    }

    /// `Ok` when every agent runs and the last flush succeeded; the reason otherwise.
    /// Fenced partitions are named by the broker's readiness check.
    pub fn health(&self) -> Result<(), String> {
        let running = self.running_agents();
        if running < self.configured as u64 {
            return Err(format!("{running} of {} agents running", self.configured));
        }
        let failures = self.state.consecutive_failures.load(Ordering::Relaxed);
        if failures > 0 {
            let last = lock(&self.state.last_error).clone().unwrap_or_default();
            return Err(format!("{failures} flushes failed in a row; last: {last}"));
        }
        Ok(())
    }

    /// Stops taking segments, lets the agents drain the scheduled partitions, and waits for
    /// them at most `timeout`; agents still flushing then are stopped. Returns what was left
    /// unflushed, fenced partitions aside (the caller counts those).
    pub async fn shutdown(&self, timeout: Duration) -> Unflushed {
        drop(lock(&self.jobs).take());
        let handles = std::mem::take(&mut *lock(&self.agents));
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
        for handle in lock(&self.agents).iter() {
            handle.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes one of `max` slots for a sealed segment; `false` when all are taken.
fn take_slot(state: &PoolState, max: u64) -> bool {
    state
        .sealed
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

struct Agent {
    id: usize,
    jobs: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    /// Where a fenced partition's probe is queued; gone after a stop.
    requeue: Weak<Mutex<Option<mpsc::UnboundedSender<Job>>>>,
    store: Arc<dyn ObjectStore>,
    state: Arc<PoolState>,
    budget: Arc<UnflushedBudget>,
    retry: RetryPolicy,
    max_sealed: u64,
}

/// Counts an agent as running for as long as it lives, however it ends.
struct Running(Arc<PoolState>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How one segment's flush ended.
enum Outcome {
    Stored,
    /// Its topic is deleted: nothing of it is stored any more.
    Dropped,
    /// A permanent error: the partition is fenced.
    Fenced,
}

impl Agent {
    async fn run(self) {
        self.state.running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(Arc::clone(&self.state));
        loop {
            let job = self.jobs.lock().await.recv().await;
            let Some(job) = job else { break };
            self.flush_partition(job).await;
        }
    }

    /// Flushes the partition's sealed segments in order until none is left, it is fenced,
    /// or its topic is deleted.
    async fn flush_partition(&self, job: Job) {
        loop {
            match job.log.next_to_flush() {
                NextFlush::Idle => return,
                NextFlush::SealWanted => {
                    let sealed = match job.incarnation.appending() {
                        Some(_alive) => {
                            let slot = take_slot(&self.state, self.max_sealed);
                            if slot && job.log.seal_now().is_none() {
                                self.state.sealed.fetch_sub(1, Ordering::Relaxed);
                            }
                            slot
                        }
                        // Deleted: its segments are dropped with it.
                        None => return,
                    };
                    // Without a slot the sealer's next tick seals it and schedules it again.
                    if !sealed && job.log.unschedule() {
                        return;
                    }
                }
                NextFlush::Segment(segment) => match self.flush(&job, &segment).await {
                    Outcome::Stored => {}
                    Outcome::Dropped => {
                        // The topic is deleted: none of its segments will be stored, and
                        // nothing seals or schedules the partition again.
                        let dropped = job.log.drop_sealed() as u64;
                        self.state.sealed.fetch_sub(dropped, Ordering::Relaxed);
                        return;
                    }
                    Outcome::Fenced => {
                        self.probe_later(job);
                        return;
                    }
                },
            }
        }
    }

    /// Queues a fenced partition again after the longest retry delay.
    fn probe_later(&self, job: Job) {
        let requeue = self.requeue.clone();
        let delay = self.retry.max;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(jobs) = requeue.upgrade()
                && let Some(jobs) = lock(&jobs).as_ref()
            {
                let _ = jobs.send(job);
            }
        });
    }

    /// Fences the partition: what it holds leaves the budget, the segment slots and its
    /// topic's in-memory size, so the other partitions keep going.
    fn fence(&self, job: &Job, reason: &str) {
        let held = job.log.fail(reason);
        self.budget.release(held.bytes);
        self.state
            .sealed
            .fetch_sub(held.segments as u64, Ordering::Relaxed);
        job.incarnation.fenced(held.bytes);
    }

    /// Lifts the fence after a put the store took: what the partition holds is counted
    /// again, past the budget if need be (it was acknowledged already).
    fn lift_fence(&self, job: &Job) {
        let held = job.log.recover();
        self.budget.force_reserve(held.bytes);
        self.state
            .sealed
            .fetch_add(held.segments as u64, Ordering::Relaxed);
        job.incarnation.unfenced(held.bytes);
        tracing::warn!("the store takes this partition's segments again; fence lifted");
    }

    /// Puts one segment until the store takes it, its topic is deleted, or a permanent
    /// error fences its partition. A fenced partition's probe tries once.
    async fn flush(&self, job: &Job, segment: &Arc<SealedSegment>) -> Outcome {
        let span = tracing::info_span!(
            "segment.flush",
            topic = %segment.topic,
            partition = segment.partition,
            base_offset = segment.base_offset,
            records = segment.records.len(),
            agent = self.id,
        );
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
                put_once(self.store.as_ref(), segment, &payload).await?;
                if job.log.failure().is_some() {
                    self.lift_fence(job);
                }
                job.log.mark_flushed(segment);
                self.state.sealed.fetch_sub(1, Ordering::Relaxed);
                self.budget.release(segment.payload_bytes);
                job.incarnation
                    .flushed(segment.payload_bytes, encoded_bytes);
                Ok::<_, FlushError>(true)
            };
            let failed = match attempt.instrument(span.clone()).await {
                Ok(stored) => {
                    // A deleted topic's failures no longer make the pool unhealthy.
                    self.state.consecutive_failures.store(0, Ordering::Relaxed);
                    if !stored {
                        span.in_scope(|| tracing::debug!("topic deleted; segment dropped"));
                        return Outcome::Dropped;
                    }
                    return Outcome::Stored;
                }
                Err(error) => error,
            };
            let reason = match &failed {
                FlushError::Transient(error) => error.to_string(),
                FlushError::Permanent(reason) => reason.clone(),
            };
            *lock(&self.state.last_error) = Some(reason.clone());
            let probing = job.log.failure().is_some();
            if probing || matches!(failed, FlushError::Permanent(_)) {
                if !probing {
                    self.fence(job, &reason);
                    span.in_scope(|| {
                        tracing::error!(
                            error = %reason,
                            "segment flush failed permanently; partition fenced, probed again every {:?}",
                            self.retry.max
                        )
                    });
                }
                return Outcome::Fenced;
            }
            self.state
                .consecutive_failures
                .fetch_add(1, Ordering::Relaxed);
            let wait = RetryPolicy::jittered(delay);
            span.in_scope(
                || tracing::warn!(error = %reason, ?wait, "segment flush failed; retrying"),
            );
            tokio::time::sleep(wait).await;
            delay = self.retry.next(delay);
        }
    }
}

/// Puts `segment` create-only. An object already there with the same bytes is an earlier
/// attempt of ours whose answer was lost; with other bytes it is another writer's, and
/// overwriting it would lose records: a permanent error.
async fn put_once(
    store: &dyn ObjectStore,
    segment: &SealedSegment,
    payload: &PutPayload,
) -> Result<(), FlushError> {
    let path = segment.path();
    let create = PutOptions::from(PutMode::Create);
    match store.put_opts(&path, payload.clone(), create).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => {
            let stored = store.get(&path).await?.bytes().await?;
            let ours: Vec<u8> = payload
                .iter()
                .flat_map(|chunk| chunk.iter().copied())
                .collect();
            if stored.as_ref() == ours.as_slice() {
                Ok(())
            } else {
                Err(FlushError::Permanent(format!(
                    "segment {path} is already stored with other records: another server \
                     writes to this store"
                )))
            }
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests;
