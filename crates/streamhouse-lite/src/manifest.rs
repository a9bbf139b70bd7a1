//! The per-topic manifest, `topics/{topic}/manifest.json`: which incarnation of the topic is
//! live, its shape, and whether it was deleted.
//!
//! ```json
//! {"version":1,"name":"orders","incarnation":12345,"partitions":2,
//!  "created_at":"2025-01-31T12:00:00.000Z","replication_factor":1,"leader_agent_id":"lite-0",
//!  "reserved_offsets":[20000,10000]}
//! ```
//!
//! Rules that make deletion survive crashes and re-creation:
//!
//! - A manifest is stored before the first segment of its incarnation (the writer pool stores
//!   it on the topic's first flush), so every segment in the store belongs to an incarnation
//!   some manifest named. A topic that never flushed has no manifest and, like its records,
//!   does not survive a restart.
//! - Deleting a topic first rewrites its manifest as a tombstone (`"deleted_at"` set), and only
//!   then deletes segments. Recovery serves only the incarnation a live manifest names and
//!   deletes segments of any other incarnation of a topic with a manifest (see
//!   [`crate::broker::Broker::recover`]), so a crash between the two steps never brings the
//!   topic back.
//! - Offsets are handed out only below the partition's `reserved_offsets` entry, and the
//!   manifest is rewritten with a higher one before more are (see
//!   [`crate::topics::Incarnation::reserved`]), so a restart after a crash never hands out an
//!   offset twice: it starts each partition at its reservation, past the offsets lost.
//! - Fields this version does not know are kept when the manifest is rewritten
//!   ([`TopicManifest::extra`]), so later versions can add theirs.

use std::time::{SystemTime, UNIX_EPOCH};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The agent every partition of this single-node server is led by. The server has no agent
/// identity of its own (its writer-pool agents are numbered tasks of one process), so this
/// stable name stands for the process.
pub const LEADER_AGENT_ID: &str = "lite-0";

/// Copies of each partition: this server stores each segment once, in its object store.
pub const REPLICATION_FACTOR: u32 = 1;

/// The manifest format written by this version.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest manifest recovery reads; a bigger object is not one of ours and is left alone.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// Most skipped ranges a manifest keeps: one per unclean stop and partition.
pub const MAX_SKIPPED_RANGES: usize = 1_000;

/// Offsets of one partition a restart skipped: `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedOffsets {
    /// Partition.
    pub partition: u32,
    /// First offset skipped.
    pub first: u64,
    /// Last offset skipped.
    pub last: u64,
}

/// One topic's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicManifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// Topic name; the same as in the manifest's path.
    pub name: String,
    /// The live incarnation: a random `u64` drawn at creation, part of every segment path.
    pub incarnation: u64,
    /// Partitions.
    pub partitions: u32,
    /// When this incarnation was created: RFC 3339, UTC, milliseconds.
    pub created_at: String,
    /// Always [`REPLICATION_FACTOR`].
    pub replication_factor: u32,
    /// Always [`LEADER_AGENT_ID`].
    pub leader_agent_id: String,
    /// Per partition, the offset reservation: offsets below it may have been handed out, so
    /// after a restart the partition's next offset is at least this (see
    /// [`crate::topics::Incarnation::reserved`]). Absent in manifests of earlier versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved_offsets: Vec<u64>,
    /// Offsets a restart after a crash skipped (reserved, never stored), so later starts
    /// know the hole they leave is not a lost segment. The latest [`MAX_SKIPPED_RANGES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_offsets: Vec<SkippedOffsets>,
    /// Set (RFC 3339) once the incarnation is deleted: the manifest is then a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Fields of later versions, kept as they are on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TopicManifest {
    /// The manifest of a new incarnation of `name`, created now.
    pub fn new(name: &str, partitions: u32) -> Self {
        TopicManifest {
            version: MANIFEST_VERSION,
            name: name.to_owned(),
            incarnation: new_incarnation(),
            partitions,
            created_at: rfc3339_now(),
            replication_factor: REPLICATION_FACTOR,
            leader_agent_id: LEADER_AGENT_ID.to_owned(),
            reserved_offsets: Vec::new(),
            skipped_offsets: Vec::new(),
            deleted_at: None,
            extra: Map::new(),
        }
    }

    /// Whether this manifest is a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// This manifest as a tombstone, deleted now.
    pub fn tombstone(&self) -> Self {
        TopicManifest {
            deleted_at: Some(rfc3339_now()),
            ..self.clone()
        }
    }

    /// JSON bytes, as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// Parses stored bytes.
    ///
    /// # Errors
    /// Not a manifest.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Stores this manifest at [`manifest_path`] of its topic, replacing what is there.
    ///
    /// # Errors
    /// The store's.
    pub async fn store(&self, store: &dyn ObjectStore) -> Result<(), object_store::Error> {
        store
            .put(&manifest_path(&self.name), PutPayload::from(self.encode()))
            .await
            .map(|_| ())
    }
}

/// `topics/{topic}/manifest.json`.
///
/// ```
/// use streamhouse_lite::manifest::manifest_path;
/// assert_eq!(manifest_path("orders").as_ref(), "topics/orders/manifest.json");
/// ```
pub fn manifest_path(topic: &str) -> Path {
    Path::from(format!("topics/{topic}/manifest.json"))
}

/// The topic whose manifest `path` is, if it is one.
///
/// ```
/// use streamhouse_lite::manifest::{manifest_path, parse_manifest_path};
/// assert_eq!(parse_manifest_path(&manifest_path("a.b")), Some("a.b".to_owned()));
/// assert_eq!(parse_manifest_path(&"topics/a/0/manifest.json".into()), None);
/// ```
pub fn parse_manifest_path(path: &Path) -> Option<String> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, topic, file] if root.as_ref() == "topics" && file.as_ref() == "manifest.json" => {
            Some(topic.as_ref().to_owned())
        }
        _ => None,
    }
}

/// A fresh incarnation id: random, so one drawn after a delete never names the old
/// incarnation's segments (a repeat has a chance of 2^-64).
fn new_incarnation() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Now, as RFC 3339 in UTC with milliseconds.
pub fn rfc3339_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    rfc3339(ms)
}

/// `ms` since the Unix epoch as RFC 3339 in UTC with milliseconds.
///
/// ```
/// use streamhouse_lite::manifest::rfc3339;
/// assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
/// ```
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unknown_fields_through_a_tombstone() {
        let mut stored: Value =
            serde_json::from_slice(&TopicManifest::new("t", 3).encode()).unwrap();
        stored["next_offsets"] = serde_json::json!([5, 6, 7]);
        stored["reserved_offsets"] = serde_json::json!([10, 20, 30]);
        let manifest = TopicManifest::decode(stored.to_string().as_bytes()).unwrap();
        assert!(!manifest.is_deleted());
        let tombstone = manifest.tombstone();
        assert!(tombstone.is_deleted());
        let again: Value = serde_json::from_slice(&tombstone.encode()).unwrap();
        assert_eq!(again["next_offsets"], serde_json::json!([5, 6, 7]));
        assert_eq!(again["incarnation"], stored["incarnation"]);
        assert_eq!(again["partitions"], 3);
        assert_eq!(manifest.reserved_offsets, [10, 20, 30]);
    }

    #[test]
    fn formats_dates_across_years_and_leap_days() {
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(1_709_208_000_000), "2024-02-29T12:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }
}
