//! One partition's log: the active segment buffer, sealed segments waiting for the writer
//! pool, and the index of segments already in the object store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use object_store::path::Path;
use streamhouse_observability::metrics::PartitionStorageMetrics;
use tokio::sync::watch;

use crate::record::{NewRecord, Record};
use crate::segment::SealedSegment;

/// Where the records at an offset are.
#[derive(Debug)]
pub enum ReadPlan {
    /// In memory: here they are.
    Memory(Vec<Record>),
    /// In a flushed segment: fetch it (through the cache) and take `max` from `offset`.
    Flushed {
        /// The segment object.
        path: Path,
        /// First offset wanted.
        offset: u64,
        /// Most records wanted.
        max: usize,
    },
}

/// Where a search for the first record a predicate accepts goes on.
#[derive(Debug)]
pub enum FindPlan {
    /// Found in memory: the first record at or after the offset asked that matches.
    Found(Record),
    /// None of the records in memory from the offset asked to the end of the place holding
    /// it matches: search on from `next`.
    Next {
        /// First offset after the place searched.
        next: u64,
    },
    /// The offset is in a flushed segment: fetch it (through the cache) and search it from
    /// `offset`.
    Flushed {
        /// The segment object.
        path: Path,
        /// First offset to look at.
        offset: u64,
        /// Offset of the segment's last record: search on after it.
        last_offset: u64,
    },
    /// The offset is in no place: at or past the high watermark.
    End,
}

/// A segment in the object store.
#[derive(Debug, Clone)]
struct FlushedSegment {
    last_offset: u64,
    path: Path,
}

#[derive(Debug, Default)]
struct LogState {
    next_offset: u64,
    active: Vec<Record>,
    active_bytes: usize,
    active_opened: Option<Instant>,
    /// Sealed, not yet in the store; readable from here.
    unflushed: VecDeque<Arc<SealedSegment>>,
    unflushed_bytes: usize,
    /// In the store, by base offset.
    flushed: BTreeMap<u64, FlushedSegment>,
    /// A writer-pool job for this partition is queued or an agent holds it: its segments
    /// are flushed one at a time, in order.
    scheduled: bool,
    /// A produce waits for the active segment to be stored: it is sealed as soon as no
    /// flush of this partition is in flight, so the waiters share one flush.
    flush_wanted: bool,
    /// Why the partition is fenced, after a permanent store error.
    failed: Option<Arc<str>>,
}

/// How far a partition is in the store, for produces waiting on it.
#[derive(Debug, Clone, Default)]
struct Durability {
    /// Every offset below is stored (or was lost before a restart).
    stored_below: u64,
    /// Set while the partition is fenced.
    failed: Option<Arc<str>>,
}

/// Why [`PartitionLog::append`] refused records (given back with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendRefused {
    /// The partition is fenced after a permanent store error: the reason.
    Failed(Arc<str>),
    /// Fewer offsets are left in the reservation than records: extend it and try again.
    NoOffsets,
}

/// What an agent flushes next for a partition it holds (see [`PartitionLog::next_to_flush`]).
#[derive(Debug)]
pub enum NextFlush {
    /// The oldest sealed segment not yet stored.
    Segment(Arc<SealedSegment>),
    /// None is sealed, but produces wait for the active segment: seal it, then ask again.
    SealWanted,
    /// Nothing to flush: the partition is no longer scheduled.
    Idle,
}

/// The log of one partition. Appends and reads take a short lock; nothing waits on I/O
/// while holding it.
#[derive(Debug)]
pub struct PartitionLog {
    topic: String,
    /// The topic's incarnation: part of every segment path (see [`crate::segment`]).
    incarnation: u64,
    partition: u32,
    segment_max_bytes: usize,
    metrics: PartitionStorageMetrics,
    state: Mutex<LogState>,
    durable: watch::Sender<Durability>,
}

