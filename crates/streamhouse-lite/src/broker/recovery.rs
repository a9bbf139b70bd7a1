//! Start-up recovery of topics and segment indexes from the object store.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use streamhouse_observability::metrics::StorageFault;

use super::Broker;
use crate::manifest::{self, MAX_MANIFEST_BYTES, SkippedOffsets, TopicManifest};
use crate::segment::{self, EncodedSegment, SegmentError, SegmentLocation};

/// A segment found in the listing, with its stored size.
type Found = (SegmentLocation, u64);

/// Why a segment named in the listing is not served.
enum Unservable {
    /// Listed, then gone.
    Missing(object_store::Error),
    /// Not an intact segment of the offsets its path names.
    Unreadable(SegmentError),
}

impl Broker {
    /// Rebuilds topics and segment indexes from the store, so a restart over the same
    /// directory or bucket serves the old records and appends after them.
    ///
    /// Topics come from their manifests (see [`crate::manifest`]): a live manifest is served
    /// with its partition count and incarnation, and only that incarnation's segments are
    /// indexed. Segments of any other incarnation of a topic with a manifest, and every
    /// segment of a tombstoned one, are dead (left by a delete that did not finish): they
    /// are deleted, never served. Segments without any manifest, or of an older layout, are
    /// ignored and left alone. Records that were never flushed are gone (there is no
    /// write-ahead log).
    ///
    /// Faults never stop the start: each is logged with its topic, partition, offsets and
    /// path and counted in `streamhouse_storage_faults_total`. From the listing alone, per
    /// partition: offsets no segment names are a `hole`; a segment overlapping an earlier
    /// one is `corrupt_segment` and dropped. The last segment of each partition (where a
    /// crash tears) is read and checked: a `torn_segment` or `corrupt_segment` one is not
    /// served, its offsets read as a hole, but the next offset still follows the last one its
    /// path names, so no offset is handed out twice. A topic whose manifest cannot be read
    /// or used, whose last segment cannot be fetched, or which this server refuses, is
    /// logged as an error, counted `unrecoverable_topic` and not served; the others are.
    ///
    /// # Errors
    /// Listing the store failed.
    pub async fn recover(&self) -> Result<Vec<String>, object_store::Error> {
        let metas: Vec<_> = self
            .inner
            .store
            .list(Some(&Path::from("topics")))
            .try_collect()
            .await?;
        let mut manifests = BTreeMap::new();
        let mut segments: BTreeMap<String, Vec<Found>> = BTreeMap::new();
        let mut unknown = 0_usize;
        for meta in metas {
            if let Some(topic) = manifest::parse_manifest_path(&meta.location) {
                manifests.insert(topic, meta);
            } else if let Some(location) = segment::parse_path(&meta.location) {
                segments
                    .entry(location.topic.clone())
                    .or_default()
                    .push((location, meta.size));
            } else {
                unknown += 1;
            }
        }
        if unknown > 0 {
            tracing::warn!(
                objects = unknown,
                "objects under topics/ that are neither a manifest nor a segment of this layout were ignored"
            );
        }
        let mut recovered = Vec::new();
        for (name, meta) in manifests {
            let found = segments.remove(&name).unwrap_or_default();
            match self.recover_topic(&name, &meta, found).await {
                Ok(true) => recovered.push(name),
                Ok(false) => {}
                Err(reason) => {
                    tracing::error!(
                        topic = %name,
                        manifest = %meta.location,
                        %reason,
                        "topic NOT recovered: its records are not served until this is fixed and the server restarted"
                    );
                    self.record_fault(&name, StorageFault::UnrecoverableTopic);
                }
            }
        }
        for (name, found) in segments {
            tracing::warn!(
                topic = %name,
                segments = found.len(),
                "segments without a manifest ignored"
            );
        }
        Ok(recovered)
    }

    fn record_fault(&self, topic: &str, fault: StorageFault) {
        self.inner.telemetry.storage().record_fault(topic, fault);
    }

