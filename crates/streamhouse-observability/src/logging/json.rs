//! JSON log lines that keep their context: the event's fields, the current span's fields, the
//! span list, and the OpenTelemetry ids of the span the event was emitted in.
//!
//! Hand-written because `tracing-subscriber`'s JSON formatter (feature `json`, with
//! `with_current_span` and `with_span_list`) has no hook for extra fields, and `trace_id` and
//! `span_id` live in `tracing-opentelemetry`'s private span data; this layer asks for them
//! through [`tracing_opentelemetry::get_otel_context`], which needs the dispatcher it captures
//! at registration. The line layout follows that formatter's, so tools written for it read
//! ours.

use std::io::Write;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber, dispatcher::WeakDispatch};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// Writes one JSON object per event, in the layout of `tracing-subscriber`'s JSON formatter
/// with the current span and the span list on, plus the OpenTelemetry ids:
///
/// ```json
/// {"timestamp":"2025-01-31T12:00:00.000001Z","level":"INFO","target":"lite::broker",
///  "fields":{"message":"appended","records":5},
///  "span":{"name":"append_segment","partition":3},
///  "spans":[{"name":"handle_produce","topic":"orders"},{"name":"append_segment","partition":3}],
///  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}
/// ```
///
/// - `timestamp`: RFC 3339, UTC, microseconds.
/// - `fields`: the event's fields, its text under `message`.
/// - `span`: the current span's name and fields (a field called `name` is shadowed by the
///   span's name); `spans`: every span from the outermost in. Fields recorded later with
///   `Span::record` appear from then on. Both are absent outside spans.
/// - `trace_id` (32 lowercase hex) and `span_id` (16): those of the innermost span the
///   OpenTelemetry layer of the same subscriber kept (an export-stack span is skipped for its
///   parent), as on the OTLP log record of the same event; absent without one.
///
/// Numbers stay numbers; NaN and infinities, which JSON cannot carry, become strings.
///
/// ```
/// use streamhouse_observability::logging::JsonLogLayer;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new(std::io::sink));
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("produce", topic = "orders").entered();
///     tracing::info!(records = 3, "accepted");
/// });
/// ```
pub struct JsonLogLayer<W> {
    make_writer: W,
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> JsonLogLayer<W> {
    /// A layer writing to `make_writer` (`std::io::stdout`, a file, a test buffer).
    pub fn new(make_writer: W) -> Self {
        JsonLogLayer {
            make_writer,
            dispatch: OnceLock::new(),
        }
    }
}

impl<W> std::fmt::Debug for JsonLogLayer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLogLayer").finish_non_exhaustive()
    }
}