impl PartitionLog {
    /// An empty log sealing segments at `segment_max_bytes`.
    pub fn new(
        topic: &str,
        partition: u32,
        segment_max_bytes: usize,
        metrics: PartitionStorageMetrics,
    ) -> Self {
        PartitionLog {
            topic: topic.to_owned(),
            incarnation: 0,
            partition,
            segment_max_bytes,
            metrics,
            state: Mutex::new(LogState::default()),
            durable: watch::Sender::new(Durability::default()),
        }
    }

    /// This log, for incarnation `incarnation` of its topic (0 unless set).
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.incarnation = incarnation;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The offset the next record gets: the high watermark.
    pub fn high_watermark(&self) -> u64 {
        self.state().next_offset
    }

    /// Payload bytes sealed but not yet in the store.
    pub fn unflushed_bytes(&self) -> usize {
        self.state().unflushed_bytes
    }

    /// Appends `records`, returning the first offset and whether the active segment is now
    /// full; only below `reserved` (the offset reservation of the topic's manifest, see
    /// [`crate::topics::Incarnation::reserved`]), so no offset is ever handed out twice. The
    /// caller has reserved their bytes in the writer pool's budget and seals a full segment
    /// through the pool ([`crate::writer_pool::WriterPool::try_seal`]), which may leave it to
    /// grow while the pool's queue is full.
    ///
    /// # Errors
    /// The partition is fenced, or the reservation is too short: the records are given back.
    pub fn append(
        &self,
        records: Vec<NewRecord>,
        timestamp: u64,
        reserved: u64,
    ) -> Result<(u64, bool), (AppendRefused, Vec<NewRecord>)> {
        let mut state = self.state();
        if let Some(reason) = &state.failed {
            return Err((AppendRefused::Failed(Arc::clone(reason)), records));
        }
        let first = state.next_offset;
        if first + records.len() as u64 > reserved {
            return Err((AppendRefused::NoOffsets, records));
        }
        if state.active.is_empty() {
            state.active_opened = Some(Instant::now());
        }
        for new in records {
            let record = Record {
                partition: self.partition,
                offset: state.next_offset,
                key: new.key,
                value: new.value,
                timestamp,
                headers: new.headers,
            };
            state.active_bytes += record.payload_bytes();
            state.active.push(record);
            state.next_offset += 1;
        }
        Ok((first, state.active_bytes >= self.segment_max_bytes))
    }

    /// Seals the active segment if it holds at least `segment_max_bytes`.
    pub fn seal_if_full(&self) -> Option<Arc<SealedSegment>> {
        let mut state = self.state();
        if state.active_bytes >= self.segment_max_bytes {
            return self.seal(&mut state);
        }
        None
    }

    /// Seals the active segment if it is non-empty and either full or at least `max_age`
    /// old (the sealer's tick; it also catches segments left full while the queue was).
    pub fn seal_if_due(&self, max_age: Duration) -> Option<Arc<SealedSegment>> {
        let mut state = self.state();
        let aged = state
            .active_opened
            .is_some_and(|opened| opened.elapsed() >= max_age);
        if aged || state.flush_wanted || state.active_bytes >= self.segment_max_bytes {
            return self.seal(&mut state);
        }
        None
    }

    /// Seals the active segment if it is non-empty (at shutdown).
    pub fn seal_now(&self) -> Option<Arc<SealedSegment>> {
        self.seal(&mut self.state())
    }

