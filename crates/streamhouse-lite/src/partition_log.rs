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

mod flush;

use flush::Durability;
pub use flush::{Held, NextFlush};

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
    /// No segment holds the offset (a segment lost or found torn or corrupt, or offsets a
    /// crash left unused): read on from `next`, the next offset held somewhere, or the high
    /// watermark when none is.
    Hole {
        /// First offset after the hole.
        next: u64,
    },
}

/// Where a search for the first record a predicate accepts goes on.
#[derive(Debug)]
pub enum FindPlan {
    /// Found in memory: the first record at or after the offset asked that matches.
    Found(Record),
    /// None of the records in memory from the offset asked to the end of the place holding
    /// it matches, or no place holds the offset (a hole, see [`ReadPlan::Hole`]): search on
    /// from `next`.
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
    /// In the store, by base offset. Offsets below `next_offset` held by none of the three
    /// places are holes.
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

/// Why [`PartitionLog::append`] refused records (given back with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendRefused {
    /// The partition is fenced after a permanent store error: the reason.
    Failed(Arc<str>),
    /// Fewer offsets are left in the reservation than records: extend it and try again.
    NoOffsets,
}

impl LogState {
    /// The first offset after `offset` that some place holds, or `next_offset` when none
    /// does: where a read landing in a hole goes on.
    fn next_held_after(&self, offset: u64) -> u64 {
        let flushed = self
            .flushed
            .range(offset + 1..)
            .next()
            .map(|(base, _)| *base);
        let unflushed = self
            .unflushed
            .iter()
            .map(|s| s.base_offset)
            .filter(|base| *base > offset)
            .min();
        let active = self.active.first().map(|r| r.offset);
        [flushed, unflushed, active]
            .into_iter()
            .flatten()
            .fold(self.next_offset, u64::min)
    }
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
        // A fenced partition's records wait unsealed, holding no writer-pool slot.
        if state.active.is_empty() || state.failed.is_some() {
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

    /// Restores the index of segments already in the store (at start-up, before any
    /// append): `(base_offset, last_offset)` pairs, not overlapping, of the segments believed
    /// readable. The next offset is `next_offset` or past the last segment, whichever is
    /// higher, so offsets a torn last segment or a crash left are never handed out again;
    /// offsets below it that no segment holds are holes, which reads step over.
    pub fn restore(&self, segments: &[(u64, u64)], next_offset: u64) {
        let mut state = self.state();
        for &(base, last) in segments {
            let path = crate::segment::object_path(
                &self.topic,
                self.incarnation,
                self.partition,
                base,
                last,
            );
            state.flushed.insert(
                base,
                FlushedSegment {
                    last_offset: last,
                    path,
                },
            );
            state.next_offset = state.next_offset.max(last + 1);
        }
        state.next_offset = state.next_offset.max(next_offset);
        let next = state.next_offset;
        drop(state);
        self.durable.send_modify(|d| d.stored_below = next);
    }

    /// Forgets the flushed segment at `path`, found torn or corrupt when read: its offsets
    /// are a hole from now on and it is never fetched again. True only for the call that
    /// forgot it, so a fault met by several readers at once is reported once.
    pub fn mark_unreadable(&self, path: &Path) -> bool {
        let mut state = self.state();
        let found = state
            .flushed
            .iter()
            .find(|(_, segment)| segment.path == *path)
            .map(|(base, _)| *base);
        found.is_some_and(|base| state.flushed.remove(&base).is_some())
    }

    /// Plans a read of at most `max` records from `offset` (which must be below the high
    /// watermark; at or past it the plan is an empty read).
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
            _ if offset >= state.next_offset => ReadPlan::Memory(Vec::new()),
            _ => ReadPlan::Hole {
                next: state.next_held_after(offset),
            },
        }
    }
}

impl PartitionLog {
    /// Plans one step of a search, from `offset`, for the first record `matches` accepts:
    /// looks through the one place in memory holding `offset` under the lock, cloning only
    /// the record found, names the flushed segment to search, or steps over a hole. A whole
    /// search is a loop over these steps, one place at a time, so it holds at most one
    /// segment at once.
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
            _ if offset >= state.next_offset => FindPlan::End,
            _ => FindPlan::Next {
                next: state.next_held_after(offset),
            },
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