    /// Recovers the topic whose manifest is `meta`: `Ok(true)` when it is served,
    /// `Ok(false)` for a tombstone, `Err` saying why it cannot be served.
    async fn recover_topic(
        &self,
        name: &str,
        meta: &ObjectMeta,
        found: Vec<Found>,
    ) -> Result<bool, String> {
        if meta.size > MAX_MANIFEST_BYTES {
            return Err(format!(
                "manifest of {} bytes, larger than {MAX_MANIFEST_BYTES}",
                meta.size
            ));
        }
        let read = async { self.inner.store.get(&meta.location).await?.bytes().await };
        let bytes = read
            .await
            .map_err(|e| format!("reading the manifest failed: {e}"))?;
        let manifest =
            TopicManifest::decode(&bytes).map_err(|e| format!("unreadable manifest: {e}"))?;
        if manifest.name != name {
            return Err(format!("the manifest names topic {:?}", manifest.name));
        }
        let live = !manifest.is_deleted();
        let (kept, dead): (Vec<Found>, Vec<Found>) = found
            .into_iter()
            .partition(|(location, _)| live && location.incarnation == manifest.incarnation);
        self.delete_dead(name, &dead).await;
        if !live {
            return Ok(false);
        }
        self.restore_topic(manifest, kept).await?;
        Ok(true)
    }

    /// Deletes segments of dead incarnations, logging what fails (tried again next start).
    async fn delete_dead(&self, topic: &str, dead: &[Found]) {
        let mut incarnations: Vec<u64> = dead.iter().map(|(l, _)| l.incarnation).collect();
        incarnations.sort_unstable();
        incarnations.dedup();
        for incarnation in incarnations {
            tracing::info!(%topic, incarnation, "deleting segments of a deleted incarnation");
            self.delete_segments(topic, incarnation).await;
        }
    }

    /// Serves the topic of a live `manifest` with the index of its `segments`, or says why
    /// it cannot (nothing is served then, its segments stay in the store untouched).
    async fn restore_topic(
        &self,
        manifest: TopicManifest,
        segments: Vec<Found>,
    ) -> Result<(), String> {
        let name = manifest.name.clone();
        let count = manifest.partitions;
        let mut partitions: BTreeMap<u32, Vec<SegmentLocation>> = BTreeMap::new();
        let mut stored_bytes = 0;
        for (location, size) in segments {
            if location.partition >= count {
                tracing::warn!(
                    topic = %name,
                    partition = location.partition,
                    path = %location.path(),
                    "segment of a partition the manifest does not have; ignored"
                );
                continue;
            }
            stored_bytes += size;
            partitions
                .entry(location.partition)
                .or_default()
                .push(location);
        }
        // Read everything before registering: a topic that fails is not half served.
        let mut restored = Vec::with_capacity(partitions.len());
        for (partition, locations) in partitions {
            let skipped: Vec<_> = manifest
                .skipped_offsets
                .iter()
                .filter(|s| s.partition == partition)
                .copied()
                .collect();
            let (mut kept, next_offset) = self.check_listing(locations, &skipped);
            if let Some(last) = kept.pop() {
                let verified = self.verify_segment(&last).await.map_err(|error| {
                    format!("reading its last segment {} failed: {error}", last.path())
                })?;
                match verified {
                    Ok(()) => kept.push(last),
                    Err(Unservable::Unreadable(error)) => self.report_unservable(&last, &error),
                    Err(Unservable::Missing(error)) => {
                        tracing::warn!(
                            topic = %name,
                            partition,
                            base_offset = last.base_offset,
                            last_offset = last.last_offset,
                            path = %last.path(),
                            %error,
                            "hole: a listed segment is gone from the store; its offsets are skipped"
                        );
                        self.record_fault(&name, StorageFault::Hole);
                    }
                }
            }
            restored.push((partition, kept, next_offset));
        }
        let topic = self
            .inner
            .topics
            .restore(manifest, stored_bytes)
            .map_err(|error| {
                format!("this server refuses its name or its {count} partitions: {error:?}")
            })?;
        for (partition, kept, next_offset) in restored {
            let ranges: Vec<(u64, u64)> = kept
                .iter()
                .map(|l| (l.base_offset, l.last_offset))
                .collect();
            topic.partitions[partition as usize].restore(&ranges, next_offset);
        }
        // Offsets up to the reservation may have been handed out before a crash: never
        // again. A produce extends the reservation before handing out more. (A clean stop
        // cuts the reservation back, so there is nothing to skip after one.)
        let incarnation = topic.incarnation();
        for log in &topic.partitions {
            let (partition, stored_to) = (log.partition(), log.high_watermark());
            let reserved = incarnation.reserved(partition);
            if reserved > stored_to && !incarnation.was_skipped(partition, stored_to, reserved - 1)
            {
                tracing::warn!(
                    topic = %name,
                    partition,
                    first = stored_to,
                    last = reserved - 1,
                    "the last stop was not clean: these offsets were reserved and never stored \
                     (records acknowledged from memory there are lost); they are skipped"
                );
                incarnation.skipped(partition, stored_to, reserved - 1);
            }
            log.skip_to(reserved);
            incarnation.reserve_through(partition, log.high_watermark());
        }
        Ok(())
    }

