//! Segments: a run of consecutive records of one partition, sealed and flushed as one
//! object. Encoded as JSON lines, one record per line, so an operator can read one with `cat`,
//! then one trailer line counting the records and checksumming every byte before it:
//!
//! ```
//! # use streamhouse_lite::{record::Record, segment};
//! # let record = |offset, value: &str| Record {
//! #     partition: 0, offset, key: None, value: value.into(), timestamp: 1, headers: Default::default(),
//! # };
//! let bytes = segment::encode(&[record(41, "a"), record(42, "b")]);
//! assert_eq!(String::from_utf8(bytes).unwrap(), r#"
//! {"partition":0,"offset":41,"key":null,"value":"a","timestamp":1,"headers":{}}
//! {"partition":0,"offset":42,"key":null,"value":"b","timestamp":1,"headers":{}}
//! {"trailer":{"records":2,"crc32":"556cce5c"}}
//! "#.trim_start());
//! ```
//!
//! A segment without its trailer, or with fewer records than it counts, was cut short
//! ([`SegmentError::Torn`]); one whose checksum or records do not match was damaged
//! ([`SegmentError::Corrupt`]). Either is never served.
//!
//! Layout in the object store (see [`crate::manifest`] for the manifest):
//!
//! ```text
//! topics/{topic}/manifest.json                                             the manifest
//! topics/{topic}/{incarnation:016x}/{partition}/{base:020}-{last:020}.seg   its segments
//! ```
//!
//! The incarnation (a random `u64` drawn when the topic is created) keeps the segments of a
//! deleted topic apart from those of a topic created again under its name: only the
//! incarnation the manifest names is ever read. Both the first and the last offset are in the
//! name, so a listing alone shows which offsets no segment holds. Segments of older layouts
//! (`topics/{topic}/{partition}/{base}.seg`, `.../{partition}/{base}.seg`) are not recognised
//! and stay untouched.

mod encoded;
mod trailer;

use object_store::path::Path;

pub use encoded::EncodedSegment;
pub use trailer::{SegmentError, append_trailer};

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
            self.last_offset(),
        )
    }

    /// Encodes the segment for the object store.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.records)
    }
}

/// The object path of a segment:
/// `topics/{topic}/{incarnation:016x}/{partition}/{base_offset:020}-{last_offset:020}.seg`,
/// so a listing sorts by offset within an incarnation and shows the offsets each holds.
///
/// ```
/// use streamhouse_lite::segment::object_path;
/// assert_eq!(
///     object_path("orders", 0xab, 2, 41, 50).as_ref(),
///     "topics/orders/00000000000000ab/2/00000000000000000041-00000000000000000050.seg"
/// );
/// ```
pub fn object_path(
    topic: &str,
    incarnation: u64,
    partition: u32,
    base_offset: u64,
    last_offset: u64,
) -> Path {
    Path::from(format!(
        "{}/{partition}/{base_offset:020}-{last_offset:020}.seg",
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
    /// Offset of the last record.
    pub last_offset: u64,
}

impl SegmentLocation {
    /// The path this location names.
    pub fn path(&self) -> Path {
        object_path(
            &self.topic,
            self.incarnation,
            self.partition,
            self.base_offset,
            self.last_offset,
        )
    }
}

/// The topic, incarnation, partition and offsets of a segment path written by
/// [`object_path`]; `None` for anything else (a manifest, a segment of an older layout, a
/// temporary file, a last offset below the first).
///
/// ```
/// use streamhouse_lite::segment::{object_path, parse_path};
/// let location = parse_path(&object_path("orders", 7, 2, 41, 50)).unwrap();
/// assert_eq!(
///     (location.incarnation, location.partition, location.base_offset, location.last_offset),
///     (7, 2, 41, 50)
/// );
/// assert_eq!(location.path(), object_path("orders", 7, 2, 41, 50));
/// // The layout before last offsets, and the one before incarnations.
/// let without_last = "topics/orders/0000000000000007/2/00000000000000000041.seg";
/// assert_eq!(parse_path(&without_last.into()), None);
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
            let (base, last) = file.as_ref().strip_suffix(".seg")?.split_once('-')?;
            let offset = |digits: &str| {
                let all_digits = digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit());
                all_digits.then(|| digits.parse::<u64>().ok()).flatten()
            };
            let (base_offset, last_offset) = (offset(base)?, offset(last)?);
            if last_offset < base_offset {
                return None;
            }
            Some(SegmentLocation {
                topic: topic.as_ref().to_owned(),
                incarnation: u64::from_str_radix(incarnation, 16).ok()?,
                partition: partition.as_ref().parse().ok()?,
                base_offset,
                last_offset,
            })
        }
        _ => None,
    }
}