    fn seal(&self, state: &mut LogState) -> Option<Arc<SealedSegment>> {
        if state.active.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut state.active);
        let payload_bytes = std::mem::take(&mut state.active_bytes);
        state.active_opened = None;
        state.flush_wanted = false;
        let segment = Arc::new(SealedSegment {
            topic: self.topic.clone(),
            incarnation: self.incarnation,
            partition: self.partition,
            base_offset: records[0].offset,
            records,
            payload_bytes,
        });
        state.unflushed_bytes += payload_bytes;
        state.unflushed.push_back(Arc::clone(&segment));
        self.metrics.record_segment_write();
        Some(segment)
    }

    /// Records that `segment` is in the store: reads of it now go through the cache.
    pub fn mark_flushed(&self, segment: &SealedSegment) {
        let mut state = self.state();
        let before = state.unflushed.len();
        state
            .unflushed
            .retain(|s| s.base_offset != segment.base_offset);
        if state.unflushed.len() < before {
            state.unflushed_bytes -= segment.payload_bytes;
        }
        state.flushed.insert(
            segment.base_offset,
            FlushedSegment {
                last_offset: segment.last_offset(),
                path: segment.path(),
            },
        );
        drop(state);
        self.durable.send_modify(|d| {
            d.stored_below = d.stored_below.max(segment.last_offset() + 1);
        });
        self.metrics.record_segment_flush();
    }

    /// Asks for the active segment to be stored soon (a produce waits for it). Returns
    /// whether the caller should seal it now: no flush of this partition is in flight (an
    /// agent flushing one seals it when done, for every waiter at once).
    pub fn want_flush(&self) -> bool {
        let mut state = self.state();
        if state.active.is_empty() {
            return false;
        }
        state.flush_wanted = true;
        !state.scheduled
    }

    /// Marks the partition scheduled for the writer pool; returns whether it was not (the
    /// caller then queues a job for it). A fenced partition stays with its probe.
    pub fn schedule(&self) -> bool {
        let mut state = self.state();
        let idle = !state.scheduled && state.failed.is_none();
        state.scheduled |= idle;
        idle
    }

    /// What the agent holding this partition flushes next; [`NextFlush::Idle`] unschedules
    /// it under the same lock a seal takes, so no sealed segment is left without a job.
    pub fn next_to_flush(&self) -> NextFlush {
        let mut state = self.state();
        if let Some(front) = state.unflushed.front() {
            return NextFlush::Segment(Arc::clone(front));
        }
        if state.flush_wanted && !state.active.is_empty() {
            return NextFlush::SealWanted;
        }
        state.scheduled = false;
        NextFlush::Idle
    }

    /// Moves the next offset up to `offset` (at start-up, before any append: past offsets a
    /// crash may have handed out without storing them). What lies between is a gap reads
    /// step over.
    pub fn skip_to(&self, offset: u64) {
        let mut state = self.state();
        state.next_offset = state.next_offset.max(offset);
        let next = state.next_offset;
        drop(state);
        self.durable
            .send_modify(|d| d.stored_below = d.stored_below.max(next));
    }

    /// Unschedules the partition unless a sealed segment waits (a seal raced the caller);
    /// returns whether it did.
    pub fn unschedule(&self) -> bool {
        let mut state = self.state();
        if state.unflushed.is_empty() {
            state.scheduled = false;
        }
        !state.scheduled
    }

    /// Drops every sealed segment (its topic is deleted, so none is stored); returns how
    /// many.
    pub fn drop_sealed(&self) -> usize {
        let mut state = self.state();
        state.unflushed_bytes = 0;
        std::mem::take(&mut state.unflushed).len()
    }

    /// Fences the partition after a permanent store error: appends are refused and waiting
    /// produces fail. Returns the payload bytes it holds in memory, which leave the
    /// unflushed budget. It stays scheduled: its agent probes the store again later.
    pub fn fail(&self, reason: &str) -> usize {
        let reason: Arc<str> = reason.into();
        let mut state = self.state();
        state.failed = Some(Arc::clone(&reason));
        let bytes = state.unflushed_bytes + state.active_bytes;
        drop(state);
        self.durable.send_modify(|d| d.failed = Some(reason));
        bytes
    }

    /// Lifts the fence once the store takes a put again; returns the payload bytes in
    /// memory, which rejoin the unflushed budget.
    pub fn recover(&self) -> usize {
        let mut state = self.state();
        state.failed = None;
        let bytes = state.unflushed_bytes + state.active_bytes;
        drop(state);
        self.durable.send_modify(|d| d.failed = None);
        bytes
    }

    /// Why the partition is fenced, if it is.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.state().failed.clone()
    }

    /// Payload bytes in memory: sealed and unflushed, and the active segment's.
    pub fn memory_bytes(&self) -> usize {
        let state = self.state();
        state.unflushed_bytes + state.active_bytes
    }

    /// Waits until every offset up to `last` is in the store.
    ///
    /// # Errors
    /// The partition is fenced (the reason).
    pub async fn stored(&self, last: u64) -> Result<(), Arc<str>> {
        let mut durable = self.durable.subscribe();
        let seen = durable
            .wait_for(|d| d.stored_below > last || d.failed.is_some())
            .await
            .map_err(|_| Arc::<str>::from("the partition's log is gone"))?;
        match &seen.failed {
            Some(reason) if seen.stored_below <= last => Err(Arc::clone(reason)),
            _ => Ok(()),
        }
    }

    /// Restores the index of segments already in the store (at start-up, before any
    /// append): `(base_offset, last_offset)` pairs; the next offset follows the last one.
    pub fn restore(&self, segments: &[(u64, u64)]) {
        let mut state = self.state();
        for &(base, last) in segments {
            let path =
                crate::segment::object_path(&self.topic, self.incarnation, self.partition, base);
            state.flushed.insert(
                base,
                FlushedSegment {
                    last_offset: last,
                    path,
                },
            );
            state.next_offset = state.next_offset.max(last + 1);
        }
        let next = state.next_offset;
        drop(state);
        self.durable.send_modify(|d| d.stored_below = next);
    }

    /// Plans a read of at most `max` records from `offset` (which must be below the high
    /// watermark).
    pub fn plan_read(&self, offset: u64, max: usize) -> ReadPlan {
        self.plan_read_while(offset, max, |_| true)
    }

    /// As [`Self::plan_read`], but a read from memory clones only the records `keep`
    /// accepts, stopping at the first it refuses (a consume's byte cap).
    pub fn plan_read_while(
        &self,
        offset: u64,
        max: usize,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> ReadPlan {
        let state = self.state();
        let mut take = |records: &[Record], base: u64| -> Vec<Record> {
            let start = (offset - base) as usize;
            let wanted = records[start..].iter().take(max);
            wanted.take_while(|r| keep(r)).cloned().collect()
        };
        if let Some(first) = state.active.first()
            && offset >= first.offset
        {
            return ReadPlan::Memory(take(&state.active, first.offset));
        }
        if let Some(segment) = state
            .unflushed
            .iter()
            .find(|s| s.base_offset <= offset && offset <= s.last_offset())
        {
            return ReadPlan::Memory(take(&segment.records, segment.base_offset));
        }
        match state.flushed.range(..=offset).next_back() {
            Some((_, segment)) if offset <= segment.last_offset => ReadPlan::Flushed {
                path: segment.path.clone(),
                offset,
                max,
            },
            // Below the high watermark every offset is in one of the three places.
            _ => ReadPlan::Memory(Vec::new()),
        }
    }
}

