//! W3C trace context (`traceparent`, `tracestate`) and `baggage`, in and out of HTTP headers
//! and record headers, plus messaging spans that follow the OTel semantic conventions.
//!
//! Two kinds of carrier, two rules:
//! - HTTP uses the propagators `OTEL_PROPAGATORS` names ([`Propagators`], held by
//!   [`TelemetryConfig::propagators`](crate::TelemetryConfig::propagators)):
//!   [`HttpServerLayer`](crate::http::HttpServerLayer) extracts with them, and
//!   [`Telemetry::init_global`](crate::Telemetry::init_global) installs them as the global
//!   propagator. [`extract_http`] and [`inject_http`] are the fixed W3C pair, for code
//!   without a telemetry handle; [`Propagators::extract_http`] and
//!   [`Propagators::inject_http`] follow the configuration.
//! - Record headers always carry W3C trace context ([`propagator`]), whatever
//!   `OTEL_PROPAGATORS` says, so a consumer never depends on a producer's HTTP settings.
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
mod propagators;

pub use headers::{
    MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS, RecordHeaderExtractor, RecordHeaderInjector,
};

pub use messaging::{
    MAX_RECEIVE_LINKS, MESSAGING_SYSTEM, MessagingOperation, process_span, receive_span,
    receive_span_with, send_span,
};
pub use propagators::{PropagatorKind, Propagators};

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The record-header propagator: W3C trace context, then W3C baggage, whatever
/// `OTEL_PROPAGATORS` says (HTTP follows [`Propagators`]).
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// The context carried by incoming HTTP headers in W3C trace context and baggage (empty when
/// there is none or it is malformed), whatever `OTEL_PROPAGATORS` says: use
/// [`Propagators::extract_http`] for the configured set. A `tracestate` past the W3C bounds
/// (32 members, 512 bytes) is dropped whole.
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    w3c().extract_http(headers)
}

/// Writes `span`'s context into outgoing HTTP headers as W3C trace context and baggage; use
/// [`Propagators::inject_http`] for the configured set.
///
/// ```
/// use streamhouse_observability::propagation;
///
/// let mut headers = http::HeaderMap::new();
/// propagation::inject_http(&tracing::Span::current(), &mut headers);
/// ```
pub fn inject_http(span: &tracing::Span, headers: &mut http::HeaderMap) {
    w3c().inject_http(span, headers);
}

/// The context carried by record headers (empty when there is none or it is malformed).
pub fn extract_record_headers<K: AsRef<[u8]>>(headers: &[(K, Vec<u8>)]) -> Context {
    w3c().extract(&RecordHeaderExtractor(headers))
}

/// Writes `span`'s context into record headers, replacing earlier trace headers.
pub fn inject_record_headers<K>(span: &tracing::Span, headers: &mut Vec<(K, Vec<u8>)>)
where
    K: AsRef<[u8]> + From<String>,
{
    w3c().inject_context(&span.context(), &mut RecordHeaderInjector(headers));
}

/// W3C trace context and baggage, built once: [`propagator`]'s pair, for the fixed-W3C
/// functions above.
fn w3c() -> &'static Propagators {
    static W3C: OnceLock<Propagators> = OnceLock::new();
    W3C.get_or_init(Propagators::default)
}
