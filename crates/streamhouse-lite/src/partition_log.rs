//! One partition's log: the active segment buffer, sealed segments waiting for the writer
//! pool, and the index of segments already in the object store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use object_store::path::Path;
use streamhouse_observability::metrics::PartitionStorageMetrics;

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
}

/// The log of one partition. Appends and reads take a short lock; nothing waits on I/O
/// while holding it.
#[derive(Debug)]
pub struct PartitionLog {
    topic: String,
    partition: u32,
    segment_max_bytes: usize,
    metrics: PartitionStorageMetrics,
    state: Mutex<LogState>,
}

/// Refused because too many bytes wait for the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressure {
    /// Bytes waiting.
    pub unflushed_bytes: usize,
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
            partition,
            segment_max_bytes,
            metrics,
            state: Mutex::new(LogState::default()),
        }
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

    /// Appends `records` (all or none), returning the first offset and the segment sealed
    /// because the buffer filled, if any.
    ///
    /// # Errors
    /// [`Backpressure`] when more than `max_unflushed_bytes` already wait for a flush.
    pub fn append(
        &self,
        records: Vec<NewRecord>,
        timestamp: u64,
        max_unflushed_bytes: usize,
    ) -> Result<(u64, Option<Arc<SealedSegment>>), Backpressure> {
        let mut state = self.state();
        if state.unflushed_bytes > max_unflushed_bytes {
            return Err(Backpressure {
                unflushed_bytes: state.unflushed_bytes,
            });
        }
        let first = state.next_offset;
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
        let sealed = (state.active_bytes >= self.segment_max_bytes).then(|| self.seal(&mut state));
        Ok((first, sealed.flatten()))
    }

    /// Seals the active segment if it is non-empty and at least `max_age` old.
    pub fn seal_if_older(&self, max_age: Duration) -> Option<Arc<SealedSegment>> {
        let mut state = self.state();
        match state.active_opened {
            Some(opened) if opened.elapsed() >= max_age => self.seal(&mut state),
            _ => None,
        }
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
        let segment = Arc::new(SealedSegment {
            topic: self.topic.clone(),
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
        self.metrics.record_segment_flush();
    }

    /// Restores the index of segments already in the store (at start-up, before any
    /// append): `(base_offset, last_offset)` pairs; the next offset follows the last one.
    pub fn restore(&self, segments: &[(u64, u64)]) {
        let mut state = self.state();
        for &(base, last) in segments {
            let path = crate::segment::object_path(&self.topic, self.partition, base);
            state.flushed.insert(
                base,
                FlushedSegment {
                    last_offset: last,
                    path,
                },
            );
            state.next_offset = state.next_offset.max(last + 1);
        }
    }

    /// Plans a read of at most `max` records from `offset` (which must be below the high
    /// watermark).
    pub fn plan_read(&self, offset: u64, max: usize) -> ReadPlan {
        let state = self.state();
        let take = |records: &[Record], base: u64| -> Vec<Record> {
            let start = (offset - base) as usize;
            records[start..].iter().take(max).cloned().collect()
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
        let (first, sealed) = log
            .append(vec![record("12345"), record("67890")], 1, usize::MAX)
            .unwrap();
        assert_eq!(first, 0);
        let sealed = sealed.expect("10 bytes fill the segment");
        assert_eq!((sealed.base_offset, sealed.last_offset()), (0, 1));
        log.append(vec![record("x")], 2, usize::MAX).unwrap();
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
}
