//! Record headers as a propagation carrier: ordered `(key, value)` byte pairs, as Kafka
//! records carry them. Keys match case-insensitively, like HTTP header names.

use opentelemetry::propagation::{Extractor, Injector};

/// Reads trace headers from record headers. Values that are not UTF-8 are ignored.
#[derive(Debug)]
pub struct RecordHeaderExtractor<'a, K>(pub &'a [(K, Vec<u8>)]);

impl<K: AsRef<[u8]>> Extractor for RecordHeaderExtractor<'_, K> {
    fn get(&self, key: &str) -> Option<&str> {
        // The last value wins, as a later injection replaces an earlier one.
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(key.as_bytes()))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|(k, _)| std::str::from_utf8(k.as_ref()).ok())
            .collect()
    }
}

/// W3C bounds on `tracestate` (Trace Context, section 3.3.1.1): more list members than this,
/// or more bytes, and the header is dropped whole rather than cut.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// See [`MAX_TRACESTATE_MEMBERS`].
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// Reads HTTP headers for extraction, hiding a `tracestate` past the W3C bounds: the SDK's
/// propagator would keep its first 32 members and so carry a client's oversized state on.
#[derive(Debug)]
pub(crate) struct BoundedHeaderExtractor<'a>(pub(crate) &'a http::HeaderMap);

impl Extractor for BoundedHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?.to_str().ok()?;
        if key.eq_ignore_ascii_case("tracestate") && !tracestate_in_bounds(self.0) {
            return None;
        }
        Some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Whether the request's `tracestate` headers, joined as W3C combines repeated ones, are
/// within the W3C bounds.
fn tracestate_in_bounds(headers: &http::HeaderMap) -> bool {
    let (mut members, mut bytes, mut values) = (0, 0, 0usize);
    for value in headers.get_all("tracestate") {
        members += value.as_bytes().split(|b| *b == b',').count();
        bytes += value.len();
        values += 1;
    }
    let commas = values.saturating_sub(1);
    members <= MAX_TRACESTATE_MEMBERS && bytes + commas <= MAX_TRACESTATE_BYTES
}

/// Writes trace headers into record headers, replacing any header with the same key.
#[derive(Debug)]
pub struct RecordHeaderInjector<'a, K>(pub &'a mut Vec<(K, Vec<u8>)>);

impl<K: AsRef<[u8]> + From<String>> Injector for RecordHeaderInjector<'_, K> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .retain(|(k, _)| !k.as_ref().eq_ignore_ascii_case(key.as_bytes()));
        self.0.push((K::from(key.to_owned()), value.into_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = vec![(b"TraceParent".to_vec(), b"old".to_vec())];
        RecordHeaderInjector(&mut headers).set("traceparent", "new".to_owned());
        assert_eq!(headers, vec![(b"traceparent".to_vec(), b"new".to_vec())]);
        headers.push((b"bin".to_vec(), vec![0xff]));
        let extractor = RecordHeaderExtractor(&headers);
        assert_eq!(extractor.get("TRACEPARENT"), Some("new"));
        assert_eq!(extractor.get("bin"), None);
        assert_eq!(extractor.keys(), vec!["traceparent", "bin"]);
    }

    #[test]
    fn an_oversized_tracestate_is_hidden_counting_every_header_line() {
        let mut headers = http::HeaderMap::new();
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        headers.insert("tracestate", members.join(",").parse().unwrap());
        assert!(BoundedHeaderExtractor(&headers).get("tracestate").is_some());
        headers.append("tracestate", "k32=v".parse().unwrap());
        assert_eq!(BoundedHeaderExtractor(&headers).get("tracestate"), None);
        let mut long = http::HeaderMap::new();
        long.insert(
            "tracestate",
            format!("k={}", "v".repeat(511)).parse().unwrap(),
        );
        long.insert("traceparent", "kept".parse().unwrap());
        let extractor = BoundedHeaderExtractor(&long);
        assert_eq!(extractor.get("tracestate"), None);
        assert_eq!(extractor.get("traceparent"), Some("kept"));
    }
}
