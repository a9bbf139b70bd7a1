//! Messaging spans with the OTel messaging semantic-convention attributes.
//!
//! `messaging.operation.type` uses the current convention values (`send`, `receive`,
//! `process`); `send` replaced the deprecated `publish`, which stays available as
//! `messaging.operation.name`.
//!
//! Topic names and consumer groups come from callers, so in span names and attributes they
//! are cut like label values: on a character boundary, to the label value length of the
//! process-wide telemetry ([`Telemetry::init_global`](crate::Telemetry::init_global)'s
//! `max_label_value_bytes`; 256 bytes until it runs).

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{RecordHeaderExtractor, extract_record_headers};
use crate::metrics::{span_value_bytes, truncate_label_value};

/// `value` cut to the span value bound.
fn bounded(value: &str) -> &str {
    truncate_label_value(value, span_value_bytes())
}

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
    let topic = bounded(topic);
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
    let (topic, consumer_group) = (bounded(topic), bounded(consumer_group));
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

/// Most span links a [`receive_span`] creates: the SDK's default span limit, so none are cut
/// after the work of extracting them. Records past it are not examined; those carrying a
/// `traceparent` are counted in the span's `streamhouse.messaging.links_dropped` attribute.
pub const MAX_RECEIVE_LINKS: usize = 128;

/// A consumer span named `receive <topic>` for a batch, linked to each record's producer
/// span (a batch has many parents, so links, not parenthood).
///
/// Links are distinct producer contexts (a batch produced in one request shares one), at
/// most [`MAX_RECEIVE_LINKS`]. Record headers are read through [`RecordHeaderExtractor`]
/// without copying; see [`receive_span_with`] for other header shapes.
pub fn receive_span<'a, K: AsRef<[u8]> + 'a>(
    topic: &str,
    consumer_group: &str,
    batch: impl IntoIterator<Item = &'a [(K, Vec<u8>)]>,
) -> tracing::Span {
    receive_span_with(
        topic,
        consumer_group,
        batch.into_iter().map(RecordHeaderExtractor),
    )
}

/// [`receive_span`] over any header carrier, one [`Extractor`] per record, so a consumer
/// whose records keep headers in a map of its own builds no carrier per record.
///
/// Only W3C trace context is read, whatever `OTEL_PROPAGATORS` says, as for every record
/// header; a record without `traceparent` costs one header lookup, and so does every record
/// past [`MAX_RECEIVE_LINKS`] links.
///
/// ```
/// use std::collections::HashMap;
/// use streamhouse_observability::propagation;
///
/// let record: HashMap<String, String> = HashMap::from([(
///     "traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// )]);
/// let batch = vec![record; 3];
/// let span = propagation::receive_span_with("orders", "billing", batch);
/// # drop(span);
/// ```
pub fn receive_span_with<E: Extractor>(
    topic: &str,
    consumer_group: &str,
    batch: impl IntoIterator<Item = E>,
) -> tracing::Span {
    let (topic, consumer_group) = (bounded(topic), bounded(consumer_group));
    let span = tracing::info_span!(
        "receive",
        otel.name = format!("receive {topic}"),
        otel.kind = "consumer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.destination.name = topic,
        messaging.consumer.group.name = consumer_group,
        messaging.operation.type = MessagingOperation::Receive.as_str(),
        messaging.batch.message_count = tracing::field::Empty,
        streamhouse.messaging.links_dropped = tracing::field::Empty,
    );
    // Zero-sized: no propagator is built per record, and baggage is never parsed.
    let propagator = TraceContextPropagator::new();
    let mut linked: Vec<(TraceId, SpanId)> = Vec::new();
    let (mut count, mut dropped) = (0u64, 0u64);
    for headers in batch {
        count += 1;
        if headers.get(TRACEPARENT).is_none() {
            continue;
        }
        if linked.len() >= MAX_RECEIVE_LINKS {
            dropped += 1;
            continue;
        }
        let producer = propagator.extract_with_context(&Context::new(), &headers);
        let context = producer.span().span_context().clone();
        let ids = (context.trace_id(), context.span_id());
        // At most 128 entries: a scan costs less than hashing.
        if context.is_valid() && !linked.contains(&ids) {
            linked.push(ids);
            span.add_link(context);
        }
    }
    span.record("messaging.batch.message_count", count);
    if dropped > 0 {
        span.record("streamhouse.messaging.links_dropped", dropped);
    }
    span
}

