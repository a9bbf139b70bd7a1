//! W3C trace context in record headers, so a consumer's spans join the producer's trace.
//!
//! Built straight from the send span's context, never through a propagator: records carry
//! `traceparent` (and `tracestate`) whatever `OTEL_PROPAGATORS` selects for HTTP. Every value
//! is held to its W3C bound, and room for the largest one is reserved in each record's header
//! limits (see [`reserved`]), so a client's own headers can never crowd trace context out.

use std::collections::{BTreeMap, HashMap};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::BaggagePropagator;
use streamhouse_observability::propagation::{MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header carrying the producer's span: `00-{trace id}-{span id}-{flags}`.
pub(crate) const TRACEPARENT: &str = "traceparent";
/// Header carrying vendor trace state.
pub(crate) const TRACESTATE: &str = "tracestate";
/// Header carrying W3C baggage (in records only when configured).
pub(crate) const BAGGAGE: &str = "baggage";

/// Length of a version-00 `traceparent` value.
const TRACEPARENT_LEN: usize = 55;
/// W3C baggage limits.
pub(crate) const MAX_BAGGAGE_BYTES: usize = 8192;
pub(crate) const MAX_BAGGAGE_MEMBERS: usize = 180;

/// Header slots and bytes (names and values) kept in every record for trace context: the
/// most it can take, so whether a record fits never depends on the caller's trace.
pub(crate) fn reserved(record_baggage: bool) -> (usize, usize) {
    let trace = (
        2,
        TRACEPARENT.len() + TRACEPARENT_LEN + TRACESTATE.len() + MAX_TRACESTATE_BYTES,
    );
    if record_baggage {
        (trace.0 + 1, trace.1 + BAGGAGE.len() + MAX_BAGGAGE_BYTES)
    } else {
        trace
    }
}

/// Whether `name` is a header the reserved room is for (matched like HTTP names).
pub(crate) fn is_trace_header(name: &str, record_baggage: bool) -> bool {
    name.eq_ignore_ascii_case(TRACEPARENT)
        || name.eq_ignore_ascii_case(TRACESTATE)
        || (record_baggage && name.eq_ignore_ascii_case(BAGGAGE))
}

/// Whether `value` is a W3C version-00 `traceparent` with non-zero ids.
pub(crate) fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let non_zero = |s: &str| s.bytes().any(|b| b != b'0');
    value.len() == TRACEPARENT_LEN
        && matches!(parts.as_slice(), [version, trace, span, flags]
            if *version == "00" && hex(trace, 32) && non_zero(trace)
                && hex(span, 16) && non_zero(span) && hex(flags, 2))
}

/// `value` if it is a list of at most `members` members and `bytes` bytes.
fn within(value: &str, members: usize, bytes: usize) -> Option<&str> {
    (!value.is_empty() && value.len() <= bytes && value.split(',').count() <= members)
        .then_some(value)
}

fn bounded_tracestate(value: &str) -> Option<&str> {
    within(value, MAX_TRACESTATE_MEMBERS, MAX_TRACESTATE_BYTES)
}

fn bounded_baggage(value: &str) -> Option<&str> {
    within(value, MAX_BAGGAGE_MEMBERS, MAX_BAGGAGE_BYTES)
}

/// The trace headers of one produce request, built once and written into each record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordContext {
    traceparent: Option<String>,
    tracestate: Option<String>,
    baggage: Option<String>,
    record_baggage: bool,
}

impl RecordContext {
    /// The context of `span`: its ids, its trace state within W3C bounds (when the request's
    /// own was), and its baggage when `record_baggage` and within bounds. Without an
    /// OpenTelemetry layer the span has no ids and records get no `traceparent` from us.
    pub(crate) fn of_span(span: &tracing::Span, record_baggage: bool) -> Self {
        let context = span.context();
        let span_ref = context.span();
        let span_context = span_ref.span_context();
        let mut record = RecordContext {
            record_baggage,
            ..RecordContext::default()
        };
        if span_context.is_valid() {
            record.traceparent = Some(traceparent(span_context));
            // An oversized client `tracestate` never got here: HTTP extraction drops it.
            let state = span_context.trace_state().header();
            record.tracestate = bounded_tracestate(&state).map(str::to_owned);
        }
        if record_baggage {
            let mut carried = HashMap::new();
            BaggagePropagator::new().inject_context(&context, &mut carried);
            record.baggage = carried
                .remove(BAGGAGE)
                .filter(|b| bounded_baggage(b).is_some());
        }
        record
    }

    /// Sets the trace headers of one record. A client's own valid `traceparent` stays, with
    /// its `tracestate` if within bounds: a client that traces its own call keeps its
    /// context. A malformed one is replaced by ours rather than refused, so the record still
    /// joins a trace. Client `baggage` (when recorded) stays if within bounds, else ours.
    pub(crate) fn apply(&self, headers: &mut BTreeMap<String, String>) {
        let client = take_trace_headers(headers, self.record_baggage);
        let theirs = client
            .traceparent
            .filter(|value| is_valid_traceparent(value));
        let (traceparent, tracestate) = match theirs {
            Some(parent) => (
                Some(parent),
                client
                    .tracestate
                    .filter(|s| bounded_tracestate(s).is_some()),
            ),
            None => (self.traceparent.clone(), self.tracestate.clone()),
        };
        let baggage = client
            .baggage
            .filter(|b| bounded_baggage(b).is_some())
            .or_else(|| self.baggage.clone());
        for (name, value) in [
            (TRACEPARENT, traceparent),
            (TRACESTATE, tracestate),
            (BAGGAGE, baggage),
        ] {
            if let Some(value) = value {
                headers.insert(name.to_owned(), value);
            }
        }
    }
}

