//! W3C trace context in record headers, through the SDK's record-header propagation, so a
//! consumer's spans join the producer's trace.

use std::collections::BTreeMap;

use streamhouse_observability::propagation;

/// Writes `span`'s context into `headers` unless the record already carries one: a client
/// that traces its own produce call keeps its context.
pub(crate) fn inject(span: &tracing::Span, headers: &mut BTreeMap<String, String>) {
    if headers.contains_key("traceparent") {
        return;
    }
    let mut carried: Vec<(String, Vec<u8>)> = Vec::new();
    propagation::inject_record_headers(span, &mut carried);
    for (key, value) in carried {
        // W3C trace headers are ASCII; anything else is not ours to store.
        if let Ok(value) = String::from_utf8(value) {
            headers.entry(key).or_insert(value);
        }
    }
}

/// `headers` in the shape the SDK's extractors read.
pub(crate) fn carrier(headers: &BTreeMap<String, String>) -> Vec<(&str, Vec<u8>)> {
    headers
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_bytes().to_vec()))
        .collect()
}
