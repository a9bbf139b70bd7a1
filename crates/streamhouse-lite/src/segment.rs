//! Segments: a run of consecutive records of one partition, sealed and flushed as one
//! object. Encoded as JSON lines, one record per line, so an operator can read one with `cat`.

mod encoded;

use object_store::path::Path;

pub use encoded::EncodedSegment;

use crate::record::Record;

/// A sealed segment: immutable, readable from memory until it is flushed.
#[derive(Debug)]
pub struct SealedSegment {
    /// Topic.
    pub topic: String,
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
        object_path(&self.topic, self.partition, self.base_offset)
    }

    /// Encodes the segment for the object store.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.records)
    }
}

/// The object path of a segment: `topics/{topic}/{partition}/{base_offset:020}.seg`, so a
/// listing sorts by offset.
///
/// ```
/// use streamhouse_lite::segment::object_path;
/// assert_eq!(object_path("orders", 2, 41).as_ref(), "topics/orders/2/00000000000000000041.seg");
/// ```
pub fn object_path(topic: &str, partition: u32, base_offset: u64) -> Path {
    Path::from(format!("topics/{topic}/{partition}/{base_offset:020}.seg"))
}

/// The topic, partition and base offset of a segment path written by [`object_path`].
///
/// ```
/// use streamhouse_lite::segment::{object_path, parse_path};
/// assert_eq!(parse_path(&object_path("orders", 2, 41)), Some(("orders".to_owned(), 2, 41)));
/// assert_eq!(parse_path(&"topics/orders/x/1.seg".into()), None);
/// ```
pub fn parse_path(path: &Path) -> Option<(String, u32, u64)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, topic, partition, file] if root.as_ref() == "topics" => {
            let base = file.as_ref().strip_suffix(".seg")?.parse().ok()?;
            Some((
                topic.as_ref().to_owned(),
                partition.as_ref().parse().ok()?,
                base,
            ))
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