    /// One partition's segments as the listing names them: those to serve, in offset order,
    /// and the offset after the highest one any of them names. Reports the offsets no
    /// segment names (holes) and drops segments overlapping an earlier one (corrupt).
    /// A hole that a restart after a crash left (`skipped`, from the manifest) is expected,
    /// not a fault.
    fn check_listing(
        &self,
        mut locations: Vec<SegmentLocation>,
        skipped: &[SkippedOffsets],
    ) -> (Vec<SegmentLocation>, u64) {
        locations.sort_unstable_by_key(|l| (l.base_offset, l.last_offset));
        let next_offset = locations
            .iter()
            .map(|l| l.last_offset + 1)
            .max()
            .unwrap_or(0);
        let mut kept: Vec<SegmentLocation> = Vec::with_capacity(locations.len());
        // The first offset the kept segments do not hold yet.
        let mut held_to = 0;
        for location in locations {
            if location.base_offset < held_to {
                let earlier = kept.last().map(SegmentLocation::path);
                tracing::error!(
                    topic = %location.topic,
                    partition = location.partition,
                    base_offset = location.base_offset,
                    last_offset = location.last_offset,
                    path = %location.path(),
                    earlier = ?earlier.as_ref().map(Path::as_ref),
                    "corrupt segment: overlaps an earlier one; the earlier one is kept, this one is never served"
                );
                self.record_fault(&location.topic, StorageFault::CorruptSegment);
                continue;
            }
            let crash_gap = skipped
                .iter()
                .any(|s| s.first <= held_to && location.base_offset - 1 <= s.last);
            if location.base_offset > held_to && crash_gap {
                tracing::debug!(
                    topic = %location.topic,
                    partition = location.partition,
                    first_missing = held_to,
                    last_missing = location.base_offset - 1,
                    "offsets skipped after an unclean stop"
                );
            } else if location.base_offset > held_to {
                tracing::warn!(
                    topic = %location.topic,
                    partition = location.partition,
                    first_missing = held_to,
                    last_missing = location.base_offset - 1,
                    next_path = %location.path(),
                    "hole: no segment holds these offsets; reads skip them"
                );
                self.record_fault(&location.topic, StorageFault::Hole);
            }
            held_to = location.last_offset + 1;
            kept.push(location);
        }
        (kept, next_offset)
    }

    /// Reads the segment at `location` and checks it holds the offsets its path names: the
    /// outer error is a store failure (the segment may well be intact), the inner one says
    /// why it cannot be served.
    async fn verify_segment(
        &self,
        location: &SegmentLocation,
    ) -> Result<Result<(), Unservable>, object_store::Error> {
        let path = location.path();
        let read = async { self.inner.store.get(&path).await?.bytes().await };
        let bytes = match read.await {
            Ok(bytes) => bytes,
            Err(error @ object_store::Error::NotFound { .. }) => {
                return Ok(Err(Unservable::Missing(error)));
            }
            Err(error) => return Err(error),
        };
        Ok(EncodedSegment::parse(&bytes)
            .and_then(|segment| check_offsets(&segment, location))
            .map_err(Unservable::Unreadable))
    }

    /// Logs and counts a segment that is torn or corrupt.
    fn report_unservable(&self, location: &SegmentLocation, error: &SegmentError) {
        tracing::error!(
            topic = %location.topic,
            partition = location.partition,
            base_offset = location.base_offset,
            last_offset = location.last_offset,
            path = %location.path(),
            %error,
            "segment not served: its offsets are skipped as a hole and never handed out again"
        );
        self.record_fault(&location.topic, error.fault());
    }
}

