//! The trailer line that ends every segment: how many records it holds and a CRC-32 of every
//! byte before it, so a segment cut short or damaged in the store is never served.

use serde::{Deserialize, Serialize};
use streamhouse_observability::metrics::StorageFault;

/// Why stored bytes are not a whole, intact segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentError {
    /// Cut short: no trailer, a last line cut in the middle, or fewer (or more) records than
    /// the trailer counts.
    Torn(String),
    /// Damaged: the checksum does not match, a line is not a record, or the offsets are not
    /// consecutive (or not those its path names).
    Corrupt(String),
}

impl SegmentError {
    /// The fault counted in `streamhouse_storage_faults_total`.
    pub fn fault(&self) -> StorageFault {
        match self {
            SegmentError::Torn(_) => StorageFault::TornSegment,
            SegmentError::Corrupt(_) => StorageFault::CorruptSegment,
        }
    }
}

impl std::fmt::Display for SegmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentError::Torn(detail) => write!(f, "torn segment: {detail}"),
            SegmentError::Corrupt(detail) => write!(f, "corrupt segment: {detail}"),
        }
    }
}

impl std::error::Error for SegmentError {}

/// How every trailer line starts; no record line does (a record starts with its partition).
const TRAILER_START: &[u8] = b"{\"trailer\":";

#[derive(Serialize, Deserialize)]
struct TrailerLine {
    trailer: Trailer,
}

/// What a trailer says about the lines before it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Trailer {
    records: u64,
    /// Lowercase hex, 8 digits: readable next to the records.
    crc32: String,
}

impl Trailer {
    /// Torn unless `found` records are what the trailer counts.
    pub(super) fn check_count(&self, found: usize) -> Result<(), SegmentError> {
        if found as u64 == self.records {
            return Ok(());
        }
        Err(SegmentError::Torn(format!(
            "{found} records before a trailer that counts {}",
            self.records
        )))
    }
}

/// Appends the trailer line for `out` (the encoded lines of `records` records).
pub fn append_trailer(out: &mut Vec<u8>, records: u64) {
    let trailer = TrailerLine {
        trailer: Trailer {
            records,
            crc32: format!("{:08x}", crc32fast::hash(out)),
        },
    };
    serde_json::to_writer(&mut *out, &trailer).expect("a trailer always serializes");
    out.push(b'\n');
}

/// The lines before the trailer and the trailer, once the checksum matched.
pub(super) fn split(bytes: &[u8]) -> Result<(&[u8], Trailer), SegmentError> {
    let Some(without_newline) = bytes.strip_suffix(b"\n") else {
        return Err(SegmentError::Torn(if bytes.is_empty() {
            "empty, no trailer".to_owned()
        } else {
            format!("ends in the middle of a line after {} bytes", bytes.len())
        }));
    };
    let body_len = without_newline
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |newline| newline + 1);
    let (body, last) = bytes.split_at(body_len);
    if !last.starts_with(TRAILER_START) {
        return Err(SegmentError::Torn(format!(
            "no trailer after {} bytes",
            bytes.len()
        )));
    }
    let TrailerLine { trailer } = serde_json::from_slice(last)
        .map_err(|e| SegmentError::Corrupt(format!("unreadable trailer: {e}")))?;
    let stored = u32::from_str_radix(&trailer.crc32, 16).map_err(|e| {
        SegmentError::Corrupt(format!("unreadable checksum {:?}: {e}", trailer.crc32))
    })?;
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(SegmentError::Corrupt(format!(
            "checksum {computed:08x} of {body_len} bytes, the trailer says {stored:08x}"
        )));
    }
    Ok((body, trailer))
}

/// The non-blank lines of `body`, without their newlines.
pub(super) fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|b| *b == b'\n').filter(|line| !line.is_empty())
}

/// The error for record `index` at `offset` where `expected` was due.
pub(super) fn not_consecutive(index: usize, offset: u64, expected: u64) -> SegmentError {
    SegmentError::Corrupt(format!(
        "record {index} has offset {offset}, expected {expected}"
    ))
}
