//! W3C trace context (`traceparent`, `tracestate`) and `baggage`, in and out of HTTP headers
//! and record headers, plus messaging spans that follow the OTel semantic conventions.
//!
//! Works on `tracing` spans bridged by [`crate::logging`]: a producer injects the context of
//! its send span into the record's headers; a consumer's process span takes it as parent, so
//! both carry one trace id.
//!
//! ```
//! use streamhouse_observability::propagation;
//!
//! let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
//! let send = propagation::send_span("orders");
//! propagation::inject_record_headers(&send, &mut headers);
//! // ... the record travels; on the consumer:
//! let process = propagation::process_span("orders", "billing", &headers);
//! let _entered = process.enter();
//! ```

mod headers;
mod messaging;

pub use headers::{
    MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS, RecordHeaderExtractor, RecordHeaderInjector,
};

use headers::BoundedHeaderExtractor;
pub use messaging::{MESSAGING_SYSTEM, MessagingOperation, process_span, receive_span, send_span};

use opentelemetry::Context;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_http::HeaderInjector;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The propagator used throughout: W3C trace context, then W3C baggage.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// The context carried by incoming HTTP headers (empty when there is none or it is malformed).
/// A `tracestate` past the W3C bounds (32 members, 512 bytes) is dropped whole.
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    propagator().extract(&BoundedHeaderExtractor(headers))
}

/// Writes `span`'s context into outgoing HTTP headers.
///
/// ```
/// use streamhouse_observability::propagation;
///
/// let mut headers = http::HeaderMap::new();
/// propagation::inject_http(&tracing::Span::current(), &mut headers);
/// ```
pub fn inject_http(span: &tracing::Span, headers: &mut http::HeaderMap) {
    propagator().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The context carried by record headers (empty when there is none or it is malformed).
pub fn extract_record_headers<K: AsRef<[u8]>>(headers: &[(K, Vec<u8>)]) -> Context {
    propagator().extract(&RecordHeaderExtractor(headers))
}

/// Writes `span`'s context into record headers, replacing earlier trace headers.
pub fn inject_record_headers<K>(span: &tracing::Span, headers: &mut Vec<(K, Vec<u8>)>)
where
    K: AsRef<[u8]> + From<String>,
{
    propagator().inject_context(&span.context(), &mut RecordHeaderInjector(headers));
}
