//! A flushed segment held as its encoded bytes plus a line index, decoded a range at a time.
//!
//! Why encoded: a decoded `Record` costs about 3.5 times its JSON line (a `String` for the
//! key, the value and each header name and value, a `BTreeMap` node per header, the struct),
//! so a cache bounded by encoded bytes but holding decoded records used 3.5 times its bound.
//! Held encoded, what the cache counts is what it holds, and a bound holds 3.5 times the
//! records it would hold decoded. The price is on hits: decoding a record costs about 0.7 µs
//! where cloning a decoded one cost 0.25 µs (`benches/segment_read.rs`, BENCHMARKS.md); a
//! miss is cheaper (1 MiB: 1.9 ms to index against 5.4 ms to decode), and the reader
//! re-encodes what it returns as JSON anyway.

use serde::Deserialize;

use super::SegmentError;
use super::trailer;
use crate::record::Record;

/// The encoded lines of one segment and where each ends. Line `i` is the record at offset
/// `base_offset + i`: [`EncodedSegment::parse`] checks that once, so a read is a slice.
#[derive(Debug)]
pub struct EncodedSegment {
    base_offset: u64,
    bytes: Box<[u8]>,
    /// End of each record's line (exclusive, without its newline).
    line_ends: Box<[u32]>,
}

/// Only the offset of a line: checking the order without building the record.
#[derive(Deserialize)]
struct OffsetOnly {
    offset: u64,
}