/// Corrupt unless `segment` holds exactly the offsets `location` names.
pub(super) fn check_offsets(
    segment: &EncodedSegment,
    location: &SegmentLocation,
) -> Result<(), SegmentError> {
    let held = (segment.base_offset(), segment.last_offset());
    if held == (location.base_offset, Some(location.last_offset)) {
        return Ok(());
    }
    Err(SegmentError::Corrupt(format!(
        "holds offsets {:?}..={:?}, its path names {}..={}",
        held.0, held.1, location.base_offset, location.last_offset
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::{ObjectStore, PutPayload};
    use streamhouse_observability::health::HealthRegistry;
    use streamhouse_observability::{Telemetry, TelemetryConfig};

    use super::*;
    use crate::broker::ConsumeRequest;
    use crate::config::LiteConfig;
    use crate::record::Record;

    fn records(base: u64, last: u64) -> Vec<Record> {
        (base..=last)
            .map(|offset| Record {
                partition: 0,
                offset,
                key: None,
                value: format!("v{offset}"),
                timestamp: offset,
                headers: Default::default(),
            })
            .collect()
    }

    async fn put(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) {
        store.put(path, PutPayload::from(bytes)).await.unwrap();
    }

    /// Stores `manifest` and, for partition 0, a segment per range (`None`: named, bytes
    /// cut in the middle of its second line).
    async fn store_topic(
        store: &dyn ObjectStore,
        manifest: &TopicManifest,
        ranges: &[(u64, u64, bool)],
    ) {
        manifest.store(store).await.unwrap();
        for &(base, last, intact) in ranges {
            let path = segment::object_path(&manifest.name, manifest.incarnation, 0, base, last);
            let mut bytes = segment::encode(&records(base, last));
            if !intact {
                let second = bytes.iter().position(|b| *b == b'\n').unwrap() + 10;
                bytes.truncate(second);
            }
            put(store, &path, bytes).await;
        }
    }

    /// The value of `streamhouse_storage_faults_total{topic, fault}` in `text`.
    fn faults(telemetry: &Telemetry, topic: &str, fault: &str) -> u64 {
        let text = telemetry.render_prometheus();
        let (topic, fault) = (format!("topic=\"{topic}\""), format!("fault=\"{fault}\""));
        text.lines()
            .filter(|l| l.starts_with("streamhouse_storage_faults_total{"))
            .filter(|l| l.contains(&topic) && l.contains(&fault))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// Every record from offset 0, following `nextOffset`, and the requests it took.
    async fn read_all(broker: &Broker, topic: &str) -> (Vec<u64>, usize) {
        let end = broker.partition_log(topic, 0).unwrap().high_watermark();
        let (mut offset, mut offsets, mut requests) = (0, Vec::new(), 0);
        while offset < end {
            requests += 1;
            assert!(requests < 100, "no progress at {offset}");
            let mut request = ConsumeRequest::new(topic, 0, offset);
            request.max_records = 4;
            let result = broker.consume(&request).await.unwrap();
            assert!(result.next_offset > offset, "stuck at {offset}");
            for record in &result.records {
                assert_eq!(record.value, format!("v{}", record.offset));
            }
            offsets.extend(result.records.iter().map(|r| r.offset));
            offset = result.next_offset;
        }
        assert_eq!(offset, end);
        (offsets, requests)
    }

    #[tokio::test]
    async fn starts_over_holes_overlaps_a_torn_end_and_an_unreadable_topic() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        // 10..=19 lost, 25..=34 overlapping, 30..=39 torn.
        let damaged = TopicManifest::new("damaged", 1);
        let ranges = [
            (0, 9, true),
            (20, 29, true),
            (25, 34, true),
            (30, 39, false),
        ];
        store_topic(store.as_ref(), &damaged, &ranges).await;
        let intact = TopicManifest::new("intact", 1);
        store_topic(store.as_ref(), &intact, &[(0, 4, true), (5, 9, true)]).await;
        put(
            store.as_ref(),
            &manifest::manifest_path("garbled"),
            b"{not json".to_vec(),
        )
        .await;
        let renamed = TopicManifest::new("other", 1);
        put(
            store.as_ref(),
            &manifest::manifest_path("renamed"),
            renamed.encode(),
        )
        .await;

        let broker = Broker::start(
            LiteConfig::default(),
            &telemetry,
            Arc::clone(&store),
            &HealthRegistry::new(),
        );
        let recovered = broker.recover().await.unwrap();
        assert_eq!(recovered, ["damaged", "intact"]);
        assert_eq!(faults(&telemetry, "damaged", "hole"), 1);
        assert_eq!(faults(&telemetry, "damaged", "corrupt_segment"), 1);
        assert_eq!(faults(&telemetry, "damaged", "torn_segment"), 1);
        assert_eq!(faults(&telemetry, "intact", "hole"), 0);
        assert_eq!(faults(&telemetry, "garbled", "unrecoverable_topic"), 1);
        assert_eq!(faults(&telemetry, "renamed", "unrecoverable_topic"), 1);

        // The next offset follows the torn segment's name: none is handed out twice.
        let log = broker.partition_log("damaged", 0).unwrap();
        assert_eq!(log.high_watermark(), 40);
        let (offsets, requests) = read_all(&broker, "damaged").await;
        let expected: Vec<u64> = (0..10).chain(20..30).collect();
        assert_eq!(offsets, expected);
        // 4 records a request, reading on past the hole within one; then one answering the
        // torn end's hole with no records.
        assert_eq!(requests, 20 / 4 + 1);
        let (offsets, _) = read_all(&broker, "intact").await;
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
        // Nothing more found by reading.
        assert_eq!(faults(&telemetry, "damaged", "corrupt_segment"), 1);
    }

    #[tokio::test]
    async fn a_segment_found_corrupt_when_read_is_reported_once_and_skipped() {
        let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let manifest = TopicManifest::new("t", 1);
        let ranges = [(0, 9, true), (10, 19, true), (20, 29, true)];
        store_topic(store.as_ref(), &manifest, &ranges).await;
        // One bit flipped in the middle segment: same length, the checksum fails.
        let middle = segment::object_path("t", manifest.incarnation, 0, 10, 19);
        let mut bytes = store
            .get(&middle)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let at = bytes.iter().position(|b| *b == b'v').unwrap();
        bytes[at + 1] ^= 0x01;
        put(store.as_ref(), &middle, bytes).await;
        // Offsets 30..=34 never stored (a crash gap): the next segment starts at 35.
        let path = segment::object_path("t", manifest.incarnation, 0, 35, 39);
        put(store.as_ref(), &path, segment::encode(&records(35, 39))).await;

        let broker = Broker::start(
            LiteConfig::default(),
            &telemetry,
            Arc::clone(&store),
            &HealthRegistry::new(),
        );
        broker.recover().await.unwrap();
        assert_eq!(faults(&telemetry, "t", "hole"), 1);
        assert_eq!(faults(&telemetry, "t", "corrupt_segment"), 0);
        let gets = || {
            let text = telemetry.render_prometheus();
            text.lines()
                .filter(|l| l.starts_with("streamhouse_s3_requests_total{"))
                .filter(|l| l.contains("operation=\"get\""))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum::<u64>()
        };
        let expected: Vec<u64> = (0..10).chain(20..30).chain(35..40).collect();
        let (offsets, _) = read_all(&broker, "t").await;
        assert_eq!(offsets, expected);
        assert_eq!(faults(&telemetry, "t", "corrupt_segment"), 1);
        // Again: the same records, no new report, and the bad segment is not fetched again
        // (the others are cached).
        let before = gets();
        let (offsets, _) = read_all(&broker, "t").await;
        assert_eq!(offsets, expected);
        assert_eq!(faults(&telemetry, "t", "corrupt_segment"), 1);
        assert_eq!(gets(), before);
        // A search by timestamp steps over it too.
        assert_eq!(
            broker
                .find_by_timestamp(&broker.partition_log("t", 0).unwrap(), 12)
                .await
                .unwrap(),
            Some((20, 20))
        );
        assert_eq!(
            broker
                .find_by_timestamp(&broker.partition_log("t", 0).unwrap(), 31)
                .await
                .unwrap(),
            Some((35, 35))
        );
    }
}