impl PartitionLog {
    /// Plans one step of a search, from `offset`, for the first record `matches` accepts:
    /// looks through the one place in memory holding `offset` under the lock, cloning only
    /// the record found, or names the flushed segment to search. A whole search is a loop
    /// over these steps, one place at a time, so it holds at most one segment at once.
    pub fn plan_find(&self, offset: u64, mut matches: impl FnMut(&Record) -> bool) -> FindPlan {
        let state = self.state();
        let mut search = |records: &[Record], base: u64| -> FindPlan {
            let start = usize::try_from(offset - base).unwrap_or(usize::MAX);
            let rest = records.get(start..).unwrap_or_default();
            match rest.iter().find(|r| matches(r)) {
                Some(found) => FindPlan::Found(found.clone()),
                None => FindPlan::Next {
                    next: base + records.len() as u64,
                },
            }
        };
        if let Some(first) = state.active.first()
            && offset >= first.offset
        {
            return search(&state.active, first.offset);
        }
        if let Some(segment) = state
            .unflushed
            .iter()
            .find(|s| s.base_offset <= offset && offset <= s.last_offset())
        {
            return search(&segment.records, segment.base_offset);
        }
        match state.flushed.range(..=offset).next_back() {
            Some((_, segment)) if offset <= segment.last_offset => FindPlan::Flushed {
                path: segment.path.clone(),
                offset,
                last_offset: segment.last_offset,
            },
            _ => FindPlan::End,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamhouse_observability::{Telemetry, TelemetryConfig};

    fn record(value: &str) -> NewRecord {
        NewRecord {
            key: None,
            value: value.to_owned(),
            headers: Default::default(),
        }
    }

    #[test]
    fn seals_full_segments_and_reads_every_offset() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let log = PartitionLog::new("t", 0, 10, telemetry.storage().partition("t", 0));
        let (first, full) = log
            .append(vec![record("12345"), record("67890")], 1, u64::MAX)
            .unwrap();
        assert_eq!((first, full), (0, true));
        let sealed = log.seal_if_full().expect("10 bytes fill the segment");
        assert_eq!((sealed.base_offset, sealed.last_offset()), (0, 1));
        assert_eq!(
            log.append(vec![record("x")], 2, u64::MAX).unwrap(),
            (2, false)
        );
        assert!(log.seal_if_full().is_none());
        assert!(log.seal_if_due(Duration::from_secs(3600)).is_none());
        assert_eq!(log.high_watermark(), 3);
        // Sealed but unflushed: from memory.
        assert!(
            matches!(log.plan_read(1, 10), ReadPlan::Memory(r) if r.len() == 1 && r[0].value == "67890")
        );
        log.mark_flushed(&sealed);
        assert_eq!(log.unflushed_bytes(), 0);
        assert!(matches!(
            log.plan_read(1, 10),
            ReadPlan::Flushed { offset: 1, .. }
        ));
        assert!(matches!(log.plan_read(2, 10), ReadPlan::Memory(r) if r[0].value == "x"));
    }

    #[test]
    fn a_search_steps_through_each_place_in_offset_order() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let log = PartitionLog::new("t", 0, 10, telemetry.storage().partition("t", 0));
        log.append(vec![record("12345"), record("67890")], 10, u64::MAX)
            .unwrap();
        let flushed = log.seal_if_full().unwrap();
        log.mark_flushed(&flushed);
        log.append(vec![record("abcde"), record("fghij")], 20, u64::MAX)
            .unwrap();
        log.seal_if_full().unwrap();
        log.append(vec![record("k")], 30, u64::MAX).unwrap();
        let at = |offset, ts| log.plan_find(offset, |r| r.timestamp >= ts);
        assert!(matches!(
            at(1, 0),
            FindPlan::Flushed {
                offset: 1,
                last_offset: 1,
                ..
            }
        ));
        // Unflushed segment: found, or on to the active buffer.
        assert!(matches!(at(2, 20), FindPlan::Found(r) if r.offset == 2));
        assert!(matches!(at(3, 25), FindPlan::Next { next: 4 }));
        assert!(matches!(at(4, 25), FindPlan::Found(r) if r.value == "k"));
        assert!(matches!(at(4, 31), FindPlan::Next { next: 5 }));
        // At the high watermark: nothing more to search.
        assert!(matches!(at(5, 0), FindPlan::Next { next: 5 }));
        log.seal_now().unwrap();
        assert!(matches!(at(5, 0), FindPlan::End));
    }

    #[test]
    fn a_segment_left_unsealed_keeps_growing_and_stays_readable() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let log = PartitionLog::new("t", 0, 4, telemetry.storage().partition("t", 0));
        // Full twice over, not sealed (as when the writer queue is full).
        assert!(log.append(vec![record("1234")], 1, u64::MAX).unwrap().1);
        assert!(log.append(vec![record("5678")], 1, u64::MAX).unwrap().1);
        assert!(matches!(log.plan_read(1, 10), ReadPlan::Memory(r) if r[0].value == "5678"));
        // The sealer's tick seals it although it is young.
        let sealed = log.seal_if_due(Duration::from_secs(3600)).unwrap();
        assert_eq!((sealed.records.len(), sealed.payload_bytes), (2, 8));
        assert!(log.seal_if_due(Duration::ZERO).is_none());
    }
}