/// The W3C header every record carries.
const TRACEPARENT: &str = "traceparent";

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::{Layer, Registry};

    use super::*;
    use crate::config::DEFAULT_MAX_LABEL_VALUE_BYTES;

    type Fields = Arc<Mutex<Vec<HashMap<String, String>>>>;

    /// Keeps every new span's string fields.
    struct Capture(Fields);

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_new_span(&self, attributes: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            struct Strings<'a>(&'a mut HashMap<String, String>);
            impl Visit for Strings<'_> {
                fn record_str(&mut self, field: &Field, value: &str) {
                    self.0.insert(field.name().to_owned(), value.to_owned());
                }
                fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                    self.0.insert(field.name().to_owned(), format!("{value:?}"));
                }
            }
            let mut fields = HashMap::new();
            attributes.record(&mut Strings(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }

    #[test]
    fn topic_and_group_are_cut_in_span_names_and_attributes() {
        let captured = Fields::default();
        let subscriber = Registry::default().with(Capture(Arc::clone(&captured)));
        // Multi-byte characters, so the cut has to find a character boundary.
        let topic = "é".repeat(1 << 19);
        let group = "g".repeat(1 << 20);
        let headers: Vec<(String, Vec<u8>)> = Vec::new();
        tracing::subscriber::with_default(subscriber, || {
            drop(send_span(&topic));
            drop(process_span(&topic, &group, &headers));
            drop(receive_span(&topic, &group, [headers.as_slice()]));
        });

        // No `init_global` in this binary's tests changes the default bound.
        let bound = DEFAULT_MAX_LABEL_VALUE_BYTES;
        let cut_topic = "é".repeat(bound / 2);
        let cut_group = "g".repeat(bound);
        let spans = captured.lock().unwrap();
        assert_eq!(spans.len(), 3);
        for (span, operation) in spans.iter().zip(["send", "process", "receive"]) {
            assert_eq!(span["otel.name"], format!("{operation} {cut_topic}"));
            assert_eq!(span["messaging.destination.name"], cut_topic);
            if operation != "send" {
                assert_eq!(span["messaging.consumer.group.name"], cut_group);
            }
        }
    }

    #[test]
    fn receive_links_distinct_contexts_up_to_the_bound_and_counts_the_rest() {
        use opentelemetry::trace::TracerProvider as _;
        use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = Registry::default()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let parent = |i: usize| format!("00-{:032x}-{:016x}-01", i + 1, i + 1);
        let mut batch: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
        for i in 0..MAX_RECEIVE_LINKS + 40 {
            batch.push(vec![("traceparent".into(), parent(i).into_bytes())]);
            // The same producer span again, as a batch produced in one request carries.
            batch.push(vec![("TraceParent".into(), parent(i).into_bytes())]);
            batch.push(vec![("key".into(), b"no context".to_vec())]);
        }
        batch.push(vec![("traceparent".into(), b"00-zz-malformed-01".to_vec())]);
        tracing::subscriber::with_default(subscriber, || {
            drop(receive_span("orders", "g", batch.iter().map(Vec::as_slice)));
        });
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.links.links.len(), MAX_RECEIVE_LINKS);
        assert_eq!(
            span.links.dropped_count, 0,
            "nothing left for the SDK to cut"
        );
        let first = &span.links.links[0].span_context;
        assert_eq!(first.trace_id().to_string(), format!("{:032x}", 1));
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(
            attribute("messaging.batch.message_count").as_deref(),
            Some(batch.len().to_string().as_str())
        );
        // Past the bound, none examined: the repeat of the 128th context, both records of
        // each of the last 40, and the malformed one.
        assert_eq!(
            attribute("streamhouse.messaging.links_dropped").as_deref(),
            Some("82")
        );
    }
}
