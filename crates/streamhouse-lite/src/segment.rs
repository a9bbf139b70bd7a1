//! Segments: a run of consecutive records of one partition, sealed and flushed as one
//! object. Encoded as JSON lines, one record per line, so an operator can read one with `cat`.
//!
//! Layout in the object store (see [`crate::manifest`] for the manifest):
//!
//! ```text
//! topics/{topic}/manifest.json                                   the topic's manifest
//! topics/{topic}/{incarnation:016x}/{partition}/{base:020}.seg    its segments
//! ```
//!
//! The incarnation (a random `u64` drawn when the topic is created) keeps the segments of a
//! deleted topic apart from those of a topic created again under its name: only the
//! incarnation the manifest names is ever read. Segments of the layout before incarnations
//! (`topics/{topic}/{partition}/{base}.seg`) are not recognised and stay untouched.

mod encoded;

use object_store::path::Path;

pub use encoded::EncodedSegment;

use crate::record::Record;

/// A sealed segment: immutable, readable from memory until it is flushed.
#[derive(Debug)]
pub struct SealedSegment {
    /// Topic.
    pub topic: String,
    /// The topic's incarnation (see [`object_path`]).
    pub incarnation: u64,
    /// Partition.
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// The records, in offset order; never empty.
    pub records: Vec<Record>,
    /// Payload bytes of the records.
    pub payload_bytes: usize,
}

impl SealedSegment {
    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + self.records.len() as u64 - 1
    }

    /// Where the segment is stored.
    pub fn path(&self) -> Path {
        object_path(
            &self.topic,
            self.incarnation,
            self.partition,
            self.base_offset,
        )
    }

    /// Encodes the segment for the object store.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.records)
    }
}

/// The object path of a segment:
/// `topics/{topic}/{incarnation:016x}/{partition}/{base_offset:020}.seg`, so a listing sorts
/// by offset within an incarnation.
///
/// ```
/// use streamhouse_lite::segment::object_path;
/// assert_eq!(
///     object_path("orders", 0xab, 2, 41).as_ref(),
///     "topics/orders/00000000000000ab/2/00000000000000000041.seg"
/// );
/// ```
pub fn object_path(topic: &str, incarnation: u64, partition: u32, base_offset: u64) -> Path {
    Path::from(format!(
        "{}/{partition}/{base_offset:020}.seg",
        incarnation_prefix(topic, incarnation)
    ))
}

/// The prefix under which every segment of one incarnation of `topic` lies.
///
/// ```
/// use streamhouse_lite::segment::incarnation_prefix;
/// assert_eq!(incarnation_prefix("orders", 1).as_ref(), "topics/orders/0000000000000001");
/// ```
pub fn incarnation_prefix(topic: &str, incarnation: u64) -> Path {
    Path::from(format!("topics/{topic}/{incarnation:016x}"))
}

/// Where a segment path written by [`object_path`] belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLocation {
    /// Topic.
    pub topic: String,
    /// Incarnation of the topic.
    pub incarnation: u64,
    /// Partition.
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
}

/// The topic, incarnation, partition and base offset of a segment path written by
/// [`object_path`]; `None` for anything else (a manifest, a segment of the older layout
/// without incarnations, a temporary file).
///
/// ```
/// use streamhouse_lite::segment::{object_path, parse_path};
/// let location = parse_path(&object_path("orders", 7, 2, 41)).unwrap();
/// assert_eq!((location.incarnation, location.partition, location.base_offset), (7, 2, 41));
/// assert_eq!(parse_path(&"topics/orders/2/00000000000000000041.seg".into()), None);
/// assert_eq!(parse_path(&"topics/orders/manifest.json".into()), None);
/// ```
pub fn parse_path(path: &Path) -> Option<SegmentLocation> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, topic, incarnation, partition, file] if root.as_ref() == "topics" => {
            let incarnation = incarnation.as_ref();
            if incarnation.len() != 16 {
                return None;
            }
            Some(SegmentLocation {
                topic: topic.as_ref().to_owned(),
                incarnation: u64::from_str_radix(incarnation, 16).ok()?,
                partition: partition.as_ref().parse().ok()?,
                base_offset: file.as_ref().strip_suffix(".seg")?.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Encodes records as JSON lines.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 64);
    for record in records {
        serde_json::to_writer(&mut out, record).expect("a record always serializes");
        out.push(b'\n');
    }
    out
}

/// Decodes JSON lines written by [`encode`].
///
/// # Errors
/// The first line that is not a record.
pub fn decode(bytes: &[u8]) -> Result<Vec<Record>, serde_json::Error> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(serde_json::from_slice)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_hostile_strings() {
        let records = vec![Record {
            partition: 0,
            offset: 7,
            key: Some("k\n\"".into()),
            value: "line\nbreak ☃".into(),
            timestamp: 1,
            headers: [("traceparent".to_owned(), "00-ab-cd-01".to_owned())].into(),
        }];
        assert_eq!(decode(&encode(&records)).unwrap(), records);
    }
}
