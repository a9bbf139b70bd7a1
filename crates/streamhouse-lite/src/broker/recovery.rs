//! Start-up recovery of topics and segment indexes from the object store.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::Broker;
use crate::manifest::{self, MAX_MANIFEST_BYTES, TopicManifest};
use crate::segment::{self, SegmentLocation};

/// A segment found in the listing, with its stored size.
type Found = (SegmentLocation, u64);

impl Broker {
    /// Rebuilds topics and segment indexes from the store, so a restart over the same
    /// directory or bucket serves the old records and appends after them.
    ///
    /// Topics come from their manifests (see [`crate::manifest`]): a live manifest is served
    /// with its partition count and incarnation, and only that incarnation's segments are
    /// indexed. Segments of any other incarnation of a topic with a manifest, and every
    /// segment of a tombstoned one, are dead (left by a delete that did not finish): they
    /// are deleted, never served. Segments without any manifest, or of the layout before
    /// incarnations, are ignored and left alone. Records that were never flushed are gone
    /// (there is no write-ahead log). Reads each manifest and the last segment of each
    /// partition (to learn its end).
    ///
    /// # Errors
    /// Listing the store or reading a manifest or a last segment failed.
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
            if meta.size > MAX_MANIFEST_BYTES {
                tracing::warn!(topic = %name, bytes = meta.size, "manifest too large; topic ignored");
                continue;
            }
            let bytes = self.inner.store.get(&meta.location).await?.bytes().await?;
            let manifest = match TopicManifest::decode(&bytes) {
                Ok(manifest) if manifest.name == name => manifest,
                Ok(manifest) => {
                    tracing::warn!(topic = %name, named = %manifest.name, "manifest names another topic; ignored");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(topic = %name, %error, "unreadable manifest; topic ignored");
                    continue;
                }
            };
            let live = !manifest.is_deleted();
            let (kept, dead): (Vec<Found>, Vec<Found>) = found
                .into_iter()
                .partition(|(location, _)| live && location.incarnation == manifest.incarnation);
            self.delete_dead(&name, &dead).await;
            if !live {
                continue;
            }
            if self.restore_topic(manifest, kept).await? {
                recovered.push(name);
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

    /// Serves the topic of a live `manifest` with the index of its `segments`; `false` when
    /// this server refuses it (its segments then stay in the store, untouched).
    async fn restore_topic(
        &self,
        manifest: TopicManifest,
        segments: Vec<Found>,
    ) -> Result<bool, object_store::Error> {
        let name = manifest.name.clone();
        let (count, incarnation) = (manifest.partitions, manifest.incarnation);
        // partition -> base offsets
        let mut partitions: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut stored_bytes = 0;
        for (location, size) in segments {
            if location.partition >= count {
                tracing::warn!(topic = %name, partition = location.partition, "segment of a partition the manifest does not have; ignored");
                continue;
            }
            stored_bytes += size;
            partitions
                .entry(location.partition)
                .or_default()
                .push(location.base_offset);
        }
        let topic = match self.inner.topics.restore(manifest, stored_bytes) {
            Ok(topic) => topic,
            Err(error) => {
                tracing::warn!(
                    topic = %name,
                    partitions = count,
                    ?error,
                    "stored topic not recovered: this server refuses its name or partition count"
                );
                return Ok(false);
            }
        };
        for (partition, mut bases) in partitions {
            bases.sort_unstable();
            let last_base = *bases.last().expect("at least one segment");
            let last_path = segment::object_path(&name, incarnation, partition, last_base);
            let last_segment = self.fetch_segment(&last_path).await?;
            let last_offset = last_segment.last_offset().unwrap_or(last_base);
            let segments: Vec<(u64, u64)> = bases
                .windows(2)
                .map(|w| (w[0], w[1] - 1))
                .chain(std::iter::once((last_base, last_offset)))
                .collect();
            topic.partitions[partition as usize].restore(&segments);
        }
        // Offsets up to the reservation may have been handed out before a crash: never
        // again. A produce extends the reservation before handing out more.
        let incarnation = topic.incarnation();
        for log in &topic.partitions {
            log.skip_to(incarnation.reserved(log.partition()));
            incarnation.reserve_through(log.partition(), log.high_watermark());
        }
        Ok(true)
    }
}
