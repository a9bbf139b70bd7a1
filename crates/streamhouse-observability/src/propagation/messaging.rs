//! Messaging spans with the OTel messaging semantic-convention attributes.
//!
//! `messaging.operation.type` uses the current convention values (`send`, `receive`,
//! `process`); `send` replaced the deprecated `publish`, which stays available as
//! `messaging.operation.name`.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::extract_record_headers;

/// `messaging.system` of every StreamHouse messaging span.
pub const MESSAGING_SYSTEM: &str = "streamhouse";

/// A messaging operation (`messaging.operation.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingOperation {
    /// A producer sends records (span kind `producer`).
    Send,
    /// A consumer receives a batch (span kind `consumer`).
    Receive,
    /// A consumer processes one record (span kind `consumer`).
    Process,
}

impl MessagingOperation {
    /// The semantic-convention value.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessagingOperation::Send => "send",
            MessagingOperation::Receive => "receive",
            MessagingOperation::Process => "process",
        }
    }
}

/// A producer span named `send <topic>`; inject it into the records' headers with
/// [`inject_record_headers`](super::inject_record_headers).
pub fn send_span(topic: &str) -> tracing::Span {
    tracing::info_span!(
        "send",
        otel.name = format!("send {topic}"),
        otel.kind = "producer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.destination.name = topic,
        messaging.operation.type = MessagingOperation::Send.as_str(),
        messaging.operation.name = "publish",
    )
}

/// A consumer span named `process <topic>` whose parent is the producer context found in
/// `headers`, so producer and consumer share one trace. Without trace headers it starts a
/// new trace.
pub fn process_span<K: AsRef<[u8]>>(
    topic: &str,
    consumer_group: &str,
    headers: &[(K, Vec<u8>)],
) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.destination.name = topic,
        messaging.consumer.group.name = consumer_group,
        messaging.operation.type = MessagingOperation::Process.as_str(),
    );
    let parent = extract_record_headers(headers);
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed; then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}

/// A consumer span named `receive <topic>` for a batch, linked to each record's producer
/// span (a batch has many parents, so links, not parenthood).
pub fn receive_span<'a, K: AsRef<[u8]> + 'a>(
    topic: &str,
    consumer_group: &str,
    batch: impl IntoIterator<Item = &'a [(K, Vec<u8>)]>,
) -> tracing::Span {
    let mut count: u64 = 0;
    let span = tracing::info_span!(
        "receive",
        otel.name = format!("receive {topic}"),
        otel.kind = "consumer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.destination.name = topic,
        messaging.consumer.group.name = consumer_group,
        messaging.operation.type = MessagingOperation::Receive.as_str(),
        messaging.batch.message_count = tracing::field::Empty,
    );
    for headers in batch {
        count += 1;
        let producer = extract_record_headers(headers);
        let context = producer.span().span_context().clone();
        if context.is_valid() {
            span.add_link(context);
        }
    }
    span.record("messaging.batch.message_count", count);
    span
}
