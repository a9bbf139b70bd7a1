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
}