/// Encodes records as JSON lines followed by the trailer (see the [module](self)).
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 64 + 64);
    for record in records {
        serde_json::to_writer(&mut out, record).expect("a record always serializes");
        out.push(b'\n');
    }
    append_trailer(&mut out, records.len() as u64);
    out
}

/// Decodes a segment written by [`encode`], checking its trailer and that its offsets are
/// consecutive.
///
/// # Errors
/// [`SegmentError::Torn`] or [`SegmentError::Corrupt`].
pub fn decode(bytes: &[u8]) -> Result<Vec<Record>, SegmentError> {
    let (body, trailer) = trailer::split(bytes)?;
    let mut records: Vec<Record> = Vec::new();
    for (i, line) in trailer::lines(body).enumerate() {
        let record: Record = serde_json::from_slice(line)
            .map_err(|e| SegmentError::Corrupt(format!("record {i}: {e}")))?;
        if let Some(before) = records.last()
            && record.offset != before.offset + 1
        {
            return Err(trailer::not_consecutive(
                i,
                record.offset,
                before.offset + 1,
            ));
        }
        records.push(record);
    }
    trailer.check_count(records.len())?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(base: u64, count: u64) -> Vec<Record> {
        (base..base + count)
            .map(|offset| Record {
                partition: 0,
                offset,
                key: Some("k\n\"".into()),
                value: format!("line\nbreak ☃ {offset}"),
                timestamp: 1,
                headers: [("traceparent".to_owned(), "00-ab-cd-01".to_owned())].into(),
            })
            .collect()
    }

    #[test]
    fn round_trips_hostile_strings() {
        let records = records(7, 3);
        let bytes = encode(&records);
        assert_eq!(decode(&bytes).unwrap(), records);
        // One line per record and the trailer: still readable with `cat`.
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("{\"trailer\":{\"records\":3,")
        );
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<Record>::new());
    }

    #[test]
    fn tells_a_segment_cut_short_from_a_damaged_one() {
        let bytes = encode(&records(0, 3));
        let line_end = bytes.iter().position(|b| *b == b'\n').unwrap();
        // Cut anywhere: in a record, at a line's end, in the trailer.
        for cut in [
            0,
            5,
            line_end,
            line_end + 1,
            bytes.len() - 10,
            bytes.len() - 1,
        ] {
            let error = decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(error, SegmentError::Torn(_)),
                "cut at {cut}: {error}"
            );
        }
        // One bit flipped in a value: same length, the checksum no longer matches.
        let mut flipped = bytes.clone();
        let at = line_end / 2;
        flipped[at] ^= 1;
        let error = decode(&flipped).unwrap_err();
        assert!(
            matches!(error, SegmentError::Corrupt(ref m) if m.contains("checksum")),
            "{error}"
        );
        // A record missing while the trailer still counts it.
        let mut short = Vec::new();
        for record in records(1, 2) {
            serde_json::to_writer(&mut short, &record).unwrap();
            short.push(b'\n');
        }
        append_trailer(&mut short, 3);
        let error = decode(&short).unwrap_err();
        assert!(
            matches!(error, SegmentError::Torn(ref m) if m.contains("counts 3")),
            "{error}"
        );
    }

    #[test]
    fn refuses_offsets_that_are_not_consecutive() {
        let mut gap = records(0, 2);
        gap[1].offset = 5;
        let error = decode(&encode(&gap)).unwrap_err();
        assert!(
            matches!(error, SegmentError::Corrupt(ref m) if m.contains("expected 1")),
            "{error}"
        );
    }
}