impl EncodedSegment {
    /// Checks `bytes` (a segment written by [`super::encode`]: its trailer, checksum and
    /// offsets) and copies its lines into an allocation of exactly their size, indexing them.
    ///
    /// # Errors
    /// [`SegmentError::Torn`] or [`SegmentError::Corrupt`] (also for a segment larger than
    /// 4 GiB).
    pub fn parse(bytes: &[u8]) -> Result<Self, SegmentError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(SegmentError::Corrupt(format!(
                "{} bytes: larger than 4 GiB",
                bytes.len()
            )));
        }
        let (body, trailer) = trailer::split(bytes)?;
        let mut line_ends = Vec::new();
        let mut base_offset = 0;
        let mut start = 0;
        for line in body.split(|b| *b == b'\n') {
            let end = start + line.len();
            if !line.is_empty() {
                let index = line_ends.len();
                let OffsetOnly { offset } = serde_json::from_slice(line)
                    .map_err(|e| SegmentError::Corrupt(format!("record {index}: {e}")))?;
                let expected = base_offset + index as u64;
                if index == 0 {
                    base_offset = offset;
                } else if offset != expected {
                    return Err(trailer::not_consecutive(index, offset, expected));
                }
                // Fits: the length was checked above.
                line_ends.push(end as u32);
            }
            start = end + 1;
        }
        trailer.check_count(line_ends.len())?;
        Ok(EncodedSegment {
            base_offset,
            bytes: body.into(),
            line_ends: line_ends.into_boxed_slice(),
        })
    }

    /// Offset of the first record (0 when there is none).
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Offset of the last record, if any.
    pub fn last_offset(&self) -> Option<u64> {
        (self.len() as u64)
            .checked_sub(1)
            .map(|last| self.base_offset + last)
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.line_ends.len()
    }

    /// True when the segment holds no record.
    pub fn is_empty(&self) -> bool {
        self.line_ends.is_empty()
    }

    /// Decodes at most `max` records from the first one at or after `offset`.
    ///
    /// # Errors
    /// A line in the range that is not a record.
    pub fn read(&self, offset: u64, max: usize) -> Result<Vec<Record>, serde_json::Error> {
        self.records_from(offset).take(max).collect()
    }

    /// The records from the first one at or after `offset`, each decoded when the iterator
    /// reaches it: a reader that stops early decodes nothing past where it stopped.
    pub fn records_from(
        &self,
        offset: u64,
    ) -> impl Iterator<Item = Result<Record, serde_json::Error>> + '_ {
        let first = usize::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(usize::MAX);
        (first.min(self.len())..self.len()).map(|i| serde_json::from_slice(self.line(i)))
    }

    /// Line `i` with the newlines (and blank lines) before it: JSON allows the whitespace.
    fn line(&self, i: usize) -> &[u8] {
        let start = i
            .checked_sub(1)
            .map_or(0, |before| self.line_ends[before] as usize);
        &self.bytes[start..self.line_ends[i] as usize]
    }

    /// Heap and inline bytes this segment keeps alive: the encoded lines, the index and the
    /// struct itself.
    pub fn resident_bytes(&self) -> u64 {
        (self.bytes.len()
            + std::mem::size_of_val::<[u32]>(&self.line_ends)
            + std::mem::size_of::<Self>()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{append_trailer, encode};
    use streamhouse_observability::metrics::StorageFault;

    fn records(base: u64, count: u64) -> Vec<Record> {
        (base..base + count)
            .map(|offset| Record {
                partition: 0,
                offset,
                key: (offset % 2 == 0).then(|| format!("k{offset}\n")),
                value: format!("value ☃ {offset}"),
                timestamp: offset,
                headers: [("h".to_owned(), "v\n".to_owned())].into(),
            })
            .collect()
    }

    #[test]
    fn reads_any_range_as_decoding_the_whole_segment_would() {
        let all = records(40, 10);
        let segment = EncodedSegment::parse(&encode(&all)).unwrap();
        assert_eq!(
            (segment.base_offset(), segment.last_offset()),
            (40, Some(49))
        );
        assert_eq!(segment.len(), 10);
        for offset in 30..55 {
            for max in [0, 1, 3, 20] {
                let expected: Vec<_> = all
                    .iter()
                    .filter(|r| r.offset >= offset)
                    .take(max)
                    .cloned()
                    .collect();
                assert_eq!(
                    segment.read(offset, max).unwrap(),
                    expected,
                    "{offset} {max}"
                );
            }
        }
    }

    #[test]
    fn skips_blank_lines_and_counts_what_it_holds() {
        let all = records(0, 3);
        let mut bytes = b"\n".to_vec();
        for record in &all {
            bytes.extend(serde_json::to_vec(record).unwrap());
            bytes.extend(b"\n\n");
        }
        let body_len = bytes.len();
        append_trailer(&mut bytes, 3);
        let segment = EncodedSegment::parse(&bytes).unwrap();
        assert_eq!(segment.read(0, 10).unwrap(), all);
        // The trailer is checked, not kept.
        let expected = body_len + 3 * 4 + std::mem::size_of::<EncodedSegment>();
        assert_eq!(segment.resident_bytes(), expected as u64);
    }

    /// `lines` as a segment body with a trailer counting them.
    fn sealed(lines: &[u8], records: u64) -> Vec<u8> {
        let mut bytes = lines.to_vec();
        append_trailer(&mut bytes, records);
        bytes
    }

    #[test]
    fn refuses_gaps_and_lines_without_an_offset() {
        let mut gap = records(0, 2);
        gap[1].offset = 5;
        let error = EncodedSegment::parse(&encode(&gap)).unwrap_err();
        assert!(
            matches!(error, SegmentError::Corrupt(ref m) if m.contains("expected 1")),
            "{error}"
        );
        let error = EncodedSegment::parse(&sealed(b"{\"value\":\"x\"}\n", 1)).unwrap_err();
        assert!(matches!(error, SegmentError::Corrupt(_)), "{error}");
        let empty = EncodedSegment::parse(&encode(&[])).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.last_offset(), None);
    }

    #[test]
    fn refuses_segments_cut_short_or_damaged() {
        let bytes = encode(&records(0, 4));
        let first_line = bytes.iter().position(|b| *b == b'\n').unwrap();
        for cut in [0, first_line / 2, first_line + 1, bytes.len() - 2] {
            let error = EncodedSegment::parse(&bytes[..cut]).unwrap_err();
            assert_eq!(
                error.fault(),
                StorageFault::TornSegment,
                "cut at {cut}: {error}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[first_line / 2] ^= 0x01;
        let error = EncodedSegment::parse(&flipped).unwrap_err();
        assert_eq!(error.fault(), StorageFault::CorruptSegment, "{error}");
    }

    #[test]
    fn a_corrupt_record_fails_the_read_that_reaches_it() {
        // Written with a checksum, so only a bug could store it: found when read.
        let bytes = sealed(
            b"{\"offset\":0,\"value\":\"a\",\"partition\":0,\"timestamp\":1}\n{\"offset\":1}\n",
            2,
        );
        let segment = EncodedSegment::parse(&bytes).unwrap();
        assert_eq!(segment.read(0, 1).unwrap()[0].value, "a");
        assert!(segment.read(0, 2).is_err());
    }
}
