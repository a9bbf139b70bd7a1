//! A record as stored and served: string key and value, string headers.

pub mod limits;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One stored record. Headers are kept byte for byte, so a `traceparent` written by a
/// producer reaches every consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Partition the record lives in.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Key, if any.
    #[serde(default)]
    pub key: Option<String>,
    /// Value.
    pub value: String,
    /// Milliseconds since the Unix epoch when the broker accepted it.
    pub timestamp: u64,
    /// Headers, as produced.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Record {
    /// Payload bytes: key, value, header names and values. What
    /// `streamhouse_producer_bytes_total` counts and what fills a segment.
    pub fn payload_bytes(&self) -> usize {
        payload_bytes(self.key.as_deref(), &self.value, &self.headers)
    }
}

/// Payload bytes of a record's parts; see [`Record::payload_bytes`].
pub fn payload_bytes(key: Option<&str>, value: &str, headers: &BTreeMap<String, String>) -> usize {
    key.map_or(0, str::len)
        + value.len()
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// A record to append: what a producer sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    /// Key, if any.
    pub key: Option<String>,
    /// Value.
    pub value: String,
    /// Headers.
    pub headers: BTreeMap<String, String>,
}