/// Removes every spelling of the trace headers from `headers`, returning the lowercase ones'
/// values (or any spelling's, when there is no lowercase one).
fn take_trace_headers(
    headers: &mut BTreeMap<String, String>,
    record_baggage: bool,
) -> RecordContext {
    let mut taken = RecordContext::default();
    let names: Vec<String> = headers
        .keys()
        .filter(|name| is_trace_header(name, record_baggage))
        .cloned()
        .collect();
    for name in names {
        let Some(value) = headers.remove(&name) else {
            continue;
        };
        let slot = if name.eq_ignore_ascii_case(TRACEPARENT) {
            &mut taken.traceparent
        } else if name.eq_ignore_ascii_case(TRACESTATE) {
            &mut taken.tracestate
        } else {
            &mut taken.baggage
        };
        if slot.is_none() || name.bytes().all(|b| !b.is_ascii_uppercase()) {
            *slot = Some(value);
        }
    }
    taken
}

fn traceparent(context: &SpanContext) -> String {
    let flags = if context.is_sampled() { "01" } else { "00" };
    format!("00-{}-{}-{flags}", context.trace_id(), context.span_id())
}

/// A record's headers as the SDK's extractors read them, borrowed: a consume builds no
/// carrier per record. Exact names suffice: [`RecordContext::apply`] stores the trace headers
/// lowercase and removes every other spelling.
pub(crate) struct RecordHeaders<'a>(pub(crate) &'a BTreeMap<String, String>);

impl opentelemetry::propagation::Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn ours() -> RecordContext {
        RecordContext {
            traceparent: Some("00-11111111111111111111111111111111-2222222222222222-01".into()),
            tracestate: Some("ours=1".into()),
            baggage: None,
            record_baggage: false,
        }
    }

    #[test]
    fn traceparent_must_be_version_00_with_nonzero_ids() {
        assert!(is_valid_traceparent(PARENT));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert!(!is_valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn a_valid_client_context_stays_and_a_malformed_one_is_replaced() {
        let mut headers: BTreeMap<String, String> = [
            ("TraceParent".to_owned(), PARENT.to_owned()),
            ("tracestate".to_owned(), "theirs=1".to_owned()),
        ]
        .into();
        ours().apply(&mut headers);
        assert_eq!(headers["traceparent"], PARENT);
        assert_eq!(headers["tracestate"], "theirs=1");
        assert!(!headers.contains_key("TraceParent"));

        let mut headers: BTreeMap<String, String> = [
            ("traceparent".to_owned(), "not-a-trace".to_owned()),
            ("tracestate".to_owned(), "theirs=1".to_owned()),
        ]
        .into();
        ours().apply(&mut headers);
        assert_eq!(
            headers,
            BTreeMap::from([
                ("traceparent".to_owned(), ours().traceparent.unwrap()),
                ("tracestate".to_owned(), "ours=1".to_owned()),
            ])
        );
    }

    #[test]
    fn oversized_trace_state_and_baggage_are_dropped_whole() {
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(bounded_tracestate(&members[..32].join(",")).is_some());
        assert!(bounded_tracestate(&members.join(",")).is_none());
        assert!(bounded_tracestate(&format!("k={}", "v".repeat(511))).is_none());
        let mut headers: BTreeMap<String, String> = [
            (TRACEPARENT.to_owned(), PARENT.to_owned()),
            (TRACESTATE.to_owned(), members.join(",")),
        ]
        .into();
        ours().apply(&mut headers);
        assert!(!headers.contains_key(TRACESTATE), "{headers:?}");

        let baggage: Vec<String> = (0..181).map(|i| format!("k{i}=v")).collect();
        assert!(bounded_baggage(&baggage[..180].join(",")).is_some());
        assert!(bounded_baggage(&baggage.join(",")).is_none());
        assert!(bounded_baggage(&format!("k={}", "v".repeat(8190))).is_some());
        assert!(bounded_baggage(&format!("k={}", "v".repeat(8191))).is_none());
    }

    #[test]
    fn the_reservation_fits_the_largest_context() {
        let (count, bytes) = reserved(false);
        assert_eq!(count, 2);
        assert_eq!(
            bytes,
            TRACEPARENT.len() + PARENT.len() + TRACESTATE.len() + 512
        );
        let (count, with_baggage) = reserved(true);
        assert_eq!(count, 3);
        assert_eq!(with_baggage, bytes + BAGGAGE.len() + 8192);
        assert!(is_trace_header("TRACESTATE", false));
        assert!(!is_trace_header("baggage", false));
        assert!(is_trace_header("Baggage", true));
    }
}
