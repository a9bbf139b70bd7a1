//! Start-up recovery of topics and segment indexes from the object store.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;

use super::Broker;
use crate::segment;

impl Broker {
    /// Rebuilds topics and segment indexes from the segments already in the store, so a
    /// restart over the same directory or bucket serves the old records and appends after
    /// them. A topic comes back with as many partitions as it has flushed ones (the highest
    /// partition number seen, plus one); records that were never flushed are gone (there is
    /// no write-ahead log). Reads the last segment of each partition to learn its end.
    ///
    /// # Errors
    /// Listing the store or reading a last segment failed.
    pub async fn recover(&self) -> Result<Vec<String>, object_store::Error> {
        let metas: Vec<_> = self
            .inner
            .store
            .list(Some(&Path::from("topics")))
            .try_collect()
            .await?;
        // topic -> partition -> base offsets
        let mut found: BTreeMap<String, BTreeMap<u32, Vec<u64>>> = BTreeMap::new();
        for meta in metas {
            if let Some((topic, partition, base)) = segment::parse_path(&meta.location) {
                found
                    .entry(topic)
                    .or_default()
                    .entry(partition)
                    .or_default()
                    .push(base);
            }
        }
        let mut recovered = Vec::new();
        for (name, partitions) in found {
            let count = partitions.keys().max().map_or(1, |p| p + 1);
            let topic = match self.inner.topics.create(&name, count) {
                Ok(topic) => topic,
                Err(error) => {
                    // Its segments stay in the store, untouched, for a server with room.
                    tracing::warn!(
                        topic = %name,
                        partitions = count,
                        ?error,
                        "stored topic not recovered: this server refuses its name or partition count"
                    );
                    continue;
                }
            };
            for (partition, mut bases) in partitions {
                bases.sort_unstable();
                let last_base = *bases.last().expect("at least one segment");
                let last_path = segment::object_path(&name, partition, last_base);
                let last_segment = self.fetch_segment(&last_path).await?;
                let last_offset = last_segment.last_offset().unwrap_or(last_base);
                let segments: Vec<(u64, u64)> = bases
                    .windows(2)
                    .map(|w| (w[0], w[1] - 1))
                    .chain(std::iter::once((last_base, last_offset)))
                    .collect();
                topic.partitions[partition as usize].restore(&segments);
            }
            recovered.push(name);
        }
        Ok(recovered)
    }
}
