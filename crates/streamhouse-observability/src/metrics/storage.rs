//! Storage metrics: segment writes and flushes, object store requests, the segment cache.

use std::time::Duration;

use super::instruments::{
    BoundCounter, BoundHistogram, HeldCounter, Instruments, LabeledCounter, attributes,
};
use super::observed::{GaugeRegistration, GaugeSources};
use super::{PartitionReport, S3Error, S3Operation, StorageFault};
use crate::catalog;

/// Records the write path and the read cache. Get it from
/// [`Telemetry::storage`](crate::Telemetry::storage).
///
/// Object store operations and the cache are a closed set, so their handles are bound once
/// at start-up and every call records at bound-instrument cost.
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::{Telemetry, TelemetryConfig, metrics::{S3Error, S3Operation}};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let storage = telemetry.storage();
/// storage.record_s3_request(S3Operation::Put, Duration::from_millis(40), Ok(()));
/// storage.record_s3_request(S3Operation::Get, Duration::from_millis(9), Err(S3Error::NotFound));
/// storage.record_cache_miss();
/// let text = telemetry.render_prometheus();
/// assert!(text.contains(r#"streamhouse_s3_errors_total{error_type="not_found",operation="get"} 1"#));
/// ```
#[derive(Clone)]
pub struct StorageMetrics {
    segment_writes: LabeledCounter<2>,
    segment_flushes: LabeledCounter<2>,
    s3_errors: LabeledCounter<2>,
    s3_by_operation: Vec<BoundS3Operation>,
    cache_hits: BoundCounter,
    cache_misses: BoundCounter,
    cache_size: GaugeSources,
    unflushed: GaugeSources,
    faults: LabeledCounter<2>,
    failed_partitions: GaugeSources,
    max_value_bytes: usize,
}

#[derive(Clone)]
struct BoundS3Operation {
    requests: BoundCounter,
    latency: BoundHistogram,
}

impl std::fmt::Debug for StorageMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageMetrics").finish_non_exhaustive()
    }
}

impl StorageMetrics {
    pub(crate) fn new(instruments: &Instruments<'_>) -> Self {
        let s3_requests = instruments.counter(&catalog::S3_REQUESTS);
        let s3_latency = instruments.histogram(&catalog::S3_LATENCY);
        let s3_by_operation = S3Operation::ALL
            .iter()
            .map(|op| {
                let attributes = attributes(catalog::S3_REQUESTS.labels, [op.as_str()]);
                BoundS3Operation {
                    requests: s3_requests.bind(&attributes),
                    latency: s3_latency.bind(&attributes),
                }
            })
            .collect();
        let cache_size = GaugeSources::default();
        cache_size.register_gauge(instruments.meter, &catalog::CACHE_SIZE);
        let unflushed = GaugeSources::default();
        unflushed.register_gauge(instruments.meter, &catalog::UNFLUSHED_BYTES);
        let failed_partitions = GaugeSources::default();
        failed_partitions.register_gauge(instruments.meter, &catalog::PARTITIONS_FAILED);
        StorageMetrics {
            segment_writes: instruments.labeled(&catalog::SEGMENT_WRITES),
            segment_flushes: instruments.labeled(&catalog::SEGMENT_FLUSHES),
            s3_errors: instruments.labeled(&catalog::S3_ERRORS),
            s3_by_operation,
            cache_hits: instruments.counter(&catalog::CACHE_HITS).bind(&[]),
            cache_misses: instruments.counter(&catalog::CACHE_MISSES).bind(&[]),
            cache_size,
            unflushed,
            faults: instruments.labeled(&catalog::STORAGE_FAULTS),
            failed_partitions,
            max_value_bytes: instruments.max_label_value_bytes,
        }
    }

    /// Resolves the label set of one partition once for the write path.
    pub fn partition(&self, topic: &str, partition: u32) -> PartitionStorageMetrics {
        let partition = itoa::Buffer::new().format(partition).to_owned();
        PartitionStorageMetrics {
            segment_writes: self.segment_writes.hold([topic, &partition]),
            segment_flushes: self.segment_flushes.hold([topic, &partition]),
        }
    }

    /// Counts one segment written for a partition.
    #[inline]
    pub fn record_segment_write(&self, topic: &str, partition: u32) {
        let mut buffer = itoa::Buffer::new();
        self.segment_writes
            .add([topic, buffer.format(partition)], 1);
    }

    /// Counts one segment flushed to object storage for a partition.
    #[inline]
    pub fn record_segment_flush(&self, topic: &str, partition: u32) {
        let mut buffer = itoa::Buffer::new();
        self.segment_flushes
            .add([topic, buffer.format(partition)], 1);
    }

    /// Records one object store request: its count, its latency, and its error if it failed.
    #[inline]
    pub fn record_s3_request(
        &self,
        operation: S3Operation,
        latency: Duration,
        outcome: Result<(), S3Error>,
    ) {
        let bound = &self.s3_by_operation[operation.index()];
        bound.requests.add(1);
        bound.latency.record(latency.as_secs_f64());
        if let Err(error) = outcome {
            self.s3_errors.add([operation.as_str(), error.as_str()], 1);
        }
    }

    /// Counts one segment cache hit.
    #[inline]
    pub fn record_cache_hit(&self) {
        self.cache_hits.add(1);
    }

    /// Counts one segment cache miss.
    #[inline]
    pub fn record_cache_miss(&self) {
        self.cache_misses.add(1);
    }

    /// Registers the source of the cache's current size in bytes.
    pub fn observe_cache_size(
        &self,
        source: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> GaugeRegistration {
        self.cache_size.add(move |emit| emit(source(), &[]))
    }

    /// Counts one fault found in the stored log of `topic`.
    pub fn record_fault(&self, topic: &str, fault: StorageFault) {
        self.faults.add([topic, fault.as_str()], 1);
    }

    /// Registers a source that reports, per topic, the partitions fenced after a permanent
    /// store error.
    pub fn observe_failed_partitions(
        &self,
        source: impl Fn(&mut PartitionReport<'_>) + Send + Sync + 'static,
    ) -> GaugeRegistration {
        PartitionReport::observe(&self.failed_partitions, self.max_value_bytes, source)
    }

    /// Registers the source of the payload bytes acknowledged but not yet stored.
    pub fn observe_unflushed_bytes(
        &self,
        source: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> GaugeRegistration {
        self.unflushed.add(move |emit| emit(source(), &[]))
    }
}

/// Storage metrics bound to one partition.
#[derive(Debug, Clone)]
pub struct PartitionStorageMetrics {
    segment_writes: HeldCounter<2>,
    segment_flushes: HeldCounter<2>,
}

impl PartitionStorageMetrics {
    /// Counts one segment written.
    #[inline]
    pub fn record_segment_write(&self) {
        self.segment_writes.add(1);
    }

    /// Counts one segment flushed to object storage.
    #[inline]
    pub fn record_segment_flush(&self) {
        self.segment_flushes.add(1);
    }
}