/// A span's fields as JSON, kept in its extensions the way `tracing-subscriber` keeps
/// `FormattedFields`: recorded once when the span opens and updated by `Span::record`, so an
/// event pays only for a copy. Our own type, so no other layer's formatted fields clash.
struct JsonSpanFields(Map<String, Value>);

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        // Weak: the dispatcher owns this layer.
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        // Two JSON layers on one subscriber record the same fields: the first one keeps them.
        if extensions.get_mut::<JsonSpanFields>().is_none() {
            let mut fields = FieldsToJson(Map::new());
            attrs.record(&mut fields);
            extensions.insert(JsonSpanFields(fields.0));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<JsonSpanFields>() {
            Some(JsonSpanFields(fields)) => values.record(&mut FieldsInto(fields)),
            None => {
                let mut fields = FieldsToJson(Map::new());
                values.record(&mut fields);
                extensions.insert(JsonSpanFields(fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            line.insert("timestamp".into(), timestamp.into());
        }
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        let mut fields = FieldsToJson(Map::new());
        event.record(&mut fields);
        line.insert("fields".into(), Value::Object(fields.0));
        if let Some(scope) = ctx.event_scope(event) {
            let spans: Vec<Value> = scope.from_root().map(|span| span_json(&span)).collect();
            if let Some(current) = spans.last() {
                line.insert("span".into(), current.clone());
            }
            line.insert("spans".into(), Value::Array(spans));
        }
        // After the span fields: `get_otel_context` locks the extensions span_json reads.
        // The nearest span the OpenTelemetry layer kept: an export-stack span inside an
        // application span is not exported, and its events belong to the application's.
        let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
        if let (Some(scope), Some(dispatch)) = (ctx.event_scope(event), dispatch) {
            let span_context = scope
                .filter_map(|span| tracing_opentelemetry::get_otel_context(&span.id(), &dispatch))
                .map(|cx| cx.span().span_context().clone())
                .find(|span_context| span_context.is_valid());
            if let Some(span_context) = span_context {
                line.insert(
                    "trace_id".into(),
                    span_context.trace_id().to_string().into(),
                );
                line.insert("span_id".into(), span_context.span_id().to_string().into());
            }
        }
        let mut bytes = Value::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        // A log line that cannot be written is dropped: logging must not fail the caller.
        let _ = self.make_writer.make_writer_for(metadata).write_all(&bytes);
    }
}

/// `{"name": .., ..fields}` of one span.
fn span_json<R>(span: &SpanRef<'_, R>) -> Value
where
    R: for<'a> LookupSpan<'a>,
{
    let mut object = span
        .extensions()
        .get::<JsonSpanFields>()
        .map(|fields| fields.0.clone())
        .unwrap_or_default();
    object.insert("name".into(), span.name().into());
    Value::Object(object)
}

/// Collects fields into a fresh map.
struct FieldsToJson(Map<String, Value>);

/// Records fields into a span's existing map.
struct FieldsInto<'a>(&'a mut Map<String, Value>);

impl Visit for FieldsToJson {
    fn record_f64(&mut self, field: &Field, value: f64) {
        FieldsInto(&mut self.0).record_f64(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        FieldsInto(&mut self.0).record_i64(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        FieldsInto(&mut self.0).record_u64(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        FieldsInto(&mut self.0).record_i128(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        FieldsInto(&mut self.0).record_u128(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        FieldsInto(&mut self.0).record_bool(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        FieldsInto(&mut self.0).record_str(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        FieldsInto(&mut self.0).record_error(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        FieldsInto(&mut self.0).record_debug(field, value);
    }
}

impl FieldsInto<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().into(), value);
    }
}

impl Visit for FieldsInto<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json would write null and lose the value.
        let json = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, json);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        // Beyond 64 bits serde_json (without arbitrary_precision) has no number: a string.
        let json = i64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, json);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let json = u64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, json);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::logging::tests::Buffer;

    fn capture(f: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        buffer.lines()
    }

    #[test]
    fn lines_carry_span_fields_and_the_span_list() {
        let lines = capture(|| {
            let outer = tracing::info_span!("handle", topic = "orders", attempt = 1_u64);
            let _outer = outer.enter();
            let inner =
                tracing::info_span!("append", partition = 3, offset = tracing::field::Empty);
            let _inner = inner.enter();
            tracing::info!(records = 5, "before");
            inner.record("offset", 42);
            tracing::warn!("after");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let before = &lines[0];
        assert_eq!(before["level"], "INFO");
        assert_eq!(before["target"], module_path!());
        assert_eq!(before["fields"]["message"], "before");
        assert_eq!(before["fields"]["records"], 5);
        assert_eq!(before["span"]["name"], "append");
        assert_eq!(before["span"]["partition"], 3);
        assert!(before["span"].get("offset").is_none(), "not recorded yet");
        assert_eq!(before["spans"][0]["name"], "handle");
        assert_eq!(before["spans"][0]["topic"], "orders");
        assert_eq!(before["spans"][0]["attempt"], 1);
        assert_eq!(before["spans"][1]["name"], "append");
        assert_eq!(before["spans"].as_array().unwrap().len(), 2);
        // No OpenTelemetry layer in this subscriber: no ids.
        assert!(before.get("trace_id").is_none());

        let after = &lines[1];
        assert_eq!(after["level"], "WARN");
        assert_eq!(after["span"]["offset"], 42);
        assert_eq!(after["spans"][1]["offset"], 42);
    }

    #[test]
    fn outside_spans_there_is_no_span_context() {
        let lines = capture(|| tracing::error!(code = -7_i64, "alone"));
        let line = &lines[0];
        assert_eq!(line["fields"]["code"], -7);
        assert_eq!(line["level"], "ERROR");
        for key in ["span", "spans", "trace_id", "span_id"] {
            assert!(line.get(key).is_none(), "{key} in {line}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let lines = capture(|| tracing::info!("now"));
        let ts = lines[0]["timestamp"].as_str().unwrap();
        // YYYY-MM-DDTHH:MM:SS.ffffffZ
        let b = ts.as_bytes();
        assert_eq!(b.len(), 27, "{ts}");
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ] {
            assert_eq!(b[i], c, "{ts}");
        }
        assert_eq!(b[26], b'Z', "{ts}");
        let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26];
        assert!(
            digits
                .into_iter()
                .all(|r| b[r].iter().all(u8::is_ascii_digit)),
            "{ts}"
        );
        let year: u32 = ts[..4].parse().unwrap();
        assert!(year >= 2024, "{ts}");
    }

    #[test]
    fn hostile_values_stay_valid_json_and_round_trip() {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} esc \u{1b} bell \u{7} del \u{7f} \u{2028} é";
        let lines = capture(|| {
            let span = tracing::info_span!("s", value = nasty);
            let _span = span.enter();
            tracing::info!(value = nasty, "{nasty}");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["fields"]["message"], nasty);
        assert_eq!(line["fields"]["value"], nasty);
        assert_eq!(line["span"]["value"], nasty);
    }

    #[test]
    fn numbers_json_cannot_hold_become_strings() {
        let lines = capture(|| {
            tracing::info!(
                nan = f64::NAN,
                inf = f64::INFINITY,
                half = 0.5,
                big = u128::MAX,
                small = -5_i128,
                flag = true,
                "numbers"
            )
        });
        let fields = &lines[0]["fields"];
        assert_eq!(fields["nan"], "NaN");
        assert_eq!(fields["inf"], "inf");
        assert_eq!(fields["half"], 0.5);
        assert_eq!(fields["big"], u128::MAX.to_string());
        assert_eq!(fields["small"], -5);
        assert_eq!(fields["flag"], true);
    }

    #[test]
    fn a_span_field_called_name_is_shadowed_by_the_span_name() {
        let lines = capture(|| {
            let _span = tracing::info_span!("lookup", name = "user-supplied").entered();
            tracing::info!("x");
        });
        assert_eq!(lines[0]["span"]["name"], "lookup");
    }

    #[test]
    fn two_json_layers_on_one_subscriber_agree() {
        let (a, b) = (Buffer::default(), Buffer::default());
        let subscriber = tracing_subscriber::registry()
            .with(JsonLogLayer::new(a.clone()))
            .with(JsonLogLayer::new(b.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("s", n = tracing::field::Empty);
            let _span = span.enter();
            span.record("n", 1);
            tracing::info!("x");
        });
        for buffer in [a, b] {
            let lines = buffer.lines();
            assert_eq!(lines[0]["span"]["n"], 1);
        }
    }
}