    fn log() -> PartitionLog {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        PartitionLog::new("t", 0, 10, telemetry.storage().partition("t", 0)).with_incarnation(7)
    }

    fn path(base: u64, last: u64) -> Path {
        crate::segment::object_path("t", 7, 0, base, last)
    }

    /// Where a read from `offset` goes: `Ok(path)` of a flushed segment, `Err(next)` after
    /// a hole; panics on anything else.
    fn read_at(log: &PartitionLog, offset: u64) -> Result<Path, u64> {
        match log.plan_read(offset, 10) {
            ReadPlan::Flushed {
                path, offset: o, ..
            } if o == offset => Ok(path),
            ReadPlan::Hole { next } => Err(next),
            other => panic!("{offset}: {other:?}"),
        }
    }

    #[test]
    fn a_read_in_a_lost_segment_jumps_to_the_next_one() {
        let log = log();
        // 10..=19 lost, and 0..=4 (nothing holds the start either).
        log.restore(&[(5, 9), (20, 29)], 0);
        assert_eq!(log.high_watermark(), 30);
        for offset in 0..5 {
            assert_eq!(read_at(&log, offset), Err(5));
        }
        assert_eq!(read_at(&log, 9), Ok(path(5, 9)));
        for offset in 10..20 {
            assert_eq!(read_at(&log, offset), Err(20));
        }
        assert_eq!(read_at(&log, 29), Ok(path(20, 29)));
        assert!(matches!(log.plan_read(30, 10), ReadPlan::Memory(r) if r.is_empty()));
        // A search steps over the hole the same way.
        assert!(matches!(
            log.plan_find(12, |_| true),
            FindPlan::Next { next: 20 }
        ));
        assert!(matches!(log.plan_find(30, |_| true), FindPlan::End));
    }

    #[test]
    fn offsets_past_the_last_stored_segment_are_a_hole_up_to_the_first_new_record() {
        let log = log();
        // A torn last segment named 10..=19, or a reservation up to 20: never handed out.
        log.restore(&[(0, 9)], 20);
        assert_eq!(log.high_watermark(), 20);
        assert_eq!(read_at(&log, 10), Err(20));
        assert!(matches!(
            log.plan_find(15, |_| true),
            FindPlan::Next { next: 20 }
        ));
        assert_eq!(
            log.append(vec![record("12345"), record("67890")], 1, u64::MAX)
                .unwrap()
                .0,
            20
        );
        // Active buffer, then sealed and unflushed: the hole ends where it starts.
        assert_eq!(read_at(&log, 19), Err(20));
        assert!(matches!(log.plan_read(20, 10), ReadPlan::Memory(r) if r[0].value == "12345"));
        let sealed = log.seal_if_full().unwrap();
        log.append(vec![record("x")], 2, u64::MAX).unwrap();
        assert_eq!(read_at(&log, 10), Err(20));
        assert!(matches!(
            log.plan_find(10, |r| r.value == "x"),
            FindPlan::Next { next: 20 }
        ));
        assert!(matches!(
            log.plan_find(20, |r| r.value == "x"),
            FindPlan::Next { next: 22 }
        ));
        // Flushed: the same.
        log.mark_flushed(&sealed);
        assert_eq!(read_at(&log, 10), Err(20));
        assert_eq!(read_at(&log, 21), Ok(path(20, 21)));
    }

    #[test]
    fn a_segment_found_unreadable_becomes_a_hole_once() {
        let log = log();
        log.restore(&[(0, 9), (10, 19), (20, 29)], 0);
        assert_eq!(read_at(&log, 12), Ok(path(10, 19)));
        assert!(!log.mark_unreadable(&path(10, 20)));
        assert!(log.mark_unreadable(&path(10, 19)));
        // Reported by the first reader only.
        assert!(!log.mark_unreadable(&path(10, 19)));
        assert_eq!(read_at(&log, 12), Err(20));
        assert!(matches!(
            log.plan_find(10, |_| true),
            FindPlan::Next { next: 20 }
        ));
        // Its neighbours are untouched, and the last one too becomes a hole to the end.
        assert_eq!(read_at(&log, 9), Ok(path(0, 9)));
        assert!(log.mark_unreadable(&path(20, 29)));
        assert_eq!(read_at(&log, 12), Err(30));
        assert_eq!(log.high_watermark(), 30);
    }
}
